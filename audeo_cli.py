"""What every script shares at its edge: the argument conventions, one-line errors, device choice.

Conventions: a video is the positional VIDEO, with `--box X1 Y1 X2 Y2` and `--side auto|player|far`
(add_video_args); `--out` is always an output folder or root; `--device` wherever a network runs.
"""
from __future__ import annotations

import argparse
import os
import sys

from audeo_constants import PRECISIONS, VIDEO_EXTENSIONS
from audeo_io import AudeoError
from audeo_video import SIDES


def run(main):
    """Call `main()`; an AudeoError (bad user input) becomes one line on stderr and exit code 1."""
    try:
        main()
    except AudeoError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless its help already says what the default is."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        return help_text if "default" in help_text else super()._get_help_string(action)


def parser(doc):
    """An ArgumentParser described by the first line of a script's docstring, showing every default."""
    return argparse.ArgumentParser(description=doc.split("\n")[0], formatter_class=_DefaultsFormatter)


def add_video_args(p, optional=False, many=False):
    """VIDEO, --box and --side: how every script that reads a video takes it (`many`: VIDEO ... of
    files and folders, see video_list)."""
    p.add_argument("video", metavar="VIDEO", nargs=("*" if optional else "+") if many else ("?" if optional else None),
                   help="a video OpenCV can read (any frame rate: resampled to 25 fps)" +
                        ("; several, or folders of them (searched recursively)" if many else ""))
    p.add_argument("--box", type=int, nargs=4, metavar=("X1", "Y1", "X2", "Y2"),
                   help="keyboard box in video pixels, cut axis-aligned (None: found automatically with its "
                        "corners, the crops rectified)")
    p.add_argument("--side", choices=tuple(SIDES), default="auto",
                   help="camera side: player (bass on the image left) or far (beyond the keyboard: crops are "
                        "turned); auto: detected with the box (player side when --box is given)")


def video_list(paths):
    """Video files from files and folders (a folder: its files with a VIDEO_EXTENSIONS suffix, recursively,
    sorted), in order and without repeats; under torchrun, only this rank's share (every WORLD_SIZE-th
    from RANK), so a collection runs on several processes or machines with no scheduler of our own."""
    from pathlib import Path
    videos = []
    for path in map(Path, paths):
        if path.is_dir():
            videos += sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        else:
            videos.append(path)
    videos = list(dict.fromkeys(videos))
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return videos[rank::world]


def run_each(items, work, describe=str):
    """`work(item)` for every item, going on after a failure (one `error:` line each); then an AudeoError
    naming the failures, if any. A single item fails as itself."""
    if len(items) == 1:
        work(items[0])
        return
    failed = []
    for item in items:
        try:
            work(item)
        except AudeoError as e:
            print(f"error: {e}", file=sys.stderr)
            failed.append(describe(item))
    if failed:
        raise AudeoError(f"{len(failed)} of {len(items)} failed: {', '.join(failed)}")


def add_estimate_args(p, split):
    """--estimates, --split and --videos: a split of Video2Roll_inference.py's estimates."""
    p.add_argument("--estimates", required=True,
                   help="Video2Roll_inference --out folder holding estimate_Roll/<split>/<video>/")
    p.add_argument("--split", default=split)
    p.add_argument("--videos", nargs="*", help="only these videos of the split")


def default_device():
    """'cuda' when a GPU is visible (under torchrun, this rank's own: cuda:LOCAL_RANK), else 'cpu'."""
    import torch
    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{os.environ['LOCAL_RANK']}" if "LOCAL_RANK" in os.environ else "cuda"


def add_device_arg(p):
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def add_precision_arg(p, default=PRECISIONS[0]):
    """--precision of Video2Roll's inference, the same in every script that runs it."""
    p.add_argument("--precision", choices=PRECISIONS, default=default,
                   help="Video2Roll: fp32; bf16 autocast (~3x faster on CPUs with AMX); int8 (CPU: the net's "
                        "convolutions quantized, ~2.5x faster on AVX2; needs the model's int8 calibration)")


def resolve_device(name):
    import torch
    device = torch.device(name or default_device())
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AudeoError(f"--device {name}: CUDA is not available on this machine")
    return device
