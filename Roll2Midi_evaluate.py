"""Evaluate Roll2Midi: the same metrics before and after refinement, per video and overall.

In:  --checkpoint MODEL.pt  a Roll2Midi checkpoint (Roll2Midi_train.py best.pt / last.pt)
     --estimates ESTIMATES  ESTIMATES/estimate_Roll/<split>/<video>/ npz (Video2Roll_inference.py --out)
     --data ROOT            ROOT/midi/<split>/<video>/ reference segments (sustain-extended MIDI)
Out: one table on stdout, a row per video and stage, then the overall rows (counts pooled over videos):
       video2roll@0.4   before: Video2Roll probabilities >= --threshold (0.4, the original's)
       roll2midi@0.5    after: generator output >= --midi-threshold (0.5, the original's)
       roll2midi@T      after, at each --extra-midi-thresholds T (the original also reported 0.4)
     For a generator that also takes a sequence Video2Roll's onsets (in_channels 2), both stages are
     decoded into notes from those onsets (peaks >= --onset-threshold; audeo_io.decode_roll), as Audeo.py
     does: before, while the Video2Roll probabilities hold >= --threshold; after, while the generator's output
     holds >= --midi-threshold (pass the Video2Roll checkpoint's operating point, e.g. 0.3 and 0.2).
     with Video2Roll_evaluate's metrics: the original's sklearn per-frame P/R/F1/accuracy, pooled
     frame P/R/F1 and note-level onset and onset+offset P/R/F1. --json FILE writes all of it.
Scored on the model's keys (51 or 88). Windows are per video and non-overlapping, the last one kept
(see Roll2Midi_net.refine_probs); columns a 51-key Video2Roll model did not predict count as
probability 0 (see audeo_io.estimate_probs).
"""
from __future__ import annotations

import json
from pathlib import Path

from audeo_cli import add_device_arg, add_estimate_args, parser, resolve_device, run
from audeo_constants import MIDI_THRESHOLD, N_KEYS, ONSET_THRESHOLD, PAPER_N_KEYS, ROLL_THRESHOLD, SPLITS
from audeo_io import atomic_path, list_estimate_videos
from audeo_metrics import SUMMARY_COLUMNS, evaluation_rows, format_table
from Roll2Midi_dataset import load_pair
from Roll2Midi_net import BATCH_SIZE, load_generator, output_roll, refine_probs

DEFAULTS = dict(split=SPLITS[2], threshold=ROLL_THRESHOLD, midi_threshold=MIDI_THRESHOLD,
                onset_threshold=ONSET_THRESHOLD, batch_size=BATCH_SIZE)
BEFORE, AFTER = "video2roll", "roll2midi"
OVERALL = "overall"


def stage_name(kind, threshold):
    return f"{kind}@{threshold:g}"


def before_after(probs, refined, refs, threshold=ROLL_THRESHOLD, midi_thresholds=(MIDI_THRESHOLD,), onsets=None,
                 onset_threshold=ONSET_THRESHOLD):
    """Rows {video, stage, frames, metrics...}: each video's stages in turn, then the overall rows.

    probs: {video: Video2Roll probabilities (T, K)}, refined: {video: generator output (T, K)},
    refs: {video: reference roll (T, K)}; onsets: {video: Video2Roll onset probabilities (T, K)} or None:
    with them both stages' notes start at onset peaks >= onset_threshold (Roll2Midi_net.output_roll).
    """
    def roll(video, p, t):
        return output_roll(p[video], None if onsets is None else onsets[video], t, onset_threshold)
    stages = [(stage_name(BEFORE, threshold), probs, threshold)]
    stages += [(stage_name(AFTER, t), refined, t) for t in midi_thresholds]
    per_stage = {name: evaluation_rows({v: roll(v, p, t) for v in p}, refs) for name, p, t in stages}
    rows = []
    for i in range(len(probs) + 1):
        for name, stage_rows in per_stage.items():
            row = dict(stage_rows[i])
            rows.append(dict(video=row.pop("video"), stage=name, **row))
    return rows


def main(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    p.add_argument("--checkpoint", required=True, help="Roll2Midi checkpoint")
    add_estimate_args(p, d["split"])
    p.add_argument("--data", required=True, help="dataset root with midi/<split>/<video>/ reference segments")
    p.add_argument("--n-keys", type=int, choices=(N_KEYS, PAPER_N_KEYS),
                   help="expected key count (default: the checkpoint's; a different one is an error)")
    p.add_argument("--threshold", type=float, default=d["threshold"], help="threshold on the Video2Roll probabilities")
    p.add_argument("--midi-threshold", type=float, default=d["midi_threshold"],
                   help="threshold on the generator output")
    p.add_argument("--onset-threshold", type=float, default=d["onset_threshold"],
                   help="onset peaks that start a note, for a generator with Video2Roll's onsets as input")
    p.add_argument("--extra-midi-thresholds", type=float, nargs="*", default=[],
                   help="more thresholds on the generator output (the original also reported 0.4)")
    p.add_argument("--json", help="write every number to this file")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    add_device_arg(p)
    args = p.parse_args(argv)
    from tqdm import tqdm
    device = resolve_device(args.device)
    generator, config = load_generator(args.checkpoint, device, n_keys=args.n_keys)
    videos = list_estimate_videos(args.estimates, args.split, args.videos)
    inputs, refs = {}, {}
    for video in videos:
        _, inputs[video], refs[video] = load_pair(args.estimates, args.data, args.split, video, config.n_keys,
                                                  config.in_channels)
    refined = {v: refine_probs(generator, inputs[v], device, args.batch_size, config.frames)
               for v in tqdm(videos, desc="videos", unit="video")}
    two = config.in_channels == 2
    probs = {v: x[..., 0] for v, x in inputs.items()} if two else inputs
    onsets = {v: x[..., 1] for v, x in inputs.items()} if two else None
    thresholds = [args.midi_threshold] + [t for t in args.extra_midi_thresholds if t != args.midi_threshold]
    rows = before_after(probs, refined, refs, args.threshold, thresholds, onsets, args.onset_threshold)
    print(format_table(rows, ["video", "stage", "frames"] + SUMMARY_COLUMNS))
    if args.json:
        result = dict(split=args.split, keys=config.n_keys, checkpoint=str(args.checkpoint),
                      threshold=args.threshold, midi_thresholds=thresholds,
                      onset_threshold=args.onset_threshold if two else None,
                      videos=[r for r in rows if r["video"] != OVERALL],
                      overall={r["stage"]: r for r in rows if r["video"] == OVERALL})
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    run(main)
