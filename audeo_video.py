"""Video in and out: streaming frame reader, H.264 writer, the keyboard box and its crops.

OpenCV reads every format here (mp4/H.264, WMV); it cannot write H.264, so writing goes through the
static ffmpeg that the imageio-ffmpeg wheel bundles. Frames are BGR uint8 (OpenCV's convention).
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")   # our one-line errors replace FFmpeg's own chatter
import cv2  # noqa: E402
import numpy as np

from audeo_constants import (CROP_HEIGHT, CROP_WIDTH, FPS, HAND_FRACTION, REFERENCE_CHANGE, REFERENCE_DRIFT,
                             REFERENCE_GROW, REFERENCE_INIT_FRAMES, REFERENCE_INIT_STRIDE, REFERENCE_RATE)
from audeo_io import AudeoError, atomic_path

SIDES = {"auto": None, "player": False, "far": True}       # camera side names -> far_side (None: detect it)


def run_ffmpeg(*args):
    """Run the bundled ffmpeg (quiet, overwriting) on `args`: None when it succeeds, else why not, in one line."""
    import imageio_ffmpeg
    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)],
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    if proc.returncode < 0:                       # e.g. SIGXFSZ: over the file size limit
        return f"ffmpeg was killed by {signal.Signals(-proc.returncode).name}"
    lines = proc.stderr.strip().splitlines()
    return f"ffmpeg: {lines[-1]}" if lines else f"ffmpeg exited with {proc.returncode}"


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float
    n_frames: int          # as reported by the container; may be approximate
    width: int
    height: int
    codec: str = ""        # the container's FOURCC, e.g. "avc1" (H.264)

    @property
    def duration(self):
        return self.n_frames / self.fps if self.fps else 0.0


def _open(path):
    path = Path(path)
    if not path.is_file():
        raise AudeoError(f"{path}: video not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise AudeoError(f"{path}: cannot be decoded as a video")
    return cap


def fourcc(code):
    """OpenCV's FOURCC number as its four characters ("" when unknown)."""
    code = int(code)
    return "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)).strip("\0 ") if code > 0 else ""


def video_info(path):
    """Frame rate, frame count and size of a video, or a one-line error if it cannot be decoded."""
    cap = _open(path)
    try:
        info = VideoInfo(Path(path), cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                         int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         fourcc(cap.get(cv2.CAP_PROP_FOURCC)))
        ok, _ = cap.read()
    finally:
        cap.release()
    if not ok or info.width <= 0 or info.fps <= 0:
        raise AudeoError(f"{path}: no decodable frames")
    return info


def iter_frames(path):
    """Yield the BGR frames of a video one at a time (memory stays flat for any length)."""
    cap = _open(path)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


@contextlib.contextmanager
def video_writer(path, width, height, fps, crf=20, audio_path=None, preset=None):
    """Context manager giving `write(bgr_frame)`; the H.264 mp4 appears at `path` only when complete
    (`preset`: libx264's speed preset, default its own)."""
    import imageio_ffmpeg
    with atomic_path(path) as tmp:
        gen = imageio_ffmpeg.write_frames(
            tmp, (width, height), pix_fmt_in="bgr24", fps=fps, codec="libx264", quality=None, macro_block_size=2,
            output_params=["-crf", str(crf), *(("-preset", preset) if preset else ())], ffmpeg_log_level="error",
            audio_path=str(audio_path) if audio_path else None, audio_codec="aac" if audio_path else None)
        gen.send(None)
        try:
            yield lambda frame: gen.send(np.ascontiguousarray(frame))
        finally:
            gen.close()


class KeyboardBox(tuple):
    """A crop box (x1, y1, x2, y2) that may also carry the key area's four corners [x, y] (back-left,
    back-right, front-right, front-left as seen in the image), as audeo_keyboard finds them.

    With corners, crop_keyboard rectifies: it warps that quadrilateral onto the crop, undoing the
    rotation and keystone of a camera at an angle (AI-Pianist's +-45 degree takes: pooled frame F1
    0.04 -> 0.27 and 0.03 -> 0.50 on two of them with the same model). A plain 4-tuple is cropped
    axis-aligned, as the original.
    """

    def __new__(cls, box, corners=None):
        obj = super().__new__(cls, (int(round(v)) for v in box))
        obj.corners = None if corners is None else [(float(x), float(y)) for x, y in corners]
        return obj


def check_box(box, width, height, source):
    """A valid (x1, y1, x2, y2) inside a width x height frame, or a one-line error naming `source`.
    A KeyboardBox keeps its corners."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise AudeoError(f"{source}: crop box {x1} {y1} {x2} {y2} is outside the {width}x{height} frame "
                         "or empty")
    corners = getattr(box, "corners", None)
    return KeyboardBox((x1, y1, x2, y2), corners) if corners else (x1, y1, x2, y2)


def rectifying_warp(corners, far_side=False):
    """The homography (3x3) taking the key area's corners (KeyboardBox order) onto the crop, before a
    far-side crop is turned."""
    back_left, back_right, front_right, front_left = corners
    # image-oriented target: the back of the keys is at the top for a player-side camera, at the bottom
    # for a far-side one (then the whole crop is turned, as for the axis-aligned crop)
    src = [front_left, front_right, back_right, back_left] if far_side else [back_left, back_right,
                                                                          front_right, front_left]
    dst = [[0, 0], [CROP_WIDTH, 0], [CROP_WIDTH, CROP_HEIGHT], [0, CROP_HEIGHT]]
    return cv2.getPerspectiveTransform(np.float32(src), np.float32(dst))


def frame_to_crop(box, far_side=False):
    """The homography (3x3) from frame pixels to the finished crop's (bass left, back of the keys at the
    top, as crop_keyboard makes it); its inverse maps key shapes in the crop back into the frame."""
    corners = getattr(box, "corners", None)
    if corners:
        warp = rectifying_warp(corners, far_side)
    else:
        x1, y1, x2, y2 = box
        sx, sy = CROP_WIDTH / (x2 - x1), CROP_HEIGHT / (y2 - y1)
        warp = np.array([[sx, 0, -x1 * sx], [0, sy, -y1 * sy], [0, 0, 1]])
    turn = np.array([[-1, 0, CROP_WIDTH], [0, -1, CROP_HEIGHT], [0, 0, 1]], float)
    return turn @ warp if far_side else warp


def crop_keyboard(frame, box, far_side=False):
    """BGR or gray frame -> the original's input crop: grayscale, CROP_HEIGHT x CROP_WIDTH uint8.

    `far_side` turns the crop 180 degrees, so bass is always on the left and the player below.
    A KeyboardBox with corners is rectified (see KeyboardBox); other boxes are cut axis-aligned.
    """
    corners = getattr(box, "corners", None)
    if corners:
        crop = cv2.warpPerspective(frame, rectifying_warp(corners, far_side), (CROP_WIDTH, CROP_HEIGHT),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    else:
        x1, y1, x2, y2 = box
        crop = frame[y1:y2, x1:x2]
        interp = cv2.INTER_AREA if (x2 - x1) > CROP_WIDTH else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (CROP_WIDTH, CROP_HEIGHT), interpolation=interp)
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return cv2.rotate(crop, cv2.ROTATE_180) if far_side else crop


def read_box(path):
    """Read `x1 y1 x2 y2` from a box.txt file."""
    path = Path(path)
    try:
        values = [float(v) for v in path.read_text().split()]
    except (OSError, ValueError) as e:
        raise AudeoError(f"{path}: cannot read a crop box ({e})") from None
    if len(values) != 4:
        raise AudeoError(f"{path}: expected 4 numbers x1 y1 x2 y2, got {len(values)}")
    return tuple(int(round(v)) for v in values)


def resample_indices(src_fps, n_src, fps=FPS):
    """For each output frame at `fps`, the source frame nearest in time (a video at any rate -> 25 fps)."""
    duration = n_src / src_fps
    n_out = int(math.floor(duration * fps + 1e-6))
    return np.minimum(np.floor(np.arange(n_out) * src_fps / fps + 0.5 + 1e-6).astype(int), n_src - 1)


def iter_resampled(path, fps=FPS):
    """Yield the frames of a video resampled in time to `fps` (nearest source frame), streaming."""
    info = video_info(path)
    if abs(info.fps - fps) < 1e-3:
        yield from iter_frames(path)
        return
    step = info.fps / fps
    want = 0                                        # index of the next output frame
    for i, frame in enumerate(iter_frames(path)):
        while math.floor(want * step + 0.5 + 1e-6) == i:
            yield frame
            want += 1


def iter_crops(path, box, far_side=False, fps=FPS):
    """Grayscale 100x900 keyboard crops of a video at `fps`, one at a time; the box is checked first."""
    info = video_info(path)
    box = check_box(box, info.width, info.height, path)
    for frame in iter_resampled(path, fps):
        yield crop_keyboard(frame, box, far_side)


def video_crops(path, box, far_side=False, desc=None):
    """iter_crops at 25 fps with a progress bar (`desc`: default the file's name)."""
    from tqdm import tqdm
    total = int(video_info(path).duration * FPS)
    return tqdm(iter_crops(path, box, far_side=far_side), total=total, desc=desc or Path(path).name, unit="frame")


def read_crops(path, box, far_side=False):
    """All crops of a video at 25 fps, uint8 (T, 100, 900)."""
    crops = list(video_crops(path, box, far_side))
    if not crops:
        raise AudeoError(f"{path}: no frames could be decoded")
    return np.stack(crops)


def resolve_box(path, box=None, far_side=None):
    """(box, far_side, how) of a video: the box as given (checked; the player side unless `far_side`),
    else found by audeo_keyboard with its corners (crops are then rectified) and, unless given, the side.
    `how` is 'given' or 'detected'."""
    if box is not None:
        info = video_info(path)
        return check_box(box, info.width, info.height, path), bool(far_side), "given"
    from audeo_keyboard import detect_in_video
    found = detect_in_video(path)
    return KeyboardBox(found.box, found.corners), found.far_side if far_side is None else bool(far_side), "detected"


# ----------------------------------------------------------------------------- reference keyboard

class KeyboardReference:
    """An online, hands-free picture of the keyboard, one crop at a time (the 'background' of the
    systems that score 0.95 on AI-Pianist: they classify what changed since the keys were at rest).

    Feed crops in order with `update`; it returns the reference for that crop (uint8, crop-sized) and
    whether a hand is over the keys. The first reference is the per-pixel median of every
    REFERENCE_INIT_STRIDE-th of the first REFERENCE_INIT_FRAMES crops (give them to `start`), which
    removes hands that move; afterwards pixels away from any change take REFERENCE_RATE of the way to
    the frame, the rest keep their value but drift REFERENCE_DRIFT grey levels a frame towards it.
    Everything is float32 numpy/OpenCV arithmetic: the same crops give the same references in the
    dataset cache, in a whole-file run and in a stream.
    """

    def __init__(self):
        self.ref = None
        rows, cols = REFERENCE_GROW
        self.kernel = np.ones((rows, cols), np.uint8)

    def start(self, first_crops):
        """Initialise from the first crops of a video (up to REFERENCE_INIT_FRAMES of them)."""
        sample = np.asarray(first_crops[:REFERENCE_INIT_FRAMES:REFERENCE_INIT_STRIDE], np.float32)
        self.ref = np.median(sample, axis=0).astype(np.float32)

    def update(self, crop):
        """(reference uint8 like `crop`, hand over the keys: bool) after seeing `crop`."""
        frame = np.asarray(crop, np.float32)
        if self.ref is None:
            self.start(frame[None])
        diff = frame - self.ref
        change = cv2.blur(np.abs(diff), (3, 3)) > REFERENCE_CHANGE
        hand = change.mean() > HAND_FRACTION
        moving = cv2.dilate(change.astype(np.uint8), self.kernel).astype(bool)
        step = np.clip(diff, -REFERENCE_DRIFT, REFERENCE_DRIFT)
        step[~moving] = diff[~moving] * REFERENCE_RATE
        self.ref += step
        return np.rint(self.ref).astype(np.uint8), bool(hand)


def keyboard_references(crops):
    """(references uint8 like `crops`, hands bool (T,)) for a whole video's crops (T, H, W)."""
    ref = KeyboardReference()
    ref.start(crops)
    refs = np.empty((len(crops),) + tuple(crops.shape[1:]), np.uint8)
    hands = np.zeros(len(crops), bool)
    for t in range(len(crops)):
        refs[t], hands[t] = ref.update(crops[t])
    return refs, hands


def iter_with_references(crops):
    """Yield (crop, reference, hand) for a stream of crops; holds back only the first
    REFERENCE_INIT_FRAMES crops, once, to start the reference (then one crop in, one out)."""
    crops = iter(crops)
    head = []
    for crop in crops:
        head.append(crop)
        if len(head) == REFERENCE_INIT_FRAMES:
            break
    if not head:
        return
    ref = KeyboardReference()
    ref.start(np.stack(head))
    for crop in head:
        yield (crop, *ref.update(crop))
    for crop in crops:
        yield (crop, *ref.update(crop))
