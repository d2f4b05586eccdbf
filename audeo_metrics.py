"""Piano-roll metrics: the original's sklearn figures, pooled frame metrics and note-level metrics.

Inputs are binary rolls (T, K), frames x keys, K = 88 (column 0 = A0 = MIDI 21) or 51 (the paper's
keys, MIDI 36..86); predictions are already thresholded (the original used sigmoid >= 0.4). Pred
and target must have the same shape: slice an 88-key roll with audeo_io.to_paper_keys first.

Three views of the same rolls (reference section 6 and 12):
  original  sklearn precision/recall/F1 with average='samples', zero_division=1, plus the
            original's "accuracy": per frame TP/(TP+FP+FN), then averaged over frames. A silent
            frame that is predicted silent scores 1, so silence inflates these numbers.
  pooled    mir_eval.multipitch-style frame metrics: TP, FP, FN counted over all frames and keys,
            then divided once (identical counts to mir_eval.multipitch.metrics, see the tests).
  note      mir_eval.transcription note P/R/F1 on notes read from the rolls (one note per run of
            on-frames, audeo_io.roll_to_notes): onset within 50 ms, and onset + offset (offset
            within max(20% of the reference note, 50 ms)).

Undefined ratios (0/0) are 1 everywhere, following the original's zero_division=1: no estimate
means no false claim (precision 1), no reference means nothing missed (recall 1). F1 is
2PR/(P+R), so it is 1 only when both rolls are empty and 0 when exactly one of them is. (mir_eval
itself returns 0 for empty inputs; for non-empty inputs the values here equal mir_eval's.)
"""
from __future__ import annotations

import numpy as np

from audeo_constants import FPS, MIDI_LOW, OFFSET_MIN_TOLERANCE, OFFSET_RATIO, ONSET_TOLERANCE, WIDE_ONSET_TOLERANCES



def _ratio(num, den):
    """num / den with 0/0 = 1 (see the module docstring)."""
    return float(num) / float(den) if den else 1.0


def _f1(p, r):
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _check_pair(pred, target):
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"pred and target must be (frames, keys) rolls of one shape, got {pred.shape} "
                         f"and {target.shape}")
    if len(pred) == 0:
        raise ValueError("empty rolls (0 frames) have no frame metrics")
    return pred > 0, target > 0


def prf(matched, n_est, n_ref):
    """Precision, recall and F1 from counts (0/0 = 1, see the module docstring)."""
    p, r = _ratio(matched, n_est), _ratio(matched, n_ref)
    return {"precision": p, "recall": r, "f1": _f1(p, r)}


_prf = prf


def frame_counts(pred, target):
    """(true positives, predicted on-cells, reference on-cells) of two rolls: what pooled metrics divide."""
    pred, target = _check_pair(pred, target)
    return int((pred & target).sum()), int(pred.sum()), int(target.sum())


# --------------------------------------------------------------------------- frame level

def original_frame_metrics(pred, target):
    """The original's figures: sklearn 'samples' P/R/F1 (zero_division=1) and per-frame accuracy.

    Returns {'precision', 'recall', 'f1', 'accuracy'}. Any K works here.
    """
    from sklearn.metrics import f1_score, precision_score, recall_score
    pred, target = _check_pair(pred, target)
    y_pred, y_true = pred.astype(np.int8), target.astype(np.int8)
    tp = (pred & target).sum(axis=1)
    union = (pred | target).sum(axis=1)                      # TP + FP + FN per frame
    accuracy = np.where(union > 0, tp / np.maximum(union, 1), 1.0)   # silent frame = 1
    kw = dict(average="samples", zero_division=1)
    return {"precision": float(precision_score(y_true, y_pred, **kw)),
            "recall": float(recall_score(y_true, y_pred, **kw)),
            "f1": float(f1_score(y_true, y_pred, **kw)),
            "accuracy": float(accuracy.mean())}


def pooled_frame_metrics(pred, target, fps=FPS):
    """Frame P/R/F1/accuracy with counts pooled over all frames and keys (mir_eval.multipitch).

    accuracy = TP / (TP + FP + FN), mir_eval's definition. Counted directly on the rolls: each
    key is one pitch, so this equals mir_eval.multipitch.metrics on per-frame pitch lists (see
    `mir_eval_frame_metrics`) at a fraction of the cost. `fps` does not change pooled counts.
    """
    tp, n_est, n_ref = frame_counts(pred, target)
    out = _prf(tp, n_est, n_ref)
    out["accuracy"] = _ratio(tp, n_est + n_ref - tp)
    return out


def mir_eval_frame_metrics(pred, target, fps=FPS, first_midi=MIDI_LOW):
    """Reference implementation through mir_eval.multipitch.metrics: (precision, recall, accuracy).

    Slow for long rolls (Python loops per frame); used by the tests to check pooled_frame_metrics.
    Column k is MIDI first_midi + k (use PAPER_MIDI_LOW for 51-key rolls).
    """
    import mir_eval
    pred, target = _check_pair(pred, target)
    times = np.arange(len(pred)) * (1.0 / fps)
    hz = mir_eval.util.midi_to_hz(first_midi + np.arange(pred.shape[1]))
    ref = [hz[row] for row in target]
    est = [hz[row] for row in pred]
    scores = mir_eval.multipitch.metrics(times, ref, times, est)
    return scores[0], scores[1], scores[2]


# --------------------------------------------------------------------------- note level

def notes_to_mir_eval(notes):
    """(pitch, start, end, velocity) notes -> (intervals (n, 2) in seconds, pitches (n,) in Hz) for mir_eval."""
    import mir_eval
    intervals = np.array([[n[1], n[2]] for n in notes], dtype=float).reshape(-1, 2)
    pitches = mir_eval.util.midi_to_hz(np.array([n[0] for n in notes], dtype=float))
    return intervals, pitches


def roll_to_mir_eval_notes(roll, fps=FPS):
    """(T, 88 or 51) roll -> mir_eval intervals and pitches (51-key rolls placed into 88 columns)."""
    from audeo_io import roll_to_notes
    return notes_to_mir_eval(roll_to_notes(roll, fps=fps))


def _matched_notes(ref, est, offset_ratio, onset_tolerance=ONSET_TOLERANCE):
    import mir_eval
    if len(ref[1]) == 0 or len(est[1]) == 0:
        return 0
    return len(mir_eval.transcription.match_notes(
        ref[0], ref[1], est[0], est[1], onset_tolerance=onset_tolerance, offset_ratio=offset_ratio,
        offset_min_tolerance=OFFSET_MIN_TOLERANCE))


def note_kinds():
    """(name, onset tolerance s, offset ratio) of every note score: onset at 50 ms (mir_eval's default,
    named 'onset'), onset at the wider tolerances other papers use ('onset_100ms', ...), onset + offset."""
    wide = [(f"onset_{round(t * 1000)}ms", t, None) for t in WIDE_ONSET_TOLERANCES]
    return [("onset", ONSET_TOLERANCE, None)] + wide + [("onset_offset", ONSET_TOLERANCE, OFFSET_RATIO)]


def note_list_metrics(est_notes, ref_notes):
    """mir_eval.transcription note P/R/F1 of (pitch, start, end, velocity) notes for every note_kinds()
    score, plus the counts: {'onset_precision', ..., 'onset_100ms_f1', ..., 'onset_offset_f1', 'n_ref',
    'n_est', 'onset_matched', ...}. Counts let callers pool over videos; 0/0 counts as 1.
    """
    ref, est = notes_to_mir_eval(ref_notes), notes_to_mir_eval(est_notes)
    out = {"n_ref": len(ref_notes), "n_est": len(est_notes)}
    for name, tolerance, ratio in note_kinds():
        matched = _matched_notes(ref, est, ratio, tolerance)
        out[f"{name}_matched"] = matched
        out.update({f"{name}_{k}": v for k, v in _prf(matched, len(est_notes), len(ref_notes)).items()})
    return out


def note_metrics(pred, target, fps=FPS):
    """note_list_metrics of the notes read from two rolls (one note per run of on-frames)."""
    from audeo_io import roll_to_notes
    pred, target = _check_pair(pred, target)
    return note_list_metrics(roll_to_notes(pred, fps=fps), roll_to_notes(target, fps=fps))


# --------------------------------------------------------------------------- everything

def all_metrics(pred, target, fps=FPS, notes=True):
    """One flat dict: frame_sklearn_*, frame_pooled_*, note_onset_*, note_onset_offset_*, note_n_*.

    notes=False skips the note-level part (the slowest: roll -> notes -> matching).
    """
    out = {f"frame_sklearn_{k}": v for k, v in original_frame_metrics(pred, target).items()}
    out.update({f"frame_pooled_{k}": v for k, v in pooled_frame_metrics(pred, target, fps).items()})
    if notes:
        out.update({f"note_{k}": v for k, v in note_metrics(pred, target, fps).items()})
    return out


def video_set_metrics(preds, targets, fps=FPS, notes=True):
    """all_metrics over several videos, i.e. over their frames and notes together.

    `preds`, `targets`: lists of (T_i, K) binary rolls, one pair per video. Frame metrics use all
    frames of all videos (sklearn's samples average is a mean over frames; pooled counts add up);
    notes are read per video (no note spans two videos) and their match counts are summed.
    """
    if len(preds) != len(targets) or not preds:
        raise ValueError(f"need one target per prediction, got {len(preds)} and {len(targets)}")
    pairs = [_check_pair(p, t) for p, t in zip(preds, targets)]
    pred, target = np.concatenate([p for p, _ in pairs]), np.concatenate([t for _, t in pairs])
    out = all_metrics(pred, target, fps=fps, notes=False)
    if notes:
        per_video = [note_metrics(p, t, fps) for p, t in pairs]
        kinds = [name for name, _, _ in note_kinds()]
        total = {k: sum(m[k] for m in per_video) for k in ["n_ref", "n_est"] + [f"{n}_matched" for n in kinds]}
        out.update({f"note_{k}": v for k, v in total.items()})
        for name in kinds:
            prf = _prf(total[f"{name}_matched"], total["n_est"], total["n_ref"])
            out.update({f"note_{name}_{k}": v for k, v in prf.items()})
    return out


def evaluation_rows(preds, refs):
    """[{video, frames, metrics...}] per video (sorted) and a last 'overall' row with counts pooled over
    videos. preds, refs: {video: binary (T, K) roll}; a length mismatch is an error naming the video."""
    from audeo_io import AudeoError
    videos = sorted(preds)
    rows = []
    for video in videos:
        p, r = preds[video], refs[video]
        if len(p) != len(r):
            raise AudeoError(f"{video}: {len(p)} predicted frames but {len(r)} labelled frames")
        rows.append(dict(video=video, frames=len(r), **video_set_metrics([p], [r])))
    overall = video_set_metrics([preds[v] for v in videos], [refs[v] for v in videos])
    rows.append(dict(video="overall", frames=sum(len(refs[v]) for v in videos), **overall))
    return rows


# The columns an evaluation table shows (all_metrics has more, e.g. the note counts).
SUMMARY_COLUMNS = ["frame_sklearn_precision", "frame_sklearn_recall", "frame_sklearn_f1", "frame_sklearn_accuracy",
                   "frame_pooled_precision", "frame_pooled_recall", "frame_pooled_f1",
                   "note_onset_precision", "note_onset_recall", "note_onset_f1",
                   "note_onset_offset_precision", "note_onset_offset_recall", "note_onset_offset_f1"]

# Table headers: long metric names shortened (the JSON/dict keys keep the long names).
_SHORT_PREFIX = (("frame_sklearn_", "orig_"), ("frame_pooled_", "frame_"), ("note_onset_offset_", "onoff_"),
                 ("note_onset_100ms_", "on100_"), ("note_onset_150ms_", "on150_"),
                 ("note_onset_", "onset_"), ("note_", "note_"))
_SHORT_METRIC = {"precision": "P", "recall": "R", "f1": "F1", "accuracy": "acc"}


def short_name(name):
    """'frame_sklearn_precision' -> 'orig_P', 'note_onset_offset_f1' -> 'onoff_F1'; other names unchanged."""
    for long, short in _SHORT_PREFIX:
        if name.startswith(long):
            rest = name[len(long):]
            return short + _SHORT_METRIC.get(rest, rest)
    return name


def threshold_sweep(probs, target, thresholds, fps=FPS, notes=True):
    """[(threshold, all_metrics(probs >= threshold, target))] for each threshold.

    `probs` are sigmoid probabilities (T, K). Each threshold costs one all_metrics call; pass
    notes=False for a quick frame-only sweep (e.g. to pick a threshold on validation data).
    """
    probs = np.asarray(probs, dtype=float)
    return [(float(t), all_metrics(probs >= t, target, fps=fps, notes=notes)) for t in thresholds]


def best_threshold(sweep, metric="frame_pooled_f1"):
    """The (threshold, metrics) row of a threshold_sweep with the highest `metric`."""
    return max(sweep, key=lambda row: row[1][metric])


def format_table(rows, columns=None, digits=3, short_headers=True):
    """Rows (dicts) -> an aligned text table; numbers right-aligned with `digits` decimals.

    `columns` defaults to every key in order of first appearance; missing cells are blank.
    Headers use `short_name` (orig_ = the original's sklearn figures, frame_ = pooled frame
    metrics, onset_ / onoff_ = note onset / onset+offset) unless short_headers=False.
    """
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))

    def cell(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}"
        return "" if v is None else str(v)

    headers = [short_name(c) if short_headers else c for c in columns]
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    numeric = [all(isinstance(row.get(c), (int, float, np.number)) for row in rows if c in row) for c in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


__all__ = ["evaluation_rows", "frame_counts", "prf", "note_kinds", "original_frame_metrics", "pooled_frame_metrics", "mir_eval_frame_metrics", "note_metrics",
           "roll_to_mir_eval_notes", "notes_to_mir_eval", "note_list_metrics", "all_metrics", "video_set_metrics", "threshold_sweep", "best_threshold",
           "format_table", "short_name", "SUMMARY_COLUMNS"]
