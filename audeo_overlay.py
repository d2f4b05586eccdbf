"""The key-overlay video: the input video with the keyboard's outline and, on every frame, the keys the
model holds down there drawn over them (Audeo.py --overlay writes it as DIR/<name>_keys.mp4).

Key shapes are laid out in the crop that Video2Roll sees (bass left, the back of the keys at the top;
white keys notched round their black neighbours, black keys BLACK_LENGTH / KEY_LENGTH of the keys'
length, as audeo_render draws them) and mapped into the frame through the inverse of the crop's
homography (audeo_video.frame_to_crop): the rectifying warp of a detected box, the scaling of a --box,
with a far-side camera's turn. A highlighted key is therefore where the model looked for it.
Frames are read, drawn and written one at a time (flat memory on any length), at the video's own rate:
frame i shows the roll row of 25 fps frame nearest its time.
"""
from __future__ import annotations

import cv2
import numpy as np

from audeo_constants import (CROP_HEIGHT, CROP_WIDTH, N_KEYS, N_WHITE_KEYS, OVERLAY_KEY_ALPHA, OVERLAY_KEY_BGR,
                             OVERLAY_LINE_PER_PX, OVERLAY_MIN_LINE, OVERLAY_OUTLINE_BGR, OVERLAY_PRESET)
from audeo_io import time_to_frame
from audeo_render import BLACK_LENGTH, KEY_BLACK, KEY_LENGTH, KEY_X0, KEY_X1
from audeo_stream import counted
from audeo_video import frame_to_crop, iter_frames, video_info, video_writer

SUBPIXEL = 4          # cv2 drawing: coordinates carry 4 fractional bits


def crop_key_shapes():
    """The 88 keys' outlines in crop pixels (float (N, 2) arrays): black keys as rectangles at the back,
    white keys as the 8-corner shape around their black neighbours."""
    ux, black_v = CROP_WIDTH / N_WHITE_KEYS, CROP_HEIGHT * BLACK_LENGTH / KEY_LENGTH
    shapes = []
    for k in range(N_KEYS):
        x0, x1 = KEY_X0[k] * ux, KEY_X1[k] * ux
        if KEY_BLACK[k]:
            shapes.append(np.array([(x0, 0), (x1, 0), (x1, black_v), (x0, black_v)]))
            continue
        a = KEY_X1[k - 1] * ux if k > 0 and KEY_BLACK[k - 1] else x0            # back part: between the blacks
        b = KEY_X0[k + 1] * ux if k + 1 < N_KEYS and KEY_BLACK[k + 1] else x1
        shapes.append(np.array([(a, 0), (b, 0), (b, black_v), (x1, black_v), (x1, CROP_HEIGHT), (x0, CROP_HEIGHT),
                                (x0, black_v), (a, black_v)]))
    return shapes


def to_frame(points, box, far_side=False):
    """Crop pixels (N, 2) -> frame pixels (N, 2), through the inverse of the crop's homography."""
    back = np.linalg.inv(frame_to_crop(box, far_side))
    return cv2.perspectiveTransform(np.asarray(points, np.float64)[None], back)[0]


def outline(box):
    """The keyboard's outline in the frame: the four corners of a detected box, else the --box rectangle."""
    corners = getattr(box, "corners", None)
    if corners:
        return np.array(corners, float)
    x1, y1, x2, y2 = box
    return np.array([(x1, y1), (x2 - 1, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], float)


def _fixed(points):
    return np.rint(np.asarray(points) * (1 << SUBPIXEL)).astype(np.int32)


class KeyOverlay:
    """Draws the outline and the held keys onto frames of one video (its box and camera side)."""

    def __init__(self, box, far_side, width):
        self.keys = [_fixed(to_frame(shape, box, far_side)) for shape in crop_key_shapes()]
        self.outline = _fixed(outline(box))
        self.thickness = max(OVERLAY_MIN_LINE, round(width * OVERLAY_LINE_PER_PX))

    def draw(self, frame, down):
        """`frame` (BGR, drawn on in place and returned) with the keys where `down` (88,) is set highlighted."""
        held = [self.keys[k] for k in np.flatnonzero(down)]
        if held:
            layer = frame.copy()
            cv2.fillPoly(layer, held, OVERLAY_KEY_BGR, cv2.LINE_AA, SUBPIXEL)
            cv2.addWeighted(layer, OVERLAY_KEY_ALPHA, frame, 1 - OVERLAY_KEY_ALPHA, 0, dst=frame)
        cv2.polylines(frame, [self.outline], True, OVERLAY_OUTLINE_BGR, self.thickness, cv2.LINE_AA, SUBPIXEL)
        return frame


def roll_row(i, fps, n_rows):
    """The 25 fps roll row shown on frame i of a video at `fps`: the one nearest the frame's time."""
    return min(time_to_frame(i / fps), n_rows - 1)


def write_overlay(video, roll, box, far_side, path, report=None):
    """Write the silent key-overlay video of `video` (H.264 at its own rate and size) to `path`, atomically;
    `report(done, total)` follows the frames. Returns the number of frames written."""
    info = video_info(video)
    overlay = KeyOverlay(box, far_side, info.width)
    n = 0
    with video_writer(path, info.width, info.height, info.fps, preset=OVERLAY_PRESET) as write:
        for n, frame in enumerate(counted(iter_frames(video), report, info.n_frames), start=1):
            write(overlay.draw(frame, roll[roll_row(n - 1, info.fps, len(roll))]))
    return n
