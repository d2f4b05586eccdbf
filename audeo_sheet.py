"""Sheet music from generated notes: tempo and metre estimated, notes quantised, two staves, MusicXML
(music21), and a picture of the first system as SVG (verovio, when it is installed).

Method. Tempo: an onset envelope of the notes (each note adds a Gaussian at its onset, so a chord weighs
as many notes as it has); the beat is the lag where its autocorrelation, weighted by librosa's log-normal
tempo prior around 120 bpm, peaks; the phase is that of the comb of beats collecting the most envelope;
then tempo and phase are refitted by least squares through the onsets that lie near a beat. One constant
tempo (a score has one tempo mark; rubato is not followed), rounded to 0.1 bpm as its mark is written.
(librosa's own tracker, which gives the same tempi within ~3 % on the demo and the ASAP performances,
costs ~3.6 s of imports and numba compiling in every process: a fifth of Audeo.py's run on a 70 s clip.)
Metre: each beat's accent is the total length (in
beats, at most a bar) of the notes starting on it; of SHEET_METRES the bar length and phase whose
downbeats stand out most from the other beats win. Key: music21's Krumhansl-Schmuckler analysis; black
keys are spelt with flats in flat keys, sharps in sharp ones. Quantisation: onsets and
ends to the nearest 1/SHEET_DIVISIONS of a beat (a note lasts at least one step), from the first bar
line at or before the first note. Staves: MIDI SHEET_SPLIT_PITCH (middle C) and up on the treble, the
rest on the bass; overlapping notes on a staff become chords, a note held across a bar line or
another note's start or end is tied. Length: the notes that start in the first SHEET_MAX_SECONDS (a score
is built whole in memory; the MIDI has every note).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from audeo_constants import (SHEET_BPM_RANGE, SHEET_DEFAULT_BPM, SHEET_DIVISIONS, SHEET_ENVELOPE_RATE,
                             SHEET_ENVELOPE_SIGMA, SHEET_FIT_ROUNDS, SHEET_MAX_SECONDS, SHEET_METRES, SHEET_MIN_BEATS,
                             SHEET_NOTE_QUARTERS, SHEET_ON_BEAT, SHEET_PREVIEW_HEIGHT, SHEET_PREVIEW_WIDTH,
                             SHEET_PRIOR_BPM, SHEET_PRIOR_OCTAVES, SHEET_SPLIT_PITCH)
from audeo_io import AudeoError, atomic_path


@dataclass(frozen=True)
class Grid:
    """Where the beats and bars are: a constant tempo from the first bar line on."""
    bpm: float                # quarter notes a minute
    beats_per_bar: int        # the metre is beats_per_bar/4
    origin: float             # seconds of the first bar line (at or before the first note)

    @property
    def beat(self):
        return 60.0 / self.bpm

    @property
    def step(self):
        """The quantisation step, seconds."""
        return self.beat / SHEET_DIVISIONS

    def steps(self, seconds):
        """Nearest grid step of each time (integers, 0 at the first bar line)."""
        return np.rint((np.asarray(seconds, float) - self.origin) / self.step).astype(int)

    def as_dict(self):
        return dict(asdict(self), time_signature=f"{self.beats_per_bar}/4", step_seconds=self.step)


# ----------------------------------------------------------------------------- estimation

def onset_envelope(onsets):
    """The notes' onsets as a smoothed pulse train at SHEET_ENVELOPE_RATE (what beat trackers take)."""
    from scipy.ndimage import gaussian_filter1d
    env = np.zeros(int(max(onsets) * SHEET_ENVELOPE_RATE) + 2 * SHEET_ENVELOPE_RATE)
    np.add.at(env, np.rint(np.asarray(onsets) * SHEET_ENVELOPE_RATE).astype(int), 1.0)
    return gaussian_filter1d(env, SHEET_ENVELOPE_SIGMA * SHEET_ENVELOPE_RATE)


def tempo_prior(bpm):
    """librosa's prior on tempo (its beat tracker's default): log-normal around SHEET_PRIOR_BPM,
    SHEET_PRIOR_OCTAVES wide; it settles which octave of a periodic envelope is the beat."""
    return np.exp(-0.5 * (np.log2(bpm / SHEET_PRIOR_BPM) / SHEET_PRIOR_OCTAVES) ** 2)


def envelope_beat(env):
    """Seconds a beat of an onset envelope: the lag (within SHEET_BPM_RANGE) where its autocorrelation,
    weighted by tempo_prior, peaks, refined between samples by a parabola through the peak's neighbours."""
    x = env - env.mean()
    n = len(x)
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * n)) ** 2)[:n] / np.maximum(n - np.arange(n), 1)   # unbiased
    lags = np.arange(max(int(60 * SHEET_ENVELOPE_RATE / SHEET_BPM_RANGE[1]), 2),
                     min(int(60 * SHEET_ENVELOPE_RATE / SHEET_BPM_RANGE[0]) + 1, n - 1))
    score = ac[lags] * tempo_prior(60 * SHEET_ENVELOPE_RATE / lags)
    i = int(np.argmax(score))
    lag = float(lags[i])
    if 0 < i < len(lags) - 1:
        a, b, c = score[i - 1:i + 2]
        lag += 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
    return lag / SHEET_ENVELOPE_RATE


def comb_phase(env, beat):
    """Time (s, to the envelope's sample) of the comb of beats every `beat` seconds that collects the most
    of the envelope."""
    phases = np.arange(0.0, beat, 1.0 / SHEET_ENVELOPE_RATE)
    teeth = np.rint((phases[:, None] + np.arange(0.0, len(env) / SHEET_ENVELOPE_RATE, beat)) * SHEET_ENVELOPE_RATE)
    return float(phases[np.argmax(np.append(env, 0.0)[np.minimum(teeth.astype(int), len(env))].sum(1))])


def beat_line(onsets):
    """(seconds a beat, time of a beat) of note onsets (see the module's Method); SHEET_DEFAULT_BPM from
    the first note when there are too few notes or too few of them on the beat."""
    onsets = np.sort(np.asarray(onsets, float))
    fallback = 60.0 / SHEET_DEFAULT_BPM, float(onsets[0]) if len(onsets) else 0.0
    if len(onsets) < SHEET_MIN_BEATS:
        return fallback
    env = onset_envelope(onsets)
    beat = envelope_beat(env)
    phase = comb_phase(env, beat)
    for _ in range(SHEET_FIT_ROUNDS):                 # least squares through the notes on the beat
        index = np.rint((onsets - phase) / beat)
        on_beat = np.abs(onsets - phase - index * beat) <= SHEET_ON_BEAT * beat
        if len(np.unique(index[on_beat])) < SHEET_MIN_BEATS:
            return fallback
        beat, phase = np.polyfit(index[on_beat], onsets[on_beat], 1)
    return float(beat), float(phase)


def bar_start(onsets, lengths, beat, phase):
    """(beats a bar, index of a downbeat among the beats `phase + k * beat`): the metre and phase whose
    downbeats carry the most accent (length of the notes starting there) above the other beats."""
    index = np.rint((np.asarray(onsets) - phase) / beat).astype(int)
    best = (-math.inf, SHEET_METRES[0], 0)
    for metre in SHEET_METRES:
        accent = np.zeros(metre)
        np.add.at(accent, index % metre, np.minimum(np.asarray(lengths) / beat, metre))
        for down in range(metre):
            contrast = accent[down] - np.delete(accent, down).mean()
            if contrast / max(accent.sum(), 1e-9) > best[0] + 1e-9:     # relative: metres compare fairly
                best = (contrast / max(accent.sum(), 1e-9), metre, down)
    return best[1], best[2]


def estimate_grid(notes):
    """The Grid of (pitch, start, end, ...) notes (see the module's Method)."""
    onsets = [n[1] for n in notes]
    if not onsets:
        return Grid(SHEET_DEFAULT_BPM, SHEET_METRES[0], 0.0)
    beat, phase = beat_line(onsets)
    metre, down = bar_start(onsets, [n[2] - n[1] for n in notes], beat, phase)
    bar = metre * beat
    first_down = phase + down * beat
    origin = first_down + math.floor((min(onsets) - first_down) / bar + 1e-9) * bar
    return Grid(round(60.0 / beat, 1), metre, round(origin, 6))      # the grid is the written tempo mark


# ----------------------------------------------------------------------------- the score

def quantised(notes, grid):
    """[(pitch, offset, length)] in quarter notes (Fractions on the grid), sorted. A note lasts at least one
    step and ends where its key is struck again; notes of one key on the same step are written once."""
    starts, ends = grid.steps([n[1] for n in notes]), grid.steps([n[2] for n in notes])
    steps = {}                                        # (pitch, start step) -> end step
    for n, a, b in zip(notes, starts, ends):
        key = (int(n[0]), int(a))
        steps[key] = max(steps.get(key, 0), int(b), int(a) + 1)
    events, keys = [], sorted(steps)
    for (pitch, a), after in zip(keys, keys[1:] + [(None, None)]):
        b = min(steps[pitch, a], after[1]) if after[0] == pitch else steps[pitch, a]
        events.append((pitch, Fraction(a, SHEET_DIVISIONS), Fraction(b - a, SHEET_DIVISIONS)))
    return sorted(events, key=lambda e: (e[1], e[0]))


def _plain(start, end):
    """[start, end) steps cut, longest first, into plain and dotted note lengths (SHEET_NOTE_QUARTERS)."""
    lengths = [int(q * SHEET_DIVISIONS) for q in SHEET_NOTE_QUARTERS if q * SHEET_DIVISIONS >= 1]
    while start < end:
        n = next(n for n in lengths if n <= end - start)
        yield start, n
        start += n


def _tie(begins, ends):
    return None if begins and ends else "start" if begins else "stop" if ends else "continue"


def pieces(events, bar, length):
    """What a staff writes, in steps: [(start, steps, [(pitch, tie)])] tiling [0, length), cut at bar lines
    and at every note's start and end, then into plain or dotted lengths; a pitch held across a cut is
    tied ('start', 'continue', 'stop'; None: not tied); no pitches is a rest. Linear in the notes
    (music21's chordify is quadratic: minutes on a long video)."""
    steps = sorted((int(o * SHEET_DIVISIONS), int(q * SHEET_DIVISIONS), pitch) for pitch, o, q in events)
    cuts = sorted(set(range(0, length + 1, bar)) | {a for a, _, _ in steps} | {a + n for a, n, _ in steps})
    out, active, i = [], [], 0
    for s, t in zip(cuts, cuts[1:]):
        active = [e for e in active if e[0] + e[1] > s]
        while i < len(steps) and steps[i][0] == s:
            active.append(steps[i])
            i += 1
        for a, n in _plain(s, t):
            out.append((a, n, sorted((p, _tie(a == a0, a + n == a0 + n0)) for a0, n0, p in active)))
    return out


def spelt(midi, sharps):
    """music21 Pitch of a MIDI number, a black key spelt as a key signature of `sharps` would (C#/D- as
    music21 likes in C)."""
    from music21 import pitch
    p = pitch.Pitch(midi=midi)
    if p.accidental is not None and p.accidental.alter * sharps < 0:
        p = p.getEnharmonic()                         # C# -> D- in a flat key, E- -> D# in a sharp one
    return p


def _element(steps, sounding, sharps):
    """A Rest, Note or Chord `steps` long, each note tied as `sounding` says."""
    from music21 import chord, note, tie
    quarters = Fraction(steps, SHEET_DIVISIONS)
    if not sounding:
        return note.Rest(quarterLength=quarters)
    notes = []
    for midi, how in sounding:
        notes.append(note.Note(spelt(midi, sharps), quarterLength=quarters))
        notes[-1].tie = tie.Tie(how) if how else None
    return notes[0] if len(notes) == 1 else chord.Chord(notes, quarterLength=quarters)


def _staff(events, grid, symbol, sharps, length, tempo_mark):
    """One PartStaff of `length` steps of measures from (pitch, offset, length) events."""
    from music21 import key, meter, stream, tempo
    bar = grid.beats_per_bar * SHEET_DIVISIONS
    measures = [stream.Measure(number=i + 1) for i in range(length // bar)]
    marks = [symbol, key.KeySignature(sharps), meter.TimeSignature(f"{grid.beats_per_bar}/4")]
    for mark in marks + ([tempo.MetronomeMark(number=grid.bpm)] if tempo_mark else []):
        measures[0].insert(0, mark)
    for start, steps, sounding in pieces(events, bar, length):
        measures[start // bar].insert(Fraction(start % bar, SHEET_DIVISIONS), _element(steps, sounding, sharps))
    staff = stream.PartStaff()
    for m in measures:
        staff.append(m)
    return staff


def musical_key(events):
    """music21's key estimate (Krumhansl-Schmuckler) of (pitch, offset, length) events; C major for none."""
    from music21 import key, note, stream
    if not events:
        return key.Key("C")
    return stream.Stream([note.Note(midi, quarterLength=quarters) for midi, _, quarters in events]).analyze("key")


def build_score(notes, grid, title=""):
    """(music21 Score: a piano grand staff (treble, bass) of the notes quantised on `grid`, its key)."""
    from music21 import clef, layout, metadata, stream
    events = quantised(notes, grid)
    bar = grid.beats_per_bar * SHEET_DIVISIONS
    end = max((int((o + q) * SHEET_DIVISIONS) for _, o, q in events), default=0)
    length = max(1, math.ceil(end / bar)) * bar                  # both staves end on the same bar line
    found = musical_key(events)
    score = stream.Score()
    score.metadata = metadata.Metadata(title=title)
    staves = [_staff([e for e in events if (e[0] >= SHEET_SPLIT_PITCH) == treble], grid, symbol, found.sharps,
                     length, tempo_mark=treble)
              for treble, symbol in ((True, clef.TrebleClef()), (False, clef.BassClef()))]
    for staff in staves:
        score.insert(0, staff)
    score.insert(0, layout.StaffGroup(staves, symbol="brace", barTogether=True))
    return score, found


def write_sheet(notes, path, title="", max_seconds=SHEET_MAX_SECONDS):
    """Write the `notes` ((pitch, start s, end s, ...)) that start before `max_seconds` as MusicXML at `path`
    (atomically); returns the Grid as a dict (tempo, metre, first bar line, quantisation step), the key,
    the notes written and `cut_at` (max_seconds when later notes were left out, else None)."""
    from music21.exceptions21 import Music21Exception
    kept = [n for n in notes if n[1] < max_seconds]
    cut_at = max_seconds if len(kept) < len(notes) else None
    notes = kept
    grid = estimate_grid(notes)
    try:
        score, found = build_score(notes, grid, title)
        with atomic_path(path) as tmp:
            score.write("musicxml", fp=tmp)
    except Music21Exception as e:
        raise AudeoError(f"{path}: music21 could not write the sheet ({e})") from None
    return dict(grid.as_dict(), key=str(found), notes=len(notes), cut_at=cut_at)


# ----------------------------------------------------------------------------- preview

def preview(musicxml, svg):
    """The first system of a MusicXML file as SVG (verovio, offline). None when written, else why not
    (verovio missing, or it could not lay the file out): the preview is optional."""
    try:
        import verovio
    except ImportError:
        return "verovio is not installed (pip install verovio)"
    tk = verovio.toolkit()
    tk.setOptions({"pageWidth": SHEET_PREVIEW_WIDTH, "adjustPageHeight": True, "header": "none",
                   "footer": "none", "breaks": "auto", "pageHeight": SHEET_PREVIEW_HEIGHT})
    if not tk.loadFile(str(musicxml)) or tk.getPageCount() < 1:
        return f"verovio could not lay out {musicxml}"
    with atomic_path(svg) as tmp:
        Path(tmp).write_text(tk.renderToSVG(1))
    return None
