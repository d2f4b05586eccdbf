"""MIDI -> audio through the best synthesizer present, and wav output.

Preference order (a given --soundfont always wins):
  1. FluidSynth (pyfluidsynth + Debian's libfluidsynth3) with Debian's FluidR3_GM.sf2, whose preset 0
     is a grand piano;
  2. FluidSynth with pretty_midi's bundled TimGM6mb.sf2 (what the original used);
  3. tinysoundfont (pure wheel, no root needed) with the best soundfont above.
Every caller logs `Synthesizer.description`, so each output says which one made it.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audeo_constants import SAMPLE_RATE, SUSTAIN_CC
from audeo_io import AudeoError, atomic_path

DEBIAN_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PEAK = 0.9   # normalise rendered audio to this peak (neither backend normalises the same way)


def bundled_soundfont():
    spec = importlib.util.find_spec("pretty_midi")
    return Path(spec.origin).parent / "TimGM6mb.sf2"


def fluidsynth_available():
    try:
        import fluidsynth  # noqa: F401  (ctypes wrapper: fails when libfluidsynth is missing)
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
        soundfile.write(tmp, np.clip(audio, -1, 1), sample_rate, subtype="PCM_16")
