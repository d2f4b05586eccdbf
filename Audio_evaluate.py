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

import argparse
import contextlib
import io
import json
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from audeo_cli import run
from audeo_constants import SAMPLE_RATE
from audeo_io import AudeoError, atomic_path, load_midi, midi_notes
from audeo_metrics import format_table, note_list_metrics

DEFAULTS = dict(onset_threshold=0.5, frame_threshold=0.3, min_note_ms=127.70, sustain=True)
COLUMNS = ["audio", "note_n_ref", "note_n_est", "note_onset_precision", "note_onset_recall", "note_onset_f1",
           "note_onset_offset_precision", "note_onset_offset_recall", "note_onset_offset_f1"]

_MODEL = None


@contextlib.contextmanager
def _quiet():
    """Silence basic-pitch's import-time warnings about missing TF/CoreML/TFLite and its prints."""
    logger, null = logging.getLogger(), logging.NullHandler()
    level = logger.level
    logger.setLevel(logging.ERROR)
    logger.addHandler(null)          # else logging.warning() would install a stderr handler for good
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.removeHandler(null)
        logger.setLevel(level)


def _basic_pitch_model():
    """basic-pitch's ICASSP 2022 model, the ONNX file bundled in its wheel (loaded once)."""
    global _MODEL
    if _MODEL is None:
        with _quiet():
            try:
                import basic_pitch
                from basic_pitch.inference import Model
            except ImportError as e:
                raise AudeoError(f"basic-pitch is not usable ({e}); see requirements-nodeps.txt") from None
            path = basic_pitch.build_icassp_2022_model_path(basic_pitch.FilenameSuffix.onnx)
            if not basic_pitch.ONNX_PRESENT or not path.is_file():
                raise AudeoError(f"{path}: basic-pitch's ONNX model or onnxruntime is missing")
            _MODEL = Model(path)
    return _MODEL


def transcribe(audio_path, onset_threshold=DEFAULTS["onset_threshold"], frame_threshold=DEFAULTS["frame_threshold"],
               min_note_ms=DEFAULTS["min_note_ms"]):
    """Audio file -> [(pitch, start, end, velocity)] sorted by start, pitch (basic-pitch, offline).

    Velocity is basic-pitch's note amplitude scaled to 1..127.
    """
    audio_path = Path(audio_path)
    if not audio_path.is_file():
        raise AudeoError(f"{audio_path}: audio file not found")
    model = _basic_pitch_model()
    from basic_pitch.inference import predict
    try:
        with _quiet():
            _, _, events = predict(str(audio_path), model, onset_threshold=onset_threshold,
                                   frame_threshold=frame_threshold, minimum_note_length=min_note_ms)
    except Exception as e:  # librosa/soundfile/audioread raise many types for unreadable audio
        raise AudeoError(f"{audio_path}: cannot transcribe ({type(e).__name__}: {str(e) or 'not a readable audio file'})") from None
    notes = [(int(pitch), float(start), float(end), int(np.clip(round(127 * float(amp)), 1, 127)))
             for start, end, pitch, amp, _ in events]
    return sorted(notes, key=lambda n: (n[1], n[0]))


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
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
