"""Training plumbing shared by Video2Roll_train.py and Roll2Midi_train.py.

Checkpoints are plain dicts of tensors, numbers, strings and lists (so `torch.load(...,
weights_only=True)` reads them) carrying the model config; they are written to a temp file and
renamed, so a killed run never leaves a broken file. One process or several under `torchrun`
(DistributedDataParallel; gloo on CPU, NCCL on CUDA): only rank 0 logs and writes.
"""
from __future__ import annotations

import csv
import os
import random
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from torch.utils.data import Sampler

from audeo_io import AudeoError, atomic_path


# ----------------------------------------------------------------------------- distributed

def setup_distributed(device):
    """Join the torchrun process group when launched by torchrun; returns (rank, world_size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def cleanup_distributed():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def reduce_sum(values, device):
    """Sum a list of floats over all ranks (identity in a single process)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def gather_arrays(array, device):
    """Concatenate a (N, ...) numpy array from all ranks along axis 0 (rank order)."""
    if not (dist.is_available() and dist.is_initialized()):
        return array
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, array)
    return np.concatenate(parts)


def merge_over_ranks(per_root):
    """{root: (preds, targets)} of every rank, joined (the identity in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return per_root
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, per_root)
    merged = {}
    for part in parts:
        for root, (preds, targets) in part.items():
            merged.setdefault(root, ([], []))
            merged[root][0].extend(preds)
            merged[root][1].extend(targets)
    return merged


def barrier():
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# ----------------------------------------------------------------------------- reproducibility

def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state():
    """Every RNG's state as weights_only-loadable values."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": _to_lists(random.getstate()),
            "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2]),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuples(state["python"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(path, **state):
    """torch.save, atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def read_torch_file(path):
    """torch.load(weights_only=True) of `path` on the CPU, or a one-line error if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise AudeoError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():          # a garbage file makes torch warn before it fails
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # torch raises many types for truncated/garbage files
        raise AudeoError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def load_checkpoint(path):
    """A checkpoint dict with `config` and `model`, or a one-line error."""
    ckpt = read_torch_file(path)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise AudeoError(f"{path}: not an Audeo checkpoint (no model/config)")
    return ckpt


def config_dict(config):
    return asdict(config)


def mixed_precision_dtype(device, enabled=True):
    """The autocast dtype for training: float16 on CUDA; bfloat16 on CPUs with AMX tiles (oneDNN runs
    bf16 convolutions there about 3x faster than fp32: 24 vs 7.3 samples/s for the paper net on this
    machine's 2 cores); None (fp32) elsewhere, where bf16 is emulated and slower."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu":
        try:
            if torch.ops.mkldnn._is_mkldnn_bf16_supported() and torch._C._cpu._init_amx():
                return torch.bfloat16
        except (AttributeError, RuntimeError):   # private probes: absent in other torch builds
            pass
    return None


def unwrap(model):
    """The bare module inside DistributedDataParallel."""
    return model.module if hasattr(model, "module") else model


def half_state_dict(model):
    """fp16 copy of a state dict (floating tensors only) for small shipped checkpoints."""
    return {k: v.half() if v.is_floating_point() else v for k, v in unwrap(model).state_dict().items()}


def float_state_dict(state):
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


# ----------------------------------------------------------------------------- logging

class CsvLog:
    """Appends one row per epoch to a CSV file (header written once); resumes cleanly."""

    def __init__(self, path, enabled=True):
        self.path, self.enabled = Path(path), enabled

    def write(self, row):
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)


# ----------------------------------------------------------------------------- epochs and configs

class Resumable(Sampler):
    """Wraps an epoch sampler so an interrupted epoch can restart at sample `start`."""

    def __init__(self, base):
        self.base, self.start = base, 0

    def set_epoch(self, epoch, start=0):
        self.base.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        return iter(list(self.base)[self.start:])

    def __len__(self):
        return len(self.base) - self.start


def net_overrides(text):
    """--net '{"seq_channels": 32, "stem_channels": [8, 8]}' -> config fields (lists become tuples)."""
    import json
    if not text:
        return {}
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as e:
        raise AudeoError(f"--net: not JSON ({e})") from None
    return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in fields.items()}
