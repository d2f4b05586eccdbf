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

from audeo_constants import (DEFAULT_VELOCITY, FLUID_GAIN, FPS, MIDI_LOW, RELEASE_SECONDS, SAMPLE_RATE, SUSTAIN_CC,
                             SYNTH_BLOCK, TSF_GAIN_DB)
from audeo_io import AudeoError, atomic_path, notes_to_pretty_midi, quiet_import, roll_to_notes, to_88_keys, write_midi

DEBIAN_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
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


class SynthStream:
    """A piano synthesizer driven one event at a time: note-ons/offs and pedal in, mono float32 audio out
    at a fixed gain (FLUID_GAIN, no normalisation), so a file written in chunks, a live stream and a
    whole file sound the same. FluidSynth renders in 64-sample blocks and events take effect at the next
    block: callers that apply events on multiples of 64 samples (every 25 fps frame is 640) get the same
    samples however they chunk the rest."""

    def __init__(self, synth=None, sample_rate=SAMPLE_RATE, programs=(0,)):
        self.synth = synth or find_synthesizer()
        if self.synth.backend == "fluidsynth":
            fluidsynth = quiet_import("fluidsynth")
            self._fs = fluidsynth.Synth(gain=FLUID_GAIN, samplerate=float(sample_rate))
            sfid = self._fs.sfload(str(self.synth.soundfont))
            self._fs.cc, self._generate = self._fs.cc, self._fluid_samples
        else:
            import tinysoundfont
            self._fs = tinysoundfont.Synth(samplerate=sample_rate, gain=TSF_GAIN_DB)
            sfid = self._fs.sfload(str(self.synth.soundfont))
            self._fs.cc, self._generate = self._fs.control_change, self._tsf_samples
        for channel, program in enumerate(programs):
            self._fs.program_select(channel, sfid, 0, program)

    def note_on(self, pitch, velocity, channel=0):
        self._fs.noteon(channel, int(pitch), int(velocity))

    def note_off(self, pitch, channel=0):
        self._fs.noteoff(channel, int(pitch))

    def control(self, number, value, channel=0):
        self._fs.cc(channel, int(number), int(value))

    def samples(self, n):
        """The next `n` samples, mono float32."""
        return self._generate(n) if n > 0 else np.zeros(0, np.float32)

    def _fluid_samples(self, n):
        stereo = np.asarray(self._fs.get_samples(n), np.float32).reshape(-1, 2)
        return stereo.mean(axis=1) / 32768

    def _tsf_samples(self, n):
        return np.frombuffer(self._fs.generate(n), dtype=np.float32).reshape(-1, 2).mean(axis=1)

    def close(self):
        if self.synth.backend == "fluidsynth":
            self._fs.delete()


def midi_events(pm, sample_rate=SAMPLE_RATE):
    """A PrettyMIDI's non-drum notes and pedal as sorted (sample, order, channel, kind, a, b) events;
    at one sample note-offs come first, then pedal, then note-ons."""
    events = []
    for channel, inst in enumerate(i for i in pm.instruments if not i.is_drum):
        channel = min(channel, 8)
        at = lambda seconds: int(round(seconds * sample_rate))
        events += [(at(n.start), 2, channel, "on", n.pitch, n.velocity) for n in inst.notes]
        events += [(at(n.end), 0, channel, "off", n.pitch, 0) for n in inst.notes]
        events += [(at(c.time), 1, channel, "cc", c.number, c.value) for c in inst.control_changes
                   if c.number == SUSTAIN_CC]
    return sorted(events, key=lambda e: e[:2])


def iter_audio(pm, synth=None, sample_rate=SAMPLE_RATE, min_samples=0):
    """A PrettyMIDI's audio in chunks of at most SYNTH_BLOCK samples: until its last event plus a
    RELEASE_SECONDS tail, and at least `min_samples` long. Memory stays flat for any length."""
    programs = [i.program for i in pm.instruments if not i.is_drum][:9] or [0]
    events = midi_events(pm, sample_rate)
    total = max((events[-1][0] if events else 0) + int(RELEASE_SECONDS * sample_rate), min_samples)
    stream, now = SynthStream(synth, sample_rate, programs), 0
    try:
        for target, _, channel, kind, a, b in events + [(total, 3, 0, "end", 0, 0)]:
            while now < target:
                n = min(SYNTH_BLOCK, target - now)
                yield stream.samples(n)
                now += n
            if kind == "on":
                stream.note_on(a, b, channel)
            elif kind == "off":
                stream.note_off(a, channel)
            elif kind == "cc":
                stream.control(a, b, channel)
    finally:
        stream.close()


def synthesize(pm, synth=None, sample_rate=SAMPLE_RATE):
    """PrettyMIDI -> mono float32 audio at `sample_rate` (the whole of iter_audio); pedal CCs are honoured."""
    chunks = list(iter_audio(pm, synth, sample_rate))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


@contextlib.contextmanager
def wav_writer(path, sample_rate=SAMPLE_RATE):
    """Context manager giving `write(mono float chunk)`: a 16-bit PCM wav written chunk by chunk, which
    appears at `path` only when complete."""
    import soundfile
    with atomic_path(path) as tmp:
        try:
            with soundfile.SoundFile(tmp, "w", sample_rate, 1, "PCM_16", format="WAV") as f:
                yield lambda chunk: f.write(np.clip(chunk, -1, 1))
        except soundfile.LibsndfileError as e:      # libsndfile hides the OS error: it is a failed write
            raise OSError(errno.EIO, f"libsndfile: {e.error_string}") from None


def write_wav(path, audio, sample_rate=SAMPLE_RATE):
    """Mono float audio -> 16-bit PCM wav, written atomically."""
    with wav_writer(path, sample_rate) as write:
        write(audio)


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
    roll = to_88_keys(np.asarray(roll))
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
    mid, wav = output_paths(out_stem)
    try:
        with atomic_path(mid) as tmp_mid, wav_writer(wav) as write:
            write_midi(pm, tmp_mid)
            for chunk in iter_audio(pm, synth, SAMPLE_RATE, min_samples=int(np.ceil(len(roll) / fps * SAMPLE_RATE))):
                write(chunk)
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
