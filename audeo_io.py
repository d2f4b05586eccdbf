"""The original Audeo file formats, MIDI <-> 25 fps piano rolls, checkpoints, and atomic file output.

Formats (see ../shared/reference/audeo_original.md section 2):
  label pkl        <root>/labels/<split>/<video>.pkl: dict {frame number: 88-vector}, read by the
                   original with np.load(..., allow_pickle=True); here with a restricted unpickler.
  midi npz         <root>/midi/<split>/<video>/<start>-<end>.npz, key `midi`, (<=50, 88), end exclusive.
  estimate npz     <root>/estimate_Roll/<split>/<video>/<start>-<end>.npz, keys `logit`, `roll` (50, 88).
  Roll2Midi npz    <root>/Roll2Midi_results/<split>/<video>/<start>-<end>.npz, key `midi` (50, 51 or 88).

Rolls are (frames, keys) arrays; frame t covers [t/fps, (t+1)/fps); key 0 is MIDI 21 (A0). A roll
has 88 keys or the paper's 51 (MIDI 36..86 = 88-key columns 15..65): `key_slice`, `to_88_keys` and
`to_paper_keys` are the one place that maps between them.
"""
from __future__ import annotations

import contextlib
import errno
import importlib
import io
import os
import pickle
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from audeo_constants import (DEFAULT_VELOCITY, ESTIMATE_DIR, FPS, FRAME_STORE_DIR, KEYDOWN_LABELS_DIR, LABELS_DIR,
                             MIDI_DIR, MIDI_HIGH, MIDI_LOW, MIDI_RESOLUTION, MIDI_TEMPO, N_KEYS, PAPER_MIN_KEY,
                             PAPER_N_KEYS, PEDAL_DOWN, PERFORMANCE_DIR, SEGMENT_FRAMES, SUSTAIN_CC, TICK_SECONDS)


_UMASK = os.umask(0)
os.umask(_UMASK)


class AudeoError(Exception):
    """A problem with the user's input: scripts print it as one line and exit non-zero."""


# --------------------------------------------------------------------------- atomic output

_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO,
                 errno.ENOTDIR}


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same extension); it replaces `path` only on success.
    A failed write (disk full, file size limit, no permission) is a one-line AudeoError naming `path`."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)        # mkstemp makes 0600 files; outputs get the usual mode
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.errno not in _WRITE_ERRNOS:
            raise
        raise AudeoError(f"{path}: cannot be written ({e.strerror or e})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary directory that becomes `path` only if the block succeeds.

    A failure removes the temporary directory, so no half-written output folder is left; an
    existing `path` is replaced only after the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def check_writable(folder):
    """Create `folder` if needed; a one-line error when it cannot be written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise AudeoError(f"{folder}: output folder is not writable ({e.strerror or e})") from None


def save_npz(path, **arrays):
    """np.savez, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


# --------------------------------------------------------------------------- checkpoints

def save_checkpoint(path, **state):
    """torch.save of a dict of tensors, numbers, strings and lists, atomically (temp file + rename)."""
    import torch
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def read_torch_file(path):
    """torch.load(weights_only=True) of `path` on the CPU, or a one-line error if missing or unreadable."""
    import warnings
    import torch
    path = Path(path)
    if not path.is_file():
        raise AudeoError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():          # a garbage file makes torch warn before it fails
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # torch raises many types for truncated/garbage files
        raise AudeoError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def half_state(state):
    """fp16 copy of a state dict (floating tensors only): the shipped checkpoints' weights."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def float_state(state):
    """fp32 copy of a state dict (floating tensors only), e.g. of a shipped fp16 checkpoint."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


# --------------------------------------------------------------------------- safe pickles

# Everything a label pickle may legitimately contain: dicts, lists, numbers and numpy arrays.
_SAFE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "int"),
    ("builtins", "float"), ("builtins", "bytearray"), ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (only numpy arrays, dicts "
                                     "and numbers are allowed)")


def restricted_load_pickle(path):
    """Unpickle `path` allowing only plain data; code in a hostile pickle never runs."""
    path = Path(path)
    if not path.is_file():
        raise AudeoError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f).load()
    except pickle.UnpicklingError as e:
        raise AudeoError(f"{path}: unsafe or corrupt pickle: {e}") from None
    except (EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as e:
        raise AudeoError(f"{path}: not a readable label pickle ({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------------- labels (pkl)

def save_labels(path, roll, first_frame=0):
    """Write a (T, 88) roll as the original's label pickle {frame number: 88-vector}."""
    roll = check_roll(roll, path, n_keys=N_KEYS)
    labels = {first_frame + t: roll[t].astype(np.float32) for t in range(len(roll))}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(labels, f, protocol=2)


def load_labels(path):
    """Read a label pickle safely -> (frame numbers (T,), binary roll (T, 88) uint8), sorted by frame."""
    labels = restricted_load_pickle(path)
    if not isinstance(labels, dict) or not labels:
        raise AudeoError(f"{path}: expected a non-empty dict {{frame: 88-vector}}, got {type(labels).__name__}")
    frames = np.array(sorted(labels), dtype=np.int64)
    try:
        roll = np.stack([np.asarray(labels[f], dtype=np.float32).reshape(-1) for f in frames])
    except ValueError as e:
        raise AudeoError(f"{path}: label vectors differ in length ({e})") from None
    return frames, check_roll(roll > 0, path, n_keys=N_KEYS).astype(np.uint8)


# --------------------------------------------------------------------------- segments (npz)

_SEGMENT_RE = re.compile(r"^(\d+)-(\d+)\.npz$")


def segment_name(start, end):
    return f"{start}-{end}.npz"


def list_segments(folder):
    """Sorted [(start, end, path)] of the `<start>-<end>.npz` files in `folder` (numeric order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudeoError(f"{folder}: segment folder not found")
    found = []
    for p in folder.iterdir():
        m = _SEGMENT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), p))
    if not found:
        raise AudeoError(f"{folder}: no <start>-<end>.npz segments")
    return sorted(found)


def write_segments(folder, first_frame=0, segment_frames=SEGMENT_FRAMES, **arrays):
    """Cut equal-length (T, K) arrays into `<start>-<end>.npz` files of `segment_frames` frames.

    The last segment keeps its true (shorter) length; readers zero-pad it as the original did.
    """
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"arrays of different lengths: {lengths}")
    total = lengths.pop()
    for s in range(0, total, segment_frames):
        e = min(s + segment_frames, total)
        save_npz(Path(folder) / segment_name(first_frame + s, first_frame + e),
                 **{k: a[s:e] for k, a in arrays.items()})


def read_segments(folder, key):
    """Concatenate array `key` of all segments in `folder` -> (first frame, (T, K) array).

    Segments must tie up end to end; a gap or overlap is an error naming the file.
    """
    segments = list_segments(folder)
    parts, expected = [], segments[0][0]
    for start, end, path in segments:
        if start != expected:
            raise AudeoError(f"{path}: segment starts at frame {start}, expected {expected}")
        try:
            with np.load(path) as z:
                a = z[key]
        except KeyError:
            raise AudeoError(f"{path}: no array '{key}' in segment") from None
        except (OSError, ValueError) as e:
            raise AudeoError(f"{path}: unreadable npz ({e})") from None
        keys = parts[0].shape[1] if parts else a.shape[-1]
        if a.ndim != 2 or len(a) > end - start or a.shape[1] != keys or keys not in (N_KEYS, PAPER_N_KEYS):
            raise AudeoError(f"{path}: '{key}' has shape {a.shape}, expected (<= {end - start}, "
                             f"{keys if parts else f'{N_KEYS} or {PAPER_N_KEYS}'})")
        if a.dtype.kind not in "biuf":
            raise AudeoError(f"{path}: '{key}' has dtype {a.dtype}, expected numbers")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise AudeoError(f"{path}: '{key}' holds NaN or infinite values")
        parts.append(pad_frames(a, end - start))
        expected = end
    return segments[0][0], np.concatenate(parts)


def sigmoid(x):
    """1 / (1 + exp(-x)) of a numpy array (logits -> probabilities), in the array's own float type."""
    return 1 / (1 + np.exp(-x))


def estimate_probs(logit):
    """sigmoid of an estimate_Roll `logit` array as float32; a column that is exactly 0 in every frame
    was not predicted (outside a 51-key model's range) and gets probability 0, not 0.5."""
    logit = np.asarray(logit, dtype=np.float32)
    probs = sigmoid(logit)
    if len(logit):
        probs[:, ~logit.any(axis=0)] = 0.0
    return probs


def estimate_folder(estimates, split):
    """ESTIMATES/estimate_Roll/<split>: the video folders Video2Roll_inference.py wrote."""
    return Path(estimates) / ESTIMATE_DIR / split


def list_estimate_videos(estimates, split, videos=None):
    """Sorted video names with estimates in a split (only `videos`, if given; each must exist)."""
    folder = estimate_folder(estimates, split)
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if folder.is_dir() else []
    if not names:
        raise AudeoError(f"{folder}: no Video2Roll estimate folders (run Video2Roll_inference.py --out {estimates})")
    return select_videos(names, videos, folder)


def select_videos(names, wanted, where):
    """`names` restricted to `wanted` (all of them when it is empty), each of which must be there."""
    if not wanted:
        return list(names)
    missing = sorted(set(wanted) - set(names))
    if missing:
        raise AudeoError(f"{where}: no video {missing[0]!r}")
    return [n for n in names if n in wanted]


def pad_frames(a, n):
    """Zero-pad (or keep) a (T, K) array to n frames."""
    if len(a) >= n:
        return a[:n]
    return np.concatenate([a, np.zeros((n - len(a),) + a.shape[1:], dtype=a.dtype)])


# --------------------------------------------------------------------------- key ranges

def check_roll(roll, source, n_keys=None):
    """A (T, K) array or a one-line error naming `source`."""
    roll = np.asarray(roll)
    if roll.ndim != 2 or (n_keys is not None and roll.shape[1] != n_keys):
        want = f"(frames, {n_keys})" if n_keys else "(frames, keys)"
        raise AudeoError(f"{source}: roll has shape {roll.shape}, expected {want}")
    return roll


def key_slice(n_keys):
    """The 88-key columns a roll (or a model's output) with `n_keys` keys covers: all 88, or the paper's 51."""
    if n_keys == N_KEYS:
        return slice(0, N_KEYS)
    if n_keys == PAPER_N_KEYS:
        return slice(PAPER_MIN_KEY, PAPER_MIN_KEY + PAPER_N_KEYS)
    raise AudeoError(f"n_keys={n_keys}: only {N_KEYS} or {PAPER_N_KEYS} (the paper's range) are supported")


def to_paper_keys(roll88):
    """(..., 88) -> (..., 51): the paper's keys, MIDI 36..86."""
    return roll88[..., key_slice(PAPER_N_KEYS)]


def to_88_keys(values, source="roll", fill=0):
    """(..., 51) or (..., 88) array -> (..., 88): 51 paper keys placed at their 88-key columns, the
    other columns `fill` (the original wrote 0 there in both `logit` and `roll` of its estimates)."""
    values = np.asarray(values)
    if values.ndim < 2:
        check_roll(values, source)
    if values.shape[-1] == N_KEYS:
        return values
    if values.shape[-1] != PAPER_N_KEYS:
        raise AudeoError(f"{source}: roll has {values.shape[-1]} keys, expected {N_KEYS} or {PAPER_N_KEYS}")
    full = np.full(values.shape[:-1] + (N_KEYS,), fill, dtype=values.dtype)
    full[..., key_slice(PAPER_N_KEYS)] = values
    return full


# --------------------------------------------------------------------------- MIDI

def quiet_import(module):
    """`import module`, dropping anything it prints. pyfluidsynth (which pretty_midi and basic-pitch import)
    prints where it found libfluidsynth to stdout whenever $CI is set, which would corrupt the output of
    scripts whose stdout is their result (Video_align.py), or the one-line errors if sent to stderr."""
    if module in sys.modules:
        return sys.modules[module]
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module(module)


def load_midi(path):
    """pretty_midi.PrettyMIDI of `path`, or a one-line error."""
    pretty_midi = quiet_import("pretty_midi")
    path = Path(path)
    if not path.is_file():
        raise AudeoError(f"{path}: MIDI file not found")
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # mido/pretty_midi raise many types for garbage input
        raise AudeoError(f"{path}: not a readable MIDI file ({type(e).__name__}: {e})") from None


def shift_pitch(pm, semitones, source):
    """Every note moved by `semitones` (e.g. +12 for MIDI stored an octave low); must stay on 88 keys."""
    if not semitones:
        return pm
    for inst in pm.instruments:
        for n in inst.notes:
            n.pitch += semitones
    outside = [n.pitch for i in pm.instruments for n in i.notes if not MIDI_LOW <= n.pitch <= MIDI_HIGH]
    if outside:
        raise AudeoError(f"{source}: --pitch-shift {semitones} puts notes outside the 88 keys (MIDI {outside[0]})")
    return pm


def reference_roll(path, offset, n_frames, pitch_shift=0):
    """A reference MIDI file as a sustain-extended 88-key roll on a video's 25 fps frames (`offset`: the
    video time of MIDI time 0; `pitch_shift`: semitones added, see shift_pitch)."""
    pm = shift_pitch(load_midi(path), pitch_shift, path)
    return midi_to_roll(regrid(pm, shift=offset), sustain=True, n_frames=n_frames)


def pedal_intervals(control_changes, end_time):
    """[(down, up)] seconds of sustain-pedal presses from an instrument's control changes."""
    intervals, down = [], None
    for cc in sorted((c for c in control_changes if c.number == SUSTAIN_CC), key=lambda c: c.time):
        if cc.value >= PEDAL_DOWN and down is None:
            down = cc.time
        elif cc.value < PEDAL_DOWN and down is not None:
            intervals.append((down, cc.time))
            down = None
    if down is not None:
        intervals.append((down, max(end_time, down)))
    return intervals


def sustained_notes(notes, pedal):
    """Notes released under the pedal ring on until it lifts, or until their key is struck again.

    `notes` is a list of (pitch, start, end, velocity); returns a new list sorted by start.
    """
    by_pitch = {}
    for n in sorted(notes, key=lambda n: (n[1], n[0])):
        by_pitch.setdefault(n[0], []).append(n)
    out = []
    for pitch, same in by_pitch.items():
        for i, (_, start, end, vel) in enumerate(same):
            for down, up in pedal:
                if down <= end < up:
                    end = up
                    break
            if i + 1 < len(same) and same[i + 1][1] > start:
                end = min(end, same[i + 1][1])
            out.append((pitch, start, max(end, start), vel))
    return sorted(out, key=lambda n: (n[1], n[0]))


def midi_notes(pm, sustain=True):
    """All non-drum notes of a PrettyMIDI as (pitch, start, end, velocity), optionally pedal-extended."""
    notes = []
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        own = [(n.pitch, n.start, n.end, n.velocity) for n in inst.notes]
        if sustain:
            last = max((n[2] for n in own), default=0.0)
            own = sustained_notes(own, pedal_intervals(inst.control_changes, last))
        notes.extend(own)
    return sorted(notes, key=lambda n: (n[1], n[0]))


def time_to_frame(seconds, fps=FPS):
    """Nearest frame, halves rounded up; the epsilon keeps float noise from a file's ticks off the tie."""
    return int(np.floor(seconds * fps + 0.5 + 1e-6))


def notes_to_roll(notes, n_frames=None, fps=FPS):
    """(pitch, start, end, velocity) notes -> binary (T, 88) uint8 roll at `fps`.

    A note covers frames time_to_frame(start) .. time_to_frame(end)-1, at least one frame. When the same key
    is struck again before the previous note's last frame ends, the previous note is cut one frame
    early so the re-strike stays visible as two notes (the original merged them into one).
    """
    spans = {}
    for pitch, start, end, _ in notes:
        key = pitch - MIDI_LOW
        if not 0 <= key < N_KEYS:
            continue
        f0 = time_to_frame(start, fps)
        spans.setdefault(key, []).append([f0, max(time_to_frame(end, fps), f0 + 1)])
    total = max((s[1] for v in spans.values() for s in v), default=0)
    n_frames = total if n_frames is None else n_frames
    roll = np.zeros((n_frames, N_KEYS), dtype=np.uint8)
    for key, key_spans in spans.items():
        key_spans.sort()
        for (f0, f1), nxt in zip(key_spans, key_spans[1:] + [None]):
            if nxt is not None and f1 >= nxt[0]:
                f1 = max(f0 + 1, nxt[0] - 1)
            roll[f0:f1, key] = 1
    return roll


def midi_to_roll(pm, sustain=True, n_frames=None, fps=FPS):
    """PrettyMIDI -> binary (T, 88) roll at `fps`, with or without the sustain-pedal extension."""
    return notes_to_roll(midi_notes(pm, sustain=sustain), n_frames=n_frames, fps=fps)


def roll_to_notes(roll, fps=FPS, velocity=DEFAULT_VELOCITY):
    """Binary (T, 88) roll -> [(pitch, start, end, velocity)], one note per run of on-frames.

    A note that is still on at the last frame ends at T/fps.
    """
    roll = to_88_keys(np.asarray(roll))
    notes = []
    for key in range(roll.shape[1]):                 # a key at a time: memory of one column, for any length
        edges = np.diff(np.concatenate(([0], (roll[:, key] > 0).astype(np.int8), [0])))
        onsets = np.flatnonzero(edges == 1)
        offsets = np.flatnonzero(edges == -1)
        notes += [(MIDI_LOW + key, on / fps, off / fps, velocity) for on, off in zip(onsets, offsets)]
    return sorted(notes, key=lambda n: (n[1], n[0]))


def decode_roll(frame_probs, onset_probs, frame_threshold, onset_threshold, min_orphan=None):
    """Onsets-and-frames decoding: (T, K) frame and onset probabilities -> binary (T, K) roll.

    A note starts where the onset output peaks (a local maximum >= onset_threshold) and lasts while
    the frame output stays >= frame_threshold (at least one frame); a new onset of the same key ends
    the note before it one frame early, so a re-strike stays two notes (as notes_to_roll does). A
    run of frames >= frame_threshold with no onset in it (the onset was missed) is kept as a note
    when it is at least `min_orphan` frames long (None: never).
    """
    frame_on = np.asarray(frame_probs) >= frame_threshold
    onset = np.asarray(onset_probs, dtype=np.float32)
    before = np.vstack([np.full_like(onset[:1], -1), onset[:-1]])
    after = np.vstack([onset[1:], np.full_like(onset[:1], -1)])
    peaks = (onset >= onset_threshold) & (onset >= before) & (onset > after)
    n, keys = frame_on.shape
    roll = np.zeros((n, keys), np.uint8)
    index = np.arange(n)
    for k in range(keys):
        starts = np.flatnonzero(peaks[:, k])
        if len(starts):
            # first frame at or after i whose frame output is off (n when none)
            off = np.where(frame_on[:, k], n, index)
            next_off = np.minimum.accumulate(off[::-1])[::-1]
            for s, nxt in zip(starts, list(starts[1:]) + [n + 1]):
                end = next_off[s + 1] if s + 1 < n else n
                if end >= nxt:                           # struck again while held: leave a gap
                    end = max(s + 1, nxt - 1)
                roll[s:min(end, n), k] = 1
        if min_orphan is not None:
            runs = np.diff(np.r_[0, frame_on[:, k].astype(np.int8), 0])
            for a, b in zip(np.flatnonzero(runs == 1), np.flatnonzero(runs == -1)):
                if b - a >= min_orphan and not roll[a:b, k].any():
                    roll[a:b, k] = 1
    return roll


def on_tick_grid(seconds):
    """`seconds` rounded to the written files' tick (0.5 ms), so writing and reading changes nothing."""
    return round(float(seconds) / TICK_SECONDS) * TICK_SECONDS


def new_pretty_midi():
    """An empty PrettyMIDI whose ticks fall on every frame boundary (see MIDI_TEMPO)."""
    pretty_midi = quiet_import("pretty_midi")
    return pretty_midi.PrettyMIDI(resolution=MIDI_RESOLUTION, initial_tempo=MIDI_TEMPO)


def notes_to_pretty_midi(notes, program=0, pedal=()):
    """(pitch, start, end, velocity) notes (+ optional (down, up) pedal spans) -> PrettyMIDI piano."""
    pretty_midi = quiet_import("pretty_midi")
    pm = new_pretty_midi()
    inst = pretty_midi.Instrument(program=program, name="Piano")
    for pitch, start, end, vel in notes:
        inst.notes.append(pretty_midi.Note(velocity=int(np.clip(vel, 1, 127)), pitch=int(pitch),
                                           start=on_tick_grid(start), end=on_tick_grid(end)))
    for down, up in pedal:
        inst.control_changes += [pretty_midi.ControlChange(SUSTAIN_CC, 127, on_tick_grid(down)),
                                 pretty_midi.ControlChange(SUSTAIN_CC, 0, on_tick_grid(up))]
    pm.instruments.append(inst)
    return pm


def regrid(pm, shift=0.0):
    """A copy of `pm` moved by `shift` seconds with every time on the tick grid (events before 0 clamp to 0)."""
    pretty_midi = quiet_import("pretty_midi")
    out = new_pretty_midi()
    for inst in pm.instruments:
        new = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum, name=inst.name)
        new.notes = [pretty_midi.Note(n.velocity, n.pitch, on_tick_grid(max(0.0, n.start + shift)),
                                      on_tick_grid(max(0.0, n.end + shift))) for n in inst.notes]
        new.control_changes = [pretty_midi.ControlChange(c.number, c.value, on_tick_grid(max(0.0, c.time + shift)))
                               for c in inst.control_changes]
        out.instruments.append(new)
    return out


def write_midi(pm, path):
    """Write a PrettyMIDI atomically."""
    with atomic_path(path) as tmp:
        pm.write(tmp)



# --------------------------------------------------------------------------- dataset layout

def write_dataset_video(root, split, name, crops, performance=None):
    """Write one video into a dataset root: its frame store and, given its performance MIDI (times
    on the video's frames), labels/, labels_keydown/, midi/ segments and performances/.

    Each file or folder appears only when complete. Returns the (sustain, keydown) label rolls.
    """
    root = Path(root)
    with atomic_path(root / FRAME_STORE_DIR / split / f"{name}.npy") as tmp:
        np.save(tmp, crops)
    if performance is None:
        return None
    sustain = midi_to_roll(performance, sustain=True, n_frames=len(crops))
    keydown = midi_to_roll(performance, sustain=False, n_frames=len(crops))
    save_labels(root / LABELS_DIR / split / f"{name}.pkl", sustain)
    save_labels(root / KEYDOWN_LABELS_DIR / split / f"{name}.pkl", keydown)
    with atomic_dir(root / MIDI_DIR / split / name) as tmp:
        write_segments(tmp, midi=sustain)
    write_midi(performance, root / PERFORMANCE_DIR / split / f"{name}.mid")
    return sustain, keydown
