"""Audio-level evaluation: transcribe audio with basic-pitch and score its notes against a reference MIDI.

In:  --wav GENERATED.wav (Midi_synth's output) or --audio FILE (any audio librosa reads, e.g. a
     real recording's mp3, to check pseudo labels), and --reference REF.mid.
Out: a table on stdout: note-onset and onset+offset precision/recall/F1 (mir_eval.transcription,
     onset within 50 ms, offset within max(20 % of the reference note, 50 ms)) of the audio's
     transcription, and beside it the same figures for the reference MIDI's own rendering
     (synthesised by audeo_synth, transcribed the same way): the ceiling the pipeline can reach
     with this synthesizer and transcriber. --json FILE writes every number.

Transcription is basic-pitch 0.4 on its bundled ONNX model (offline; nothing is downloaded), at
its default thresholds (onset 0.5, frame 0.3) and minimum note length (127.7 ms, about 3 frames
at 25 fps: shorter notes cannot be found). Reference offsets are those the listener hears: notes
held by the sustain pedal are extended to the pedal's release (--no-sustain: key-up offsets).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from audeo_cli import parser, run
from audeo_constants import SAMPLE_RATE
from audeo_io import AudeoError, atomic_path, load_midi, midi_notes
from audeo_metrics import format_table, note_list_metrics
from audeo_synth import TRANSCRIBE_DEFAULTS, transcribe

DEFAULTS = dict(**TRANSCRIBE_DEFAULTS, sustain=True)
COLUMNS = ["audio", "note_n_ref", "note_n_est", "note_onset_precision", "note_onset_recall", "note_onset_f1",
           "note_onset_offset_precision", "note_onset_offset_recall", "note_onset_offset_f1"]

score_notes = note_list_metrics        # (est_notes, ref_notes) -> note P/R/F1 and counts


def reference_ceiling(pm, ref_notes=None, synth=None, sustain=DEFAULTS["sustain"], **transcribe_kw):
    """Score of the reference PrettyMIDI's own rendering (audeo_synth, then `transcribe`).

    Returns (scores, synthesizer description, transcribed notes).
    """
    from audeo_synth import find_synthesizer, synthesize, write_wav
    synth = synth or find_synthesizer()
    ref_notes = midi_notes(pm, sustain=sustain) if ref_notes is None else ref_notes
    with tempfile.TemporaryDirectory(prefix="audeo_ceiling.") as tmp:
        wav = Path(tmp) / "reference.wav"
        write_wav(wav, synthesize(pm, synth, SAMPLE_RATE), SAMPLE_RATE)
        notes = transcribe(wav, **transcribe_kw)
    return score_notes(notes, ref_notes), synth.description, notes


def evaluate(audio_path, reference, ceiling=True, sustain=DEFAULTS["sustain"], synth=None, **transcribe_kw):
    """Transcribe `audio_path`, score it against the `reference` MIDI file, and (optionally) the ceiling.

    Returns {'audio', 'reference', 'n_reference_notes', 'sustain', 'transcriber', 'scores', and with
    `ceiling`: 'ceiling', 'synthesizer'}.
    """
    pm = load_midi(reference)
    ref_notes = midi_notes(pm, sustain=sustain)
    if not ref_notes:
        raise AudeoError(f"{reference}: no notes to score against")
    kw = {k: transcribe_kw.get(k, DEFAULTS[k]) for k in ("onset_threshold", "frame_threshold", "min_note_ms")}
    result = dict(audio=str(audio_path), reference=str(reference), n_reference_notes=len(ref_notes), sustain=sustain,
                  transcriber=dict(name="basic-pitch (ONNX)", **kw))
    result["scores"] = score_notes(transcribe(audio_path, **kw), ref_notes)
    if ceiling:
        result["ceiling"], result["synthesizer"], _ = reference_ceiling(pm, ref_notes, synth, sustain, **kw)
    return result


def table(result, label="audio"):
    """The result of `evaluate` as a text table (one row for the audio, one for the ceiling)."""
    rows = [{"audio": f"{label} {Path(result['audio']).name}", **{f"note_{k}": v for k, v in result["scores"].items()}}]
    if "ceiling" in result:
        rows.append({"audio": f"reference rendering ({result['synthesizer']})",
                     **{f"note_{k}": v for k, v in result["ceiling"].items()}})
    return format_table(rows, COLUMNS)


def main(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--wav", help="generated audio (Midi_synth's wav)")
    src.add_argument("--audio", help="any audio file librosa reads (e.g. a real recording)")
    p.add_argument("--reference", required=True, help="reference MIDI file (times in seconds from the audio's start)")
    p.add_argument("--json", help="write every number to this file")
    p.add_argument("--no-ceiling", action="store_true", help="skip scoring the reference's own rendering")
    p.add_argument("--no-sustain", action="store_true", help="reference offsets at key-up, not at pedal release")
    p.add_argument("--soundfont", help="soundfont for the reference rendering (None: the best one installed)")
    p.add_argument("--onset-threshold", type=float, default=d["onset_threshold"], help="basic-pitch onset threshold")
    p.add_argument("--frame-threshold", type=float, default=d["frame_threshold"], help="basic-pitch frame threshold")
    p.add_argument("--min-note-ms", type=float, default=d["min_note_ms"], help="basic-pitch minimum note length")
    args = p.parse_args(argv)
    synth = None
    if not args.no_ceiling:
        from audeo_synth import find_synthesizer
        synth = find_synthesizer(args.soundfont)
    if args.json:
        json_dir = Path(args.json).parent
        try:
            json_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AudeoError(f"{json_dir}: cannot create the --json folder ({e.strerror or e})") from None
    audio = args.wav or args.audio
    result = evaluate(audio, args.reference, ceiling=not args.no_ceiling, sustain=not args.no_sustain, synth=synth,
                      onset_threshold=args.onset_threshold, frame_threshold=args.frame_threshold,
                      min_note_ms=args.min_note_ms)
    sustain = "pedal-extended" if result["sustain"] else "key-up"
    print(f"reference {args.reference}: {result['n_reference_notes']} notes ({sustain} offsets); "
          f"basic-pitch onset {args.onset_threshold}, frame {args.frame_threshold}, min note {args.min_note_ms} ms")
    print(table(result, "generated" if args.wav else "audio"))
    if args.json:
        try:
            with atomic_path(args.json) as tmp:
                Path(tmp).write_text(json.dumps(result, indent=1))
        except OSError as e:
            raise AudeoError(f"{args.json}: cannot write ({e.strerror or e})") from None


if __name__ == "__main__":
    run(main)
