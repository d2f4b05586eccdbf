"""How far predicted notes sit from reference notes: note-onset F1 (mir_eval, 50 ms) over time and pitch shifts.

    .venv/bin/python tools/note_shift.py PRED.mid --reference-audio REC.mp3     (reference: basic-pitch's notes)
    .venv/bin/python tools/note_shift.py PRED.mid --reference REF.mid

Prints the F1 at no shift and the best few (semitones, seconds) shifts of the prediction. A best time shift
far from 0 with 0 semitones means the notes are right but early or late (e.g. scarlatti: +0.2 s).
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audeo_cli import parser, run  # noqa: E402
from audeo_io import load_midi, midi_notes  # noqa: E402
from audeo_metrics import note_list_metrics  # noqa: E402

DEFAULTS = dict(max_seconds=0.6, step_seconds=0.02, max_semitones=3, top=5)


def shifted(notes, semitones, seconds):
    return [(p + semitones, s + seconds, e + seconds, v) for p, s, e, v in notes if s + seconds >= 0]


def onset_f1(prediction, reference):
    return note_list_metrics(prediction, reference)["onset_f1"]


def main(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    p.add_argument("prediction", help="predicted MIDI (e.g. Audeo.py's DIR/<name>.mid)")
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference", help="reference MIDI")
    ref.add_argument("--reference-audio", help="recording whose basic-pitch notes are the reference")
    p.add_argument("--max-seconds", type=float, default=d["max_seconds"])
    p.add_argument("--step-seconds", type=float, default=d["step_seconds"])
    p.add_argument("--max-semitones", type=int, default=d["max_semitones"])
    p.add_argument("--top", type=int, default=d["top"])
    args = p.parse_args(argv)
    if args.reference_audio:
        from audeo_synth import transcribe
        reference = transcribe(args.reference_audio)
    else:
        reference = midi_notes(load_midi(args.reference), sustain=False)
    prediction = midi_notes(load_midi(args.prediction), sustain=False)
    times = np.round(np.arange(-args.max_seconds, args.max_seconds + 1e-9, args.step_seconds), 3)
    scores = sorted(((onset_f1(shifted(prediction, k, t), reference), k, t)
                     for k in range(-args.max_semitones, args.max_semitones + 1) for t in times), reverse=True)
    print(f"no shift: onset F1 {onset_f1(prediction, reference):.3f}")
    for f1, k, t in scores[:args.top]:
        print(f"{k:+d} semitones, {t:+.2f} s: onset F1 {f1:.3f}")


if __name__ == "__main__":
    run(main)
