"""Train Video2Roll: stacked keyboard crops -> per-frame key logits (and, for sequence models, onsets).

In:  dataset roots in the original layout (frames/ or input_images/, labels_keydown/), see Render_dataset.py
     and Video2Roll_dataset.py; sequence models also cache references/ (the online reference keyboard).
Out: OUT/last.pt   full training state (model, optimizer, scheduler, epoch, step, RNG), rewritten
                   every --save-minutes and at each epoch end; a run resumes from it by default
     OUT/best.pt   the model with the best validation score, with its config: pooled frame F1 (frame
                   models); the mean over validation roots of (frame F1 + note-onset F1) / 2, notes decoded
                   from onsets and frames (sequence models)
     OUT/log.csv   one row per epoch: train loss, validation loss and metrics, learning rate

Sequence models (--preset seq) train on runs of --length frames (uniformly drawn, --draws a epoch) with
a BCE for each output (frame, onset, offset; --loss-weights), and are validated on whole validation
videos through the same streaming inference as Video2Roll_inference.py.

Recipe (the original's, ../shared/reference/audeo_original.md section 4): BCE with logits, Adam 1e-3,
batch 64, the balanced sampler with 20,000 draws per epoch (or --sampler shuffle for whole epochs),
ReduceLROnPlateau(patience 2) - stepped here on the validation loss, not the training loss - and the
model chosen by validation F1, not loss. Mixed precision where it pays: fp16 autocast on CUDA, bf16 on
CPUs with AMX tiles (about 3x faster there), fp32 elsewhere or with --no-amp. One process, or several with
    torchrun --nproc_per_node N Video2Roll_train.py ...
(DistributedDataParallel; gloo on CPU, NCCL on CUDA): each rank trains on its share of every epoch,
validation metrics are computed over all ranks, and only rank 0 logs and writes. The loop itself (resume, the
mid-epoch and epoch-end last.pt, best.pt, the log) is audeo_train.fit; on resume every rank restores its
own RNG state.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from audeo_cli import parser, run
from audeo_constants import DECODING_GRID, KEYDOWN_LABELS_DIR, ROLL_THRESHOLD, SPLITS
from audeo_io import AudeoError, decode_roll, float_state, key_slice, load_labels, sigmoid
from audeo_metrics import frame_counts, prf, video_set_metrics
from audeo_train import (Resumable, Stage, add_fit_args, distribute, fit, load_checkpoint, merge_over_ranks,
                         mixed_precision_dtype, net_overrides, reduce_sum, unwrap)
from Video2Roll_dataset import (DEFAULT_DRAWS_PER_EPOCH, Augment, MultilabelBalancedSampler, SequenceDataset,
                                Video2RollDataset, WindowSampler, list_videos, load_frames, note_targets)
from Video2Roll_net import PRESETS, build_model, load_compatible, preset, video_outputs

# ----------------------------------------------------------------------------- defaults
DEFAULTS = dict(
    preset="fast", n_keys=88, labels=KEYDOWN_LABELS_DIR,
    epochs=10, batch_size=64, lr=1e-3, patience=2, lr_factor=0.1,
    sampler="balanced", draws=DEFAULT_DRAWS_PER_EPOCH, augment=True,
    val_max_frames=4000, threshold=None, onset_threshold=None, workers=1, seed=0,   # None: see --threshold
    save_minutes=10.0,
    # sequence models (presets with temporal layers): runs of frames instead of single stacks
    length=64, loss_weights=(1.0, 1.0, 0.5),       # frame, onset, offset
)


# ----------------------------------------------------------------------------- data

def make_loaders(args, config, rank, world):
    augment = Augment() if args.augment else None
    loader_rng = torch.Generator().manual_seed(args.seed)                  # own RNG: resumable
    if config.is_sequence:
        train = SequenceDataset(args.data, SPLITS[0], args.length, n_keys=args.n_keys, label_dir=args.labels,
                                augment=augment, reference=config.reference, seed=args.seed, repeat=args.repeat)
        sampler = Resumable(WindowSampler(len(train), args.draws, seed=args.seed, rank=rank, world_size=world))
        loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                            generator=loader_rng)
        return train, validation_videos(args, rank, world), loader, sampler, None
    train = Video2RollDataset(args.data, SPLITS[0], n_keys=args.n_keys, label_dir=args.labels, augment=augment,
                              seed=args.seed, repeat=args.repeat)
    val = Video2RollDataset(args.val_data or args.data, args.val_split, n_keys=args.n_keys, label_dir=args.labels)
    if args.sampler == "balanced":
        base = MultilabelBalancedSampler(train.label_matrix(), draws=args.draws, seed=args.seed, rank=rank,
                                         world_size=world)
    else:
        base = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    sampler = Resumable(base)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                        drop_last=False, generator=loader_rng)
    val_index = np.linspace(0, len(val) - 1, min(len(val), args.val_max_frames)).round().astype(int)
    val_index = np.unique(val_index)[rank::world]           # each rank scores its share
    return train, val, loader, sampler, val_index


def validation_videos(args, rank, world):
    """[(root, video, frames)] this rank scores: the first val_max_frames/n frames of each of a root's
    n validation videos (every root gets the same budget), videos dealt out over the ranks."""
    chosen = []
    for root in args.val_data or args.data:
        names = list_videos(root, args.val_split)
        budget = max(args.val_max_frames // max(len(names), 1), 1)
        chosen += [(root, v, budget) for v in names]
    return chosen[rank::world]


# ----------------------------------------------------------------------------- steps

def batch_loss(model, batch, device, amp, weights):
    """Mean BCE of a batch: frame models (x, y, index); sequence models (frames, refs, y) with one
    weighted term per output (frame, onset, offset)."""
    loss_fn = nn.BCEWithLogitsLoss()
    if len(batch) == 3 and batch[2].dim() == 4:          # (B, 3, L, K) targets: a sequence batch
        frames, refs, y = (t.to(device, non_blocking=True) for t in batch)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out = model(frames, refs).float()
        return sum(w * loss_fn(out[:, h], y[:, h]) for h, w in enumerate(weights) if w), len(frames)
    x = batch[0].to(device, non_blocking=True, memory_format=torch.channels_last)
    y = batch[1].to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        return loss_fn(model(x).float(), y), len(x)


def train_steps(model, loader, optimizer, scaler, device, amp, on_step, weights=DEFAULTS["loss_weights"]):
    """One pass over the loader; calls on_step(samples, loss) after each step."""
    model.train()
    for batch in loader:
        loss, n = batch_loss(model, batch, device, amp, weights)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        on_step(n, loss.item())


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
    """Validation loss and the metrics evaluation reports (audeo_metrics), over all ranks.

    Frame models: pooled frame P/R/F1 over evenly spaced validation frames. Sequence models: whole
    runs of each validation video through the streaming inference, notes decoded from onsets and
    frames; `val_score` (the model choice) is the mean over roots of (frame F1 + note-onset F1) / 2."""
    if unwrap(model).config.is_sequence:
        return validate_sequences(model, val, args, device, amp)
    probs, labels, loss = predict(unwrap(model), val, val_index, args.batch_size, device, amp)
    threshold = ROLL_THRESHOLD if args.threshold is None else args.threshold
    counts = frame_counts(probs >= threshold, labels) if len(probs) else (0, 0, 0)
    loss, n, tp, n_est, n_ref = reduce_sum([loss, len(probs), *counts], device)
    m = prf(tp, n_est, n_ref)
    return dict(val_loss=loss / max(n, 1), val_precision=m["precision"], val_recall=m["recall"], val_f1=m["f1"],
                val_score=m["f1"])


def validate_sequences(model, videos, args, device, amp):
    """validate() for sequence models; decodes at every DECODING_GRID point (or the given thresholds) and
    reports the best one, which best.pt keeps as the model's operating point."""
    net = unwrap(model)
    net.eval()
    cols = key_slice(net.config.n_keys)
    per_root, loss, count = {}, 0.0, 0
    for root, video, frames in videos:
        crops = load_frames(root, args.val_split, video)[:frames]
        _, roll = load_labels(Path(root) / args.labels / args.val_split / f"{video}.pkl")
        target = note_targets(roll[:len(crops), cols])
        logits = video_outputs(net, crops, args.batch_size, device, amp, source=video)[0].transpose(1, 0, 2)
        loss += sum(w * float(nn.functional.binary_cross_entropy_with_logits(torch.from_numpy(logits[h]),
                                                                             torch.from_numpy(target[h]), reduction="sum"))
                    for h, w in enumerate(args.loss_weights)) / target.shape[2]
        count += len(crops)
        per_root.setdefault(str(root), ([], []))
        per_root[str(root)][0].append(sigmoid(logits[:2]).astype(np.float32))    # frame, onset
        per_root[str(root)][1].append(target[0].astype(np.uint8))
    per_root = merge_over_ranks(per_root)
    out = dict(val_loss=reduce_sum([loss, count], device))
    out["val_loss"] = out["val_loss"][0] / max(out["val_loss"][1], 1)
    grid = itertools.product(*[(t,) if t is not None else g for t, g in
                               zip((args.threshold, args.onset_threshold), DECODING_GRID)])
    best = None
    for frame_t, onset_t in grid:                   # the operating point is chosen with the model
        row, scores = dict(val_frame_threshold=frame_t, val_onset_threshold=onset_t), []
        for root, (probs, targets) in sorted(per_root.items()):
            m = video_set_metrics([decode_roll(p[0], p[1], frame_t, onset_t) for p in probs], targets)
            name = Path(root).name
            row[f"val_{name}_frame_f1"], row[f"val_{name}_onset_f1"] = m["frame_pooled_f1"], m["note_onset_f1"]
            row[f"val_{name}_onset_offset_f1"] = m["note_onset_offset_f1"]
            scores.append((m["frame_pooled_f1"] + m["note_onset_f1"]) / 2)
        row["val_score"] = float(np.mean(scores)) if scores else 0.0
        if best is None or row["val_score"] > best["val_score"]:
            best = row
    return {**out, **best}


# ----------------------------------------------------------------------------- the stage

OPERATING_POINT = ("frame_threshold", "onset_threshold")     # config fields that are not the network


def start(args, device, rank, world, resuming):
    """The Video2Roll Stage for audeo_train.fit: --preset/--net, Adam, the plateau schedule on the validation
    loss, the data; --init (when not resuming) starts from another checkpoint's weights."""
    amp = mixed_precision_dtype(device, enabled=not args.no_amp)
    config = preset(args.preset, n_keys=args.n_keys, **net_overrides(args.net))
    train_set, val, loader, sampler, val_index = make_loaders(args, config, rank, world)
    model = build_model(config).to(device, memory_format=torch.channels_last)   # faster convs on CPU and GPU
    model = distribute(model, device, world)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", patience=args.patience,
                                                           factor=args.lr_factor)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)   # bf16 needs no loss scaling
    if args.init and not resuming:
        start_from(unwrap(model), args.init, rank == 0)
    n_val = sum(n for *_, n in val) * world if val_index is None else len(val_index) * world
    summary = (f"training {args.preset} ({config.n_keys} keys) on {device} x{world} ({amp or torch.float32}): "
               f"{len(train_set)} training {'runs' if config.is_sequence else 'frames'}, "
               f"about {n_val} validation frames")

    def best_config(metrics):                     # a sequence model keeps the operating point validation chose
        point = {k: metrics[f"val_{k}"] for k in OPERATING_POINT} if config.is_sequence else {}
        return dataclasses.asdict(dataclasses.replace(config, **point))

    return Stage(config=config, models=dict(model=model), optimizers=dict(optimizer=optimizer), scheduler=scheduler,
                 scaler=scaler, dataset=train_set, sampler=sampler,
                 train_pass=lambda on_step: train_steps(model, loader, optimizer, scaler, device, amp, on_step,
                                                        args.loss_weights),
                 validate=lambda: validate(model, val, val_index, args, device, amp), summary=summary,
                 best_config=best_config, resume_ignores=OPERATING_POINT)


def start_from(model, path, verbose):
    """--init: `model` starts from the weights of the checkpoint at `path` (see Video2Roll_net.load_compatible)."""
    init = load_checkpoint(path)
    try:
        fresh = load_compatible(model, float_state(init["model"]))
    except ValueError as e:
        raise AudeoError(f"{path}: --init checkpoint does not fit --preset/--net/--n-keys ({e})") from None
    if verbose and fresh:
        print(f"--init {path}: {len(fresh)} tensors keep their initial values ({fresh[0]} ...)")


def parse_args(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    p.add_argument("--data", required=True, nargs="+", help="dataset root(s) (original layout)")
    p.add_argument("--repeat", type=int, nargs="*", help="per root: how many times its training videos are listed")
    p.add_argument("--out", required=True, help="run folder: last.pt, best.pt, log.csv")
    add_fit_args(p, d, "train in fp32 (default: fp16 autocast on CUDA, bf16 on CPUs with AMX)")
    p.add_argument("--preset", default=d["preset"], choices=sorted(PRESETS), help="network")
    p.add_argument("--init", help="start from this checkpoint's weights (fine-tuning); ignored when resuming")
    p.add_argument("--net", default="", help="JSON overrides of the preset's config fields (e.g. tiny test nets)")
    p.add_argument("--n-keys", type=int, default=d["n_keys"], choices=(88, 51), help="88 keys or the paper's 51")
    p.add_argument("--labels", default=d["labels"], help="label folder: labels (sustain) or labels_keydown")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--patience", type=int, default=d["patience"], help="ReduceLROnPlateau patience (epochs)")
    p.add_argument("--lr-factor", type=float, default=d["lr_factor"])
    p.add_argument("--sampler", default=d["sampler"], choices=("balanced", "shuffle"))
    p.add_argument("--draws", type=int, default=d["draws"], help="balanced sampler: samples per epoch")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=d["augment"], help="training augmentation")
    p.add_argument("--val-split", default=SPLITS[1], help="split used for validation and model choice")
    p.add_argument("--val-data", nargs="*", help="dataset root(s) for validation (default: --data)")
    p.add_argument("--val-max-frames", type=int, default=d["val_max_frames"],
                   help="validation frames scored each epoch (evenly spaced)")
    p.add_argument("--threshold", type=float, default=d["threshold"],
                   help=f"frame output threshold for validation (default: {ROLL_THRESHOLD} for frame models; sequence "
                        "models try DECODING_GRID and keep the best)")
    p.add_argument("--onset-threshold", type=float, default=d["onset_threshold"],
                   help="sequence models: onset threshold for validation (default: the best of DECODING_GRID)")
    p.add_argument("--length", type=int, default=d["length"], help="sequence models: frames per training run")
    p.add_argument("--loss-weights", type=float, nargs=3, default=d["loss_weights"],
                   metavar=("FRAME", "ONSET", "OFFSET"), help="sequence models: weight of each output's BCE")
    return p.parse_args(argv)


def main(argv=None):
    fit(parse_args(argv), start)


if __name__ == "__main__":
    run(main)
