"""Roll2Midi samples: 4 s windows of Video2Roll probabilities paired with the reference MIDI roll.

In:  ESTIMATES/estimate_Roll/<split>/<video>/<s>-<e>.npz  key `logit` (frames, 88), written by
                                                        Video2Roll_inference.py (--out ESTIMATES)
     ROOT/midi/<split>/<video>/<s>-<e>.npz               key `midi` (frames, 88), sustain-extended
Out: (x, y, (video index, start)) with x float32 (1, n_keys, 100) = sigmoid(logit) and y float32
     (1, n_keys, 100) in {0, 1} = reference > 0; `start` is the window's first frame counted from the
     video's first segment (add `dataset.first_frames[video]` for the absolute frame number).

Fixes of the original (../shared/reference/audeo_original.md sections 5 and 9):
- windows are cut per video and never span two videos;
- frames past a video's end are padded with probability 0 and target 0 (the original padded logits
  with 0, i.e. probability 0.5);
- evaluation windows are non-overlapping and the last, possibly short, window is kept (the original
  dropped an odd last segment); training windows overlap by default (stride one segment, as the
  original's consecutive segment pairs).
A column whose logit is exactly 0 in every frame of a video was not predicted (a 51-key Video2Roll
model writes 0 outside its keys): its probability is 0, not sigmoid(0) = 0.5.
n_keys = 88 uses every key, 51 the paper's keys (88-key columns 15..65).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from audeo_constants import MIDI_DIR, N_KEYS, ROLL2MIDI_FRAMES, SEGMENT_FRAMES
from audeo_io import AudeoError, estimate_folder, estimate_probs, key_slice, list_estimate_videos, read_segments


def reference_folder(root, split):
    """ROOT/midi/<split>: the reference segment folders."""
    return Path(root) / MIDI_DIR / split


ESTIMATE_CHANNELS = ("logit", "onset_logit")      # Roll2Midi input channel c is the sigmoid of this key


def load_estimate(folder, n_keys=N_KEYS, channels=1):
    """(first frame, probabilities float32) of one video's estimate segments: (T, n_keys) for one
    channel (frame probabilities), (T, n_keys, 2) for two (and the onset probabilities)."""
    parts = []
    for key in ESTIMATE_CHANNELS[:channels]:
        first, logit = read_segments(folder, key)
        if logit.shape[1] != N_KEYS:
            raise AudeoError(f"{folder}: estimates have {logit.shape[1]} keys, expected {N_KEYS}")
        parts.append(estimate_probs(logit)[:, key_slice(n_keys)])
    return first, parts[0] if channels == 1 else np.stack(parts, axis=2)


def load_reference(folder, n_keys=N_KEYS):
    """(first frame, binary roll (T, n_keys) uint8) of one video's reference MIDI segments."""
    first, midi = read_segments(folder, "midi")
    if midi.shape[1] != N_KEYS:
        raise AudeoError(f"{folder}: reference MIDI has {midi.shape[1]} keys, expected {N_KEYS}")
    return first, (midi[:, key_slice(n_keys)] > 0).astype(np.uint8)


def load_pair(estimates, root, split, video, n_keys=N_KEYS, channels=1):
    """(first frame, probabilities (T, K) or (T, K, channels), reference (T, K)) of one video; frame
    ranges must agree."""
    est, ref = estimate_folder(estimates, split) / video, reference_folder(root, split) / video
    first, probs = load_estimate(est, n_keys, channels)
    ref_first, target = load_reference(ref, n_keys)
    if (first, len(probs)) != (ref_first, len(target)):
        raise AudeoError(f"{est}: estimates cover frames {first}..{first + len(probs) - 1} ({len(probs)} frames) "
                         f"but the reference {ref} covers {ref_first}..{ref_first + len(target) - 1} "
                         f"({len(target)} frames)")
    return first, probs, target


def window_starts(n_frames, stride, frames=ROLL2MIDI_FRAMES):
    """First frames of the windows of one video: every `stride` frames, the last window reaching the end.

    Windows cover every frame; only the last may run past the end (it is zero-padded). A video
    shorter than a window gives one padded window; an empty video gives none.
    """
    if not 1 <= stride <= frames:
        raise AudeoError(f"window stride {stride}: must be between 1 and the window length {frames}")
    if n_frames <= 0:
        return []
    starts = list(range(0, max(n_frames - frames, 0) + 1, stride))
    if starts[-1] + frames < n_frames:
        starts.append(starts[-1] + stride)
    return starts


def cut_window(array, start, frames=ROLL2MIDI_FRAMES):
    """Frames start..start+frames-1 of a (T, K) array, zero-padded past the end -> (frames, K)."""
    part = array[start:start + frames]
    if len(part) == frames:
        return part
    out = np.zeros((frames,) + array.shape[1:], dtype=array.dtype)
    out[:len(part)] = part
    return out


def to_model_input(windows):
    """(B, frames, K) or (B, frames, K, C) numpy windows -> (B, C, K, frames) float32 tensor, the
    networks' layout (C = 1 for the first form)."""
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim == 3:
        w = w[..., None]
    return torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 2, 1)))


class Roll2MidiDataset(Dataset):
    """Windows of every video of one split. stride=None: non-overlapping windows (evaluation)."""

    def __init__(self, estimates, root, split, n_keys=N_KEYS, stride=SEGMENT_FRAMES, videos=None,
                 frames=ROLL2MIDI_FRAMES, channels=1):
        self.split, self.n_keys, self.frames = split, n_keys, frames
        self.stride = frames if stride is None else stride
        key_slice(n_keys)                                   # 88 or 51, else a one-line error
        self.videos = list_estimate_videos(estimates, split, videos)
        self.first_frames, self.probs, self.targets = [], [], []
        for v in self.videos:
            first, probs, target = load_pair(estimates, root, split, v, n_keys, channels)
            self.first_frames.append(first)
            self.probs.append(probs)
            self.targets.append(target)
        self.index = np.array([(v, s) for v, p in enumerate(self.probs)
                               for s in window_starts(len(p), self.stride, frames)], np.int64).reshape(-1, 2)

    def __len__(self):
        return len(self.index)

    def set_epoch(self, epoch):
        """Nothing here changes with the epoch (no augmentation); the training loop tells every dataset."""

    def positive_fraction(self):
        """The fraction of on cells in the targets (frames x keys), over all videos."""
        return sum(float((t > 0).sum()) for t in self.targets) / max(sum(t.size for t in self.targets), 1)

    def valid_frames(self, i):
        """How many frames of window i are real (the rest is padding)."""
        v, s = self.index[i]
        return int(min(self.frames, len(self.probs[v]) - s))

    def __getitem__(self, i):
        v, s = self.index[i]
        x = cut_window(self.probs[v], s, self.frames)
        y = cut_window(self.targets[v], s, self.frames)
        return to_model_input(x[None])[0], to_model_input(y[None])[0], torch.tensor([v, s])
