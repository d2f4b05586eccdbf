"""Music identification, offline: which piece is a 10 s excerpt of audio from? (the paper's identification test)

The paper played Audeo's generated audio to music-identification apps, which named the piece 86 % of the
time (93 % for the real audio). The offline equivalent, with the method of the audio-matching literature
(Müller, Kurth & Clausen 2005, "Audio matching via chroma-based statistical features"; Müller,
Fundamentals of Music Processing, ch. 7), which tolerates another performance, tempo, key and synthesis:

* Library: one entry per piece, the features of its audio: each reference MIDI's rendering (audeo_synth)
  and distractor pieces (`distractor_candidates`: given performance MIDI, music21's solo pieces, Bach
  chorales, humanised by music_corpus), none the same work as a reference. `LibraryCache` keeps the
  distractors' features in an npz, so they are rendered and featurised once.
* Features (`features`): CENS (librosa.feature.chroma_cens: CQT chroma, quantised, smoothed over
  IDENTIFY_CENS_SMOOTH frames, unit length) at IDENTIFY_CENS_STEP-fold fewer frames; frames whose
  audio is quieter than IDENTIFY_SILENCE_DB, or whose chroma is flat (noise: cosine to the flat vector
  above IDENTIFY_FLAT_COSINE), carry no chroma (zero; matched as the flat vector, so silence is like
  silence).
* Queries (`excerpts`): IDENTIFY_EXCERPTS excerpts of IDENTIFY_EXCERPT_SECONDS, centred in equal parts
  of the query audio, each cut from the audio before featurising, as a phone would hear it.
* Matching (`Library.rank`): subsequence DTW (librosa.sequence.dtw, subseq=True) of the query inside
  every entry, cosine distance, steps IDENTIFY_DTW_STEPS (tempo 0.5-2x), over IDENTIFY_SHIFTS circular
  chroma shifts per entry: none, then the best by OTI (12: any transposition). An entry's cost is the
  accumulated cost of its best path divided by the path's length; pieces are ranked by their best
  entry's cost (entries of one piece's music, e.g. one take filmed from three angles, are one piece).
* Decision (`decide`, `identify`): the best piece is the answer when the margin 1 - best / second-best
  piece's cost is at least IDENTIFY_MIN_MARGIN and at least IDENTIFY_MIN_CHROMA of the excerpt's
  frames carry chroma; otherwise the excerpt is rejected ("no match"), as noise or a piece outside the
  library must be.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audeo_constants import (IDENTIFY_CENS_SMOOTH, IDENTIFY_CENS_STEP, IDENTIFY_CHROMA_HOP, IDENTIFY_DISTRACTORS,
                             IDENTIFY_DTW_STEPS, IDENTIFY_DUPLICATE_COST, IDENTIFY_EXCERPT_SECONDS, IDENTIFY_EXCERPTS,
                             IDENTIFY_FLAT_COSINE, IDENTIFY_MIN_CHROMA, IDENTIFY_MIN_MARGIN, IDENTIFY_NOISE_EXCERPTS,
                             IDENTIFY_NOISE_RMS, IDENTIFY_OUTSIDE, IDENTIFY_SEED, IDENTIFY_SHIFTS, IDENTIFY_SILENCE_DB,
                             IDENTIFY_TOP_K, SAMPLE_RATE)
from audeo_io import AudeoError, load_midi, midi_notes, save_npz

N_CHROMA = 12
FEATURE_RATE = SAMPLE_RATE / (IDENTIFY_CHROMA_HOP * IDENTIFY_CENS_STEP)      # feature frames per second
CACHE_VERSION = 1
CONDITIONS = ("generated", "reference rendering", "real audio", "outside")  # the table's rows, in order


# ----------------------------------------------------------------------------- audio and features

def read_audio(path):
    """Any audio file librosa reads -> mono float32 at SAMPLE_RATE, or a one-line error."""
    import librosa
    path = Path(path)
    if not path.is_file():
        raise AudeoError(f"{path}: audio file not found")
    try:
        with warnings.catch_warnings():          # audioread's fallback for mp3 warns about it
            warnings.simplefilter("ignore")
            audio, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    except Exception as e:   # soundfile/audioread raise many types for unreadable files
        raise AudeoError(f"{path}: not a readable audio file ({type(e).__name__}: {str(e) or 'unknown format'})") \
            from None
    if not len(audio) or not np.isfinite(audio).all():
        raise AudeoError(f"{path}: no audio samples (or NaN) in the file")
    return audio.astype(np.float32)


def features(audio):
    """Mono SAMPLE_RATE audio -> (12, T) float32 CENS at FEATURE_RATE; silent or flat (noise) frames are zero."""
    import librosa
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # a short excerpt makes librosa warn about its lowest filters
        cens = librosa.feature.chroma_cens(y=audio, sr=SAMPLE_RATE, hop_length=IDENTIFY_CHROMA_HOP,
                                           win_len_smooth=IDENTIFY_CENS_SMOOTH)
    rms = librosa.feature.rms(y=audio, frame_length=2 * IDENTIFY_CHROMA_HOP, hop_length=IDENTIFY_CHROMA_HOP)[0]
    n = min(cens.shape[1], len(rms))
    # chroma normalises a fading note's hiss up to a flat vector: such frames would match any silence or noise
    quiet = 20 * np.log10(np.maximum(rms[:n], 1e-10)) < IDENTIFY_SILENCE_DB
    cens = cens[:, :n:IDENTIFY_CENS_STEP] * ~quiet[::IDENTIFY_CENS_STEP]
    # noise has every pitch class alike (cosine to the flat vector 0.99+; music's highest here 0.988)
    flat = cens.sum(axis=0) / np.sqrt(N_CHROMA) > IDENTIFY_FLAT_COSINE * np.linalg.norm(cens, axis=0)
    return np.ascontiguousarray(cens * ~flat, dtype=np.float32)


def excerpt_starts(duration, source, seconds=IDENTIFY_EXCERPT_SECONDS, count=IDENTIFY_EXCERPTS):
    """Start times (s) of `count` excerpts of `seconds`, centred in `count` equal parts of `duration`."""
    if duration < seconds:
        raise AudeoError(f"{source}: lasts {duration:.1f} s, shorter than the {seconds:g} s excerpt")
    return [(duration - seconds) * (i + 0.5) / count for i in range(count)]


def excerpts(audio, source, seconds=IDENTIFY_EXCERPT_SECONDS, count=IDENTIFY_EXCERPTS):
    """[(start s, audio excerpt)] of a query, see `excerpt_starts`."""
    length = int(round(seconds * SAMPLE_RATE))
    starts = excerpt_starts(len(audio) / SAMPLE_RATE, source, seconds, count)
    return [(s, audio[int(round(s * SAMPLE_RATE)):][:length]) for s in starts]


def noise_excerpts(count=IDENTIFY_NOISE_EXCERPTS, seconds=IDENTIFY_EXCERPT_SECONDS, seed=IDENTIFY_SEED):
    """[(0.0, white noise at IDENTIFY_NOISE_RMS)] x count: queries that must be rejected."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SAMPLE_RATE))
    return [(0.0, (IDENTIFY_NOISE_RMS * rng.standard_normal(n)).astype(np.float32)) for _ in range(count)]


def render(pm, synth):
    """A PrettyMIDI's audio (audeo_synth, SAMPLE_RATE)."""
    from audeo_synth import synthesize
    return synthesize(pm, synth, SAMPLE_RATE)


def reference_midi(path):
    """A reference MIDI file, which must hold notes."""
    pm = load_midi(path)
    if not midi_notes(pm, sustain=False):
        raise AudeoError(f"{path}: MIDI file has no notes")
    return pm


# ----------------------------------------------------------------------------- the library

@dataclass
class Entry:
    name: str
    features: np.ndarray        # (12, T)


def matchable(feats):
    """Features with their chroma-less frames (silence, noise) as the flat unit vector, for matching: alike
    each other, and a frame either side of the flatness threshold costs little, not everything."""
    out = feats.copy()
    out[:, ~feats.any(axis=0)] = 1 / np.sqrt(N_CHROMA)
    return out


class Library:
    """Library entries laid end to end, two impassable frames apart, so one DTW per shift matches them all.
    `groups` {entry name: piece} joins entries that are one piece's music (default: each its own piece)."""

    def __init__(self, entries, groups=None):
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise AudeoError(f"{dup}: two library pieces of this name")
        self.entries = list(entries)
        self.piece = {n: (groups or {}).get(n, n) for n in names}
        gap = max(max(s) for s in IDENTIFY_DTW_STEPS)      # no step jumps from one entry into the next
        parts, self.bounds, at = [], [], 0
        for e in self.entries:
            parts += [e.features, np.zeros((N_CHROMA, gap), np.float32)]
            self.bounds.append((at, at + e.features.shape[1]))
            at += e.features.shape[1] + gap
        self.owner = np.full(at, -1)
        for i, (a, b) in enumerate(self.bounds):
            self.owner[a:b] = i
        self.frames = matchable(np.concatenate(parts, axis=1) if parts else np.zeros((N_CHROMA, 0), np.float32))
        profiles = np.stack([e.features.sum(axis=1) for e in self.entries], axis=1) if entries else None
        self.profiles = profiles / np.maximum(np.linalg.norm(profiles, axis=0), 1e-9) if entries else None

    def names(self):
        return [e.name for e in self.entries]

    def shift_candidates(self, query, n_shifts=IDENTIFY_SHIFTS):
        """(n_shifts, entries) chroma shifts to try: 0 (the same key) first, then the best by OTI, the circular
        shift of the query's chroma profile closest to each entry's (a flat profile, e.g. a chromatic
        exercise's, makes OTI a guess: the key the query is in is always tried)."""
        profile = query.sum(axis=1)
        agreement = np.stack([np.roll(profile, s) @ self.profiles for s in range(N_CHROMA)])   # (12, entries)
        agreement[0] = np.inf
        return np.argsort(-agreement, axis=0, kind="stable")[:n_shifts]

    def rank(self, query, n_shifts=IDENTIFY_SHIFTS):
        """Every entry's best match of `query` (12, N) as dicts {name, cost, shift, start, end} (seconds in the
        entry), lowest cost first; `shift` is the semitones the query is above the entry."""
        import librosa
        steps = np.array(IDENTIFY_DTW_STEPS)
        query = matchable(query)
        best = [dict(name=e.name, cost=np.inf, shift=0, start=0.0, end=0.0) for e in self.entries]
        for shifts in self.shift_candidates(query, n_shifts):
            cost = np.full((query.shape[1], self.frames.shape[1]), np.inf)
            for s in np.unique(shifts):
                cols = np.isin(self.owner, np.flatnonzero(shifts == s))
                cost[:, cols] = 1 - np.roll(query, s, axis=0).T @ self.frames[:, cols]
            acc, moves = librosa.sequence.dtw(C=cost, subseq=True, step_sizes_sigma=steps, backtrack=False,
                                              return_steps=True)
            for i, (a, b) in enumerate(self.bounds):
                end = a + int(np.argmin(acc[-1, a:b]))
                if not np.isfinite(acc[-1, end]):
                    continue                       # the entry is too short for this query
                path = librosa.sequence.dtw_backtracking(moves, step_sizes_sigma=steps, subseq=True, start=end)
                c = float(acc[-1, end]) / len(path)
                if c < best[i]["cost"]:
                    shift = (-int(shifts[i])) % N_CHROMA
                    best[i].update(cost=c, shift=shift - N_CHROMA if shift > N_CHROMA // 2 else shift,
                                   start=(path[-1][1] - a) / FEATURE_RATE, end=(end - a + 1) / FEATURE_RATE)
        return sorted(best, key=lambda m: m["cost"])


def decide(ranking, min_margin=IDENTIFY_MIN_MARGIN):
    """(answer name or None, margin): the best entry, unless the second-best piece comes too close."""
    if not ranking or not np.isfinite(ranking[0]["cost"]):
        return None, 0.0
    second = ranking[1]["cost"] if len(ranking) > 1 else np.inf
    margin = 1.0 - ranking[0]["cost"] / second if second > 0 else 0.0
    return (ranking[0]["name"] if margin >= min_margin else None), float(margin)


# ----------------------------------------------------------------------------- distractors

def work_keys(*names):
    """Lower-case names a work goes by: the names, without a performer id (ASAP's _Shi05M), and its
    catalogue number (BWV 846 -> bach_bwv846), so a distractor is never another take of a reference."""
    from music_corpus import CATALOGUE_GROUPS, PERFORMER_SUFFIX
    keys = set()
    for name in names:
        keys |= {name.lower(), re.sub(PERFORMER_SUFFIX, "", name).lower()}
        for pattern, fmt in CATALOGUE_GROUPS:
            m = re.search(pattern, name, flags=re.IGNORECASE)
            if m:
                keys.add(fmt.format(m.group(1)).lower())
    return keys


def distractor_candidates(avoid, extra_midi=()):
    """music_corpus Pieces that may join the library, in order: `extra_midi` performances, music21's solo
    pieces, Bach chorales; one per work, none sharing a work key with the names in `avoid`."""
    from music_corpus import chorale_pieces, midi_piece, solo_pieces
    taken = set().union(*(work_keys(n) for n in avoid)) if avoid else set()
    out = []
    for piece in [midi_piece(p) for p in extra_midi] + solo_pieces() + chorale_pieces():
        keys = work_keys(piece.name, piece.group, Path(piece.source).stem)
        if not keys & taken:
            out.append(piece)
            taken |= keys
    return out


def _fingerprint(piece, seed):
    """What a cached entry was made from: the piece, its seed and, for a file, its bytes."""
    digest = hashlib.sha1(Path(piece.source).read_bytes()).hexdigest() if piece.kind == "performance" else ""
    return f"{piece.kind}:{piece.source}:{seed}:{digest}"


def feature_config(synth):
    """Everything cached features depend on besides the piece; a cache made otherwise is rebuilt."""
    return json.dumps(dict(version=CACHE_VERSION, synthesizer=synth.description, sample_rate=SAMPLE_RATE,
                           hop=IDENTIFY_CHROMA_HOP, smooth=IDENTIFY_CENS_SMOOTH, step=IDENTIFY_CENS_STEP,
                           silence_db=IDENTIFY_SILENCE_DB, flat=IDENTIFY_FLAT_COSINE), sort_keys=True)


@dataclass
class LibraryCache:
    """Distractor features in an npz: {fingerprint: (name, features)}; `load` then `save` keeps it current."""
    path: Path | None
    config: str
    items: dict = field(default_factory=dict)
    changed: bool = False

    def load(self):
        if self.path is None or not Path(self.path).exists():
            return self
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if str(z["config"]) != self.config:
                    self.changed = True            # other synthesizer or settings: start afresh
                    return self
                cuts = np.cumsum(z["lengths"])[:-1]
                for fp, name, feats in zip(z["fingerprints"], z["names"], np.split(z["features"], cuts, axis=1)):
                    self.items[str(fp)] = (str(name), feats)
        except Exception as e:   # numpy/zipfile raise many types for a damaged file
            raise AudeoError(f"{self.path}: not a readable library cache ({type(e).__name__}: {e}); "
                             "delete it to rebuild") from None
        return self

    def get(self, fingerprint):
        return self.items.get(fingerprint)

    def put(self, fingerprint, name, feats):
        self.items[fingerprint] = (name, feats)
        self.changed = True

    def save(self):
        if self.path is None or not self.changed:
            return
        fps = list(self.items)
        feats = [self.items[f][1] for f in fps]
        save_npz(self.path, config=np.array(self.config), fingerprints=np.array(fps, dtype=str),
                 names=np.array([self.items[f][0] for f in fps], dtype=str),
                 lengths=np.array([f.shape[1] for f in feats], np.int64),
                 features=np.concatenate(feats, axis=1) if feats else np.zeros((N_CHROMA, 0), np.float32))


def play(piece, synth, seed=IDENTIFY_SEED):
    """A music_corpus piece's rendering; None for a score music21 cannot read (the user's own MIDI file fails)."""
    from music_corpus import performance
    try:
        return render(performance(piece, seed), synth)
    except AudeoError:
        if piece.kind == "performance":
            raise
        return None


def distractor_entries(candidates, count, synth, cache, seed=IDENTIFY_SEED, min_frames=0):
    """The first `count` candidates that play and last at least `min_frames` feature frames, as distractor
    Entries (from `cache` where it has them); returns (entries, the candidates not looked at, number
    rendered now)."""
    entries, rendered, i = [], 0, 0
    while len(entries) < count and i < len(candidates):
        piece, i = candidates[i], i + 1
        fp = _fingerprint(piece, seed)
        if cache.get(fp) is None:
            audio = play(piece, synth, seed)
            if audio is None:
                continue
            cache.put(fp, piece.name, features(audio))
            rendered += 1
        feats = cache.get(fp)[1]
        if feats.shape[1] >= min_frames:
            entries.append(Entry(piece.name, feats))
    if len(entries) < count:
        raise AudeoError(f"only {len(entries)} distractor pieces available, {count} asked for")
    return entries, candidates[i:], rendered


# ----------------------------------------------------------------------------- one query, one table

@dataclass(frozen=True)
class Settings:
    """How a run cuts, matches and decides (the script's DEFAULTS)."""
    excerpt_seconds: float = IDENTIFY_EXCERPT_SECONDS
    excerpts: int = IDENTIFY_EXCERPTS
    distractors: int = IDENTIFY_DISTRACTORS
    outside: int = IDENTIFY_OUTSIDE
    noise_excerpts: int = IDENTIFY_NOISE_EXCERPTS
    shifts: int = IDENTIFY_SHIFTS
    min_margin: float = IDENTIFY_MIN_MARGIN
    seed: int = IDENTIFY_SEED


def by_piece(ranking, piece):
    """`ranking` with only each piece's best entry, as {piece, ...}: another entry of the same music is no rival."""
    seen, out = set(), []
    for m in ranking:
        if piece[m["name"]] not in seen:
            seen.add(piece[m["name"]])
            out.append(dict(piece=piece[m["name"]], **m))
    return out


def identify(audio, source, library, truth, condition, settings=Settings(), cut=None):
    """One record per excerpt of `audio` (or of the given `cut` [(start, excerpt)]) looked up in `library`:
    its top IDENTIFY_TOP_K pieces, the rank of `truth`'s piece (None for one outside the library), the answer
    (a piece; None: rejected), the margin and the fraction of the excerpt's frames that carry chroma (below
    IDENTIFY_MIN_CHROMA: nothing to identify, rejected)."""
    s, records = settings, []
    piece = library.piece.get(truth)
    for start, clip in cut if cut is not None else excerpts(audio, source, s.excerpt_seconds, s.excerpts):
        t0 = time.perf_counter()
        query = features(clip)
        ranking = by_piece(library.rank(query, s.shifts), library.piece)
        answer, margin = decide(ranking, s.min_margin)
        chroma = float(query.any(axis=0).mean())
        order = [m["piece"] for m in ranking]
        top = [{k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()} for m in ranking[:IDENTIFY_TOP_K]]
        records.append(dict(condition=condition, query=str(source), reference=truth, truth=piece,
                            start=round(float(start), 3), rank=order.index(piece) + 1 if piece in order else None,
                            answer=library.piece[answer] if answer and chroma >= IDENTIFY_MIN_CHROMA else None,
                            margin=round(margin, 4), chroma=round(chroma, 3), top=top,
                            seconds=round(time.perf_counter() - t0, 3)))
    return records


def _heard(pairs, condition, settings):
    """[(condition, path, reference name, audio)] of (audio path, reference name) pairs, each long enough."""
    out = []
    for path, name in pairs:
        audio = read_audio(path)
        excerpt_starts(len(audio) / SAMPLE_RATE, path, settings.excerpt_seconds, settings.excerpts)
        out.append((condition, str(path), name, audio))
    return out


def _outside(candidates, settings, synth):
    """[("outside", name, None, audio)] of the first settings.outside candidates that play long enough."""
    out = []
    for piece in candidates:
        if len(out) == settings.outside:
            break
        audio = play(piece, synth, settings.seed)
        if audio is not None and len(audio) >= settings.excerpt_seconds * SAMPLE_RATE:
            out.append(("outside", piece.name, None, audio))
    return out


def _run(jobs, library, settings, progress):
    """The records of (condition, source, truth, audio) jobs; audio None: white-noise excerpts."""
    from tqdm import tqdm
    s, records = settings, []
    for condition, source, truth, audio in tqdm(jobs, desc=jobs[0][0] if jobs else "", unit="query",
                                                disable=not progress or len(jobs) < 2):
        cut = noise_excerpts(s.noise_excerpts, s.excerpt_seconds, s.seed) if audio is None else None
        records += identify(audio, source, library, truth, condition, s, cut)
    return records


def duplicates(own_records, names):
    """{name: reference} of the `names` (library entries) that match at least half of another reference's
    own-rendering excerpts at a cost of at most IDENTIFY_DUPLICATE_COST: the same music under another name."""
    found = {}
    for ref in dict.fromkeys(r["reference"] for r in own_records):
        mine = [r for r in own_records if r["reference"] == ref]
        hits = [m["name"] for r in mine for m in r["top"]
                if m["name"] in names and m["name"] != ref and m["cost"] <= IDENTIFY_DUPLICATE_COST]
        found.update({name: ref for name in set(hits) if 2 * hits.count(name) >= len(mine)})
    return found


def piece_groups(same):
    """{reference: piece} from {reference: another with the same music}: each group named by its first name."""
    piece = {}
    for a, b in same.items():
        pa, pb = piece.get(a, a), piece.get(b, b)
        low, high = sorted((pa, pb))
        piece = {k: low if v == high else v for k, v in piece.items()}
        piece[a] = piece[b] = low
    return piece


def evaluate(references, queries=(), real=(), settings=Settings(), distractor_midi=(), cache_path=None, synth=None,
             progress=False):
    """The identification test. `references` {name: MIDI path} are rendered into the library beside
    settings.distractors distractors; `queries` (generated audio) and `real` (recordings) are
    [(audio path, reference name)]; each reference's own rendering, settings.outside pieces left out of
    the library and white noise are queried too. Every input is read and checked before the cache is
    written. Returns {settings, synthesizer, library, summary (see `summarise`), excerpts, timing}."""
    from audeo_synth import find_synthesizer
    t0, s = time.perf_counter(), settings
    synth = synth or find_synthesizer()
    midis = {name: reference_midi(path) for name, path in references.items()}
    heard = _heard(queries, "generated", s) + _heard(real, "real audio", s)
    candidates = distractor_candidates(list(references), distractor_midi)
    cache = LibraryCache(cache_path, feature_config(synth)).load()
    renderings = {}
    for name, pm in midis.items():
        renderings[name] = render(pm, synth)
        excerpt_starts(len(renderings[name]) / SAMPLE_RATE, f"{references[name]} (its rendering)",
                       s.excerpt_seconds, s.excerpts)
    entries = [Entry(n, features(a)) for n, a in renderings.items()]
    min_frames = int(s.excerpt_seconds * FEATURE_RATE)
    distractors, unused, rendered_now = distractor_entries(candidates, s.distractors, synth, cache, s.seed, min_frames)
    own = [("reference rendering", f"{references[n]} (rendered)", n, a) for n, a in renderings.items()]
    library, left_out, groups = Library(entries + distractors), {}, {}
    while True:
        own_records = _run(own, library, s, progress)
        same = duplicates(own_records, {e.name for e in distractors})     # replaced by other distractors
        groups = groups or piece_groups(duplicates(own_records, set(references)))   # one piece, several takes
        if not same and library.piece == {**library.piece, **groups}:
            break
        left_out.update(same)
        more, unused, n = distractor_entries(unused, len(same), synth, cache, s.seed, min_frames)
        distractors = [e for e in distractors if e.name not in same] + more
        library, rendered_now = Library(entries + distractors, groups), rendered_now + n
    cache.save()
    noise = [("outside", "white noise", None, None)] if s.noise_excerpts else []
    records = _run(heard, library, s, progress) + own_records
    records += _run(_outside(unused, s, synth) + noise, library, s, progress)
    return dict(settings=dataclasses.asdict(s), synthesizer=synth.description,
                library=dict(pieces=len(library.entries), hours=library.frames.shape[1] / FEATURE_RATE / 3600,
                             references={n: str(p) for n, p in references.items()},
                             distractors=[e.name for e in distractors], left_out=left_out, same_piece=groups,
                             rendered_now=rendered_now,
                             cache=None if cache_path is None else str(cache_path)),
                summary=summarise(records), excerpts=records,
                timing=_timing(records, time.perf_counter() - t0))


def _timing(records, total):
    """{library_seconds (rendering, features, the same-music checks), identify_seconds}."""
    identify_seconds = sum(r["seconds"] for r in records)
    return dict(library_seconds=round(total - identify_seconds, 1), identify_seconds=round(identify_seconds, 1))


def summarise(records):
    """{condition: {queries, excerpts, top1, top5, identified, rejected, seconds_per_excerpt}}. `identified`:
    the right piece, and accepted (what an app that answers counts); for the outside condition only
    `rejected` matters (the right outcome)."""
    out, mean = {}, lambda xs: float(np.mean(xs))
    for condition in CONDITIONS:
        rows = [r for r in records if r["condition"] == condition]
        if not rows:
            continue
        summary = dict(queries=len({r["query"] for r in rows}), excerpts=len(rows),
                       rejected=mean([r["answer"] is None for r in rows]),
                       seconds_per_excerpt=mean([r["seconds"] for r in rows]))
        if condition != "outside":
            summary.update(top1=mean([r["rank"] == 1 for r in rows]),
                           top5=mean([r["rank"] is not None and r["rank"] <= IDENTIFY_TOP_K for r in rows]),
                           identified=mean([r["answer"] == r["truth"] for r in rows]))
        out[condition] = summary
    return out


TABLE_COLUMNS = ["condition", "queries", "excerpts", "top1", "top5", "identified", "rejected"]


def table(summary):
    """The summary as a text table, one row per condition."""
    from audeo_metrics import format_table
    return format_table([dict(condition=c, **s) for c, s in summary.items()], TABLE_COLUMNS)
