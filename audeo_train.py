"""Training shared by Video2Roll_train.py and Roll2Midi_train.py: the one training loop, `fit`.

fit() owns what both stages do alike: the torchrun process group, seeding, resuming from last.pt, the
epoch loop (sampler and dataset told the epoch, a progress bar, last.pt every --save-minutes),
validation, the plateau scheduler, the CSV log and the best/last checkpoints. A stage hands it a
`Stage`: its models, optimizers, scheduler, grad scaler, data, one training pass and one validation.

Checkpoints are plain dicts of tensors, numbers, strings and lists (so `torch.load(...,
weights_only=True)` reads them) carrying the model config; they are written to a temp file and
renamed, so a killed run never leaves a broken file:
  last.pt  config, each model's and optimizer's state (by the Stage's keys), scheduler, scaler, epoch,
           step (samples of this epoch done), partial (the epoch's loss sums), best_f1 (the best
           validation score), rng (every RNG's state), args; under torchrun also `ranks`: each rank's own
           rng and partial, which that rank restores on resume
  best.pt  config, each model's state, metrics, epoch
One process or several under `torchrun` (DistributedDataParallel; gloo on CPU, NCCL on CUDA): only
rank 0 logs and writes.
"""
from __future__ import annotations

import csv
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from audeo_cli import add_device_arg, resolve_device
from audeo_io import AudeoError, read_torch_file, save_checkpoint


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
    if _distributed():
        dist.destroy_process_group()


def _distributed():
    return dist.is_available() and dist.is_initialized()


def distribute(module, device, world):
    """`module` wrapped in DistributedDataParallel under torchrun (world > 1), else as it is."""
    if world == 1:
        return module
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def reduce_sum(values, device):
    """Sum a list of floats over all ranks (identity in a single process)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if _distributed():
        dist.all_reduce(t)
    return t.tolist()


def gather_objects(obj):
    """[every rank's `obj`] in rank order ([obj] in a single process)."""
    if not _distributed():
        return [obj]
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, obj)
    return parts


def merge_over_ranks(per_root):
    """{root: (preds, targets)} of every rank, joined (the identity in a single process)."""
    if not _distributed():
        return per_root
    merged = {}
    for part in gather_objects(per_root):
        for root, (preds, targets) in part.items():
            merged.setdefault(root, ([], []))
            merged[root][0].extend(preds)
            merged[root][1].extend(targets)
    return merged


def rank0_says(flag, device):
    """Rank 0's `flag` on every rank (a decision all ranks must take together); `flag` in a single process."""
    if not _distributed():
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


def barrier():
    if _distributed():
        dist.barrier()


# ----------------------------------------------------------------------------- reproducibility

def seed_all(seed):
    """Seed Python's, numpy's and torch's global RNGs."""
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


# ----------------------------------------------------------------------------- models and checkpoints

def load_checkpoint(path):
    """A checkpoint dict with `config` and `model`, or a one-line error."""
    ckpt = read_torch_file(path)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise AudeoError(f"{path}: not an Audeo checkpoint (no model/config)")
    return ckpt


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


# ----------------------------------------------------------------------------- logging and epochs

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


class SaveClock:
    """Whether `minutes` have passed since the last save (never with 0 or None); under torchrun rank 0's
    clock decides for every rank, so all ranks save at the same step."""

    def __init__(self, minutes, device):
        self.seconds, self.device = (minutes or 0) * 60, device
        self.restart()

    def restart(self):
        self.last = time.time()

    def due(self):
        return bool(self.seconds) and rank0_says(time.time() - self.last > self.seconds, self.device)


# ----------------------------------------------------------------------------- the training loop

def add_fit_args(p, defaults, no_amp_help):
    """The options fit() reads (--epochs, --seed, --save-minutes, --restart, --device), and --workers and
    --no-amp, which both stages read alike; `defaults` is the stage's DEFAULTS."""
    p.add_argument("--epochs", type=int, default=defaults["epochs"])
    p.add_argument("--workers", type=int, default=defaults["workers"], help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=defaults["seed"], help="rank r seeds its RNGs with seed + r")
    p.add_argument("--save-minutes", type=float, default=defaults["save_minutes"], help="mid-epoch last.pt interval")
    p.add_argument("--restart", action="store_true", help="ignore an existing last.pt")
    p.add_argument("--no-amp", action="store_true", help=no_amp_help)
    add_device_arg(p)


@dataclass
class Stage:
    """What fit() trains: a stage's networks, their optimization and its data (see Video2Roll_train.start and
    Roll2Midi_train.start)."""
    config: object                  # the networks' config dataclass, stored in every checkpoint
    models: dict                    # checkpoint key -> module (DistributedDataParallel under torchrun)
    optimizers: dict                # checkpoint key -> optimizer
    scheduler: object               # ReduceLROnPlateau; its optimizer's learning rate is logged
    scaler: object                  # torch.amp.GradScaler
    dataset: object                 # the training set: set_epoch(epoch) before each epoch
    sampler: Resumable              # its sampler: set_epoch(epoch, start) before each epoch
    train_pass: Callable            # (on_step) -> None: one pass over the loader, on_step(samples, *losses) a step
    validate: Callable              # () -> metrics, with `val_score` (the model choice) and `plateau_metric`
    summary: str                    # printed once before training
    loss_names: tuple = ("train_loss",)     # the log's names of on_step's losses
    plateau_metric: str = "val_loss"        # the metric the scheduler watches
    unit: str = "sample"                    # what the progress bar counts
    best_config: Callable = None            # metrics -> best.pt's config dict (None: the config)
    resume_ignores: tuple = ()              # config fields a resumed run may change (not the network)


def fit(args, start):
    """Train the Stage that start(args, device, rank, world, resuming) builds for args.epochs epochs into the
    folder args.out, resuming from its last.pt unless args.restart; returns the best validation score.
    Also reads args.device, args.seed (+ rank: each rank its own stream) and args.save_minutes."""
    from tqdm import tqdm
    rank, world, device = setup_distributed(resolve_device(args.device))
    seed_all(args.seed + rank)
    out = Path(args.out)
    last = out / "last.pt"
    resuming = last.exists() and not args.restart
    stage = start(args, device, rank, world, resuming)
    epoch, step, partial, best = 0, 0, _no_losses(stage), -1.0
    if resuming:
        epoch, step, partial, best = resume(last, stage, rank, world)
        if rank == 0:
            print(f"resumed {last}: epoch {epoch}, sample {step}, best validation score {best:.4f}")
    log = CsvLog(out / "log.csv", enabled=rank == 0)
    if rank == 0:
        print(stage.summary)

    def save_last():
        ranks = gather_objects(dict(rng=rng_state(), partial=list(partial)))
        if rank == 0:
            save_checkpoint(last, **_last_state(stage, epoch, step, partial, best, ranks, args))

    while epoch < args.epochs:
        stage.sampler.set_epoch(epoch, start=step)
        stage.dataset.set_epoch(epoch)                  # e.g. a new augmentation draw every epoch
        clock = SaveClock(args.save_minutes, device)
        bar = tqdm(total=len(stage.sampler.base), initial=step, desc=f"epoch {epoch + 1}/{args.epochs}",
                   unit=stage.unit, disable=rank != 0, unit_scale=world)

        def on_step(n, *losses):
            nonlocal step
            step += n
            for i, loss in enumerate(losses):
                partial[i] += loss * n
            partial[-1] += n
            bar.update(n)
            bar.set_postfix({k.removeprefix("train_"): f"{s / partial[-1]:.4f}" for k, s in zip(stage.loss_names,
                                                                                                 partial)})
            if clock.due():
                save_last()
                clock.restart()

        stage.train_pass(on_step)
        bar.close()
        sums = reduce_sum(partial, device)
        metrics = stage.validate()
        stage.scheduler.step(metrics[stage.plateau_metric])
        epoch, step, partial = epoch + 1, 0, _no_losses(stage)
        improved = metrics["val_score"] > best
        best = max(best, metrics["val_score"])
        if rank == 0:
            row = dict(epoch=epoch, **{k: s / max(sums[-1], 1) for k, s in zip(stage.loss_names, sums)}, **metrics,
                       lr=stage.scheduler.optimizer.param_groups[0]["lr"])
            log.write(row)
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            if improved:
                save_checkpoint(out / "best.pt", **_best_state(stage, metrics, epoch))
        save_last()
        barrier()
    cleanup_distributed()
    return best


def _no_losses(stage):
    """An epoch's partial sums before its first step: one loss sum per loss name, then the sample count."""
    return [0.0] * len(stage.loss_names) + [0]


def _states(modules):
    return {k: unwrap(m).state_dict() for k, m in modules.items()}


def _last_state(stage, epoch, step, partial, best, ranks, args):
    state = dict(config=asdict(stage.config), **_states(stage.models), **_states(stage.optimizers),
                 scheduler=stage.scheduler.state_dict(), scaler=stage.scaler.state_dict(), epoch=epoch, step=step,
                 partial=list(partial), best_f1=best, rng=ranks[0]["rng"],
                 args={k: list(v) if isinstance(v, tuple) else v for k, v in vars(args).items()})
    if len(ranks) > 1:
        state["ranks"] = ranks
    return state


def _best_state(stage, metrics, epoch):
    config = stage.best_config(metrics) if stage.best_config else asdict(stage.config)
    return dict(config=config, **_states(stage.models), metrics=metrics, epoch=epoch)


def resume(path, stage, rank, world):
    """Restore a last.pt into `stage`; returns (epoch, step, partial loss sums, best validation score). Each
    rank restores its own RNG state and partial sums when the checkpoint has them for this many ranks."""
    ckpt = read_torch_file(path)
    keys = ("config", *stage.models, *stage.optimizers, "scheduler", "scaler", "epoch", "step", "partial", "best_f1",
            "rng")
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in keys):
        raise AudeoError(f"{path}: not a training state of this stage (use another --out, or --restart)")
    _check_same_network(path, ckpt["config"], asdict(stage.config), stage.resume_ignores)
    for k, module in stage.models.items():
        unwrap(module).load_state_dict(ckpt[k])
    for k, optimizer in stage.optimizers.items():
        optimizer.load_state_dict(ckpt[k])
    stage.scheduler.load_state_dict(ckpt["scheduler"])
    stage.scaler.load_state_dict(ckpt["scaler"])
    ranks = ckpt.get("ranks", [])
    mine = ranks[rank] if len(ranks) == world else dict(rng=ckpt["rng"], partial=ckpt["partial"])
    set_rng_state(mine["rng"])
    return ckpt["epoch"], ckpt["step"], list(mine["partial"]), ckpt["best_f1"]


def _check_same_network(path, saved, current, ignores):
    differ = sorted(k for k in set(saved) | set(current) if k not in ignores and saved.get(k) != current.get(k))
    if differ:
        fields = ", ".join(f"{k} {saved.get(k)!r}, not {current.get(k)!r}" for k in differ)
        raise AudeoError(f"{path}: checkpoint is for another network ({fields}); use another --out")
