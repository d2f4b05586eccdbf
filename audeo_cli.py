"""What every script shares at its edge: the argument conventions, one-line errors, device choice.

Conventions: a video is the positional VIDEO, with `--box X1 Y1 X2 Y2` and `--side auto|player|far`
(add_video_args); `--out` is always an output folder or root; `--device` wherever a network runs.
"""
from __future__ import annotations

import argparse
import sys

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


def add_video_args(p, optional=False):
    """VIDEO, --box and --side: how every script that reads a video takes it."""
    p.add_argument("video", metavar="VIDEO", nargs="?" if optional else None,
                   help="a video OpenCV can read (any frame rate: resampled to 25 fps)")
    p.add_argument("--box", type=int, nargs=4, metavar=("X1", "Y1", "X2", "Y2"),
                   help="keyboard box in video pixels, cut axis-aligned (None: found automatically with its "
                        "corners, the crops rectified)")
    p.add_argument("--side", choices=tuple(SIDES), default="auto",
                   help="camera side: player (bass on the image left) or far (beyond the keyboard: crops are "
                        "turned); auto: detected with the box (player side when --box is given)")


def add_estimate_args(p, split):
    """--estimates, --split and --videos: a split of Video2Roll_inference.py's estimates."""
    p.add_argument("--estimates", required=True,
                   help="Video2Roll_inference --out folder holding estimate_Roll/<split>/<video>/")
    p.add_argument("--split", default=split)
    p.add_argument("--videos", nargs="*", help="only these videos of the split")


def default_device():
    """'cuda' when a GPU is visible, else 'cpu'."""
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def add_device_arg(p):
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def resolve_device(name):
    import torch
    device = torch.device(name or default_device())
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AudeoError(f"--device {name}: CUDA is not available on this machine")
    return device
