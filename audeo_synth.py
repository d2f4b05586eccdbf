"""Rolls -> notes -> MIDI and audio through the best synthesizer present, wav output, and audio -> notes
(basic-pitch).

Preference order (a given --soundfont always wins):
  1. FluidSynth (pyfluidsynth + Debian's libfluidsynth3) with Debian's FluidR3_GM.sf2, whose preset 0
     is a grand piano;
  2. FluidSynth with pretty_midi's bundled TimGM6mb.sf2 (what the original used);
  3. tinysoundfont (pure wheel, no root needed) with the best soundfont above.
Every caller logs `Synthesizer.description`, so each output says which one made it.

Roll -> notes (`roll_notes`): 51-key rolls go to the 88-key columns 15..65; pitch = 21 + column;
  * each run of on-frames [a, b) of a key is one note from a/25 s to b/25 s (a note still on at the
    last frame ends there), as the original;
  * runs shorter than `min_frames` are dropped (Video2Roll flicker);
  * a binary roll cannot show a re-strike without an off frame, so given probabilities a run is
    split after every interior local minimum m whose dip is at least `restrike_depth` below the
    highest probability on each side of it (within the current note and within the rest of the run):
    the second note starts at frame m + 1. A split is made only when both parts keep at least
    `min_frames` frames. A slow rise at a note's start is no dip (nothing higher comes before it).
"""
from __future__ import annotations

import contextlib
import errno
import importlib.util
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audeo_constants import DEFAULT_VELOCITY, FPS, MIDI_LOW, SAMPLE_RATE, SUSTAIN_CC
from audeo_io import AudeoError, atomic_path, notes_to_pretty_midi, quiet_import, roll_to_notes, to_88_keys, write_midi

DEBIAN_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PEAK = 0.9   # normalise rendered audio to this peak (neither backend normalises the same way)
# basic-pitch's own defaults: onset and frame thresholds, and its minimum note length (ms)
TRANSCRIBE_DEFAULTS = dict(onset_threshold=0.5, frame_threshold=0.3, min_note_ms=127.70)


def bundled_soundfont():
    spec = importlib.util.find_spec("pretty_midi")
    return Path(spec.origin).parent / "TimGM6mb.sf2"


def fluidsynth_available():
    try:
        quiet_import("fluidsynth")   # ctypes wrapper: fails when libfluidsynth is missing
        return True
    except ImportError:
        return False


@dataclass(frozen=True)
class Synthesizer:
    backend: str          # "fluidsynth" or "tinysoundfont"
    soundfont: Path

    @property
    def description(self):
        return f"{self.backend} + {self.soundfont.name}"


def find_synthesizer(soundfont=None):
    """The synthesizer to use; `soundfont` (a path) overrides the search."""
    if soundfont is not None:
        soundfont = Path(soundfont)
        if not soundfont.is_file():
            raise AudeoError(f"{soundfont}: soundfont not found")
        candidates = [soundfont]
    else:
        candidates = [p for p in (DEBIAN_SOUNDFONT, bundled_soundfont()) if p.is_file()]
        if not candidates:
            raise AudeoError("no soundfont found (install fluid-soundfont-gm or pretty_midi)")
    if fluidsynth_available():
        return Synthesizer("fluidsynth", candidates[0])
    if importlib.util.find_spec("tinysoundfont") is not None:
        return Synthesizer("tinysoundfont", candidates[0])
    raise AudeoError("no synthesizer: install libfluidsynth3 (root) or `pip install --no-deps tinysoundfont`")


def synthesize(pm, synth=None, sample_rate=SAMPLE_RATE):
    """PrettyMIDI -> mono float32 audio at `sample_rate`, peak-normalised; pedal CCs are honoured."""
    synth = synth or find_synthesizer()
    if synth.backend == "fluidsynth":
        audio = pm.fluidsynth(fs=sample_rate, synthesizer=str(synth.soundfont))
    else:
        audio = _tinysoundfont_render(pm, synth.soundfont, sample_rate)
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio * (PEAK / peak) if peak > 0 else audio


def _tinysoundfont_render(pm, soundfont, sample_rate):
    import tinysoundfont
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(str(soundfont))
    events = []   # (time, order, channel, kind, a, b): note-offs before note-ons at the same time
    for channel, inst in enumerate(i for i in pm.instruments if not i.is_drum):
        channel = min(channel, 8)
        synth.program_select(channel, sfid, 0, inst.program)
        events += [(n.start, 2, channel, "on", n.pitch, n.velocity) for n in inst.notes]
        events += [(n.end, 0, channel, "off", n.pitch, 0) for n in inst.notes]
        events += [(c.time, 1, channel, "cc", c.number, c.value) for c in inst.control_changes
                   if c.number == SUSTAIN_CC]
    events.sort(key=lambda e: e[:2])
    chunks, now = [], 0
    for time, _, channel, kind, a, b in events:
        target = int(round(time * sample_rate))
        if target > now:
            chunks.append(np.frombuffer(synth.generate(target - now), dtype=np.float32))
            now = target
        if kind == "on":
            synth.noteon(channel, a, b)
        elif kind == "off":
            synth.noteoff(channel, a)
        else:
            synth.control_change(channel, a, b)
    chunks.append(np.frombuffer(synth.generate(sample_rate), dtype=np.float32))  # 1 s release tail
    stereo = np.concatenate(chunks).reshape(-1, 2)
    return stereo.mean(axis=1)


def write_wav(path, audio, sample_rate=SAMPLE_RATE):
    """Mono float audio -> 16-bit PCM wav, written atomically."""
    import soundfile
    with atomic_path(path) as tmp:
        try:
            soundfile.write(tmp, np.clip(audio, -1, 1), sample_rate, subtype="PCM_16")
        except soundfile.LibsndfileError as e:      # libsndfile hides the OS error: it is a failed write
            raise OSError(errno.EIO, f"libsndfile: {e.error_string}") from None


# ----------------------------------------------------------------------------- roll -> notes

def restrike_splits(probs, start, end, depth, min_frames=1):
    """Frames inside the run [start, end) of one key's probabilities where a re-struck note begins.

    A split follows each interior local minimum m (p[m] < p[m-1] and p[m] <= p[m+1]) whose
    probability lies at least `depth` below the maximum of the current note so far and below the
    maximum of the rest of the run; the new note starts at m + 1. Both parts of a split keep at
    least `min_frames` frames.
    """
    p = np.asarray(probs, dtype=float)
    splits, current = [], start
    for m in range(start + 1, end - 1):
        if m <= current or not (p[m] < p[m - 1] and p[m] <= p[m + 1]):
            continue
        s = m + 1
        if (p[current:m].max() - p[m] >= depth and p[s:end].max() - p[m] >= depth
                and s - current >= min_frames and end - s >= min_frames):
            splits.append(s)
            current = s
    return splits


def roll_notes(roll, fps=FPS, velocity=DEFAULT_VELOCITY, min_frames=1, probs=None, restrike_depth=None):
    """(T, 51|88) roll -> [(pitch, start, end, velocity)] sorted by start, pitch.

    One note per run of on-frames (audeo_io.roll_to_notes); runs shorter than `min_frames` are
    dropped; with `probs` (same shape as `roll`, Video2Roll sigmoid probabilities) and
    `restrike_depth`, runs are split at re-strikes (see `restrike_splits`).
    """
    roll = to_88_keys(np.asarray(roll) > 0)
    split = probs is not None and restrike_depth is not None
    if split:
        probs = to_88_keys(np.asarray(probs, dtype=np.float32), "probabilities")
        if probs.shape != roll.shape:
            raise AudeoError(f"probabilities have shape {probs.shape}, the roll {roll.shape}")
    notes = []
    for pitch, start, end, _ in roll_to_notes(roll, fps=fps):
        a, b = int(round(start * fps)), int(round(end * fps))
        if b - a < min_frames:
            continue
        bounds = [a] + (restrike_splits(probs[:, pitch - MIDI_LOW], a, b, restrike_depth, min_frames)
                        if split else []) + [b]
        notes += [(pitch, f0 / fps, f1 / fps, velocity) for f0, f1 in zip(bounds, bounds[1:])]
    return sorted(notes, key=lambda n: (n[1], n[0]))


def roll_to_midi(roll, fps=FPS, velocity=DEFAULT_VELOCITY, min_frames=1, probs=None, restrike_depth=None):
    """(T, 51|88) roll -> PrettyMIDI with one piano (program 0); see `roll_notes`."""
    if not 1 <= velocity <= 127:
        raise AudeoError(f"velocity {velocity}: expected 1..127")
    return notes_to_pretty_midi(roll_notes(roll, fps, velocity, min_frames, probs, restrike_depth))


# ----------------------------------------------------------------------------- notes -> files

def output_paths(out_stem):
    """(OUT_STEM.mid, OUT_STEM.wav); the suffix is appended, so names with dots ('No.1') survive."""
    out_stem = Path(out_stem)
    return out_stem.with_name(out_stem.name + ".mid"), out_stem.with_name(out_stem.name + ".wav")


def render(roll, out_stem, synth=None, velocity=DEFAULT_VELOCITY, fps=FPS, min_frames=1, probs=None,
           restrike_depth=None):
    """Write OUT_STEM.mid and OUT_STEM.wav (16 kHz mono) for a (T, 51|88) roll.

    Returns (mid path, wav path, synthesizer description). `synth` is an audeo_synth.Synthesizer
    (default: audeo_synth.find_synthesizer()). The wav lasts at least T / fps seconds (plus the
    synthesizer's release tail). Both files appear together, only when both are complete.
    """
    synth = synth or find_synthesizer()
    roll = np.asarray(roll)
    pm = roll_to_midi(roll, fps, velocity, min_frames, probs, restrike_depth)
    audio = synthesize(pm, synth, SAMPLE_RATE)
    audio = np.pad(audio, (0, max(0, int(np.ceil(len(roll) / fps * SAMPLE_RATE)) - len(audio))))
    mid, wav = output_paths(out_stem)
    try:
        with atomic_path(mid) as tmp_mid, atomic_path(wav) as tmp_wav:
            write_midi(pm, tmp_mid)
            write_wav(tmp_wav, audio, SAMPLE_RATE)
    except OSError as e:
        raise AudeoError(f"{mid.parent}: cannot write output ({e.strerror or e})") from None
    return mid, wav, synth.description


# ----------------------------------------------------------------------------- transcription

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


def transcribe(audio_path, onset_threshold=TRANSCRIBE_DEFAULTS["onset_threshold"],
               frame_threshold=TRANSCRIBE_DEFAULTS["frame_threshold"], min_note_ms=TRANSCRIBE_DEFAULTS["min_note_ms"]):
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
