"""Evaluate Video2Roll the original's way and mir_eval's, per video, overall and by protocol.

In:  --data ROOT --split S (reference labels_keydown/<split>/<video>.pkl) and either
       --checkpoint MODEL.pt  (runs the model on the split's frames), or
       --estimates ESTIMATES  (ESTIMATES/estimate_Roll/<split>/<video>/ npz: Video2Roll_inference.py --out ESTIMATES)
Out: a table on stdout (per video and overall) of
       the original's sklearn per-frame precision/recall/F1/accuracy (average='samples', threshold 0.4),
       mir_eval's pooled frame P/R/F1, note-level onset P/R/F1 at 50 ms (and at 100 and 150 ms, the
       tolerances other video papers use) and onset+offset P/R/F1 (rolls -> notes at 25 fps);
     then the same overall figures by protocol: frames with a hand over the keys only (the
     protocol of Akbari et al.; from the model's reference keyboard, when it has one), black keys
     only, white keys only, and per camera angle when video names carry one (AI-Pianist: _0_, _p45_,
     _m45_); --json FILE writes all of it; --sweep adds a threshold sweep of the overall figures.
A frame model's prediction is sigmoid(logit) >= --threshold; a sequence model's is its notes decoded
from onsets and frames (the estimates' `roll`). A 51-key model is scored on its 51 keys.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from audeo_cli import add_device_arg, add_precision_arg, parser, resolve_device, run
from audeo_constants import ESTIMATE_DIR, KEYDOWN_LABELS_DIR, N_KEYS, ROLL_THRESHOLD, SPLITS, is_white_key
from audeo_io import (AudeoError, atomic_path, estimate_folder, estimate_probs, key_slice, list_estimate_videos,
                      load_labels, read_segments, sigmoid)
from audeo_metrics import SUMMARY_COLUMNS, evaluation_rows, format_table, video_set_metrics
from Video2Roll_dataset import dataset_videos, load_frames
from Video2Roll_net import autocast_dtype, estimate_arrays, load_model, video_outputs

DEFAULTS = dict(split=SPLITS[2], threshold=None, onset_threshold=None, batch_size=32,   # None: the model's
                sweep=tuple(np.round(np.arange(0.1, 0.91, 0.05), 2)))
COLUMNS = SUMMARY_COLUMNS[:7] + ["note_onset_f1", "note_onset_100ms_f1", "note_onset_150ms_f1",
                                 "note_onset_offset_f1"]
ANGLE = re.compile(r"_(0|p45|m45)_")          # AI-Pianist take names: ai_pianist_<pianist>_<angle>_<take>


class Prediction:
    """One video's prediction: frame probabilities (T, n_keys), the binary roll scored, hand flags (T,) or None."""

    def __init__(self, probs, roll, hands=None):
        self.probs, self.roll, self.hands = probs, roll, hands


def model_predictions(checkpoint, root, split, videos, batch_size, device, threshold, onset_threshold, n_keys=None,
                      precision="fp32"):
    """{video: Prediction} from running a checkpoint on a dataset split; and the model's key columns."""
    from tqdm import tqdm
    model, config = load_model(checkpoint, device, n_keys=n_keys, precision=precision)
    cols = key_slice(config.n_keys)
    preds = {}
    for video in tqdm(videos, desc="videos", unit="video"):
        logits, hands = video_outputs(model, load_frames(root, split, video), batch_size, device,
                                      autocast_dtype(precision), source=video)
        arrays = estimate_arrays(logits, hands, config, threshold, onset_threshold)
        preds[video] = Prediction(sigmoid(arrays["logit"][:, cols]), arrays["roll"][:, cols] > 0,
                                  arrays["hand"][:, 0] > 0 if "hand" in arrays else None)
    return preds, range(N_KEYS)[cols]


def estimate_predictions(folder, videos, n_keys, threshold):
    """{video: Prediction} from estimate_Roll npz (88 wide, the model's keys used). Frame models are
    thresholded at `threshold`; sequence models (with `onset_logit`) keep their decoded `roll`."""
    cols = key_slice(n_keys)
    preds = {}
    for video in videos:
        _, logit = read_segments(Path(folder) / video, "logit")
        probs = estimate_probs(logit)[:, cols]
        sequence = _has(Path(folder) / video, "onset_logit")
        roll = read_segments(Path(folder) / video, "roll")[1][:, cols] > 0 if sequence else probs >= threshold
        hands = read_segments(Path(folder) / video, "hand")[1][:, 0] > 0 if _has(Path(folder) / video, "hand") else None
        preds[video] = Prediction(probs, roll, hands)
    return preds, range(N_KEYS)[cols]


def _has(folder, key):
    first = next(iter(sorted(Path(folder).glob("*.npz"))), None)
    if first is None:
        raise AudeoError(f"{folder}: no estimate segments")
    with np.load(first) as z:
        return key in z.files


def reference_rolls(root, split, videos, columns, label_dir=KEYDOWN_LABELS_DIR):
    refs = {}
    for video in videos:
        _, roll = load_labels(Path(root) / label_dir / split / f"{video}.pkl")
        refs[video] = roll[:, columns.start:columns.stop]
    return refs


def protocols(preds, refs, columns):
    """Overall figures under the other protocols: frames with a hand over the keys (frame metrics),
    black keys, white keys, and each camera angle named in the videos."""
    videos = sorted(preds)
    rows = []
    if all(preds[v].hands is not None for v in videos):
        sel = [preds[v].hands for v in videos]
        if sum(s.sum() for s in sel):
            m = video_set_metrics([preds[v].roll[s] for v, s in zip(videos, sel) if s.any()],
                                  [refs[v][s] for v, s in zip(videos, sel) if s.any()], notes=False)
            rows.append(dict(subset="frames with a hand", frames=int(sum(s.sum() for s in sel)), **m))
    white = np.array([is_white_key(k) for k in columns])
    for name, keep in (("black keys", ~white), ("white keys", white)):
        masked = lambda roll: np.where(keep[None], roll, 0)
        m = video_set_metrics([masked(preds[v].roll) for v in videos], [masked(refs[v]) for v in videos])
        rows.append(dict(subset=name, frames=sum(len(refs[v]) for v in videos), **m))
    angles = {}
    for v in videos:
        found = ANGLE.search(v)
        if found:
            angles.setdefault(found.group(1), []).append(v)
    for angle, names in sorted(angles.items()):
        m = video_set_metrics([preds[v].roll for v in names], [refs[v] for v in names])
        label = {"0": "0", "p45": "+45", "m45": "-45"}[angle]
        rows.append(dict(subset=f"camera {label} deg ({len(names)} videos)",
                         frames=sum(len(refs[v]) for v in names), **m))
    return rows


def sweep(preds, refs, thresholds):
    videos = sorted(preds)
    return [dict(threshold=float(t), **video_set_metrics([preds[v].probs >= t for v in videos],
                                                         [refs[v] for v in videos], notes=False))
            for t in thresholds]


def main(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    p.add_argument("--data", required=True, help="dataset root with labels/<split>/")
    p.add_argument("--split", default=d["split"])
    p.add_argument("--videos", nargs="*", help="only these videos")
    p.add_argument("--checkpoint", help="Video2Roll checkpoint to run")
    p.add_argument("--estimates", help=f"root holding {ESTIMATE_DIR}/<split>/<video>/ npz (Video2Roll_inference --out)")
    p.add_argument("--n-keys", type=int, choices=(88, 51), help="keys scored (default: the model's)")
    p.add_argument("--labels", default=KEYDOWN_LABELS_DIR, help="label folder: labels_keydown or labels (sustain)")
    p.add_argument("--threshold", type=float, default=d["threshold"], help="frame output threshold")
    p.add_argument("--onset-threshold", type=float, default=d["onset_threshold"],
                   help="sequence models (--checkpoint): onset peak threshold for note decoding")
    p.add_argument("--sweep", action="store_true", help="also sweep thresholds 0.10..0.90")
    p.add_argument("--json", help="write every number to this file")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    add_precision_arg(p)
    add_device_arg(p)
    args = p.parse_args(argv)
    if bool(args.checkpoint) == bool(args.estimates):
        p.error("give either --checkpoint or --estimates")
    if args.checkpoint:
        videos = dataset_videos(args.data, args.split, args.videos)
        preds, columns = model_predictions(args.checkpoint, args.data, args.split, videos, args.batch_size,
                                           resolve_device(args.device), args.threshold, args.onset_threshold,
                                           args.n_keys, args.precision)
    else:
        folder = estimate_folder(args.estimates, args.split)
        videos = list_estimate_videos(args.estimates, args.split, args.videos)
        threshold = ROLL_THRESHOLD if args.threshold is None else args.threshold
        preds, columns = estimate_predictions(folder, videos, args.n_keys or N_KEYS, threshold)
    refs = reference_rolls(args.data, args.split, preds, columns, args.labels)
    rows = evaluation_rows({v: p.roll for v, p in preds.items()}, refs)
    print(format_table(rows, ["video", "frames"] + COLUMNS))
    by_protocol = protocols(preds, refs, columns)
    print()
    print(format_table(by_protocol, ["subset", "frames"] + COLUMNS))
    result = dict(split=args.split, threshold=args.threshold, keys=len(columns), videos=rows[:-1], overall=rows[-1],
                  protocols=by_protocol)
    if args.sweep:
        result["sweep"] = sweep(preds, refs, DEFAULTS["sweep"])
        print(format_table(result["sweep"], ["threshold"] + [c for c in SUMMARY_COLUMNS if c.startswith("frame")]))
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    run(main)
