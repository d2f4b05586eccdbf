"""Evaluate Video2Roll the original's way and mir_eval's, per video and overall.

In:  --data ROOT --split S (reference labels/<split>/<video>.pkl) and either
       --checkpoint MODEL.pt  (runs the model on the split's frames), or
       --estimates ESTIMATES  (ESTIMATES/estimate_Roll/<split>/<video>/ npz: Video2Roll_inference.py --out ESTIMATES)
Out: a table on stdout (per video and overall) of
       the original's sklearn per-frame precision/recall/F1/accuracy (average='samples', threshold 0.4),
       mir_eval's pooled frame P/R/F1, and note-level onset and onset+offset P/R/F1 (rolls -> notes at 25 fps);
     --json FILE writes all of it; --sweep adds a threshold sweep of the overall figures.
A 51-key model is scored on its 51 keys; an 88-key model on all 88.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from audeo_cli import add_device_arg, resolve_device, run
from audeo_constants import ESTIMATE_DIR, LABELS_DIR, N_KEYS, ROLL_THRESHOLD, SPLITS
from audeo_io import AudeoError, atomic_path, estimate_probs, load_labels, read_segments
from audeo_metrics import SUMMARY_COLUMNS, format_table, video_set_metrics

DEFAULTS = dict(split=SPLITS[2], threshold=ROLL_THRESHOLD, batch_size=32,
                sweep=tuple(np.round(np.arange(0.1, 0.91, 0.05), 2)))


def model_probabilities(checkpoint, root, split, videos, batch_size, device, n_keys=None):
    """{video: sigmoid probabilities (T, n_keys)} from running a checkpoint; and the model's key columns."""
    from tqdm import tqdm
    from Video2Roll_dataset import load_frames
    from Video2Roll_inference import iter_logits
    from Video2Roll_net import key_columns, load_model
    model, config = load_model(checkpoint, device, n_keys=n_keys)
    probs = {}
    for video in tqdm(videos, desc="videos", unit="video"):
        logits = np.stack(list(iter_logits(model, load_frames(root, split, video), batch_size, device)))
        probs[video] = 1 / (1 + np.exp(-logits))
    return probs, key_columns(config)


def estimate_probabilities(folder, videos, n_keys):
    """{video: probabilities (T, n_keys)} from estimate_Roll npz logits (88 wide, the model's keys used)."""
    from Video2Roll_dataset import key_slice
    cols = key_slice(n_keys)
    probs = {}
    for video in videos:
        _, logit = read_segments(Path(folder) / video, "logit")
        probs[video] = estimate_probs(logit)[:, cols]
    return probs, range(cols.start, cols.stop)


def reference_rolls(root, split, videos, columns, label_dir=LABELS_DIR):
    refs = {}
    for video in videos:
        _, roll = load_labels(Path(root) / label_dir / split / f"{video}.pkl")
        refs[video] = roll[:, columns.start:columns.stop]
    return refs


def evaluate(probs, refs, threshold):
    """Per-video rows and the overall row (counts pooled over videos) at `threshold`."""
    rows = []
    for video in sorted(probs):
        p, r = probs[video], refs[video]
        if len(p) != len(r):
            raise AudeoError(f"{video}: {len(p)} predicted frames but {len(r)} labelled frames")
        rows.append(dict(video=video, frames=len(r), **video_set_metrics([p >= threshold], [r])))
    overall = video_set_metrics([probs[v] >= threshold for v in sorted(probs)], [refs[v] for v in sorted(probs)])
    rows.append(dict(video="overall", frames=sum(len(r) for r in refs.values()), **overall))
    return rows


def sweep(probs, refs, thresholds):
    videos = sorted(probs)
    return [dict(threshold=float(t), **video_set_metrics([probs[v] >= t for v in videos], [refs[v] for v in videos],
                                                         notes=False)) for t in thresholds]


def main(argv=None):
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="dataset root with labels/<split>/")
    p.add_argument("--split", default=d["split"])
    p.add_argument("--videos", nargs="*", help="only these videos")
    p.add_argument("--checkpoint", help="Video2Roll checkpoint to run")
    p.add_argument("--estimates", help=f"root holding {ESTIMATE_DIR}/<split>/<video>/ npz (Video2Roll_inference --out)")
    p.add_argument("--n-keys", type=int, choices=(88, 51), help="keys scored (default: the model's)")
    p.add_argument("--labels", default=LABELS_DIR, help="label folder: labels (sustain) or labels_keydown")
    p.add_argument("--threshold", type=float, default=d["threshold"])
    p.add_argument("--sweep", action="store_true", help="also sweep thresholds 0.10..0.90")
    p.add_argument("--json", help="write every number to this file")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    add_device_arg(p)
    args = p.parse_args(argv)
    if bool(args.checkpoint) == bool(args.estimates):
        p.error("give either --checkpoint or --estimates")
    from Video2Roll_inference import dataset_videos
    if args.checkpoint:
        videos = dataset_videos(args.data, args.split, args.videos)
        probs, columns = model_probabilities(args.checkpoint, args.data, args.split, videos, args.batch_size,
                                             resolve_device(args.device), args.n_keys)
    else:
        folder = Path(args.estimates) / ESTIMATE_DIR / args.split
        videos = args.videos or sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        if not videos:
            raise AudeoError(f"{folder}: no estimate folders")
        probs, columns = estimate_probabilities(folder, videos, args.n_keys or N_KEYS)
    refs = reference_rolls(args.data, args.split, probs, columns, args.labels)
    rows = evaluate(probs, refs, args.threshold)
    print(format_table(rows, ["video", "frames"] + SUMMARY_COLUMNS))
    result = dict(split=args.split, threshold=args.threshold, keys=len(columns), videos=rows[:-1], overall=rows[-1])
    if args.sweep:
        result["sweep"] = sweep(probs, refs, DEFAULTS["sweep"])
        print(format_table(result["sweep"], ["threshold"] + [c for c in SUMMARY_COLUMNS if c.startswith("frame")]))
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    run(main)
