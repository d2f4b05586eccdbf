"""What every script shares at its edge: one-line errors, device choice, seeding."""
from __future__ import annotations

import random
import sys

import numpy as np

from audeo_io import AudeoError


def run(main):
    """Call `main()`; an AudeoError (bad user input) becomes one line on stderr and exit code 1."""
    try:
        main()
    except AudeoError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


def default_device():
    """'cuda' when a GPU is visible, else 'cpu'."""
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def add_device_arg(parser):
    parser.add_argument("--device", default=None,
                        help="torch device (default: cuda when available, else cpu)")


def resolve_device(name):
    import torch
    device = torch.device(name or default_device())
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AudeoError(f"--device {name}: CUDA is not available on this machine")
    return device


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
