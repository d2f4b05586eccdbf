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

from audeo_constants import (CROP_HEIGHT, CROP_WIDTH, FRAME_STORE_DIR, FRAMES_DIR, LABELS_DIR, N_KEYS,
                             PAPER_MIN_KEY, PAPER_N_KEYS, STACK_RADIUS)
from audeo_io import AudeoError, load_labels

DEFAULT_DRAWS_PER_EPOCH = 20000     # the original's balanced sampler: 20,000 draws per epoch


@dataclass
class Augment:
    """Photometric and geometric jitter applied identically to the 5 frames of a sample."""
    brightness: float = 0.15       # multiply by 1 +/- this
    contrast: float = 0.2          # scale around the mean by 1 +/- this
    blur_prob: float = 0.3         # Gaussian blur with sigma up to blur_sigma
    blur_sigma: float = 1.2
    shift_x: float = 0.015         # fraction of the width (an imperfect crop box)
    shift_y: float = 0.06          # fraction of the height
    noise: float = 0.02            # Gaussian pixel noise (0..1 scale), added with noise_prob

    noise_prob: float = 0.3

    def __call__(self, x, rng):
        """x: uint8 (5, H, W) -> float32 (5, H, W) in [0, 1]."""
        _, h, w = x.shape
        dx = int(round(rng.uniform(-self.shift_x, self.shift_x) * w))
        dy = int(round(rng.uniform(-self.shift_y, self.shift_y) * h))
        x = _shift(x, dy, dx)
        if rng.random() < self.blur_prob:
            sigma = rng.uniform(0.3, self.blur_sigma)
            x = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in x])
        y = x.astype(np.float32)
        gain = (1 + rng.uniform(-self.contrast, self.contrast)) / 255
        offset = y.mean() * (1 / 255 - gain)           # contrast around the mean, then brightness
        y = (y * gain + offset) * (1 + rng.uniform(-self.brightness, self.brightness))
        if rng.random() < self.noise_prob:
            y += rng.standard_normal(y.shape, dtype=np.float32) * (self.noise * rng.random())
        return np.clip(y, 0, 1, out=y)


def _shift(x, dy, dx):
    """Shift frames by whole pixels, repeating the edge rows/columns (as a slightly wrong crop box)."""
    if dy == 0 and dx == 0:
        return x
    pad = ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)))
    padded = np.pad(x, pad, mode="edge")
    h, w = x.shape[1:]
    y0, x0 = max(-dy, 0), max(-dx, 0)
    return padded[:, y0:y0 + h, x0:x0 + w]


def key_slice(n_keys):
    """Columns of the 88-key roll a model with `n_keys` outputs predicts."""
    if n_keys == N_KEYS:
        return slice(0, N_KEYS)
    if n_keys == PAPER_N_KEYS:
        return slice(PAPER_MIN_KEY, PAPER_MIN_KEY + PAPER_N_KEYS)
    raise AudeoError(f"n_keys={n_keys}: only {N_KEYS} or {PAPER_N_KEYS} (the paper's range) are supported")


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


class MultilabelBalancedSampler(Sampler):
    """The original's balanced sampler: each draw picks a key bucket (or the silent bucket) uniformly,
    then a sample uniformly from it. Empty buckets are skipped (the original crashed on them).

    Deterministic in (seed, epoch); with `rank`/`world_size` each process draws its own share.
    """

    def __init__(self, labels, draws=DEFAULT_DRAWS_PER_EPOCH, seed=0, rank=0, world_size=1):
        labels = np.asarray(labels) > 0
        buckets = [np.flatnonzero(labels[:, k]) for k in range(labels.shape[1])]
        buckets.append(np.flatnonzero(~labels.any(1)))
        self.buckets = [b for b in buckets if len(b)]
        self.draws, self.seed, self.rank, self.world = draws, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.draws // self.world

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, self.rank])
        picks = rng.integers(len(self.buckets), size=len(self))
        return iter(int(self.buckets[b][rng.integers(len(self.buckets[b]))]) for b in picks)
