"""Video2Roll samples: 5 stacked grayscale keyboard crops (frames t-2..t+2) and the 88-key label of t.

In:  one or several dataset roots in the original layout, one split:
       frames/<split>/<video>.npy             uint8 (T, 100, 900) frame store (fast), or
       input_images/<split>/<video>/frame<N>.jpg   the original's frame images (read once, then kept);
       labels/<split>/<video>.pkl             {frame: 88-vector} (read with a restricted unpickler).
Out: (x, y, (video index, frame)) with x float32 (5, 100, 900) in [0, 1] and y float32 (n_keys,) in {0, 1}.

Unlike the original, the first and last two frames of a video are kept, with the edge frame repeated
(as the original's inference did), so training, evaluation and inference see the same samples.
`MultilabelBalancedSampler` is the original's balanced sampler (a bucket per key plus one of silent
frames, a uniform bucket then a uniform sample), without its crash on empty buckets.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from audeo_constants import (CROP_HEIGHT, CROP_WIDTH, FRAME_STORE_DIR, FRAMES_DIR, KEYDOWN_LABELS_DIR, LABELS_DIR,
                             N_KEYS, REFERENCE_DIR, STACK_RADIUS)
from audeo_io import AudeoError, atomic_path, key_slice, load_labels, select_videos

DEFAULT_DRAWS_PER_EPOCH = 20000     # the original's balanced sampler: 20,000 draws per epoch


@dataclass
class Augment:
    """Photometric and geometric jitter applied identically to every frame of a sample.

    A sample is a run of frames, optionally followed by `n_ref` reference-keyboard images that get the
    same geometry, blur and global gain, but not the frames' exposure drift or noise (a real camera's
    auto-exposure changes the frames after the reference was taken)."""
    brightness: float = 0.15       # multiply by 1 +/- this
    contrast: float = 0.2          # scale around the mean by 1 +/- this
    blur_prob: float = 0.3         # Gaussian blur with sigma up to blur_sigma
    blur_sigma: float = 1.2
    shift_x: float = 0.015         # fraction of the width (an imperfect crop box)
    shift_y: float = 0.06          # fraction of the height
    scale_x: float = 0.015         # horizontal stretch 1 +/- this (corners found a few pixels off)
    noise: float = 0.02            # Gaussian pixel noise (0..1 scale), added with noise_prob
    noise_prob: float = 0.3
    drift_prob: float = 0.3        # with this probability the frames' exposure ramps linearly ...
    drift: float = 0.12            # ... to 1 +/- this over the sample, the references' does not

    def __call__(self, x, rng, n_ref=0):
        """x: uint8 (N, H, W) -> float32 (N, H, W) in [0, 1]; the last n_ref images are references."""
        n, h, w = x.shape
        dx = rng.uniform(-self.shift_x, self.shift_x) * w
        dy = rng.uniform(-self.shift_y, self.shift_y) * h
        sx = 1 + rng.uniform(-self.scale_x, self.scale_x)
        x = _affine(x, sx, dx, dy)
        if rng.random() < self.blur_prob:
            sigma = rng.uniform(0.3, self.blur_sigma)
            x = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in x])
        y = x.astype(np.float32)
        gain = (1 + rng.uniform(-self.contrast, self.contrast)) / 255
        offset = y.mean() * (1 / 255 - gain)           # contrast around the mean, then brightness
        y = (y * gain + offset) * (1 + rng.uniform(-self.brightness, self.brightness))
        frames = y[:n - n_ref]
        if rng.random() < self.drift_prob:
            ramp = np.linspace(1, 1 + rng.uniform(-self.drift, self.drift), len(frames), dtype=np.float32)
            frames *= ramp[:, None, None]
        if rng.random() < self.noise_prob:
            frames += rng.standard_normal(frames.shape, dtype=np.float32) * (self.noise * rng.random())
        return np.clip(y, 0, 1, out=y)


def _affine(x, scale_x, dx, dy):
    """Stretch frames horizontally about the centre and shift them (pixels), repeating the edges."""
    if scale_x == 1 and abs(dx) < 0.5 and abs(dy) < 0.5:
        return x
    w = x.shape[2]
    m = np.float32([[scale_x, 0, (1 - scale_x) * (w - 1) / 2 + dx], [0, 1, dy]])
    return np.stack([cv2.warpAffine(f, m, (w, f.shape[0]), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE) for f in x])


def stack_indices(t, n_frames):
    """Frames t-2..t+2, clipped to the video (edge frames repeated)."""
    return np.clip(np.arange(t - STACK_RADIUS, t + STACK_RADIUS + 1), 0, n_frames - 1)


def list_videos(root, split):
    """Video names of a split, from the frame store or the original's frame folders."""
    root = Path(root)
    store = root / FRAME_STORE_DIR / split
    if store.is_dir() and any(store.glob("*.npy")):
        return sorted(p.stem for p in store.glob("*.npy"))
    images = root / FRAMES_DIR / split
    if images.is_dir():
        return sorted(p.name for p in images.iterdir() if p.is_dir())
    raise AudeoError(f"{root}: no frames for split '{split}' (expected {store} or {images})")


def dataset_videos(root, split, videos=None):
    """list_videos of a split, only `videos` if given (each must be there)."""
    return select_videos(list_videos(root, split), videos, f"{root} ({split})")


def first_label_frame(root, split, video):
    """Frame number of a video's first label (the original's frame numbering), 0 without labels."""
    path = Path(root) / LABELS_DIR / split / f"{video}.pkl"
    return int(load_labels(path)[0][0]) if path.is_file() else 0


def load_frames(root, split, video):
    """uint8 (T, 100, 900) crops of a video: memory-mapped frame store, or the jpgs read once."""
    root = Path(root)
    store = root / FRAME_STORE_DIR / split / f"{video}.npy"
    if store.is_file():
        try:
            frames = np.load(store, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise AudeoError(f"{store}: unreadable frame store ({e})") from None
    else:
        frames = _read_jpgs(root / FRAMES_DIR / split / video)
    if frames.ndim != 3 or frames.shape[1:] != (CROP_HEIGHT, CROP_WIDTH):
        raise AudeoError(f"{store}: frames have shape {frames.shape}, expected (T, {CROP_HEIGHT}, {CROP_WIDTH})")
    return frames


def _read_jpgs(folder):
    files = sorted(folder.glob("frame*.jpg"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    if not files:
        raise AudeoError(f"{folder}: no frame<N>.jpg images")
    out = np.empty((len(files), CROP_HEIGHT, CROP_WIDTH), np.uint8)
    for i, f in enumerate(files):
        img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise AudeoError(f"{f}: cannot be decoded as an image")
        out[i] = cv2.resize(img, (CROP_WIDTH, CROP_HEIGHT), interpolation=cv2.INTER_AREA) \
            if img.shape != (CROP_HEIGHT, CROP_WIDTH) else img
    return out


def load_references(root, split, video, frames):
    """uint8 (T, H, W) reference keyboards of a video's crops (audeo_video.keyboard_references), and the
    frames with a hand over the keys (T,) bool; computed once and cached as REFERENCE_DIR/<split>/<video>.npy
    (and <video>.hands.npy) beside the frame store."""
    from audeo_video import keyboard_references
    folder = Path(root) / REFERENCE_DIR / split
    refs_path, hands_path = folder / f"{video}.npy", folder / f"{video}.hands.npy"
    if refs_path.is_file() and hands_path.is_file():
        refs = np.load(refs_path, mmap_mode="r")
        if refs.shape == frames.shape:
            return refs, np.load(hands_path)
    refs, hands = keyboard_references(np.asarray(frames))
    with atomic_path(refs_path) as tmp:
        np.save(tmp, refs)
    with atomic_path(hands_path) as tmp:
        np.save(tmp, hands)
    return np.load(refs_path, mmap_mode="r"), hands


def note_targets(roll):
    """(3, T, K) float32 targets of a key-down roll (T, K): frame (down), onset (first frame of a
    press) and offset (last frame of a press)."""
    down = np.asarray(roll) > 0
    before = np.vstack([np.zeros_like(down[:1]), down[:-1]])
    after = np.vstack([down[1:], np.zeros_like(down[:1])])
    return np.stack([down, down & ~before, down & ~after]).astype(np.float32)


class Video2RollDataset(Dataset):
    """All frames of all videos of one split, from one dataset root or several (e.g. rendered + real).

    `videos` restricts a single root to those videos. `repeat` (one int per root) lists a root's videos
    that many times, to weigh a small real set against a large rendered one.
    """

    def __init__(self, roots, split, n_keys=N_KEYS, label_dir=LABELS_DIR, augment=None, videos=None, seed=0,
                 repeat=None):
        roots = [Path(r) for r in ([roots] if isinstance(roots, (str, Path)) else roots)]
        self.split, self.augment, self.seed = split, augment, seed
        self.keys = key_slice(n_keys)
        self.videos, self.frames, self.labels = [], [], []
        for root, times in zip(roots, repeat or [1] * len(roots)):
            names = list(videos) if videos is not None else list_videos(root, split)
            for v in names:
                frames = load_frames(root, split, v)
                label_path = root / label_dir / split / f"{v}.pkl"
                _, roll = load_labels(label_path)
                if len(roll) != len(frames):
                    raise AudeoError(f"{label_path}: {len(roll)} labelled frames but {len(frames)} video frames")
                for _ in range(times):
                    self.videos.append(v)
                    self.frames.append(frames)
                    self.labels.append(roll)
        self.index = np.array([(v, t) for v, f in enumerate(self.frames) for t in range(len(f))], np.int64)
        self.epoch = 0

    def __len__(self):
        return len(self.index)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def stack(self, v, t):
        """uint8 (5, H, W) frames t-2..t+2 of video v."""
        frames = self.frames[v]
        return np.asarray(frames[stack_indices(t, len(frames))])

    def __getitem__(self, i):
        v, t = self.index[i]
        x = self.stack(v, t)
        if self.augment is not None:   # a per-(epoch, sample) stream: same on resume and on any worker
            x = self.augment(x, np.random.default_rng([self.seed, self.epoch, int(i)]))
        else:
            x = x.astype(np.float32) / 255
        y = self.labels[v][t, self.keys].astype(np.float32)
        return torch.from_numpy(x), torch.from_numpy(y), torch.tensor([v, t])

    def label_matrix(self):
        """(N, n_keys) labels of all samples, in index order."""
        return np.concatenate([r[:, self.keys] for r in self.labels])


class SequenceDataset(Dataset):
    """Runs of `length` frames for a sequence model (a Video2Roll config with temporal layers).

    Item i is the run starting at frame `starts[i]` of its video: x float32 (length + 4, H, W), the
    crops of frames start-2 .. start+length+1 (edge frames repeated); ref float32 (length, H, W), the
    reference keyboards (zeros when `reference` is off); y float32 (3, length, n_keys): frame, onset
    and offset targets (note_targets of the key-down labels). Videos shorter than `length` are left out.
    Augmentation is seeded by (seed, epoch, item), so it is the same on resume and on any worker.
    """

    def __init__(self, roots, split, length, n_keys=N_KEYS, label_dir=KEYDOWN_LABELS_DIR, augment=None,
                 reference=True, seed=0, repeat=None, videos=None):
        roots = [Path(r) for r in ([roots] if isinstance(roots, (str, Path)) else roots)]
        self.length, self.augment, self.reference, self.seed, self.epoch = length, augment, reference, seed, 0
        self.keys = key_slice(n_keys)
        self.videos, self.frames, self.refs, self.targets, self.hands = [], [], [], [], []
        for root, times in zip(roots, repeat or [1] * len(roots)):
            for v in (list(videos) if videos is not None else list_videos(root, split)):
                frames = load_frames(root, split, v)
                label_path = root / label_dir / split / f"{v}.pkl"
                _, roll = load_labels(label_path)
                if len(roll) != len(frames):
                    raise AudeoError(f"{label_path}: {len(roll)} labelled frames but {len(frames)} video frames")
                if len(frames) < length:
                    continue
                refs, hands = load_references(root, split, v, frames) if reference else (None, None)
                targets = note_targets(roll[:, self.keys])
                for _ in range(times):
                    self.videos.append(v)
                    self.frames.append(frames)
                    self.refs.append(refs)
                    self.hands.append(hands)
                    self.targets.append(targets)
        self.index = np.array([(v, t) for v, f in enumerate(self.frames) for t in range(len(f) - length + 1)],
                              np.int64).reshape(-1, 2)

    def __len__(self):
        return len(self.index)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, i):
        v, start = self.index[i]
        frames = self.frames[v]
        ids = np.clip(np.arange(start - STACK_RADIUS, start + self.length + STACK_RADIUS), 0, len(frames) - 1)
        parts = [np.asarray(frames[ids])]
        if self.reference:
            parts.append(np.asarray(self.refs[v][start:start + self.length]))
        raw = np.concatenate(parts)
        n_ref = len(raw) - len(ids)
        if self.augment is not None:
            x = self.augment(raw, np.random.default_rng([self.seed, self.epoch, int(i)]), n_ref=n_ref)
        else:
            x = raw.astype(np.float32) / 255
        ref = x[len(ids):] if self.reference else np.zeros((self.length,) + x.shape[1:], np.float32)
        y = self.targets[v][:, start:start + self.length]
        return torch.from_numpy(x[:len(ids)]), torch.from_numpy(np.ascontiguousarray(ref)), torch.from_numpy(y)


class _DrawSampler(Sampler):
    """`draws` samples an epoch, deterministic in (seed, epoch, rank); each of `world_size` ranks draws its share."""

    def __init__(self, draws, seed=0, rank=0, world_size=1):
        self.draws, self.seed, self.rank, self.world = draws, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.draws // self.world


class WindowSampler(_DrawSampler):
    """`draws` items a epoch drawn uniformly with replacement; deterministic in (seed, epoch, rank)."""

    def __init__(self, n_items, draws, seed=0, rank=0, world_size=1):
        super().__init__(draws, seed, rank, world_size)
        self.n = n_items

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, 1])
        return iter(rng.integers(self.n, size=len(self)).tolist())


class MultilabelBalancedSampler(_DrawSampler):
    """The original's balanced sampler: each draw picks a key bucket (or the silent bucket) uniformly,
    then a sample uniformly from it. Empty buckets are skipped (the original crashed on them).

    Deterministic in (seed, epoch); with `rank`/`world_size` each process draws its own share.
    """

    def __init__(self, labels, draws=DEFAULT_DRAWS_PER_EPOCH, seed=0, rank=0, world_size=1):
        labels = np.asarray(labels) > 0
        buckets = [np.flatnonzero(labels[:, k]) for k in range(labels.shape[1])]
        buckets.append(np.flatnonzero(~labels.any(1)))
        self.buckets = [b for b in buckets if len(b)]
        super().__init__(draws, seed, rank, world_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, self.rank])
        picks = rng.integers(len(self.buckets), size=len(self))
        return iter(int(self.buckets[b][rng.integers(len(self.buckets[b]))]) for b in picks)
