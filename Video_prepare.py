"""Prepare a real piano video for Video2Roll: 25 fps grayscale keyboard crops (and labels) in the dataset layout.

In:  a video OpenCV can read (any frame rate, size, camera side), its keyboard box (--box or --box-file),
     optionally a reference MIDI with the video time at which MIDI time 0 falls (--midi, --midi-offset).
Out: ROOT/frames/<split>/<name>.npy            uint8 (T, 100, 900) crops at 25 fps (resampled in time)
     ROOT/labels/<split>/<name>.pkl, labels_keydown/, midi/<split>/<name>/<s>-<e>.npz, performances/
                                               with --midi: labels at the same 25 fps frames
     ROOT/prepared/<name>.json                 what was done (source, fps, box, side, offset, trimming)
With labels, leading frames before the first key press are trimmed, as the original did.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from audeo_cli import run
from audeo_constants import FPS, SPLITS
from audeo_io import AudeoError, atomic_path, load_midi, midi_to_roll, regrid, write_dataset_video
from audeo_video import iter_crops, read_box, video_info

DEFAULTS = dict(split=SPLITS[2], midi_offset=0.0)
PREPARED_DIR = "prepared"


def read_crops(video, box, far_side):
    """All crops of a video at 25 fps, uint8 (T, 100, 900)."""
    from tqdm import tqdm
    total = int(video_info(video).duration * FPS)
    crops = list(tqdm(iter_crops(video, box, far_side=far_side), total=total, desc=Path(video).name, unit="frame"))
    if not crops:
        raise AudeoError(f"{video}: no frames could be decoded")
    return np.stack(crops)


def first_key_press(pm, n_frames):
    keydown = midi_to_roll(pm, sustain=False, n_frames=n_frames)
    pressed = np.flatnonzero(keydown.any(1))
    return int(pressed[0]) if len(pressed) else None


def prepare(video, root, split, name, box, far_side=False, midi=None, midi_offset=0.0, trim=True):
    """Crops (and labels from `midi`, whose time 0 falls at video time `midi_offset`) into `root`."""
    root = Path(root)
    info = video_info(video)
    crops = read_crops(video, box, far_side)
    meta = dict(source=str(video), source_fps=info.fps, size=[info.width, info.height], box=list(box),
                far_side=far_side, frames=len(crops), fps=FPS, midi=str(midi) if midi else None,
                midi_offset=midi_offset, trimmed_frames=0)
    pm = None
    if midi:
        pm = regrid(load_midi(midi), shift=midi_offset)
        first = first_key_press(pm, len(crops))
        if first is None:
            raise AudeoError(f"{midi}: no notes fall inside the video with offset {midi_offset} s")
        first = first if trim else 0
        crops, pm = crops[first:], regrid(pm, -first / FPS)
        meta.update(trimmed_frames=first, frames=len(crops))
    write_dataset_video(root, split, name, crops, pm)
    with atomic_path(root / PREPARED_DIR / f"{name}.json") as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=1))
    return meta


def main(argv=None):
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("video", help="input video file")
    p.add_argument("--out", required=True, help="dataset root")
    p.add_argument("--split", default=d["split"])
    p.add_argument("--name", help="video name in the dataset (default: the file's stem)")
    p.add_argument("--box", type=int, nargs=4, metavar=("X1", "Y1", "X2", "Y2"), help="keyboard box")
    p.add_argument("--box-file", help="file holding `x1 y1 x2 y2` (e.g. a render's box.txt)")
    p.add_argument("--far-side", action="store_true", help="camera beyond the keyboard: turn crops 180 degrees")
    p.add_argument("--midi", help="reference MIDI for labels")
    p.add_argument("--midi-offset", type=float, default=d["midi_offset"], help="video time (s) of MIDI time 0")
    p.add_argument("--no-trim", dest="trim", action="store_false", help="keep frames before the first key press")
    args = p.parse_args(argv)
    box = read_box(args.box_file) if args.box_file else args.box
    if box is None:
        raise AudeoError(f"{args.video}: no --box or --box-file given")
    name = args.name or Path(args.video).stem
    meta = prepare(args.video, args.out, args.split, name, box, args.far_side, args.midi, args.midi_offset, args.trim)
    print(f"{name}: {meta['frames']} frames at {FPS} fps (from {meta['source_fps']:.3g} fps) -> {args.out}")


if __name__ == "__main__":
    run(main)
