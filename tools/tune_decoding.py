"""Choose a sequence Video2Roll's note-decoding thresholds on validation estimates.

    .venv/bin/python tools/tune_decoding.py --data ROOT [ROOT ...] --estimates EST [EST ...] --split validation

Each --data root goes with the --estimates root at the same position (Video2Roll_inference.py --out).
For every (frame threshold, onset threshold) pair of the grid the notes are decoded from onsets and
frames (audeo_io.decode_roll) and scored against the key-down labels; the table is sorted by the
score the training picks models with, the mean over roots of (pooled frame F1 + note-onset F1) / 2.
"""
import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audeo_cli import run  # noqa: E402
from audeo_constants import DECODING_GRID, KEYDOWN_LABELS_DIR, SPLITS  # noqa: E402
from audeo_io import (AudeoError, decode_roll, estimate_folder, estimate_probs, list_estimate_videos,  # noqa: E402
                      load_labels, read_segments)
from audeo_metrics import format_table, video_set_metrics  # noqa: E402


def load_root(data, estimates, split):
    """[(frame probs, onset probs, key-down labels)] of every video with estimates."""
    folder = estimate_folder(estimates, split)
    out = []
    for v in list_estimate_videos(estimates, split):
        frame = estimate_probs(read_segments(folder / v, "logit")[1])
        onset = estimate_probs(read_segments(folder / v, "onset_logit")[1])
        _, labels = load_labels(Path(data) / KEYDOWN_LABELS_DIR / split / f"{v}.pkl")
        out.append((frame, onset, labels))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--estimates", nargs="+", required=True)
    p.add_argument("--split", default=SPLITS[1])
    args = p.parse_args(argv)
    if len(args.data) != len(args.estimates):
        raise AudeoError("give one --estimates root per --data root")
    roots = [load_root(d, e, args.split) for d, e in zip(args.data, args.estimates)]
    rows = []
    for ft, ot in itertools.product(*DECODING_GRID):
        row, scores = dict(frame_threshold=ft, onset_threshold=ot), []
        for data, videos in zip(args.data, roots):
            m = video_set_metrics([decode_roll(f, o, ft, ot) for f, o, _ in videos], [lab for *_, lab in videos])
            name = Path(data).name
            row[f"{name}_frame_f1"], row[f"{name}_onset_f1"] = m["frame_pooled_f1"], m["note_onset_f1"]
            row[f"{name}_onoff_f1"] = m["note_onset_offset_f1"]
            scores.append((m["frame_pooled_f1"] + m["note_onset_f1"]) / 2)
        row["score"] = float(np.mean(scores))
        rows.append(row)
    rows.sort(key=lambda r: -r["score"])
    print(format_table(rows, short_headers=False))


if __name__ == "__main__":
    run(main)
