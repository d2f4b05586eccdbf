"""Render a whole corpus of real music into a Video2Roll/Roll2Midi dataset in the original's layout.

In:  the default corpus (music21's solo-piano pieces and Bach chorales, humanised; see
     music_corpus.py) plus any performance MIDI files given with --midi.
Out: OUT/frames/<split>/<video>.npy         uint8 (T, 100, 900) grayscale keyboard crops (frame store)
     OUT/labels/<split>/<video>.pkl         the original's labels {frame: 88-vector}, sustain-extended
     OUT/labels_keydown/<split>/<video>.pkl the same without the pedal (what the picture shows)
     OUT/midi/<split>/<video>/<s>-<e>.npz   50-frame segments, key `midi` (sustain-extended)
     OUT/performances/<split>/<video>.mid   the rendered performance
     OUT/input_images/<split>/<video>/frame<N>.jpg   only with --jpg (the original's frame layout)
     OUT/videos/<split>/<video>.mp4         only with --save-video
     OUT/manifest.json                      every video: split, piece, seed, camera side, boxes, frames

Splits are by piece (every rendition of a piece lands in one split). Leading silence is trimmed to
the first key press, as in the original. Each video is written atomically and skipped when it
already exists, so an interrupted build resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from audeo_cli import parser, run
from audeo_constants import CROP_HEIGHT, CROP_WIDTH, FPS, FRAMES_DIR, SPLITS
from audeo_io import AudeoError, atomic_dir, atomic_path, regrid, write_dataset_video

DEFAULTS = dict(hours=2.2, seed=0, workers=os.cpu_count() or 1, far_side_fraction=0.5, renditions=1,
                val_fraction=0.1, test_fraction=0.1, box_jitter=0.012)
# Source frame rates, resampled to FPS as real videos are (AI-Pianist's takes are 20 fps content: 25 fps
# crops then repeat every fourth frame), with their probabilities.
SOURCE_FPS = ((25.0, 0.4), (20.0, 0.4), (30.0, 0.2))
VIDEO_DIR = "videos"


@dataclass
class Job:
    name: str
    split: str
    piece: object          # music_corpus.Piece
    seed: int
    far_side: bool
    source_fps: float = FPS


# ----------------------------------------------------------------------------- planning

def split_groups(pieces, seed, val_fraction, test_fraction):
    """{group: split}, stratified by kind so every split gets some of each kind of music."""
    rng = np.random.default_rng(seed)
    by_kind = {}
    for p in pieces:
        by_kind.setdefault(p.kind, [])
        if p.group not in by_kind[p.kind]:
            by_kind[p.kind].append(p.group)
    split_of = {}
    for kind, groups in sorted(by_kind.items()):
        groups = sorted(groups)
        rng.shuffle(groups)
        n_val = int(round(len(groups) * val_fraction)) if len(groups) >= 3 else 0
        n_test = int(round(len(groups) * test_fraction)) if len(groups) >= 3 else 0
        n_val, n_test = max(n_val, len(groups) >= 3), max(n_test, len(groups) >= 3)
        for i, g in enumerate(groups):
            split_of[g] = SPLITS[2] if i < n_test else SPLITS[1] if i < n_test + n_val else SPLITS[0]
    return split_of


def choose_pieces(pieces, hours, seed):
    """Every solo piece and given performance, then chorales in a seeded order until `hours` is reached."""
    fixed = [p for p in pieces if p.kind != "chorale"]
    chorales = [p for p in pieces if p.kind == "chorale"]
    np.random.default_rng(seed).shuffle(chorales)
    chosen, seconds = [], 0.0
    for piece in fixed + chorales:
        if piece.kind == "chorale" and seconds >= hours * 3600:
            break
        chosen.append(piece)
        seconds += piece.performance(seed).get_end_time()
    return chosen


def plan_jobs(pieces, args):
    split_of = split_groups(pieces, args.seed, args.val_fraction, args.test_fraction)
    rng = np.random.default_rng(args.seed)
    jobs = []
    for i, piece in enumerate(pieces):
        for r in range(args.renditions):
            name = piece.name if args.renditions == 1 else f"{piece.name}__r{r}"
            rates, probs = zip(*SOURCE_FPS)
            jobs.append(Job(name, split_of[piece.group], piece, seed=args.seed * 100003 + i * 101 + r,
                            far_side=bool(rng.random() < args.far_side_fraction),
                            source_fps=float(rng.choice(rates, p=probs))))
    return jobs


# ----------------------------------------------------------------------------- one video

def jitter_box(box, size, rng, amount):
    """The true keyboard box moved by a few percent, as an imperfect detector would find it."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    dx = rng.uniform(-amount, amount, 2) * w
    dy = rng.uniform(-amount, amount, 2) * h * 4
    w_img, h_img = size
    return (int(np.clip(x1 + dx[0], 0, w_img - 2)), int(np.clip(y1 + dy[0], 0, h_img - 2)),
            int(np.clip(x2 + dx[1], x1 + dx[0] + 2, w_img)), int(np.clip(y2 + dy[1], y1 + dy[0] + 2, h_img)))


def image_corners(scene):
    """The key area's corners as audeo_keyboard reports them (back-left, back-right, front-right,
    front-left, left/right as seen in the image), in the output frame (turned for a far-side camera)."""
    back_left, back_right, front_right, front_left = np.array(scene.corners)
    if not scene.far_side:
        return np.array([back_left, back_right, front_right, front_left])
    turn = np.array(scene.size) - 1.0
    return turn - np.array([back_right, back_left, front_left, front_right])


def jitter_corners(corners, rng, amount):
    """Corners moved by up to `amount` of the keyboard's width along it (x4 of its depth across it), as
    a detector's few-pixel rectification error."""
    width = np.linalg.norm(corners[1] - corners[0])
    depth = np.linalg.norm(corners[3] - corners[0])
    along = (corners[1] - corners[0]) / width
    across = (corners[3] - corners[0]) / depth
    moves = rng.uniform(-amount, amount, (4, 2)) * [width, depth * 4]
    return corners + moves[:, :1] * along + moves[:, 1:] * across


def entry_path(out, job):
    return out / "entries" / f"{job.name}.json"


def build_video(out, job, box_jitter, save_video, save_jpg):
    """Render one performance into the dataset; returns its manifest entry."""
    import audeo_render as R
    from audeo_video import KeyboardBox, crop_keyboard, resample_indices, video_writer

    done = entry_path(out, job)
    if done.exists():                                # written last: the video is complete
        return json.loads(done.read_text())
    pm = R.shift_performance(job.piece.performance(job.seed), R.DEFAULTS["lead_in"])
    src_fps = job.source_fps
    scene = R.sample_scene(job.seed, far_side=job.far_side, fps=src_fps)
    perf = R.Performance(pm, src_fps, R.DEFAULTS["tail"])
    first = int(np.flatnonzero(perf.keys_down.any(1))[0])        # trim leading silence
    n_src = perf.n_frames - first
    pick = resample_indices(src_fps, n_src)                       # source frame of each 25 fps crop
    renderer = R.FrameRenderer(scene)
    true_box = R.keyboard_box(scene)
    rng = np.random.default_rng(job.seed + 7)
    # rectified as a detected keyboard is (audeo_video.KeyboardBox), with a few pixels of corner error
    corners = jitter_corners(image_corners(scene), rng, box_jitter)
    box = KeyboardBox(jitter_box(true_box, scene.size, rng, box_jitter), corners.tolist())
    src_crops = np.empty((n_src, CROP_HEIGHT, CROP_WIDTH), np.uint8)
    with contextlib.ExitStack() as stack:
        write = stack.enter_context(video_writer(out / VIDEO_DIR / job.split / f"{job.name}.mp4", *scene.size,
                                                 src_fps)) if save_video else None
        prev = None
        for t in range(first - 1 if first else 0, perf.n_frames):   # frame first-1 feeds motion blur only
            tips = perf.tips[:, t]
            frame = renderer.render(perf.keys_down[t], tips, perf.pressing[:, t], perf.present[:, t], prev)
            if t >= first:
                src_crops[t - first] = crop_keyboard(frame, box, far_side=job.far_side)
                if write:
                    write(frame)
            prev = tips
    crops = src_crops[pick]
    n = len(crops)
    first_seconds = first / src_fps
    write_dataset_video(out, job.split, job.name, crops, regrid(pm, -first_seconds))
    if save_jpg:
        _write_jpgs(out / FRAMES_DIR / job.split / job.name, crops)
    entry = dict(name=job.name, split=job.split, group=job.piece.group, kind=job.piece.kind,
                 source=job.piece.source, seed=job.seed, far_side=job.far_side, n_frames=int(n),
                 seconds=n / FPS, n_notes=int(sum(len(i.notes) for i in pm.instruments)),
                 frame_size=list(scene.size), box=list(true_box), crop_box=list(box),
                 corners=np.round(corners, 2).tolist(), source_fps=src_fps, trimmed_seconds=first_seconds)
    with atomic_path(done) as tmp:
        Path(tmp).write_text(json.dumps(entry))
    return entry


def _write_jpgs(folder, crops):
    with atomic_dir(folder) as tmp:
        for i, crop in enumerate(crops):
            cv2.imwrite(str(tmp / f"frame{i}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 95])


def _work(args):
    out, job, box_jitter, save_video, save_jpg = args
    return build_video(out, job, box_jitter, save_video, save_jpg)


# ----------------------------------------------------------------------------- the build

def disk_usage(folder):
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def build(args):
    from tqdm import tqdm
    from music_corpus import default_pieces

    pieces = default_pieces(extra_midi=args.midi)          # checks the given MIDI files first
    if args.no_corpus:
        pieces = [p for p in pieces if p.kind == "performance"]
    if not pieces:
        raise AudeoError("nothing to render: --no-corpus needs --midi files")
    pieces = choose_pieces(pieces, args.hours, args.seed)
    if args.limit:
        pieces = pieces[:args.limit]
    jobs = [j for j in plan_jobs(pieces, args) if j.split in args.splits]   # the splits do not depend on --splits
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    work = [(out, j, args.box_jitter, args.save_video, args.jpg) for j in jobs]
    entries = []
    with get_context("spawn").Pool(args.workers) as pool:
        for entry in tqdm(pool.imap_unordered(_work, work), total=len(work), desc="videos", unit="video"):
            entries.append(entry)
    manifest = summarise(entries, time.time() - started, disk_usage(out), args)
    with atomic_path(out / "manifest.json") as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1))
    for split, s in manifest["splits"].items():
        print(f"{split:>10}: {s['videos']:4d} videos {s['hours']:.2f} h {s['frames']:8d} frames")
    print(f"total {manifest['hours']:.2f} h, {manifest['frames']} frames, built in {manifest['build_seconds'] / 60:.1f} "
          f"min, {manifest['disk_bytes'] / 1e9:.1f} GB on disk -> {out}")
    return manifest


def summarise(entries, seconds, disk, args):
    entries = sorted(entries, key=lambda e: (e["split"], e["name"]))
    splits = {}
    for split in SPLITS:
        mine = [e for e in entries if e["split"] == split]
        splits[split] = dict(videos=len(mine), frames=sum(e["n_frames"] for e in mine),
                             hours=sum(e["seconds"] for e in mine) / 3600)
    return dict(fps=FPS, crop=[CROP_HEIGHT, CROP_WIDTH], seed=args.seed, hours=sum(e["seconds"] for e in entries) / 3600,
                frames=sum(e["n_frames"] for e in entries), build_seconds=seconds, disk_bytes=disk,
                splits=splits, videos=entries)


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--out", required=True, help="dataset root")
    p.add_argument("--hours", type=float, default=DEFAULTS["hours"], help="music to render (chorales fill up)")
    p.add_argument("--midi", nargs="*", default=[], help="extra performance MIDI files (e.g. ../shared/data/asap/*.mid)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--workers", type=int, default=DEFAULTS["workers"])
    p.add_argument("--renditions", type=int, default=DEFAULTS["renditions"], help="videos per piece")
    p.add_argument("--far-side-fraction", type=float, default=DEFAULTS["far_side_fraction"])
    p.add_argument("--val-fraction", type=float, default=DEFAULTS["val_fraction"])
    p.add_argument("--test-fraction", type=float, default=DEFAULTS["test_fraction"])
    p.add_argument("--box-jitter", type=float, default=DEFAULTS["box_jitter"],
                   help="crop box error, fraction of the box width (x4 of its height vertically)")
    p.add_argument("--no-corpus", action="store_true", help="render only the --midi files")
    p.add_argument("--limit", type=int, default=0, help="only the first N pieces (quick builds)")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                   help="render only these splits' videos (e.g. testing, to score a model)")
    p.add_argument("--jpg", action="store_true", help="also write the original's frame<N>.jpg layout")
    p.add_argument("--save-video", action="store_true", help="also keep each rendered mp4")
    build(p.parse_args(argv))


if __name__ == "__main__":
    run(main)
