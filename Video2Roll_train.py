"""Train Video2Roll: stacked keyboard crops -> per-frame key logits.

In:  a dataset root in the original layout (frames/ or input_images/, labels/), see Render_dataset.py
     and Video2Roll_dataset.py.
Out: OUT/last.pt   full training state (model, optimizer, scheduler, epoch, step, RNG), rewritten
                   every --save-minutes and at each epoch end; a run resumes from it by default
     OUT/best.pt   the model with the best validation F1 (pooled frame F1), with its config
     OUT/log.csv   one row per epoch: train loss, validation loss and metrics, learning rate

Recipe (the original's, ../shared/reference/audeo_original.md section 4): BCE with logits, Adam 1e-3,
batch 64, the balanced sampler with 20,000 draws per epoch (or --sampler shuffle for whole epochs),
ReduceLROnPlateau(patience 2) - stepped here on the validation loss, not the training loss - and the
model chosen by validation F1, not loss. Mixed precision where it pays: fp16 autocast on CUDA, bf16 on
CPUs with AMX tiles (about 3x faster there), fp32 elsewhere or with --no-amp. One process, or several with
    torchrun --nproc_per_node N Video2Roll_train.py ...
(DistributedDataParallel; gloo on CPU, NCCL on CUDA): each rank trains on its share of every epoch,
validation metrics are computed over all ranks, and only rank 0 logs and writes.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from audeo_cli import add_device_arg, resolve_device, run
from audeo_constants import LABELS_DIR, ROLL_THRESHOLD, SPLITS
from audeo_io import AudeoError
from audeo_train import (CsvLog, Resumable, barrier, cleanup_distributed, float_state_dict, load_checkpoint,
                         mixed_precision_dtype, net_overrides, reduce_sum, rng_state,
                         save_checkpoint, seed_all, set_rng_state, setup_distributed, unwrap)
from Video2Roll_dataset import DEFAULT_DRAWS_PER_EPOCH, Augment, MultilabelBalancedSampler, Video2RollDataset
from Video2Roll_net import PRESETS, build_model, preset

# ----------------------------------------------------------------------------- defaults
DEFAULTS = dict(
    preset="fast", n_keys=88, labels=LABELS_DIR,
    epochs=10, batch_size=64, lr=1e-3, patience=2, lr_factor=0.1,
    sampler="balanced", draws=DEFAULT_DRAWS_PER_EPOCH, augment=True,
    val_max_frames=4000, threshold=ROLL_THRESHOLD, workers=1, seed=0, save_minutes=10.0,
)


# ----------------------------------------------------------------------------- data

def make_loaders(args, rank, world):
    train = Video2RollDataset(args.data, SPLITS[0], n_keys=args.n_keys, label_dir=args.labels,
                              augment=Augment() if args.augment else None, seed=args.seed, repeat=args.repeat)
    val = Video2RollDataset(args.val_data or args.data, args.val_split, n_keys=args.n_keys, label_dir=args.labels)
    if args.sampler == "balanced":
        base = MultilabelBalancedSampler(train.label_matrix(), draws=args.draws, seed=args.seed, rank=rank,
                                         world_size=world)
    else:
        base = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    sampler = Resumable(base)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                        drop_last=False, generator=torch.Generator().manual_seed(args.seed))   # own RNG: resumable
    val_index = np.linspace(0, len(val) - 1, min(len(val), args.val_max_frames)).round().astype(int)
    val_index = np.unique(val_index)[rank::world]           # each rank scores its share
    return train, val, loader, sampler, val_index


# ----------------------------------------------------------------------------- steps

def train_steps(model, loader, optimizer, scaler, device, amp, on_step):
    """One pass over the loader; returns (sum of losses, samples). `amp`: autocast dtype or None."""
    model.train()
    loss_fn = nn.BCEWithLogitsLoss()
    total, count = 0.0, 0
    for x, y, _ in loader:
        x = x.to(device, non_blocking=True, memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.item() * len(x)
        count += len(x)
        on_step(len(x), loss.item())
    return total, count


@torch.no_grad()
def predict(model, dataset, indices, batch_size, device, amp=None):
    """Sigmoid probabilities (N, n_keys), labels (N, n_keys) and summed BCE for dataset[indices]."""
    model.eval()
    probs, labels, loss = [], [], 0.0
    for start in range(0, len(indices), batch_size):
        batch = [dataset[int(i)] for i in indices[start:start + batch_size]]
        x = torch.stack([b[0] for b in batch]).to(device, memory_format=torch.channels_last)
        y = torch.stack([b[1] for b in batch]).to(device)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = model(x).float()
        loss += nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum").item() / y.shape[1]
        probs.append(torch.sigmoid(logits).cpu().numpy())
        labels.append(y.cpu().numpy())
    return np.concatenate(probs), np.concatenate(labels), loss


def validate(model, val, val_index, args, device, amp):
    """Validation loss and frame metrics over all ranks (metrics computed from pooled counts)."""
    from audeo_metrics import original_frame_metrics
    probs, labels, loss = predict(unwrap(model), val, val_index, args.batch_size, device, amp)
    pred = probs >= args.threshold
    target = labels > 0
    tp, fp, fn = (pred & target).sum(), (pred & ~target).sum(), (~pred & target).sum()
    sk = original_frame_metrics(pred, target) if len(pred) else {"f1": 0.0}
    loss, n, tp, fp, fn, sk_f1_sum = reduce_sum([loss, len(pred), tp, fp, fn, sk["f1"] * len(pred)], device)
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    return dict(val_loss=loss / max(n, 1), val_precision=precision, val_recall=recall,
                val_f1=2 * precision * recall / max(precision + recall, 1e-12),
                val_sklearn_f1=sk_f1_sum / max(n, 1))


# ----------------------------------------------------------------------------- checkpoints

def checkpoint_state(model, config, optimizer, scheduler, scaler, epoch, step, partial, best, args):
    return dict(config=dataclasses.asdict(config), model=unwrap(model).state_dict(), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), scaler=scaler.state_dict(), epoch=epoch, step=step,
                partial=list(partial), best_f1=best, rng=rng_state(), args=vars(args).copy())


def resume(path, model, optimizer, scheduler, scaler, config):
    """Restore a last.pt; returns (epoch, step, partial loss sums, best F1)."""
    ckpt = load_checkpoint(path)
    if ckpt["config"] != dataclasses.asdict(config):
        raise AudeoError(f"{path}: checkpoint is for {ckpt['config']['arch']}/{ckpt['config']['n_keys']} keys, "
                         f"not this run's {config.arch}/{config.n_keys}; use another --out")
    unwrap(model).load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    return ckpt["epoch"], ckpt["step"], ckpt["partial"], ckpt["best_f1"]


# ----------------------------------------------------------------------------- main loop

def train(args):
    from tqdm import tqdm
    device = resolve_device(args.device)
    rank, world, device = setup_distributed(device)
    main_rank = rank == 0
    amp = mixed_precision_dtype(device, enabled=not args.no_amp)
    seed_all(args.seed + rank)
    config = preset(args.preset, n_keys=args.n_keys, **net_overrides(args.net))
    out = Path(args.out)
    train_set, val, loader, sampler, val_index = make_loaders(args, rank, world)
    model = build_model(config).to(device, memory_format=torch.channels_last)   # faster convs on CPU and GPU
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", patience=args.patience,
                                                           factor=args.lr_factor)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)   # bf16 needs no loss scaling
    epoch, step, partial, best = 0, 0, [0.0, 0], -1.0
    last = out / "last.pt"
    if last.exists() and not args.restart:
        epoch, step, partial, best = resume(last, model, optimizer, scheduler, scaler, config)
        if main_rank:
            print(f"resumed {last}: epoch {epoch}, sample {step}, best val F1 {best:.4f}")
    elif args.init:
        init = load_checkpoint(args.init)
        if init["config"] != dataclasses.asdict(config):
            raise AudeoError(f"{args.init}: --init checkpoint is a different network than --preset/--net/--n-keys")
        unwrap(model).load_state_dict(float_state_dict(init["model"]))
    log = CsvLog(out / "log.csv", enabled=main_rank)
    if main_rank:
        print(f"training {args.preset} ({config.n_keys} keys) on {device} x{world} ({amp or torch.float32}): "
              f"{len(train_set)} train frames, "
              f"{len(val_index) * world} validation frames")
    while epoch < args.epochs:
        sampler.set_epoch(epoch, start=step)
        last_save = time.time()
        bar = tqdm(total=len(sampler.base), initial=step, desc=f"epoch {epoch + 1}/{args.epochs}", unit="sample",
                   disable=not main_rank, unit_scale=world)

        def on_step(n, loss):
            nonlocal step, last_save
            step += n
            partial[0] += loss * n
            partial[1] += n
            bar.update(n)
            bar.set_postfix(loss=f"{partial[0] / partial[1]:.4f}")
            if args.save_minutes and time.time() - last_save > args.save_minutes * 60:
                if main_rank:
                    save_checkpoint(last, **checkpoint_state(model, config, optimizer, scheduler, scaler, epoch,
                                                             step, partial, best, args))
                last_save = time.time()

        train_steps(model, loader, optimizer, scaler, device, amp, on_step)
        bar.close()
        train_loss = reduce_sum([partial[0], partial[1]], device)
        metrics = validate(model, val, val_index, args, device, amp)
        scheduler.step(metrics["val_loss"])
        epoch, step, partial = epoch + 1, 0, [0.0, 0]
        improved = metrics["val_f1"] > best
        best = max(best, metrics["val_f1"])
        if main_rank:
            row = dict(epoch=epoch, train_loss=train_loss[0] / max(train_loss[1], 1), **metrics,
                       lr=optimizer.param_groups[0]["lr"])
            log.write(row)
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            if improved:
                save_checkpoint(out / "best.pt", config=dataclasses.asdict(config), model=unwrap(model).state_dict(),
                                metrics=metrics, epoch=epoch)
            save_checkpoint(last, **checkpoint_state(model, config, optimizer, scheduler, scaler, epoch, 0,
                                                     partial, best, args))
        barrier()
    cleanup_distributed()
    return best


def parse_args(argv=None):
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, nargs="+", help="dataset root(s) (original layout)")
    p.add_argument("--repeat", type=int, nargs="*", help="per root: how many times its training videos are listed")
    p.add_argument("--out", required=True, help="run folder: last.pt, best.pt, log.csv")
    p.add_argument("--preset", default=d["preset"], choices=sorted(PRESETS), help="network")
    p.add_argument("--init", help="start from this checkpoint's weights (fine-tuning); ignored when resuming")
    p.add_argument("--net", default="", help="JSON overrides of the preset's config fields (e.g. tiny test nets)")
    p.add_argument("--n-keys", type=int, default=d["n_keys"], choices=(88, 51), help="88 keys or the paper's 51")
    p.add_argument("--labels", default=d["labels"], help="label folder: labels (sustain) or labels_keydown")
    p.add_argument("--epochs", type=int, default=d["epochs"])
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--patience", type=int, default=d["patience"], help="ReduceLROnPlateau patience (epochs)")
    p.add_argument("--lr-factor", type=float, default=d["lr_factor"])
    p.add_argument("--sampler", default=d["sampler"], choices=("balanced", "shuffle"))
    p.add_argument("--draws", type=int, default=d["draws"], help="balanced sampler: samples per epoch")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="turn training augmentation off")
    p.add_argument("--val-split", default=SPLITS[1], help="split used for validation and model choice")
    p.add_argument("--val-data", nargs="*", help="dataset root(s) for validation (default: --data)")
    p.add_argument("--val-max-frames", type=int, default=d["val_max_frames"],
                   help="validation frames scored each epoch (evenly spaced)")
    p.add_argument("--threshold", type=float, default=d["threshold"])
    p.add_argument("--workers", type=int, default=d["workers"], help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--save-minutes", type=float, default=d["save_minutes"], help="mid-epoch last.pt interval")
    p.add_argument("--restart", action="store_true", help="ignore an existing last.pt")
    p.add_argument("--no-amp", action="store_true", help="train in fp32 (default: fp16 autocast on CUDA, bf16 on CPUs with AMX)")
    add_device_arg(p)
    return p.parse_args(argv)


def main(argv=None):
    train(parse_args(argv))


if __name__ == "__main__":
    run(main)
