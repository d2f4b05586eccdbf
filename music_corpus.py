"""The default corpus of real music, as humanised piano performances for the synthetic-video renderer.

In:  music21's bundled scores (the 12 solo-piano pieces of SOLO_PIECES, and the Bach chorales: the
     350 distinct files behind Riemenschneider's 371 plus EXTRA_CHORALES, played on the keyboard
     with soprano+alto in the right hand and tenor+bass in the left), and any performance MIDI
     files given by path (e.g. human Disklavier MIDI from ASAP), which are only validated.
Out: `default_pieces()` lists `Piece`s cheaply (no score is parsed); `performance(piece, seed)`
     gives one pretty_midi.PrettyMIDI piano (program 0, notes + sustain CC64, times in seconds),
     the same for the same (piece, seed). Score-derived pieces get a pianist's tempo, timing,
     dynamics, articulation and pedalling (HumanizeConfig); performance MIDI comes back as is.

CLI: python music_corpus.py --out DIR [--seed N] [--limit K] [--midi extra.mid ...]
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from audeo_constants import MIDI_HIGH, MIDI_LOW
from audeo_io import AudeoError, load_midi, midi_notes, notes_to_pretty_midi, write_midi

# =========================================================================== every number, here

# The solo-piano pieces in music21's corpus: (corpus path, tempo in quarters per minute used when
# the score has no usable metronome mark, probability that the pianist uses the sustain pedal).
SOLO_PIECES = (
    ("bach/bwv846", 68, 0.25),                          # WTC I Prelude in C (score marks 72)
    ("cpebach/h186", 96, 0.25),
    ("mozart/k545/movement1_exposition", 132, 0.45),
    ("joplin/maple_leaf_rag", 100, 0.8),
    ("chopin/mazurka06-2.krn", 160, 0.9),
    ("schumann_clara/polonaise_op1n1", 96, 0.85),
    ("schumann_clara/polonaise_op1n2", 96, 0.85),
    ("schumann_clara/polonaise_op1n3", 96, 0.85),
    ("schumann_clara/polonaise_op1n4", 92, 0.85),
    ("schoenberg/opus19/movement2", 56, 0.8),
    ("schoenberg/opus19/movement6", 40, 0.9),
    ("verdi/laDonnaEMobile", 75, 0.7),                  # piano arrangement, 3/8
)
# Four-voice (S, A, T, B only) chorales in music21's bach/ folder that Riemenschneider's 371 do
# not point to; with them the chorale set has 384 distinct scores (the 371 hold 21 repeats).
EXTRA_CHORALES = (
    "bwv111.6", "bwv116.6", "bwv119.9", "bwv120.6", "bwv125.6", "bwv135.6", "bwv139.6",
    "bwv146.8", "bwv157.5", "bwv158.4", "bwv162.6-lpz", "bwv165.6", "bwv178.7", "bwv18.5-lz",
    "bwv188.6", "bwv197.7-a", "bwv20.7", "bwv227.1", "bwv229.2", "bwv244.17", "bwv244.29-a",
    "bwv245.5", "bwv248.23-s", "bwv248.28", "bwv248.42-s", "bwv248.64-s", "bwv66.6", "bwv67.4",
    "bwv7.7", "bwv70.7", "bwv72.6", "bwv92.9", "bwv93.7", "bwv99.6",
)
CHORALE_QPM = 80              # keyboard chorale tempo when the file has no mark
CHORALE_PEDAL_PROB = 0.3      # organ-like legato is mostly fingered; pedal is the exception
CHORALE_VOICES = ("soprano", "alto", "tenor", "bass")   # part-name prefixes, right hand first
SCORE_FORMATS = (".mxl", ".xml", ".musicxml", ".krn")   # preferred file when a work has several
MUSICXML_DEFAULT_QPM = 120.0  # an unprinted <sound tempo="120"> is a notation program's default
# Metronome marks outside these (quarters per minute) are notation-program noise, not tempi.
QPM_RANGE = {"solo": (30, 220), "chorale": (60, 100)}
DEFAULT_DYNAMIC = {"solo": "mf", "chorale": "mp"}
DYNAMIC_VELOCITY = {"pppp": 20, "ppp": 28, "pp": 38, "p": 50, "mp": 62, "mf": 74, "f": 88,
                    "ff": 102, "fff": 114, "ffff": 122}
# Accent-type dynamics: the note at that moment is accented; the value is the level after it.
ACCENT_DYNAMICS = {"sf": None, "sfz": None, "sff": None, "sffz": None, "fz": None, "rf": None,
                   "rfz": None, "fp": "p", "sfp": "p"}
STACCATO_MARKS = {"Staccato", "Staccatissimo", "Spiccato"}
TENUTO_MARKS = {"Tenuto"}
ACCENT_MARKS = {"Accent", "StrongAccent"}
# Catalogue numbers in performance MIDI names that name a work also in the score corpus, so that
# every rendition of one work lands in one split: (pattern, group format).
CATALOGUE_GROUPS = ((r"BWV_?(\d+)", "bach_bwv{}"),)
PERFORMER_SUFFIX = r"_[A-Z][A-Za-z]*\d{2}M?$"   # ASAP's performer id, e.g. _Shi05M
TEMPO_GRID_Q = 0.125          # resolution (quarters) of the integrated tempo curve
EPS_Q = 1e-4                  # offsets closer than this (quarters) count as simultaneous
MAX_REPEAT_GROWTH = 4         # a repeat expansion longer than this many times the score is bogus
SCORE_CACHE_SIZE = 32         # parsed scores kept in memory, so several seeds parse once


@dataclass(frozen=True)
class HumanizeConfig:
    """How a score is played; (low, high) pairs are drawn uniformly per piece, note or event."""
    tempo_spread: float = 0.10          # base tempo x U(1 - s, 1 + s)
    drift_std: float = 0.03             # slow tempo wander, std of log-tempo
    drift_beats: float = 8.0            # its correlation length in quarters
    rit_quarters: float = 4.0           # closing ritardando length
    rit_final: tuple = (0.6, 0.8)       # tempo factor reached at the last onset
    fermata_tempo: tuple = (0.45, 0.65)  # a fermata is held about twice as long
    onset_jitter_s: float = 0.012       # per chord and hand
    chord_spread_s: float = 0.004       # per note within a chord
    melody_lead_s: float = 0.010        # top note of the right hand comes slightly early
    grace_s: float = 0.06               # length of a grace note, played before its beat
    legato: tuple = (0.9, 1.0)          # sounding / written duration
    staccato: tuple = (0.4, 0.5)
    tenuto: tuple = (0.97, 1.0)
    min_note_s: float = 0.04
    release_gap_s: float = 0.005        # a key must rise before it is struck again
    velocity_sigma: float = 5.0         # per note
    piece_velocity_sigma: float = 4.0   # per performance (overall loudness)
    phrase_depth: float = 0.12          # +-6% arch over each phrase
    phrase_bars: int = 4                # phrase length when no fermata marks it
    top_voice_boost: float = 8.0
    downbeat_boost: float = 3.0
    accent_boost: float = 12.0
    velocity_min: int = 12
    pedal_skip_prob: float = 0.1        # a pedalling pianist still plays some harmonies dry
    pedal_lift_s: tuple = (0.02, 0.06)  # lift just after the new harmony is struck
    pedal_repress_s: tuple = (0.05, 0.10)  # and press again this much later
    pedal_tail_s: tuple = (0.1, 0.5)    # pedal held past the last note's release
    lead_in_s: float = 0.5              # silence before the first note


# =========================================================================== pieces

@dataclass(frozen=True)
class Piece:
    """One piece of the corpus; nothing is parsed until `performance()` is asked for."""
    name: str             # unique, file-system safe: the output file stem
    group: str            # the work: split train/val/test by this, so renditions stay together
    kind: str             # 'solo', 'chorale' or 'performance'
    source: str           # music21 corpus path, or a MIDI file path
    default_qpm: float = 0.0
    pedal_prob: float = 0.0

    def performance(self, seed=0, config=None):
        return performance(self, seed, config)


def _safe(text):
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")


def solo_pieces():
    """The 12 solo-piano pieces of music21's corpus."""
    pieces = []
    for path, qpm, pedal in SOLO_PIECES:
        name = _safe(re.sub(r"\.krn$", "", path))
        pieces.append(Piece(name, name, "solo", path, qpm, pedal))
    return pieces


def _chorale_group(stem):
    # Versions of one movement (bwv18.5-lz / bwv18.5-w) are one work.
    return _safe("bach_" + stem.split("-")[0])


def chorale_pieces():
    """Every distinct Bach chorale score in music21's corpus (no parsing: names only)."""
    from music21.corpus import chorales
    riemenschneider = dict.fromkeys(chorales.Iterator(returnType="filename"))  # ordered, deduped
    stems = [p.split("/", 1)[1] for p in riemenschneider] + list(EXTRA_CHORALES)
    return [Piece(_safe("chorale_" + s), _chorale_group(s), "chorale", "bach/" + s, CHORALE_QPM,
                  CHORALE_PEDAL_PROB) for s in stems]


def _performance_group(stem):
    for pattern, fmt in CATALOGUE_GROUPS:
        m = re.search(pattern, stem, flags=re.IGNORECASE)
        if m:
            return fmt.format(m.group(1))
    return _safe(re.sub(PERFORMER_SUFFIX, "", stem))


def midi_piece(path):
    """A human performance MIDI file as a Piece, validated now so a bad file fails up front."""
    path = Path(path)
    _validated_midi(path)
    return Piece(_safe(f"{path.parent.name}_{path.stem}"), _performance_group(path.stem),
                 "performance", str(path))


def default_pieces(extra_midi=()):
    """Solo pieces, then chorales, then the given performance MIDI files; names are unique."""
    pieces = solo_pieces() + chorale_pieces() + [midi_piece(p) for p in extra_midi]
    seen = set()
    for p in pieces:
        if p.name in seen:
            raise AudeoError(f"{p.source}: piece name {p.name} is already taken (same file twice?)")
        seen.add(p.name)
    return pieces


# =========================================================================== performances

def performance(piece, seed=0, config=None):
    """The piece played once: PrettyMIDI, one piano with notes and CC64; same (piece, seed) -> same."""
    if piece.kind == "performance":
        return _validated_midi(Path(piece.source))
    rng = np.random.default_rng([seed, zlib.crc32(piece.name.encode())])
    return _humanize(_load_score(piece.source, piece.kind), piece, config or HumanizeConfig(), rng)


def iter_performances(pieces, seed=0, config=None):
    """Yield (piece, PrettyMIDI); a score that music21 cannot read is skipped with a warning."""
    for piece in pieces:
        try:
            pm = performance(piece, seed, config)
        except AudeoError as e:
            if piece.kind == "performance":
                raise           # the user's own file: an error, not a silent gap
            warnings.warn(f"skipped {piece.name}: {e}", RuntimeWarning, stacklevel=2)
            continue
        yield piece, pm


def _validated_midi(path):
    pm = load_midi(path)
    notes = midi_notes(pm, sustain=False)
    if not notes:
        raise AudeoError(f"{path}: MIDI file has no notes")
    bad = [n for n in notes if not MIDI_LOW <= n[0] <= MIDI_HIGH]
    if bad:
        raise AudeoError(f"{path}: {len(bad)} notes outside the 88 keys (MIDI {MIDI_LOW}..{MIDI_HIGH}), "
                         f"e.g. pitch {bad[0][0]} at {bad[0][1]:.2f} s")
    return pm


# =========================================================================== score -> note list

class _Note(NamedTuple):
    onset: float      # quarters from the start, repeats expanded
    dur: float        # quarters; 0 for a grace note
    pitch: int
    hand: int         # 0 right, 1 left
    artic: str        # 'legato', 'staccato' or 'tenuto'
    accent: bool


@dataclass
class _Score:
    notes: list                 # _Note
    marks: list                 # (quarter, quarter-notes per minute) of usable metronome marks
    dynamics: list              # (quarter, dynamic string)
    fermatas: list              # (quarter, length in quarters)
    bars: list                  # (quarter, length, beat length) of each bar as played


@functools.lru_cache(maxsize=SCORE_CACHE_SIZE)
def _load_score(source, kind):
    """Parse a corpus score and reduce it to plain notes and marks (slow part, hence cached)."""
    from music21 import converter
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # music21 is chatty about harmless MusicXML quirks
            score = converter.parse(_corpus_file(source))
        expanded = _music21_expand(score)
        parts = _hands(expanded or score, kind)
        table = _measure_table(parts[0][0])
        order = list(range(len(table))) if expanded else _play_order(table)
        return _expand(_extract(parts), table, order)
    except AudeoError as e:
        raise AudeoError(f"{source}: {e}") from None
    except Exception as e:   # music21 raises many types on odd scores; one line for the caller
        raise AudeoError(f"{source}: music21 could not read it ({type(e).__name__}: {e})") from None


def _corpus_file(source):
    from music21 import corpus
    found = corpus.getWork(source)
    found = found if isinstance(found, list) else [found]
    if not found:
        raise AudeoError("not in music21's corpus")
    rank = {ext: i for i, ext in enumerate(SCORE_FORMATS)}
    return str(min(found, key=lambda p: rank.get(Path(p).suffix, len(rank))))


def _music21_expand(score):
    """music21's expansion, only for D.C./D.S./Fine (which our own expander ignores); None if unused."""
    from music21 import repeat
    if score.recurse().getElementsByClass(repeat.RepeatExpression).first() is None:
        return None
    try:
        return score.expandRepeats()
    except Exception:        # badly formed marks: play the barline repeats only
        return None


def _hands(score, kind):
    """[(part, hand)] of the parts to play; hand 0 = right."""
    parts = list(score.parts)
    if kind == "chorale":
        named = {v: [p for p in parts if (p.partName or "").lower().startswith(v)]
                 for v in CHORALE_VOICES}
        if all(named.values()):
            return [(p, int(v in CHORALE_VOICES[2:])) for v in CHORALE_VOICES for p in named[v]]
        if len(parts) != len(CHORALE_VOICES):
            raise AudeoError(f"cannot tell the voices apart in parts {[p.partName for p in parts]}")
    # Unnamed or piano staves: by register; the higher half is the right hand.
    ordered = sorted(parts, key=_mean_pitch, reverse=True)
    half = max(1, len(ordered) // 2)
    return [(p, int(i >= half)) for i, p in enumerate(ordered)]


def _mean_pitch(part):
    pitches = [p.midi for n in part.flatten().notes for p in n.pitches]
    return float(np.mean(pitches)) if pitches else 0.0


def _extract(parts):
    notes, marks, dynamics, fermatas = [], {}, [], {}
    for part, hand in parts:
        flat = part.flatten()
        notes += _part_notes(flat, hand)
        for el in flat.notes:        # one hold per moment, however many voices carry the sign
            if any(type(x).__name__ == "Fermata" for x in el.expressions):
                q = round(float(el.offset), 6)
                fermatas[q] = max(fermatas.get(q, 0.0), float(el.quarterLength))
        dynamics += [(float(d.offset), d.value) for d in flat.getElementsByClass("Dynamic")]
        for mm in flat.getElementsByClass("MetronomeMark"):
            qpm, printed = mm.getQuarterBPM(), mm.number is not None
            if qpm and (printed or qpm != MUSICXML_DEFAULT_QPM):
                q = float(mm.offset)
                if printed or q not in marks:      # a printed mark beats a hidden one
                    marks[q] = float(qpm)
    if not notes:
        raise AudeoError("score has no notes")
    return _Score(notes, sorted(marks.items()), sorted(dynamics), sorted(fermatas.items()), [])


def _part_notes(flat, hand):
    """Notes of one flattened part, tied notes joined into one."""
    out, open_ties = [], {}          # (pitch, quarter where the tie lands) -> index in out
    for el in flat.notes:
        names = {type(a).__name__ for a in el.articulations}
        artic = "staccato" if names & STACCATO_MARKS else "tenuto" if names & TENUTO_MARKS else "legato"
        onset, dur = float(el.offset), float(el.quarterLength)
        for n in getattr(el, "notes", None) or [el]:
            tie = n.tie.type if n.tie is not None else None
            pitch = n.pitch.midi
            joins = tie in ("stop", "continue")
            i = open_ties.pop((pitch, round(onset / EPS_Q)), None) if joins else None
            if i is None:
                i = len(out)
                out.append(_Note(onset, dur, pitch, hand, artic,
                                 bool(names & ACCENT_MARKS)))
            else:
                out[i] = out[i]._replace(dur=onset + dur - out[i].onset)
            if tie in ("start", "continue"):
                open_ties[(pitch, round((onset + dur) / EPS_Q))] = i
    return out


def _measure_table(part):
    """[(offset, length, beat, repeat start, plays of an end repeat (0: none), volta numbers)]."""
    from music21 import bar, spanner
    measures = list(part.getElementsByClass("Measure"))
    voltas = {}
    for rb in part.spannerBundle.getByClass(spanner.RepeatBracket):
        for m in rb.getSpannedElements():
            voltas[id(m)] = frozenset(rb.numberRange)
    table, beat = [], 1.0
    ends = [float(m.offset) for m in measures[1:]] + [float(part.highestTime)]
    for m, end in zip(measures, ends):
        if m.timeSignature is not None:
            beat = float(m.timeSignature.beatDuration.quarterLength)
        left, right = m.leftBarline, m.rightBarline
        start = isinstance(left, bar.Repeat) and left.direction == "start"
        plays = (right.times or 2) if isinstance(right, bar.Repeat) and right.direction == "end" else 0
        table.append((float(m.offset), end - float(m.offset), beat, start, plays, voltas.get(id(m))))
    return table


def _play_order(table):
    """Indices of measures in the order a pianist plays them: barline repeats and 1st/2nd endings."""
    order, i, start, pass_no, jumps = [], 0, 0, 1, {}
    while i < len(table):
        _, _, _, rep_start, plays, volta = table[i]
        if rep_start and i != start:
            start, pass_no = i, 1
        if volta is not None and pass_no not in volta:
            i += 1
            continue
        order.append(i)
        if len(order) > MAX_REPEAT_GROWTH * len(table):
            return list(range(len(table)))        # malformed marks: play it straight through
        if plays and jumps.get(i, 0) < plays - 1:
            jumps[i] = jumps.get(i, 0) + 1
            i, pass_no = start, pass_no + 1
            continue
        if plays or (volta is not None and i + 1 < len(table) and table[i + 1][5] is None):
            start, pass_no = i + 1, 1              # a finished repeat: the next section starts here
        i += 1
    return order


def _expand(sc, table, order):
    """The score laid out in playing order `order` (measure indices): repeats written out."""
    if not table:
        return dataclasses.replace(sc, bars=[(0.0, max(n.onset + n.dur for n in sc.notes), 1.0)])
    segments, dst = [], 0.0           # [source start, source end, destination start]
    for k, i in enumerate(order):
        q, length = table[i][0], table[i][1]
        if segments and order[k - 1] == i - 1:
            segments[-1][1] = q + length
        else:
            segments.append([q, q + length, dst])
        dst += length
    segments[-1][1] = float("inf")                # anything after the last barline stays
    bars = []
    for i in order:
        bars.append((bars[-1][0] + bars[-1][1] if bars else 0.0, table[i][1], table[i][2]))

    def place(q):
        return [d + q - s for s, e, d in segments if s - EPS_Q <= q < e - EPS_Q]

    # A note held into a jump back is released at the repeat barline.
    notes = [n._replace(onset=d + n.onset - s, dur=min(n.dur, e - n.onset))
             for n in sc.notes for s, e, d in segments if s - EPS_Q <= n.onset < e - EPS_Q]
    return _Score(notes, [(q2, v) for q, v in sc.marks for q2 in place(q)],
                  sorted((q2, v) for q, v in sc.dynamics for q2 in place(q)),
                  [(q2, v) for q, v in sc.fermatas for q2 in place(q)], bars)


# =========================================================================== humanisation

def _humanize(sc, piece, cfg, rng):
    notes = _keyboard_notes(sc.notes)
    clock = _tempo_curve(sc, notes, piece, cfg, rng)
    onsets = _onsets(notes, clock, cfg, rng)
    ends = _ends(notes, onsets, clock, cfg, rng)
    vel = _velocities(notes, sc, piece, cfg, rng)
    onsets, ends = _tidy_same_key(notes, onsets, ends, cfg)
    pedal = _pedal(notes, sc, clock, ends, piece, cfg, rng)
    shift = cfg.lead_in_s - onsets.min()
    out = [(n.pitch, s + shift, e + shift, v) for n, s, e, v in zip(notes, onsets, ends, vel)]
    return notes_to_pretty_midi(sorted(out, key=lambda x: (x[1], x[0])), program=0,
                                pedal=[(d + shift, u + shift) for d, u in pedal])


def _keyboard_notes(notes):
    """Notes moved into the 88 keys by octaves; a key struck by two voices at once sounds once."""
    moved = []
    for n in notes:
        p = n.pitch
        while p < MIDI_LOW:
            p += 12
        while p > MIDI_HIGH:
            p -= 12
        moved.append(n._replace(pitch=p))
    moved.sort(key=lambda n: (n.pitch, n.onset, -n.dur))
    out = []
    for n in moved:
        prev = out[-1] if out else None
        if prev and prev.pitch == n.pitch and abs(prev.onset - n.onset) < EPS_Q and n.dur > 0:
            continue                                   # unison of two voices: one key
        out.append(n)
    return sorted(out, key=lambda n: (n.onset, n.hand, -n.pitch))


def _step(points, q, default):
    """Value of a step function [(quarter, value)] at quarters q (array)."""
    if not points:
        return np.full(len(q), default, dtype=object)
    keys = np.array([p[0] for p in points])
    idx = np.searchsorted(keys, q + EPS_Q, side="right") - 1
    vals = np.array([default] + [p[1] for p in points], dtype=object)
    return vals[idx + 1]


def _tempo_curve(sc, notes, piece, cfg, rng):
    """Score quarters -> seconds: score tempo x random base x slow drift x fermatas x ritardando."""
    last_onset = max(n.onset for n in notes)
    end_q = max(n.onset + n.dur for n in notes) + 4.0
    grid = np.arange(0.0, end_q + TEMPO_GRID_Q, TEMPO_GRID_Q)
    mid = grid[:-1] + TEMPO_GRID_Q / 2
    low, high = QPM_RANGE[piece.kind]
    marks = [(q, v) for q, v in sc.marks if low <= v <= high]
    qpm = _step(marks, mid, float(piece.default_qpm)).astype(float)
    qpm *= rng.uniform(1 - cfg.tempo_spread, 1 + cfg.tempo_spread)
    drift = _drift(int(end_q) + 2, cfg, rng)
    qpm *= np.exp(np.interp(mid, np.arange(len(drift)), drift))
    for q, length in sc.fermatas:
        qpm[(mid >= q) & (mid < q + length)] *= rng.uniform(*cfg.fermata_tempo)
    ramp = np.clip((mid - (last_onset - cfg.rit_quarters)) / cfg.rit_quarters, 0, 1)
    qpm *= 1 - (1 - rng.uniform(*cfg.rit_final)) * ramp
    seconds = np.concatenate([[0.0], np.cumsum(TEMPO_GRID_Q * 60.0 / qpm)])
    return lambda q: np.interp(q, grid, seconds)


def _drift(n_beats, cfg, rng):
    """A mean-reverting random walk of log-tempo, one value per quarter (Ornstein-Uhlenbeck)."""
    keep = 1.0 - 1.0 / cfg.drift_beats
    steps = rng.normal(0.0, cfg.drift_std * np.sqrt(1 - keep ** 2), n_beats)
    x = np.empty(n_beats)
    x[0] = rng.normal(0.0, cfg.drift_std)
    for k in range(1, n_beats):
        x[k] = keep * x[k - 1] + steps[k]
    return x


def _chords(notes):
    """{(hand, onset): indices} of the notes struck together by one hand (grace notes apart)."""
    chords = {}
    for i, n in enumerate(notes):
        chords.setdefault((n.hand, round(n.onset / EPS_Q), n.dur == 0), []).append(i)
    return chords


def _onsets(notes, clock, cfg, rng):
    q = np.array([n.onset for n in notes])
    t = clock(q) + rng.normal(0.0, cfg.chord_spread_s, len(notes))
    for (hand, _, grace), idx in _chords(notes).items():
        t[idx] += rng.normal(0.0, cfg.onset_jitter_s)
        if grace:                                   # played in turn, just before the beat
            t[idx] -= cfg.grace_s * np.arange(len(idx), 0, -1)
        elif hand == 0:
            t[max(idx, key=lambda i: notes[i].pitch)] -= cfg.melody_lead_s
    return t


def _ends(notes, onsets, clock, cfg, rng):
    q = np.array([n.onset for n in notes])
    written = clock(q + np.array([n.dur for n in notes])) - clock(q)
    ranges = {"legato": cfg.legato, "staccato": cfg.staccato, "tenuto": cfg.tenuto}
    factor = np.array([rng.uniform(*ranges[n.artic]) for n in notes])
    length = np.where([n.dur == 0 for n in notes], cfg.grace_s, written * factor)
    return onsets + np.maximum(length, cfg.min_note_s)


def _velocities(notes, sc, piece, cfg, rng):
    """Dynamics marks x phrase arch, plus melody, downbeat and accent emphasis, plus noise."""
    q = np.array([n.onset for n in notes])
    levels = [(p, ACCENT_DYNAMICS.get(v) or v) for p, v in sc.dynamics
              if (ACCENT_DYNAMICS.get(v) or v) in DYNAMIC_VELOCITY]
    base = np.array([DYNAMIC_VELOCITY[v] for v in _step(levels, q, DEFAULT_DYNAMIC[piece.kind])],
                    dtype=float)
    vel = base * (1 + cfg.phrase_depth * (np.sin(np.pi * _phrase_position(q, sc, cfg)) - 0.5))
    vel += rng.normal(0.0, cfg.piece_velocity_sigma) + rng.normal(0.0, cfg.velocity_sigma, len(q))
    accents = {round(p / EPS_Q) for p, v in sc.dynamics if v in ACCENT_DYNAMICS}
    downbeats = {round(b[0] / EPS_Q) for b in sc.bars}
    for i, n in enumerate(notes):
        key = round(n.onset / EPS_Q)
        vel[i] += (cfg.accent_boost * (n.accent or key in accents)
                   + cfg.downbeat_boost * (key in downbeats))
    for (hand, _, grace), idx in _chords(notes).items():
        if hand == 0 and not grace:
            vel[max(idx, key=lambda i: notes[i].pitch)] += cfg.top_voice_boost
    return np.clip(np.round(vel), cfg.velocity_min, 127).astype(int)


def _phrase_position(q, sc, cfg):
    """0..1 position of each quarter in its phrase (phrases end at fermatas or every few bars)."""
    bounds = [b[0] for b in sc.bars[::cfg.phrase_bars]] + [f + d for f, d in sc.fermatas]
    bounds = np.unique(np.round(bounds + [0.0, float(q.max()) + 1.0], 6))
    k = np.clip(np.searchsorted(bounds, q, side="right") - 1, 0, len(bounds) - 2)
    return (q - bounds[k]) / (bounds[k + 1] - bounds[k])


def _tidy_same_key(notes, onsets, ends, cfg):
    """A key is released before it is struck again (jitter may otherwise overlap two strikes)."""
    onsets, ends = onsets.copy(), ends.copy()
    by_pitch = {}
    for i, n in enumerate(notes):
        by_pitch.setdefault(n.pitch, []).append(i)
    for idx in by_pitch.values():
        idx.sort(key=lambda i: onsets[i])
        for a, b in zip(idx, idx[1:]):
            if onsets[b] < onsets[a] + cfg.min_note_s + cfg.release_gap_s:
                onsets[b] = onsets[a] + cfg.min_note_s + cfg.release_gap_s
                ends[b] = max(ends[b], onsets[b] + cfg.min_note_s)
            ends[a] = min(ends[a], onsets[b] - cfg.release_gap_s)
    return onsets, ends


def _pedal(notes, sc, clock, ends, piece, cfg, rng):
    """[(down, up)] seconds: pressed after each harmony is struck, lifted just after the next one."""
    if rng.random() >= piece.pedal_prob:
        return []
    changes = clock(np.array(_harmony_changes(notes, sc.bars)))
    lifts = changes + rng.uniform(*cfg.pedal_lift_s, len(changes))
    downs = lifts + rng.uniform(*cfg.pedal_repress_s, len(changes))
    ups = np.append(lifts[1:], ends.max() + rng.uniform(*cfg.pedal_tail_s))
    keep = (ups > downs) & (rng.random(len(changes)) >= cfg.pedal_skip_prob)
    return list(zip(downs[keep], ups[keep]))


def _harmony_changes(notes, bars):
    """Quarters where the pedal changes: every bar line, and beats where the bass moves."""
    lowest = {}
    for n in notes:
        key = round(n.onset / EPS_Q)
        lowest[key] = min(lowest.get(key, 999), n.pitch)
    changes, bass = [], None
    for start, length, beat in bars:
        for k, b in enumerate(np.arange(start, start + length - EPS_Q, beat)):
            low = lowest.get(round(b / EPS_Q))
            if k == 0 or (low is not None and low % 12 != bass):
                changes.append(float(b))
                bass = None if low is None else low % 12
    return changes or [0.0]


# =========================================================================== CLI

def main(argv=None):
    from tqdm import tqdm
    ap = argparse.ArgumentParser(description="Write the default corpus as humanised piano MIDI.")
    ap.add_argument("--out", required=True, help="output folder for <name>.mid")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None,
                    help="only the first K scores (--midi files are always written)")
    ap.add_argument("--midi", nargs="*", default=[], help="extra human performance MIDI files")
    args = ap.parse_args(argv)
    pieces = default_pieces(args.midi)
    scores = [p for p in pieces if p.kind != "performance"]
    pieces = scores[:args.limit] + pieces[len(scores):]
    seconds = n_notes = n_done = 0
    for piece, pm in tqdm(iter_performances(pieces, args.seed), total=len(pieces), unit="piece"):
        write_midi(pm, Path(args.out) / f"{piece.name}.mid")
        seconds += pm.get_end_time()
        n_notes += sum(len(i.notes) for i in pm.instruments)
        n_done += 1
    print(f"{n_done} of {len(pieces)} pieces, {seconds / 3600:.2f} h, {n_notes} notes -> {args.out}")


if __name__ == "__main__":
    from audeo_cli import run
    run(main)
