"""Score Audeo.py end to end (no box: the keyboard is found and rectified) on real AI-Pianist takes.

    .venv/bin/python tools/score_ai_pianist.py --src ../shared/data/ai_pianist/TrainSet --out OUT [--pianists 9 10 13]

Runs Audeo.py's pipeline (audeo_pipeline.audeo) on every take of the given pianists (by default the
held-out test pianists 9, 10 and 13) against its human MIDI (pitch + 12, the offset from --offsets: tools/ai_pianist_offsets.json, one global
offset per take found by alignment), and pools the counts over takes: the same frame and note metrics
as Video2Roll_evaluate.py (note onset at 50, 100 and 150 ms, onset+offset), overall, by camera angle
and for black and white keys. Whole takes are scored (no spans cut out, unlike the prepared dataset);
PROBLEMS.txt's spans are removed from both rolls. Writes OUT/<take>/ (Audeo.py's outputs) and OUT/scores.json.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audeo_ai_pianist import EXCLUDE, OFFSETS, PITCH_SHIFT, TEST_PIANISTS, take_id  # noqa: E402
from audeo_cli import add_device_arg, run  # noqa: E402
from audeo_constants import FPS, is_white_key  # noqa: E402
from audeo_io import atomic_path, load_midi, midi_to_roll, reference_roll  # noqa: E402
from audeo_metrics import format_table, video_set_metrics  # noqa: E402
from audeo_pipeline import DEFAULTS, audeo  # noqa: E402

COLUMNS = ["frame_pooled_precision", "frame_pooled_recall", "frame_pooled_f1", "note_onset_precision",
           "note_onset_recall", "note_onset_f1", "note_onset_100ms_f1", "note_onset_150ms_f1", "note_onset_offset_f1"]


def keep_frames(n, spans):
    keep = np.ones(n, bool)
    for a, b in spans:
        keep[int(a * FPS):int(min(b, n / FPS) * FPS)] = False
    return keep


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", required=True, help="ai_pianist/TrainSet folder")
    p.add_argument("--out", required=True)
    p.add_argument("--pianists", nargs="+", default=list(TEST_PIANISTS))
    p.add_argument("--offsets", default=str(OFFSETS), help="JSON {offsets: {take: s}}")
    p.add_argument("--video2roll", default=str(DEFAULTS["video2roll"]), help="Video2Roll checkpoint")
    p.add_argument("--roll2midi", default=str(DEFAULTS["roll2midi"]), help="Roll2Midi checkpoint, or 'none' (default: Audeo.py's)")
    add_device_arg(p)
    args = p.parse_args(argv)
    offsets = json.loads(Path(args.offsets).read_text())["offsets"]
    src, out = Path(args.src), Path(args.out)
    preds, refs, names = [], [], []
    for video in sorted(src.rglob("*.wmv")):
        take = take_id(video, src)
        if take.split("/")[0] not in args.pianists or take not in offsets:
            continue
        folder = out / take.replace("/", "_")
        meta_path = folder / f"{video.stem}.json"
        if not meta_path.is_file():                     # a killed run resumes with the takes not done
            audeo(video, folder, reference=f"{video}.mid", reference_offset=offsets[take],
                        reference_pitch_shift=PITCH_SHIFT, video2roll=args.video2roll, roll2midi=args.roll2midi,
                        device=args.device)
        meta = json.loads(meta_path.read_text())
        pred = midi_to_roll(load_midi(folder / f"{video.stem}.mid"), sustain=False, n_frames=meta["frames"])
        ref = reference_roll(f"{video}.mid", offsets[take], meta["frames"], PITCH_SHIFT)
        keep = keep_frames(len(ref), EXCLUDE.get(take, []))
        preds.append(pred[keep])
        refs.append(ref[keep])
        names.append(take)
    rows = [dict(subset=t, **video_set_metrics([pr], [rf])) for t, pr, rf in zip(names, preds, refs)]
    rows.append(dict(subset=f"overall ({len(names)} takes)", **video_set_metrics(preds, refs)))
    for angle in ("0", "+45", "-45"):
        sel = [i for i, t in enumerate(names) if f"/{angle}/" in f"/{t}/"]
        if sel:
            rows.append(dict(subset=f"camera {angle} deg ({len(sel)} takes)",
                             **video_set_metrics([preds[i] for i in sel], [refs[i] for i in sel])))
    white = np.array([is_white_key(k) for k in range(preds[0].shape[1])])
    for name, keys in (("black keys", ~white), ("white keys", white)):
        rows.append(dict(subset=name, **video_set_metrics([np.where(keys, pr, 0) for pr in preds],
                                                          [np.where(keys, rf, 0) for rf in refs])))
    print(format_table(rows, ["subset"] + COLUMNS))
    with atomic_path(out / "scores.json") as tmp:
        Path(tmp).write_text(json.dumps(dict(video2roll=args.video2roll, roll2midi=args.roll2midi, rows=rows),
                                        indent=1))


if __name__ == "__main__":
    run(main)
