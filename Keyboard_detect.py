"""Find the piano keyboard in a top-down video or photo: its crop box and which side the camera is on.

In:  a video OpenCV can read (any size, frame rate, camera side) or a still image (png/jpg/...).
Out: stdout  `x1 y1 x2 y2 far|player`: the axis-aligned box around the keys in frame pixels (from the
             back end of the keys to the front edge of the white keys, leftmost to rightmost key,
             clipped to the frame; x2/y2 exclusive, the convention of Piano_render's box.txt and of
             audeo_video.crop_keyboard) and the camera side (`far`: the camera is beyond the keyboard,
             the image turned 180 degrees: treble on the left, the player and the white keys' front
             edge at the top; crop with far_side=True)
     --json  the same plus angle, score, the key area's four corners and the black keys counted
     --debug a PNG of the (median) frame with the detection drawn on it

How (classical, no learning, ~0.1-0.3 s per image on one core): hands move and keys do not, so a video
is first reduced to the per-pixel temporal median of frames sampled across it. Black keys are dark,
elongated blobs between brighter white keys: a horizontal morphological closing gives the local white
level, pixels well below it are black-key candidates, and connected components with a key-like shape
are kept. A RANSAC line through their centroids finds the row of black keys (-> the rotation); the row
must show the keyboard's signature - gaps between neighbouring black keys of two sizes (within a group
of two or three, and across E-F / B-C, about 1.5 times larger; a linear scale change along the row
allows for perspective) and black keys about half as wide as the small gap - which rejects the hammer
rows of an open upright, key overlays, comb-like textures and noise. In the image resampled along that
row, profiles perpendicular to it give the white-key band: the side of the black keys where bright,
finely lined white continues is the FRONT (the player's side) and fixes the orientation; where the
white ends in front, behind (or where the black keys start) and beyond the outermost black keys gives
the key area's edges, each fitted robustly along the keyboard (hands, reflections), or the frame edge.

Pale pianos, whose cheeks and key slip are nearly as white as the keys, have no dark edge to find: there
the front edge is where the thin lines between white keys stop, and the ends come from the 88-key layout
when all 36 black keys are in view (else from a change of tone). This is the weak spot: 2 of 80 random
Piano_render scenes (both with a white body) came out more than 1% off; the side is right in all of them.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from audeo_cli import run
from audeo_io import AudeoError, atomic_path

# ----------------------------------------------------------------------------- defaults
DEFAULTS = dict(
    n_samples=25,            # frames sampled across a video for the temporal median
    work_width=960,          # images wider than this are analysed at this width (boxes in full pixels)
    closing_frac=1 / 16,     # horizontal closing length, fraction of the working width
    min_contrast=30,         # grey levels a black key must lie below the local white level (at least)
    contrast_frac=0.3,       # ... and at least this fraction of the image's strong (99th pct) contrast
    max_angle=30.0,          # degrees: the keyboard row may be tilted this much from horizontal
    min_black_keys=8,        # fewer black keys in the best row -> "no keyboard"
    ransac_iters=1500,
    seed=0,
)
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

# Keyboard proportions in white-key widths. Black-key centres within a group of two or three are about
# 7/6 white keys apart, across E-F and B-C about 7/4; a black key is about 0.58 white keys wide.
SMALL_GAP = 7 / 6
BLACK_LENGTH_TO_KEY = 95 / 150       # black key length / white key length (real piano: 95 / 150 mm)
MAX_KEY_TO_BLACK = 2.1               # white keys measured 1.5-1.6 black lengths long: look no further
MAX_END_OVERHANG = 2.4               # white keys beyond the outermost black key: at most ~1.9 keys (C8)
_FAR = 1e9                           # knots of the straight lines kept as (knots, values) for np.interp


def _black_keys_88():
    """Centres (white-key widths from A0's left edge) of the 36 black keys of an 88-key piano, bass first
    (the same layout as Piano_render's: the 12 keys of an octave equally spaced at the back)."""
    centres = []
    for pitch in range(21, 109):
        if pitch % 12 in (1, 3, 6, 8, 10):
            centres.append(7 * (pitch // 12) - 12 + (pitch % 12 + 0.5) * 7 / 12)
    return np.array(centres)


BLACK_88 = _black_keys_88()
GAPS_88 = np.diff(BLACK_88) > 1.4                     # True where a large gap (E-F or B-C) lies between
END_88 = (BLACK_88[0], 52 - BLACK_88[-1])             # white keys from the outer black keys to the ends


@dataclass
class Detection:
    """Where the keyboard is. Pixel coordinates of the full frame; box x2/y2 exclusive."""
    box: tuple                  # (x1, y1, x2, y2) around the keys, clipped to the frame
    far_side: bool              # camera beyond the keyboard: player / white keys' front edge at the top
    angle_deg: float            # tilt of the black-key row from the image x axis (positive: clockwise)
    score: float                # 0..1 confidence (gap pattern x side contrast x key contrast x key count)
    corners: list = field(default_factory=list)   # key-area corners [x, y], unclipped: back-left,
    #                             back-right, front-right, front-left (left/right as seen in the image)
    n_black_keys: int = 0       # black keys found in the row
    white_key_px: float = 0.0   # width of one white key in the middle of the keyboard, frame pixels
    frame_size: tuple = (0, 0)  # (width, height)
    source: str = ""

    def as_dict(self):
        d = asdict(self)
        d["box"], d["frame_size"] = list(self.box), list(self.frame_size)
        return d


# ----------------------------------------------------------------------------- input frames

def to_gray(frame):
    """BGR / BGRA / gray frame -> gray uint8."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[..., 0]
    if frame.ndim != 2:
        raise AudeoError(f"expected an image (H x W or H x W x 3), got an array of shape {frame.shape}")
    return frame


def median_frame(frames, source="frames"):
    """Per-pixel temporal median of same-size frames -> gray uint8 (moving hands disappear)."""
    grays = [to_gray(f) for f in frames]
    if len(grays) == 1:
        return grays[0]
    shapes = {g.shape for g in grays}
    if len(shapes) != 1:
        raise AudeoError(f"{source}: frames differ in size: {sorted(shapes)}")
    return np.median(np.stack(grays), axis=0).astype(np.uint8)


def sample_video_frames(path, n_samples=DEFAULTS["n_samples"]):
    """About `n_samples` BGR frames spread evenly across a video (seeking; sequential reading if that fails)."""
    from audeo_video import iter_frames, video_info
    info = video_info(path)
    n = max(1, int(n_samples))
    frames = []
    if info.n_frames > 0:
        cap = cv2.VideoCapture(str(path))
        try:
            # stay clear of the very end: the container's frame count is sometimes a little high
            for i in np.unique(np.linspace(0, max(info.n_frames - 3, 0), n).round().astype(int)):
                cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
                ok, frame = cap.read()
                if ok:
                    frames.append(frame)
        finally:
            cap.release()
    if len(frames) < max(1, n // 2):     # seeking failed: read the whole video once, keep every k-th
        every = max(1, info.n_frames // n) if info.n_frames > 0 else 10
        frames = [f for i, f in enumerate(iter_frames(path)) if i % every == 0][:n]
    if not frames:
        raise AudeoError(f"{path}: no decodable frames")
    return frames


# ----------------------------------------------------------------------------- black keys

@dataclass
class _Blobs:
    cx: np.ndarray       # centroid (working pixels)
    cy: np.ndarray
    length: np.ndarray   # along the blob's major axis
    width: np.ndarray
    axis: np.ndarray     # unit major axis (2, n), pointing down
    labels: np.ndarray   # label image
    ids: np.ndarray      # label id of each blob


def black_key_candidates(gray, p=DEFAULTS):
    """Dark, elongated, roughly vertical blobs well below the local white level (working image)."""
    h, w = gray.shape
    size = max(5, int(round(w * p["closing_frac"])) | 1)
    g = cv2.GaussianBlur(gray, (3, 3), 0)
    se = cv2.getStructuringElement(cv2.MORPH_RECT, (size, 1))
    white = cv2.morphologyEx(g, cv2.MORPH_CLOSE, se)      # bright on both sides within `size`
    dark = cv2.erode(g, se)
    depth = white.astype(np.int16) - g
    thr = max(p["min_contrast"], p["contrast_frac"] * np.percentile(depth, 99))
    mask = ((depth > thr) & (2 * g.astype(np.int16) < white.astype(np.int16) + dark)).astype(np.uint8)
    # thin horizontal bridges (shadowed key backs) would join neighbouring keys: open vertically
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 3)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    ok = (stats[:, cv2.CC_STAT_AREA] >= 6) & (stats[:, cv2.CC_STAT_HEIGHT] >= 5)
    ok[0] = False
    if not ok.any():
        return _Blobs(*(np.zeros(0) for _ in range(4)), np.zeros((2, 0)), labels, np.zeros(0, int))
    # second moments of every component at once
    lab = labels.ravel()
    sel = ok[lab]
    ys, xs = np.divmod(np.flatnonzero(sel), w)
    lab_s, xs, ys = lab[sel], xs.astype(float), ys.astype(float)
    cnt = np.maximum(np.bincount(lab_s, minlength=n), 1).astype(float)
    mx, my = np.bincount(lab_s, xs, n) / cnt, np.bincount(lab_s, ys, n) / cnt
    sxx = np.bincount(lab_s, xs * xs, n) / cnt - mx ** 2
    syy = np.bincount(lab_s, ys * ys, n) / cnt - my ** 2
    sxy = np.bincount(lab_s, xs * ys, n) / cnt - mx * my
    tr, det = sxx + syy, sxx * syy - sxy ** 2
    disc = np.sqrt(np.maximum(tr ** 2 / 4 - det, 0))
    l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 0)
    length, width = np.sqrt(12 * l1), np.sqrt(12 * l2 + 1)   # +1: a one-pixel-wide line is 1 px wide
    ax, ay = sxy, l1 - sxx                                    # major axis
    flat = np.hypot(ax, ay) < 1e-9
    ax[flat], ay[flat] = 0.0, 1.0
    norm = np.hypot(ax, ay)
    ax, ay = ax / norm * np.sign(ay + 1e-12), np.abs(ay / norm)
    fill = cnt / np.maximum(length * width, 1)
    tilt = np.degrees(np.arccos(np.clip(ay, -1, 1)))
    keep = ok & (length >= 2.5 * width) & (width >= 1.5) & (fill > 0.55) & (fill < 1.4) & (tilt <= 40)
    ids = np.flatnonzero(keep)
    return _Blobs(mx[ids], my[ids], length[ids], width[ids], np.stack([ax[ids], ay[ids]]), labels, ids)


def _blob_pixels(blobs, m):
    """(rows, cols) of blob m, looking only inside its neighbourhood."""
    r = int(blobs.length[m]) + 3
    x0, y0 = max(0, int(blobs.cx[m]) - r), max(0, int(blobs.cy[m]) - r)
    sub = blobs.labels[y0:int(blobs.cy[m]) + r + 1, x0:int(blobs.cx[m]) + r + 1]
    yy, xx = np.nonzero(sub == blobs.ids[m])
    return yy + y0, xx + x0


# ----------------------------------------------------------------------------- the row of black keys

def _classify_gaps(r):
    small = (r > 0.8) & (r < 1.22)
    large = (r > 1.3) & (r < 1.9)
    missing = (r >= 1.9) & (r < 3.6)      # a key hidden by a hand leaves a gap of about 2..3.5 small
    return small, large, missing


def _gap_pattern(u, width):
    """How well sorted positions `u` look like black keys: (quality 0..1, the small gap as a linear function
    of u (np.polyval coefficients: perspective makes one end larger), details)."""
    u = np.asarray(u, float)
    gaps = np.diff(u)
    mids = (u[1:] + u[:-1]) / 2
    if len(gaps) < 4:
        return 0.0, None, {}
    best = (0.0, None, {})
    for s0 in np.unique(np.round(gaps[gaps > 0], 1)):     # try each gap as the small one
        coef = np.array([0.0, s0])
        for _ in range(3):                                 # classify, refit the scale along u, repeat
            small, large, _ = _classify_gaps(gaps / np.polyval(coef, mids))
            if small.sum() < 3 or large.sum() < 1:
                break
            unit = np.where(small, gaps, gaps / 1.5)
            sel = small | large
            new = np.array([0.0, np.median(unit[sel])])
            if np.ptp(mids[sel]) > 0 and sel.sum() >= 6:
                fit = np.polyfit(mids[sel], unit[sel], 1)
                ends = np.polyval(fit, [mids[0], mids[-1]])
                if ends.min() > 0 and ends.max() / ends.min() <= 2:   # perspective: at most a factor 2
                    new = fit
            coef = new
        r = gaps / np.polyval(coef, mids)
        small, large, missing = _classify_gaps(r)
        n_s, n_l, n_m = int(small.sum()), int(large.sum()), int(missing.sum())
        if n_s < 3 or n_l < 1:
            continue
        explained = (n_s + n_l + 0.5 * n_m) / len(gaps)
        balance = float(np.clip(1 - abs(n_l / (n_s + n_l) - 0.4) / 0.3, 0, 1))   # 3 small : 2 large
        wr = float(np.median(np.asarray(width) / np.polyval(coef, u)))          # black width / small gap
        q = explained * balance * (0.5 + 0.5 * float(np.clip(1 - abs(wr - 0.5) / 0.35, 0, 1)))
        if q > best[0]:
            best = (q, coef, dict(n_small=n_s, n_large=n_l, n_missing=n_m, width_ratio=round(wr, 3),
                                  ratio=round(float(np.median(r[large]) / np.median(r[small])), 3)))
    return best


def find_key_rows(blobs, p=DEFAULTS, n_best=4):
    """RANSAC lines through blob centroids: the best few distinct rows of similar blobs (index arrays)."""
    n = len(blobs.cx)
    if n < p["min_black_keys"]:
        return []
    rng = np.random.default_rng(p["seed"])
    pts = np.stack([blobs.cx, blobs.cy], 1)
    i = rng.integers(0, n, p["ransac_iters"])
    j = rng.integers(0, n, p["ransac_iters"])
    same = (i != j) & (np.abs(np.log(blobs.length[i] / blobs.length[j])) < 0.4) & \
           (np.abs(np.log(blobs.width[i] / blobs.width[j])) < 0.5)
    d = pts[j] - pts[i]
    ang = (np.degrees(np.arctan2(d[:, 1], d[:, 0])) + 90) % 180 - 90
    same &= np.abs(ang) <= p["max_angle"]
    i, j, d = i[same], j[same], d[same]
    if len(i) == 0:
        return []
    dirs = d / np.linalg.norm(d, axis=1, keepdims=True)
    normals = np.stack([-dirs[:, 1], dirs[:, 0]], 1)
    dist = np.abs(np.einsum("kd,knd->kn", normals, pts[None, :, :] - pts[i][:, None, :]))
    ref_len = (blobs.length[i] + blobs.length[j]) / 2
    ref_w = (blobs.width[i] + blobs.width[j]) / 2
    inl = (dist < 0.2 * ref_len[:, None]) & \
          (np.abs(np.log(blobs.length[None, :] / ref_len[:, None])) < 0.3) & \
          (np.abs(np.log(blobs.width[None, :] / ref_w[:, None])) < 0.6)
    counts = inl.sum(1)
    rows, used = [], []
    for k in np.argsort(-counts)[:200]:
        if counts[k] < p["min_black_keys"]:
            break
        members = np.flatnonzero(inl[k])
        if any(len(np.intersect1d(members, u)) > 0.5 * len(members) for u in used):
            continue
        used.append(members)
        members = _refine_row(blobs, members)
        if len(members) >= p["min_black_keys"]:
            rows.append(members)
        if len(rows) >= n_best:
            break
    return rows


def _refine_row(blobs, members):
    """Least-squares line through the members, then re-select similar blobs near it (twice)."""
    pts = np.stack([blobs.cx, blobs.cy], 1)
    for _ in range(2):
        a, b = np.polyfit(pts[members, 0], pts[members, 1], 1)
        resid = pts[:, 1] - (a * pts[:, 0] + b)
        med_len = np.median(blobs.length[members])
        med_w = np.median(blobs.width[members])
        near = (np.abs(resid) < 0.18 * med_len) & (np.abs(np.log(blobs.length / med_len)) < 0.3) & \
               (np.abs(np.log(blobs.width / med_w)) < 0.6)
        if near.sum() < 3:
            break
        members = np.flatnonzero(near)
    # one blob per position (a key split by a hand or a highlight counts once)
    u = (pts[members, 0] + a * pts[members, 1]) / math.hypot(1, a)
    order = np.argsort(u)
    members, u = members[order], u[order]
    keep = [0]
    for k in range(1, len(members)):
        if u[k] - u[keep[-1]] < 0.6 * np.median(blobs.width[members]):
            if blobs.length[members[k]] > blobs.length[members[keep[-1]]]:
                keep[-1] = k
        else:
            keep.append(k)
    return members[keep]


# ----------------------------------------------------------------------------- 1-D helpers

def _line(u, v):
    """A straight line v(u) as (knots, values) for np.interp: Theil-Sen (median of pairwise slopes),
    then a least-squares refit without the points far from it (hands, reflections)."""
    u, v = np.asarray(u, float), np.asarray(v, float)
    knots = np.array([-_FAR, _FAR])
    if len(u) < 2 or np.ptp(u) < 1e-6:
        return knots, np.array([np.median(v)] * 2)
    i, j = np.triu_indices(len(u), 1)
    du = u[j] - u[i]
    ok = np.abs(du) > 1e-6
    a = float(np.median((v[j] - v[i])[ok] / du[ok]))
    b = float(np.median(v - a * u))
    r = np.abs(v - (a * u + b))
    ok = r <= max(1.0, 3.0 * 1.4826 * np.median(r))
    if ok.sum() >= 2 and np.ptp(u[ok]) > 1e-6:
        a, b = np.polyfit(u[ok], v[ok], 1)
    return knots, a * knots + b


def _const(v):
    return np.array([-_FAR, _FAR]), np.array([float(v)] * 2)


def _fit_points(pts):
    """Line through (u, v) points (constant below three of them), or None without points."""
    if not pts:
        return None
    arr = np.array(pts, float)
    return _line(arr[:, 0], arr[:, 1]) if len(arr) >= 3 else _const(np.median(arr[:, 1]))


def _nanpct(a, q, axis):
    """Percentile `q` along `axis` ignoring NaN (nearest rank; NaN where all are NaN). Fast: one sort."""
    a = np.sort(np.moveaxis(np.asarray(a, np.float32), axis, -1), axis=-1)     # NaN sort last
    n = (~np.isnan(a)).sum(-1)
    idx = np.clip(np.round((n - 1) * q / 100.0).astype(int), 0, a.shape[-1] - 1)
    out = np.take_along_axis(a, idx[..., None], -1)[..., 0]
    out[n == 0] = np.nan
    return out


def _first_drop(profile, start, step, limit, thr):
    """(index, "drop") where `profile`, walked from `start` by `step` for at most `limit` samples, first
    falls below thr; (index, "frame") at the first NaN (outside the picture); (None, "none")."""
    k = start
    while 0 <= k < len(profile) and (k - start) * step <= limit:
        if np.isnan(profile[k]):
            return k, "frame"
        if profile[k] < thr:
            return k, "drop"
        k += step
    return None, "none"


def _edge_at(profile, k_out, step):
    """Sub-pixel boundary near the first outside index k_out (walking by `step` = +-1): where the profile
    crosses half-way between the inside level (a few samples back) and the outside level just past it."""
    n = len(profile)
    k_in = k_out - step
    if not 0 <= k_in < n or np.isnan(profile[k_in]):
        return float(k_out - step / 2)
    inside = profile[[i for i in range(k_in - 2 * step, k_in + step, step) if 0 <= i < n]]
    outside = profile[[i for i in range(k_out, k_out + 3 * step, step) if 0 <= i < n]]
    inside, outside = inside[~np.isnan(inside)], outside[~np.isnan(outside)]
    if not len(outside) or not len(inside):
        return float(k_out - step / 2)
    thr = (float(np.median(inside)) + float(outside.min())) / 2
    k = k_out          # the half-way crossing may lie a sample or two further in
    while 0 <= k - step < n and not np.isnan(profile[k - step]) and profile[k - step] < thr and \
            abs(k - step - k_out) < 3:
        k -= step
    if not 0 <= k - step < n:
        return float(k - step / 2)
    a, b = profile[k - step], profile[k]
    if np.isnan(a) or np.isnan(b) or a == b:
        return float(k - step / 2)
    return float(k - step + float(np.clip((a - thr) / (a - b), 0, 1)) * step)


# ----------------------------------------------------------------------------- measuring one keyboard

class _Frame:
    """Coordinates along the black-key row: u along it (image-rightwards), v across it (downwards)."""

    def __init__(self, cx, cy, angle):
        self.c = np.array([cx, cy], float)
        self.e_u = np.array([math.cos(angle), math.sin(angle)])
        self.e_v = np.array([-math.sin(angle), math.cos(angle)])

    def to_uv(self, x, y):
        d = np.stack([np.asarray(x, float) - self.c[0], np.asarray(y, float) - self.c[1]], -1)
        return d @ self.e_u, d @ self.e_v

    def to_xy(self, u, v):
        u, v = np.asarray(u, float), np.asarray(v, float)
        return self.c[0] + u * self.e_u[0] + v * self.e_v[0], self.c[1] + u * self.e_u[1] + v * self.e_v[1]

    def rectify(self, gray, u0, u1, v0, v1):
        """The image resampled on the (u, v) grid in 1-px steps; outside the frame -> NaN."""
        us = np.arange(math.floor(u0), math.ceil(u1) + 1, dtype=np.float32)
        vs = np.arange(math.floor(v0), math.ceil(v1) + 1, dtype=np.float32)
        uu, vv = np.meshgrid(us, vs)
        x, y = self.to_xy(uu, vv)
        img = cv2.remap(gray.astype(np.float32), x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
        h, w = gray.shape
        img[(x < -0.5) | (y < -0.5) | (x > w - 0.5) | (y > h - 0.5)] = np.nan
        return img, us, vs


class _Keyboard:
    """The keyboard whose black keys are a candidate row: orientation, edges and ends (working pixels).

    Lines are (knots, values) pairs for np.interp: v(u) for the back/front edges and the black keys'
    ends, u(v) for the left/right ends. `front` = +1 when the player's side is towards +v.
    """

    def __init__(self, gray, blobs, members, p):
        self.p = p
        xs, ys = blobs.cx[members], blobs.cy[members]
        a, b = np.polyfit(xs, ys, 1)
        self.angle = math.atan(a)
        self.fr = _Frame(xs.mean(), a * xs.mean() + b, self.angle)
        u_k, v_k = self.fr.to_uv(xs, ys)
        order = np.argsort(u_k)
        self.members, self.u_k, self.v_k = members[order], u_k[order], v_k[order]
        self.blobs, self.gray = blobs, gray

    def white_at(self, u):
        """One white key's width (working px) at position u along the row."""
        return float(np.polyval(self.gap_coef, u)) / SMALL_GAP

    def measure(self):
        """A dict (corners, far_side, angle, score, ...) or None when this row is no keyboard."""
        self.quality, self.gap_coef, self.pattern = _gap_pattern(self.u_k, self.blobs.width[self.members])
        if self.quality <= 0:
            return None
        self._black_key_ends()
        if not self._levels():
            return None
        if not self._orientation():
            return None
        self._trim_outer_keys()
        self._full_88()
        self._front_and_back()
        left, right = self._end(-1), self._end(+1)
        corners_uv = [self._corner(left, self.back), self._corner(right, self.back),
                      self._corner(right, self.front_line), self._corner(left, self.front_line)]
        contrast = float(np.clip((self.white - self.black) / 120, 0, 1))
        count = float(np.clip(len(self.members) / 20, 0, 1))
        score = self.quality * (0.5 + 0.5 * min(1.0, 2 * self.side_conf)) * (0.6 + 0.4 * contrast) * \
            (0.7 + 0.3 * count) * (1.0 if self.front_found else 0.8)
        return dict(corners=[self.fr.to_xy(u, v) for u, v in corners_uv], far_side=self.front < 0,
                    angle=math.degrees(self.angle), score=float(score), n_black=len(self.members),
                    white_w=self.white_at(float(np.median(self.u_k))), pattern=self.pattern)

    # -- the black keys and the levels -----------------------------------------------------------

    def _black_key_ends(self):
        """Lines through the black keys' two ends (pixel extents across the row), their length."""
        lo, hi = [], []
        for m in self.members:
            yy, xx = _blob_pixels(self.blobs, m)
            _, vv = self.fr.to_uv(xx, yy)
            lo.append(np.percentile(vv, 2) - 0.5)
            hi.append(np.percentile(vv, 98) + 0.5)
        self.ends_lo, self.ends_hi = _line(self.u_k, lo), _line(self.u_k, hi)
        self.black_len = float(np.median(np.array(hi) - np.array(lo)))
        self.lo_med, self.hi_med = float(np.median(lo)), float(np.median(hi))
        # the keys' slant in the row's frame (du/dv along a key): perspective shears the keyboard and
        # changes the slant along it
        bx, by = self.blobs.axis[:, self.members]
        ax_u, ax_v = self.fr.to_uv(self.fr.c[0] + bx, self.fr.c[1] + by)
        self.slant = _line(self.u_k, ax_u / np.where(np.abs(ax_v) < 1e-6, 1e-6, ax_v))

    def _levels(self):
        """Resample the image along the row; white and black levels from the black keys' band."""
        self.u_first, self.u_last = float(self.u_k[0]), float(self.u_k[-1])
        white_w = self.white_at(float(np.median(self.u_k)))
        reach = 2.6 * self.black_len                      # white keys reach this far past the row at most
        self.rect, self.us, self.vs = self.fr.rectify(self.gray, self.u_first - 8 * white_w,
                                                      self.u_last + 8 * white_w, -reach, reach)
        self._set_outer()
        band = self.rect[:, self.iu0:self.iu1 + 1]
        inner = (self.vs > self.lo_med + 0.2 * self.black_len) & (self.vs < self.hi_med - 0.2 * self.black_len)
        core = band[inner]
        if core.size == 0 or np.isnan(core).mean() > 0.5:
            return False
        self.white = float(np.nanpercentile(core, 85))
        self.black = float(np.nanpercentile(core, 10))
        self.thr = self.black + 0.5 * (self.white - self.black)
        return self.white - self.black >= self.p["min_contrast"]

    def _set_outer(self):
        self.iu0 = int(np.searchsorted(self.us, self.u_k[0]))
        self.iu1 = int(np.searchsorted(self.us, self.u_k[-1]))

    # -- orientation --------------------------------------------------------------------------------

    def _continuation(self, sign):
        """(bright fraction, line texture) of the strip just past the black keys' ends on one side."""
        cols = np.arange(self.iu0, self.iu1 + 1)
        end_v = np.interp(self.us[cols], *(self.ends_hi if sign > 0 else self.ends_lo))
        near, far = end_v + sign * 0.12 * self.black_len, end_v + sign * 0.4 * self.black_len
        lo, hi = np.minimum(near, far)[None, :], np.maximum(near, far)[None, :]
        sel = (self.vs[:, None] > lo) & (self.vs[:, None] < hi)
        rows = sel.any(1)
        strip = np.where(sel, self.rect[:, cols], np.nan)[rows]
        if strip.size == 0 or np.isnan(strip).all():
            return 0.0, 0.0
        contrast = max(self.white - self.black, 1.0)
        with np.errstate(all="ignore"):
            bright = float(np.nanmean(strip[sel[rows]] > self.black + 0.6 * contrast))
            # the thin lines between white keys, one per key, run on in front of the black keys
            k = max(3, int(round(self.white_at(float(np.median(self.u_k))))) | 1)
            filled = np.where(np.isnan(strip), np.nanmean(strip), strip).astype(np.float32)
            hp = np.abs(filled - cv2.blur(filled, (k, 1)))
            texture = float(np.nanmean(np.where(np.isnan(strip), np.nan, hp)) / contrast)
        return bright, texture

    def _orientation(self):
        """The front (player's side) is where bright, finely lined white continues past the black keys;
        a pale piano body behind the keys is bright too, but plain."""
        scores = {}
        for sign in (+1, -1):
            bright, texture = self._continuation(sign)
            scores[sign] = bright * (0.6 + 0.4 * min(1.0, texture / 0.03))
        self.front = +1 if scores[+1] >= scores[-1] else -1
        self.side_conf = abs(scores[+1] - scores[-1])
        self.free_fit = self.ends_hi if self.front > 0 else self.ends_lo     # the black keys' front ends
        self.back_ends = self.ends_lo if self.front > 0 else self.ends_hi    # ... and back ends
        return max(scores.values()) >= 0.5                 # else: no white band in front of the keys

    def _trim_outer_keys(self):
        """The outermost "black keys" must have white keys in front of them (the dark rim or cheek at a
        keyboard's end passes the shape test too)."""
        half_w = max(1, int(round(0.25 * np.median(self.blobs.width[self.members]))))

        def white_in_front(uk):
            k = int(round(uk - self.us[0]))
            depth = (self.vs - np.interp(uk, *self.free_fit)) * self.front
            vals = self.rect[(depth > 0.15 * self.black_len) & (depth < 0.4 * self.black_len),
                             max(0, k - half_w):k + half_w + 1]
            vals = vals[~np.isnan(vals)]
            return len(vals) == 0 or float(np.median(vals)) >= self.thr
        keep = np.ones(len(self.u_k), bool)
        lo, hi = 0, len(self.u_k) - 1
        while hi - lo >= self.p["min_black_keys"] and not white_in_front(self.u_k[lo]):
            keep[lo] = False
            lo += 1
        while hi - lo >= self.p["min_black_keys"] and not white_in_front(self.u_k[hi]):
            keep[hi] = False
            hi -= 1
        self.members, self.u_k, self.v_k = self.members[keep], self.u_k[keep], self.v_k[keep]
        self._set_outer()

    def _full_88(self):
        """All 36 black keys of an 88-key piano in view, in the right pattern? Then the keyboard's ends lie
        a known number of white keys beyond the outermost ones (used where the ends cannot be seen)."""
        self.model_end = {}
        if len(self.u_k) != len(BLACK_88):
            return
        gaps = np.diff(self.u_k)
        large = gaps / np.polyval(self.gap_coef, (self.u_k[1:] + self.u_k[:-1]) / 2) > 1.3
        bass_left = self.front > 0                        # player side: bass on the image's left
        expected = GAPS_88 if bass_left else GAPS_88[::-1]
        if (large == expected).mean() >= 0.9:
            self.model_end = {-1: END_88[0] if bass_left else END_88[1], +1: END_88[1] if bass_left else END_88[0]}

    # -- front and back edges -----------------------------------------------------------------------

    def _front_and_back(self):
        """The white keys' front edge and the keys' back end: per narrow chunk along the row, the first
        drop of the brightness profile across it; then a robust line fit (perspective, hands)."""
        white_w = self.white_at(float(np.median(self.u_k)))
        n_chunks = int(np.clip(round((self.u_last - self.u_first) / (1.5 * white_w)), 4, 48))
        bounds = np.linspace(self.iu0, self.iu1 + 1, n_chunks + 1).round().astype(int)
        filled = np.where(np.isnan(self.rect), self.white, self.rect).astype(np.float32)
        texture = np.abs(filled - cv2.blur(filled, (max(3, int(round(white_w)) | 1), 1)))
        texture[np.isnan(self.rect)] = np.nan
        front_pts, back_pts = [], []
        L, F, vs = self.black_len, self.front, self.vs
        for c0, c1 in zip(bounds[:-1], bounds[1:]):
            if c1 - c0 < 2:
                continue
            chunk = self.rect[:, c0:c1]
            uc = float(self.us[c0:c1].mean())
            v_free = float(np.interp(uc, *self.free_fit))
            v_back = float(np.interp(uc, *self.back_ends))
            prof_front = _nanpct(chunk, 50, 1)            # median: hands cover less than half a chunk
            prof_back = _nanpct(chunk, 70, 1)
            outside = np.isnan(chunk).mean(1) > 0.5
            prof_front[outside] = np.nan
            prof_back[outside] = np.nan
            k_free = int(np.clip(np.searchsorted(vs, v_free), 0, len(vs) - 1))
            k0 = int(np.clip(k_free + F * max(1, int(0.1 * L)), 0, len(vs) - 1))
            k, why = _first_drop(prof_front, k0, F, MAX_KEY_TO_BLACK * L - abs(v_free - v_back) - 0.1 * L,
                                 self.thr)
            # where the thin lines between white keys stop (a pale key slip shows no drop in brightness)
            w0, w1 = max(0, c0 - int(2 * white_w)), min(self.rect.shape[1], c1 + int(2 * white_w))
            tex = _nanpct(texture[:, w0:w1], 50, 1)
            depth = (vs - v_back) * F
            free = abs(v_free - v_back)
            ref = tex[(depth > free + 0.1 * L) & (depth < free + 0.35 * L)]
            ref = float(np.nanmedian(ref)) if np.isfinite(ref).any() else 0.0
            plain = (depth > 1.3 * L) & (depth < MAX_KEY_TO_BLACK * L) & (tex < 0.35 * ref)
            cand = np.flatnonzero(plain)
            k_tex = None
            if ref > 0.02 * (self.white - self.black) and len(cand):
                k_tex = int(cand[0] if F > 0 else cand[-1])
            if why == "drop":
                # ... unless the key lines stopped well before it, with plain (key slip) all the way
                if k_tex is not None and (k - k_tex) * F > 0.12 * L and plain[min(k, k_tex):max(k, k_tex)].all():
                    front_pts.append((uc, vs[0] + k_tex - F * 0.5))
                else:
                    front_pts.append((uc, vs[0] + _edge_at(prof_front, k, F)))
            elif why == "frame":                          # cut by the frame: the box is clipped there
                front_pts.append((uc, vs[0] + k))
            elif k_tex is not None:                       # a pale key slip: where the key lines end
                front_pts.append((uc, vs[0] + k_tex - F * 0.5))
            # the back end: keys and black keys start together at the fallboard
            k_b = int(np.clip(np.searchsorted(vs, v_back), 0, len(vs) - 1))
            k0 = int(np.clip(k_b + F * max(2, int(0.25 * L)), 0, len(vs) - 1))
            k, why = _first_drop(prof_back, k0, -F, 0.6 * L, self.thr)
            if why == "drop":
                back_pts.append((uc, vs[0] + _edge_at(prof_back, k, -F)))
            elif why == "frame":
                back_pts.append((uc, vs[0] + k))
        front, back = _fit_points(front_pts), _fit_points(back_pts)
        self.front_found = front is not None
        self.back = back if back is not None else self.back_ends      # pale behind: the black keys' ends
        if front is None:                                 # no visible front edge: the usual proportion
            front = (self.back[0], np.asarray(self.back[1]) + F * L / BLACK_LENGTH_TO_KEY)
        self.front_line = front

    # -- left and right ends ------------------------------------------------------------------------

    def _strips(self, v_from, v_to, step_v):
        """(v centre, median profile along u) of thin strips across [v_from, v_to]."""
        lo, hi = min(v_from, v_to), max(v_from, v_to)
        for v0 in np.arange(lo, hi - step_v / 2, step_v):
            rows = (self.vs >= v0) & (self.vs < v0 + step_v)
            if rows.any():
                yield v0 + step_v / 2, _nanpct(self.rect[rows], 50, 0)

    def _end(self, sign):
        """The keyboard's end beyond the outermost black key on side `sign`, as a line u(v)."""
        F, us = self.front, self.us
        k_blk = self.iu1 if sign > 0 else self.iu0
        u_blk = float(us[k_blk])
        ww = self.white_at(u_blk)
        vb, vf = float(np.interp(u_blk, *self.back)), float(np.interp(u_blk, *self.front_line))
        v_free = float(np.interp(u_blk, *self.free_fit))
        slope = float(np.interp(u_blk + sign * 1.5 * ww, *self.slant))
        v_blk = float(self.v_k[0] if sign < 0 else self.v_k[-1])
        if sign in self.model_end:                        # a full 88-key piano: its end is known
            off = self.model_end[sign]
            u_model = u_blk + sign * off * self.white_at(u_blk + sign * off / 2 * ww)
            model = (np.array([-_FAR, _FAR]), u_model + slope * (np.array([-_FAR, _FAR]) - v_blk))
        else:
            model = None
        fallback = model or _const(u_blk + sign * ww)     # about where a keyboard usually ends

        def pale():                                       # no dark cheek: the model, or a change of tone
            return model or self._pale_end(sign, k_blk, ww, v_free, vf, margin) or fallback
        step_v = max(2.0, 0.06 * abs(vf - vb))
        margin = 0.08 * abs(vf - vb)
        frame_hits = []

        def walk(col, start, limit):
            k, why = _first_drop(col, int(np.clip(start, 0, len(col) - 1)), sign, limit, self.thr)
            if why == "drop":
                return us[0] + _edge_at(col, k, sign)
            if why == "frame":                            # cut by the frame: the box is clipped there
                frame_hits.append(us[0] + k)
                return us[0] + k
            return None

        def frame_line():
            return _const(max(frame_hits) if sign > 0 else min(frame_hits))

        # 1) the white keys' front part has no black keys: the first drop is the end
        front_pts = []
        for vc, col in self._strips(v_free + F * margin, vf - F * 1.5, step_v):
            u = walk(col, k_blk, 6.0 * ww)
            if u is not None:
                front_pts.append((vc, u))
        if len(front_pts) < 3:
            return pale()
        # further beyond the last black key (along the keys' slant) than white keys ever reach, with no
        # black key on the way: a pale cheek with a bright background behind it
        shear = float(np.interp(u_blk, *self.slant))
        reach = float(np.median([(u - u_blk - shear * (v - v_blk)) * sign for v, u in front_pts]))
        if reach > MAX_END_OVERHANG * ww and not self._black_keys_between(k_blk, k_blk + sign * int(reach),
                                                                          vb, v_free, ww):
            return pale()
        if len(frame_hits) >= 0.3 * len(front_pts):      # the keys run out of the picture ...
            beyond = (np.interp(v_blk, *frame_line()) - np.interp(v_blk, *model)) * sign if model else 0.0
            if beyond > 0.6 * ww:
                return model                              # ... or a pale cheek and background do
            return frame_line()
        # the end is the outer side of the last white key, parallel to the keys: only its offset is
        # measured, as a median (hands, shadows)
        def end_line(points):
            off = float(np.median([u - slope * v for v, u in points]))
            return np.array([-_FAR, _FAR]), off + slope * np.array([-_FAR, _FAR])
        front_line = end_line(front_pts)
        # 2) among the black keys: search near the end the front part predicts (a black key or the gap
        # beside it is no end), then one line through both parts
        pts = list(front_pts)
        for vc, col in self._strips(vb + F * 1.5, v_free + F * margin, step_v):
            k0 = int(round(float(np.interp(vc, *front_line)) - sign * 0.7 * ww - us[0]))
            k1 = k0
            while 0 <= k1 < len(col) and not col[k1] >= self.thr and abs(k1 - k0) < 0.5 * ww:
                k1 += sign                                # step off a dark key side first
            u = walk(col, k1, 2.0 * ww)
            if u is not None:
                pts.append((vc, u))
        if len(frame_hits) >= 0.3 * len(pts):
            return frame_line()
        return end_line(pts)

    def _black_keys_between(self, k_a, k_b, vb, v_free, ww):
        """Is there a dark run about one black key wide between columns k_a (plus half a key) and k_b, in
        the black keys' rows?"""
        lo, hi = sorted((vb, v_free))
        span = hi - lo
        rows = (self.vs > lo + 0.2 * span) & (self.vs < hi - 0.2 * span)
        if rows.sum() < 2:
            return False
        prof = _nanpct(self.rect[rows], 50, 0)
        step = 1 if k_b > k_a else -1
        k, run = k_a + step * int(round(0.6 * ww)), 0
        while 0 <= k < len(prof) and (k - k_b) * step < 0:
            if prof[k] < self.thr:
                run += 1
            else:
                if 0.3 * ww <= run <= 1.0 * ww:
                    return True
                run = 0
            k += step
        return False

    def _pale_end(self, sign, k_blk, ww, v_free, vf, margin):
        """No dark cheek beyond the keys: the end is where the keys' white gives way for good to a slightly
        different tone (a pale cheek), walking out from the last black key in the white keys' front part;
        thin dips (the lines between keys) do not count. None if nothing is found."""
        lo, hi = sorted((v_free + self.front * margin, vf - self.front * 1.5))
        rows = (self.vs > lo) & (self.vs < hi)
        if rows.sum() < 2:
            return None
        prof = _nanpct(self.rect[rows], 50, 0)
        a, b = sorted((k_blk, int(np.clip(k_blk - sign * 2 * ww, 0, len(prof) - 1))))
        inside = prof[a:b + 1]
        inside = inside[~np.isnan(inside)]
        if not len(inside):
            return None
        ref = float(np.percentile(inside, 75))
        t = ref - max(6.0, 0.03 * ref)
        run = max(2, int(round(0.6 * ww)))
        k = k_blk
        while abs(k - k_blk) < 6 * ww:
            k += sign
            if not 0 <= k < len(prof) or np.isnan(prof[k]):
                return _const(self.us[0] + k)
            if prof[k] < t:
                ahead = prof[k:k + sign * run:sign] if sign > 0 else prof[max(0, k - run + 1):k + 1]
                if np.all(ahead[~np.isnan(ahead)] < t):
                    p_in, p_out = prof[k - sign], prof[k]
                    frac = float(np.clip((p_in - t) / (p_in - p_out), 0, 1)) if p_in > p_out else 0.5
                    return _const(self.us[0] + k - sign + sign * frac)
        return None

    @staticmethod
    def _corner(end_line, edge_line):
        """Intersection of an end line u(v) with a front/back line v(u)."""
        u = float(np.interp(0.0, *end_line))
        for _ in range(4):
            u = float(np.interp(float(np.interp(u, *edge_line)), *end_line))
        return u, float(np.interp(u, *edge_line))


def measure_keyboard(gray, blobs, members, p=DEFAULTS):
    """Corners, side, angle and score of the keyboard whose black keys are `members` (working pixels),
    or None when that row is no keyboard."""
    return _Keyboard(gray, blobs, members, p).measure()


# ----------------------------------------------------------------------------- public API

def detect_keyboard(frames, source="image", params=None):
    """The keyboard in one BGR/gray frame, or in a list (or stack) of frames after their temporal median.

    Returns a Detection (box in full-frame pixels, x2/y2 exclusive); raises AudeoError("<source>: no
    keyboard found ...") when there is none. `params` overrides DEFAULTS entries.
    """
    p = dict(DEFAULTS, **(params or {}))
    single = frames.ndim == 2 or (frames.ndim == 3 and frames.shape[2] in (1, 3, 4)) \
        if isinstance(frames, np.ndarray) else False
    if single:
        gray = to_gray(frames)
    else:
        frames = list(frames)
        if not frames:
            raise AudeoError(f"{source}: no frames to look at")
        gray = median_frame(frames, source)
    return _detect_gray(gray, source, p)


def _detect_gray(gray, source, p):
    H, W = gray.shape
    if H < 16 or W < 16:
        raise AudeoError(f"{source}: no keyboard found (the image is only {W}x{H})")
    scale = min(1.0, p["work_width"] / W)
    work = gray if scale == 1.0 else cv2.resize(gray, (int(round(W * scale)), int(round(H * scale))),
                                                interpolation=cv2.INTER_AREA)
    blobs = black_key_candidates(work, p)
    best = None
    for members in find_key_rows(blobs, p):
        m = measure_keyboard(work, blobs, members, p)
        if m is not None and (best is None or m["score"] > best["score"]):
            best = m
    if best is None or best["n_black"] < p["min_black_keys"]:
        raise AudeoError(f"{source}: no keyboard found (no row of black keys between white keys)")
    sx, sy = W / work.shape[1], H / work.shape[0]
    corners = [((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5) for x, y in best["corners"]]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    # corners are boundary positions (pixel centres at integers): a pixel belongs to the keys when its
    # centre lies inside, i.e. its value is past half-way between the key and the surroundings
    x1, x2 = math.ceil(min(xs) - 1e-6), math.floor(max(xs) + 1e-6) + 1
    y1, y2 = math.ceil(min(ys) - 1e-6), math.floor(max(ys) + 1e-6) + 1
    box = (max(0, x1), max(0, y1), min(W, x2), min(H, y2))
    if box[2] - box[0] < 8 or box[3] - box[1] < 4:
        raise AudeoError(f"{source}: no keyboard found (the key area found is empty)")
    return Detection(box=tuple(int(v) for v in box), far_side=bool(best["far_side"]),
                     angle_deg=round(best["angle"], 3), score=round(best["score"], 4),
                     corners=[[round(float(x), 1), round(float(y), 1)] for x, y in corners],
                     n_black_keys=int(best["n_black"]), white_key_px=round(best["white_w"] * sx, 2),
                     frame_size=(W, H), source=str(source))


def detect_in_video(path, n_samples=DEFAULTS["n_samples"], params=None):
    """The keyboard in a video: detect_keyboard on the temporal median of `n_samples` frames spread across it."""
    return detect_keyboard(sample_video_frames(path, n_samples), source=str(path), params=params)


def read_image(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise AudeoError(f"{path}: cannot be read as an image")
    return img


def load_source(path, n_samples=DEFAULTS["n_samples"]):
    """The frame(s) to look at: [image] for a still (by extension), sampled frames for a video."""
    path = Path(path)
    if not path.is_file():
        raise AudeoError(f"{path}: file not found")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return [read_image(path)]
    return sample_video_frames(path, n_samples)


def detect_in_file(path, n_samples=DEFAULTS["n_samples"], params=None):
    """The keyboard in an image file (by extension) or a video file."""
    frames = load_source(path, n_samples)
    return detect_keyboard(frames[0] if len(frames) == 1 else frames, source=str(path), params=params)


def draw_detection(frame, det):
    """A BGR copy of `frame` with the box (green), the key area (red, back edge thick) and a label."""
    img = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    x1, y1, x2, y2 = det.box
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (0, 255, 0), 1)
    pts = np.array(det.corners, np.float32).round().astype(np.int32)
    if len(pts) == 4:
        cv2.polylines(img, [pts], True, (0, 0, 255), 1, cv2.LINE_AA)
        cv2.line(img, tuple(int(v) for v in pts[0]), tuple(int(v) for v in pts[1]), (0, 0, 255), 2)
    label = f"{x1} {y1} {x2} {y2} {'far' if det.far_side else 'player'} side, score {det.score:.2f}"
    size = max(0.6, img.shape[1] / 1100)
    org = (8, int(28 * size))
    cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, size, (0, 0, 0), max(3, int(3 * size)), cv2.LINE_AA)
    cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, size, (0, 255, 255), max(1, int(size)), cv2.LINE_AA)
    return img


def main(argv=None):
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("source", metavar="VIDEO_OR_IMAGE", help="a video, or a still image of the keyboard")
    p.add_argument("--json", help="write the detection as JSON here")
    p.add_argument("--debug", help="write a PNG with the detection drawn on the (median) frame here")
    p.add_argument("--samples", type=int, default=d["n_samples"], help="video frames for the temporal median")
    args = p.parse_args(argv)
    if args.samples < 1:
        raise AudeoError(f"--samples {args.samples}: must be at least 1")
    frames = load_source(args.source, args.samples)
    frame = frames[0] if len(frames) == 1 else median_frame(frames, args.source)
    det = detect_keyboard(frame, source=args.source)
    x1, y1, x2, y2 = det.box
    print(f"{x1} {y1} {x2} {y2} {'far' if det.far_side else 'player'}")
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(det.as_dict(), indent=1) + "\n")
    if args.debug:
        with atomic_path(Path(args.debug).with_suffix(".png")) as tmp:
            if not cv2.imwrite(tmp, draw_detection(frame, det)):
                raise AudeoError(f"{args.debug}: cannot write the debug image")


if __name__ == "__main__":
    run(main)
