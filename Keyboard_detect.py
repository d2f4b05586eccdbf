"""Find the piano keyboard in a top-down video or photo: its crop box and which side the camera is on.

In:  a video OpenCV can read (any size, frame rate, camera side) or a still image (png/jpg/...).
Out: stdout  `x1 y1 x2 y2 far|player` : the axis-aligned box around the keys in frame pixels (from the
             back end of the keys to the front edge of the white keys, leftmost to rightmost key,
             clipped to the frame; x2/y2 exclusive, as Piano_render's box.txt and crop_keyboard use
             it) and the camera side (`far`: the camera is beyond the keyboard, image turned 180
             degrees, the player and the white keys' front edge at the top)
     --json  the same plus angle, score, corners and the black keys counted
     --debug a PNG of the (median) frame with the detection drawn on it

How (classical, no learning): hands move and keys do not, so a video is first reduced to the per-pixel
temporal median of frames sampled across it. Black keys are dark, elongated blobs between brighter
white keys: a horizontal morphological closing gives the local white level, pixels well below it are
black-key candidates, and connected components with a key-like shape are kept. A RANSAC line through
their centroids finds the row of black keys (-> rotation); the row must show the keyboard's
signature, gaps between neighbouring black keys of two sizes (within a group of 2 or 3, and across
E-F / B-C, about 1.5 times larger), and black keys about half as wide as that small gap, which
rejects hammer rows, comb-like textures and noise. In the strip rectified along that row, brightness
profiles perpendicular to it give the white-key band: the side of the black keys where bright white
continues is the FRONT (the player's side) and fixes the orientation; where the white band ends in
front, behind, left and right gives the key area's edges (or the frame edge).
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
_DEBUG = None                # set to a dict to collect intermediate results (development aid)
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

# Keyboard proportions (white-key widths). Black-key centres within a group of two or three are
# about 7/6 white keys apart, across E-F and B-C about 7/4; a black key is about 0.58 white wide.
SMALL_GAP = 7 / 6
BLACK_LENGTH_TO_KEY = 95 / 150       # black key length / white key length (real piano: 95 / 150 mm)


@dataclass
class Detection:
    """Where the keyboard is. Pixel coordinates of the full frame; box x2/y2 exclusive."""
    box: tuple                  # (x1, y1, x2, y2) around the keys, clipped to the frame
    far_side: bool              # camera beyond the keyboard: player / white keys' front edge at the top
    angle_deg: float            # tilt of the black-key row from the image x axis (positive: clockwise)
    score: float                # 0..1 confidence (pattern regularity x white-band contrast x key count)
    corners: list = field(default_factory=list)   # key-area corners [x, y]: back-left, back-right,
    #                             front-right, front-left, left/right as seen in the image
    n_black_keys: int = 0       # black keys found in the row
    white_key_px: float = 0.0   # width of one white key, frame pixels
    frame_size: tuple = (0, 0)  # (width, height)
    source: str = ""

    def as_dict(self):
        d = asdict(self)
        d["box"], d["frame_size"] = list(self.box), list(self.frame_size)
        return d


# ----------------------------------------------------------------------------- input frames

def to_gray(frame):
    """BGR / BGRA / gray uint8 (or float) frame -> gray uint8."""
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame.astype(np.uint8) if frame.dtype != np.uint8 else frame, cv2.COLOR_BGR2GRAY)
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return frame


def median_frame(frames):
    """Per-pixel temporal median of a list of same-size frames (gray uint8)."""
    grays = [to_gray(f) for f in frames]
    if len(grays) == 1:
        return grays[0]
    shapes = {g.shape for g in grays}
    if len(shapes) != 1:
        raise AudeoError(f"frames differ in size: {sorted(shapes)}")
    return np.median(np.stack(grays), axis=0).astype(np.uint8)


def sample_video_frames(path, n_samples=DEFAULTS["n_samples"]):
    """`n_samples` BGR frames spread evenly across a video (seeking; sequential reading as a fallback)."""
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
    white = cv2.morphologyEx(g, cv2.MORPH_CLOSE, se)          # bright on both sides within `size`
    dark = cv2.erode(g, se)
    depth = white.astype(np.int16) - g
    strong = np.percentile(depth, 99)
    thr = max(p["min_contrast"], p["contrast_frac"] * strong)
    mask = (depth > thr) & (2 * g.astype(np.int16) < white.astype(np.int16) + dark)
    mask = mask.astype(np.uint8)
    # thin horizontal bridges (shadowed key backs) would join neighbouring keys: open vertically
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 3)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    empty = _Blobs(*(np.zeros(0) for _ in range(4)), np.zeros((2, 0)), labels, np.zeros(0, int))
    if n <= 1:
        return empty
    area = stats[:, cv2.CC_STAT_AREA].astype(float)
    ok = (area >= 6) & (stats[:, cv2.CC_STAT_HEIGHT] >= 5)
    ok[0] = False
    lab = labels.ravel()
    ys, xs = np.divmod(np.arange(lab.size), w)
    sel = ok[lab]
    lab_s, xs, ys = lab[sel], xs[sel].astype(float), ys[sel].astype(float)
    cnt = np.bincount(lab_s, minlength=n).astype(float)
    cnt[cnt == 0] = 1
    mx, my = np.bincount(lab_s, xs, n) / cnt, np.bincount(lab_s, ys, n) / cnt
    sxx = np.bincount(lab_s, xs * xs, n) / cnt - mx ** 2
    syy = np.bincount(lab_s, ys * ys, n) / cnt - my ** 2
    sxy = np.bincount(lab_s, xs * ys, n) / cnt - mx * my
    tr, det = sxx + syy, sxx * syy - sxy ** 2
    disc = np.sqrt(np.maximum(tr ** 2 / 4 - det, 0))
    l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 0)
    length, width = np.sqrt(12 * l1), np.sqrt(12 * l2 + 1)   # +1: a one-pixel-wide line is 1 px wide
    # major axis direction
    ax, ay = sxy, l1 - sxx
    small = np.hypot(ax, ay) < 1e-9
    ax[small], ay[small] = 0.0, 1.0
    norm = np.hypot(ax, ay)
    ax, ay = ax / norm, ay / norm
    flip = ay < 0
    ax[flip], ay[flip] = -ax[flip], -ay[flip]
    fill = cnt / np.maximum(length * width, 1)
    tilt = np.degrees(np.arccos(np.clip(ay, -1, 1)))
    keep = ok & (length >= 2.5 * width) & (width >= 1.5) & (fill > 0.55) & (fill < 1.4) & (tilt <= 40)
    ids = np.flatnonzero(keep)
    return _Blobs(mx[ids], my[ids], length[ids], width[ids], np.stack([ax[ids], ay[ids]]), labels, ids)


# ----------------------------------------------------------------------------- the row of black keys

def _classify_gaps(r):
    small = (r > 0.8) & (r < 1.22)
    large = (r > 1.3) & (r < 1.9)
    missing = (r >= 1.9) & (r < 3.6)      # a key hidden by a hand leaves a gap of about 2..3.5 small
    return small, large, missing


def _gap_pattern(u, width):
    """How well sorted positions `u` look like black keys: (quality 0..1, small gap as a function of u
    (polynomial coefficients: perspective makes keys at one end larger), details)."""
    u = np.asarray(u, float)
    gaps = np.diff(u)
    mids = (u[1:] + u[:-1]) / 2
    if len(gaps) < 4:
        return 0.0, None, {}
    best = (0.0, None, {})
    for s0 in np.unique(np.round(gaps[gaps > 0], 1)):     # try each gap as the small one
        coef = np.array([0.0, s0])
        for _ in range(3):                                 # classify, refit the scale along u, repeat
            r = gaps / np.polyval(coef, mids)
            small, large, missing = _classify_gaps(r)
            if small.sum() < 3 or large.sum() < 1:
                break
            unit = np.where(small, gaps, gaps / 1.5)
            sel = small | large
            if np.ptp(mids[sel]) > 0 and sel.sum() >= 6:
                new = np.polyfit(mids[sel], unit[sel], 1)
                # perspective changes the scale by at most about a factor 2 along the keyboard
                ends = np.polyval(new, [mids[0], mids[-1]])
                if ends.min() <= 0 or ends.max() / ends.min() > 2:
                    new = np.array([0.0, np.median(unit[sel])])
            else:
                new = np.array([0.0, np.median(unit[sel])])
            coef = new
        r = gaps / np.polyval(coef, mids)
        small, large, missing = _classify_gaps(r)
        n_s, n_l, n_m = int(small.sum()), int(large.sum()), int(missing.sum())
        if n_s < 3 or n_l < 1:
            continue
        explained = (n_s + n_l + 0.5 * n_m) / len(gaps)
        balance = float(np.clip(1 - abs(n_l / (n_s + n_l) - 0.4) / 0.3, 0, 1))   # 3 small : 2 large
        ratio = float(np.median(r[large]) / np.median(r[small]))
        wr = float(np.median(np.asarray(width) / np.polyval(coef, u)))          # black width / small gap
        width_ok = float(np.clip(1 - abs(wr - 0.5) / 0.35, 0, 1))
        q = explained * balance * (0.5 + 0.5 * width_ok)
        if q > best[0]:
            best = (q, coef, dict(n_small=n_s, n_large=n_l, n_missing=n_m, ratio=round(ratio, 3),
                                  width_ratio=round(wr, 3), explained=round(explained, 3)))
    return best


def find_key_rows(blobs, p=DEFAULTS, n_best=4):
    """RANSAC lines through blob centroids; the best few distinct rows as (inlier indices, quality)."""
    n = len(blobs.cx)
    if n < p["min_black_keys"]:
        return []
    rng = np.random.default_rng(p["seed"])
    pts = np.stack([blobs.cx, blobs.cy], 1)
    i = rng.integers(0, n, p["ransac_iters"])
    j = rng.integers(0, n, p["ransac_iters"])
    # pairs of similar blobs only
    same = (i != j) & (np.abs(np.log(blobs.length[i] / blobs.length[j])) < 0.4) & \
           (np.abs(np.log(blobs.width[i] / blobs.width[j])) < 0.5)
    d = pts[j] - pts[i]
    ang = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    ang = (ang + 90) % 180 - 90
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
    order = np.argsort(-counts)
    rows, used = [], []
    for k in order[:200]:
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
    """Least-squares line through the members, then re-select blobs near it (twice)."""
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
    # keep one blob per position (a key split by a hand or a highlight counts once)
    cos = 1 / math.hypot(1, a)
    u = (pts[members, 0] + a * pts[members, 1]) * cos
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


# ----------------------------------------------------------------------------- geometry along the row

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
        """The image resampled on the (u, v) grid, 1 px steps; outside the frame -> NaN."""
        us = np.arange(math.floor(u0), math.ceil(u1) + 1, dtype=np.float32)
        vs = np.arange(math.floor(v0), math.ceil(v1) + 1, dtype=np.float32)
        uu, vv = np.meshgrid(us, vs)
        x, y = self.to_xy(uu, vv)
        img = cv2.remap(gray.astype(np.float32), x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
        h, w = gray.shape
        img[(x < -0.5) | (y < -0.5) | (x > w - 0.5) | (y > h - 0.5)] = np.nan
        return img, us, vs


def _nanpct(a, q, axis):
    """Percentile `q` along `axis` ignoring NaN (nearest rank; NaN where all are NaN). Fast: one sort."""
    a = np.sort(np.moveaxis(np.asarray(a, np.float32), axis, -1), axis=-1)     # NaN sort last
    n = (~np.isnan(a)).sum(-1)
    idx = np.clip(np.round((n - 1) * q / 100.0).astype(int), 0, a.shape[-1] - 1)
    out = np.take_along_axis(a, idx[..., None], -1)[..., 0]
    out[n == 0] = np.nan
    return out


def _first_drop(profile, start, step, limit, thr):
    """Index where `profile` walking from `start` by `step` first falls below thr (or NaN: the frame edge)."""
    k = start
    while 0 <= k < len(profile) and (limit is None or (k - start) * step <= limit):
        val = profile[k]
        if np.isnan(val):
            return k, "frame"
        if val < thr:
            return k, "drop"
        k += step
    return None, "none"


def _edge_at(profile, k_out, step):
    """Sub-pixel boundary near the first outside index k_out (walking by `step` = +-1), where the profile
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
    hi, lo = float(np.median(inside)), float(outside.min())
    thr = (hi + lo) / 2
    # walk back from k_out while still below thr (the true crossing may lie a sample further in)
    k = k_out
    while 0 <= k - step < n and not np.isnan(profile[k - step]) and profile[k - step] < thr and \
            abs(k - step - k_out) < 3:
        k -= step
    a, b = profile[k - step], profile[k]
    if not 0 <= k - step < n or np.isnan(a) or np.isnan(b) or a == b:
        return float(k - step / 2)
    t = float(np.clip((a - thr) / (a - b), 0, 1))
    return float(k - step + t * step)


def measure_keyboard(gray, blobs, members, p=DEFAULTS):
    """Box, side and corners of the keyboard whose black keys are `members` (working pixels), or None."""
    h, w = gray.shape
    xs, ys = blobs.cx[members], blobs.cy[members]
    a, b = np.polyfit(xs, ys, 1)
    angle = math.atan(a)
    fr = _Frame(xs.mean(), a * xs.mean() + b, angle)
    u_k, v_k = fr.to_uv(xs, ys)
    order = np.argsort(u_k)
    members, u_k, v_k = members[order], u_k[order], v_k[order]
    quality, gap_coef, info = _gap_pattern(u_k, blobs.width[members])
    if quality <= 0:
        return None

    def white_at(u):                                     # one white key's width (working px) at u
        return float(np.polyval(gap_coef, u)) / SMALL_GAP
    white_w = white_at(float(np.median(u_k)))
    # black keys' ends (pixel extents across the row), fitted along u (perspective)
    lab = blobs.labels
    ends_lo, ends_hi = [], []
    for m, uk in zip(members, u_k):
        yy, xx = np.nonzero(lab == blobs.ids[m]) if lab.size < 4e5 else _blob_pixels(lab, blobs, m)
        _, vv = fr.to_uv(xx, yy)
        ends_lo.append(np.percentile(vv, 2) - 0.5)
        ends_hi.append(np.percentile(vv, 98) + 0.5)
    ends_lo, ends_hi = np.array(ends_lo), np.array(ends_hi)
    lo_fit = _robust_line(u_k, ends_lo)
    hi_fit = _robust_line(u_k, ends_hi)
    black_len = float(np.median(ends_hi - ends_lo))
    u_first, u_last = u_k[0], u_k[-1]
    margin_u = 8.0 * white_w
    reach = 2.6 * black_len                              # white keys reach this far past the row at most
    rect, us, vs = fr.rectify(gray, u_first - margin_u, u_last + margin_u, -reach, reach)
    iu0 = int(np.searchsorted(us, u_first))
    iu1 = int(np.searchsorted(us, u_last))
    band = rect[:, iu0:iu1 + 1]
    # white level: bright columns across the black-key band; black level: the keys themselves
    core = band[(vs > np.median(ends_lo) + 0.2 * black_len) & (vs < np.median(ends_hi) - 0.2 * black_len)]
    if core.size == 0 or np.isnan(core).mean() > 0.5:
        return None
    white = float(np.nanpercentile(core, 85))
    black = float(np.nanpercentile(core, 10))
    if white - black < p["min_contrast"]:
        return None

    # ---- orientation: white continues past the black keys' free ends on the player's side
    def continuation(sign):
        """(bright fraction, line texture) of the strip just past the black keys' ends on one side."""
        k_cols = np.arange(iu0, iu1 + 1)
        end_v = np.interp(us[k_cols], *(hi_fit if sign > 0 else lo_fit))
        near, far = end_v + sign * 0.12 * black_len, end_v + sign * 0.4 * black_len
        lo_v, hi_v = np.minimum(near, far), np.maximum(near, far)
        sel = (vs[:, None] > lo_v[None, :]) & (vs[:, None] < hi_v[None, :])
        strip = np.where(sel, band, np.nan)
        rows = sel.any(1)
        strip = strip[rows]
        if strip.size == 0 or np.isnan(strip).all():
            return 0.0, 0.0
        with np.errstate(all="ignore"):
            bright = float(np.nanmean(strip[sel[rows]] > black + 0.6 * (white - black)))
            # the white keys' gaps: thin dark lines across the strip, one per white key
            k = max(3, int(round(white_w)) | 1)
            filled = np.where(np.isnan(strip), np.nanmean(strip), strip).astype(np.float32)
            hp = np.abs(filled - cv2.blur(filled, (k, 1)))
            texture = float(np.nanmean(np.where(np.isnan(strip), np.nan, hp)) / max(white - black, 1))
        return bright, texture
    down, up = continuation(+1), continuation(-1)
    # white continues on the player's side; a pale body behind the keys is bright too, but plain
    s_down = down[0] * (0.6 + 0.4 * min(1.0, down[1] / 0.03))
    s_up = up[0] * (0.6 + 0.4 * min(1.0, up[1] / 0.03))
    front_sign = +1 if s_down >= s_up else -1            # +1: front is further down the row normal
    side_conf = abs(s_down - s_up)
    if max(s_down, s_up) < 0.5:
        return None                                      # no white band in front of the black keys
    thr = black + 0.5 * (white - black)

    # ---- the outermost "black keys" must have white keys in front of them (the dark rim or cheek at
    # the keyboard's end passes the shape test too)
    free_fit = hi_fit if front_sign > 0 else lo_fit
    half_w = max(1, int(round(0.25 * np.median(blobs.width[members]))))

    def white_in_front(uk):
        k = int(round(uk - us[0]))
        depth = (vs - np.interp(uk, *free_fit)) * front_sign
        vals = rect[(depth > 0.15 * black_len) & (depth < 0.4 * black_len), max(0, k - half_w):k + half_w + 1]
        vals = vals[~np.isnan(vals)]
        return len(vals) == 0 or float(np.median(vals)) >= thr
    keep = np.ones(len(u_k), bool)
    lo_i, hi_i = 0, len(u_k) - 1
    while hi_i - lo_i >= p["min_black_keys"] and not white_in_front(u_k[lo_i]):
        keep[lo_i] = False
        lo_i += 1
    while hi_i - lo_i >= p["min_black_keys"] and not white_in_front(u_k[hi_i]):
        keep[hi_i] = False
        hi_i -= 1
    if not keep.all():
        members, u_k, v_k = members[keep], u_k[keep], v_k[keep]
        u_first, u_last = u_k[0], u_k[-1]
        iu0, iu1 = int(np.searchsorted(us, u_first)), int(np.searchsorted(us, u_last))

    # ---- front and back edges, per chunk along the row, then a line fit (perspective)
    n_chunks = int(np.clip(round((u_last - u_first) / (1.5 * white_w)), 4, 48))
    bounds = np.linspace(iu0, iu1 + 1, n_chunks + 1).round().astype(int)
    front_pts, back_pts = [], []
    for c0, c1 in zip(bounds[:-1], bounds[1:]):
        if c1 - c0 < 2:
            continue
        chunk = rect[:, c0:c1]
        uc = float(us[c0:c1].mean())
        v_free = np.interp(uc, *(hi_fit if front_sign > 0 else lo_fit))
        v_back = np.interp(uc, *(lo_fit if front_sign > 0 else hi_fit))
        with np.errstate(all="ignore"):
            prof_front = _nanpct(chunk, 50, 1)          # median: hands cover less than half of a chunk
            prof_back = _nanpct(chunk, 70, 1)
            frame_out = np.isnan(chunk).mean(1) > 0.5
        prof_front[frame_out] = np.nan
        prof_back[frame_out] = np.nan
        k_free = int(np.clip(np.searchsorted(vs, v_free), 0, len(vs) - 1))
        k_start = int(np.clip(k_free + front_sign * max(1, int(0.1 * black_len)), 0, len(vs) - 1))
        k, why = _first_drop(prof_front, k_start, front_sign, 1.6 * black_len, thr)
        if why == "drop":
            front_pts.append((uc, vs[0] + _edge_at(prof_front, k, front_sign)))
        elif why == "frame":                             # cut by the frame: the box is clipped there
            front_pts.append((uc, vs[0] + k))
        k_b = int(np.clip(np.searchsorted(vs, v_back), 0, len(vs) - 1))
        k_start = int(np.clip(k_b + front_sign * max(2, int(0.25 * black_len)), 0, len(vs) - 1))
        k, why = _first_drop(prof_back, k_start, -front_sign, 0.6 * black_len, thr)
        if why == "drop":
            back_pts.append((uc, vs[0] + _edge_at(prof_back, k, -front_sign)))
        elif why == "frame":
            back_pts.append((uc, vs[0] + k))
    front_fit = _fit_pts(front_pts, (u_first, u_last))
    back_fit = _fit_pts(back_pts, (u_first, u_last))
    found_front = front_fit is not None
    if back_fit is None:                                 # white behind too: the black keys' back ends
        back_fit = lo_fit if front_sign > 0 else hi_fit
    if front_fit is None:                                # no visible front edge: the physical proportion
        bu, bv = back_fit
        front_fit = (bu, np.asarray(bv) + front_sign * black_len / BLACK_LENGTH_TO_KEY)

    # ---- left and right ends: where the white keys stop beyond the outermost black keys, measured
    # separately in the back and the front half of the keys (perspective tilts the end lines)
    def end(sign):
        """The keyboard's end beyond the outermost black key, as a line u(v) (perspective tilts it)."""
        k_blk = iu1 if sign > 0 else iu0
        u_blk = us[k_blk]
        ww = white_at(u_blk)
        vb, vf = np.interp(u_blk, *back_fit), np.interp(u_blk, *front_fit)
        v_free = float(np.interp(u_blk, *(hi_fit if front_sign > 0 else lo_fit)))
        fallback = (np.array([-1e9, 1e9]), np.array([u_blk + sign * ww] * 2)), False
        step_v = max(2.0, 0.06 * abs(vf - vb))

        def strips(v_from, v_to):
            lo, hi = min(v_from, v_to), max(v_from, v_to)
            for v0 in np.arange(lo, hi - step_v / 2, step_v):
                rows = (vs >= v0) & (vs < v0 + step_v)
                if rows.any():
                    yield v0 + step_v / 2, _nanpct(rect[rows], 50, 0)

        def walk(col, start, limit):
            k, why = _first_drop(col, int(np.clip(start, 0, len(col) - 1)), sign, limit, thr)
            if why == "drop":
                return us[0] + _edge_at(col, k, sign)
            if why == "frame":                           # cut by the frame: the box is clipped there
                return us[0] + k
            return None

        # 1) the white keys' front part has no black keys: the first drop is the end
        margin = 0.08 * abs(vf - vb)
        front_pts = []
        for vc, col in strips(v_free + front_sign * margin, vf - front_sign * 1.5):
            u = walk(col, k_blk, 6.0 * ww)
            if u is not None:
                front_pts.append((vc, u))
        if _DEBUG is not None:
            _DEBUG.setdefault("front_strips", []).append(dict(sign=sign, pts=front_pts, v_free=v_free, vf=vf, vb=vb,
                                                              margin=margin, k_blk=k_blk))
        if len(front_pts) < 3:
            return fallback
        front_line = _robust_line(*zip(*front_pts))
        # 2) among the black keys: search near the end the front part predicts (a black key or the
        # gap beside it is no end), then fit one line through both parts
        pts = list(front_pts)
        for vc, col in strips(vb + front_sign * 1.5, v_free + front_sign * margin):
            u_pred = float(np.interp(vc, *front_line))
            k0 = int(round((u_pred - sign * 0.7 * ww) - us[0]))
            k1 = k0
            while 0 <= k1 < len(col) and not (col[k1] >= thr) and abs(k1 - k0) < 0.5 * ww:
                k1 += sign                               # step off a dark key side first
            u = walk(col, k1, 2.0 * ww)
            if u is not None:
                pts.append((vc, u))
        if _DEBUG is not None:
            _DEBUG.setdefault("end", []).append(dict(sign=sign, k_blk=k_blk, front=front_pts, all=pts, us0=us[0],
                                                     vs0=vs[0], rect=rect, thr=thr, white=white, black=black))
        return _robust_line(*zip(*pts)), True

    def corner(end_line, edge_line):
        """Intersection of an end line u(v) with a front/back line v(u)."""
        u = float(np.interp(0.0, *end_line))
        for _ in range(4):
            v = float(np.interp(u, *edge_line))
            u = float(np.interp(v, *end_line))
        return u, float(np.interp(u, *edge_line))

    left_line, ok_l = end(-1)
    right_line, ok_r = end(+1)
    corners_uv = [corner(left_line, back_fit), corner(right_line, back_fit), corner(right_line, front_fit),
                  corner(left_line, front_fit)]
    corners = [fr.to_xy(u, v) for u, v in corners_uv]
    contrast = float(np.clip((white - black) / 120, 0, 1))
    count = float(np.clip(len(members) / 20, 0, 1))
    score = quality * (0.5 + 0.5 * min(1.0, side_conf * 2)) * (0.6 + 0.4 * contrast) * (0.7 + 0.3 * count)
    score *= 1.0 if found_front else 0.8
    return dict(corners=corners, far_side=front_sign < 0,
                angle=math.degrees(angle), score=float(score), n_black=len(members), white_w=white_w,
                pattern=info, ends_found=(ok_l, ok_r), front_found=found_front,
                sides=dict(down=down, up=up))


def _blob_pixels(lab, blobs, m):
    """Pixels of one blob, looking only inside its neighbourhood (fast for large images)."""
    r = int(blobs.length[m]) + 3
    x0, y0 = max(0, int(blobs.cx[m]) - r), max(0, int(blobs.cy[m]) - r)
    sub = lab[y0:int(blobs.cy[m]) + r + 1, x0:int(blobs.cx[m]) + r + 1]
    yy, xx = np.nonzero(sub == blobs.ids[m])
    return yy + y0, xx + x0


def _robust_line(u, v):
    """(u knots, v values) of a line v(u) for np.interp: Theil-Sen (median of pairwise slopes), then a
    least-squares refit without the points far from it (hands, reflections)."""
    u, v = np.asarray(u, float), np.asarray(v, float)
    if len(u) < 2 or np.ptp(u) < 1e-6:
        return np.array([-1e9, 1e9]), np.array([np.median(v)] * 2)
    i, j = np.triu_indices(len(u), 1)
    du = u[j] - u[i]
    keep = np.abs(du) > 1e-6
    a = float(np.median((v[j] - v[i])[keep] / du[keep]))
    b = float(np.median(v - a * u))
    r = np.abs(v - (a * u + b))
    ok = r <= max(1.0, 3.0 * 1.4826 * np.median(r))
    if ok.sum() >= 2 and np.ptp(u[ok]) > 1e-6:
        a, b = np.polyfit(u[ok], v[ok], 1)
    knots = np.array([-1e9, 1e9])
    return knots, a * knots + b


def _fit_pts(pts, span):
    if not pts:
        return None
    arr = np.array(pts, float)
    if len(arr) >= 3:
        return _robust_line(arr[:, 0], arr[:, 1])
    return np.array([-1e9, 1e9]), np.array([np.median(arr[:, 1])] * 2)


# ----------------------------------------------------------------------------- public API

def detect_keyboard(frames, source="image", params=None):
    """Detection of the keyboard in one BGR/gray frame or a list of frames (temporal median first)."""
    p = dict(DEFAULTS, **(params or {}))
    if isinstance(frames, np.ndarray) and frames.ndim in (2, 3) and not (frames.ndim == 3 and frames.shape[2] > 4):
        gray = to_gray(frames)
    else:
        frames = list(frames)
        if not frames:
            raise AudeoError(f"{source}: no frames to look at")
        gray = median_frame(frames)
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
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    # corners are boundary positions (pixel centres at integers): a pixel belongs to the keys when its
    # centre lies inside, i.e. its value is past half-way between the key and the surroundings
    x1, x2 = math.ceil(min(xs) - 1e-6), math.floor(max(xs) + 1e-6) + 1
    y1, y2 = math.ceil(min(ys) - 1e-6), math.floor(max(ys) + 1e-6) + 1
    box = (max(0, x1), max(0, y1), min(W, x2), min(H, y2))
    if box[2] - box[0] < 8 or box[3] - box[1] < 4:
        raise AudeoError(f"{source}: no keyboard found (the key area found is empty)")
    return Detection(box=box, far_side=bool(best["far_side"]), angle_deg=round(best["angle"], 3),
                     score=round(best["score"], 4), corners=[[round(x, 1), round(y, 1)] for x, y in corners],
                     n_black_keys=int(best["n_black"]), white_key_px=round(best["white_w"] * sx, 2),
                     frame_size=(W, H), source=str(source))


def detect_in_video(path, n_samples=DEFAULTS["n_samples"], params=None):
    """Detection in a video: the per-pixel temporal median of `n_samples` frames spread across it."""
    frames = sample_video_frames(path, n_samples)
    return detect_keyboard(frames, source=str(path), params=params)


def read_image(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise AudeoError(f"{path}: cannot be read as an image")
    return img


def detect_in_file(path, n_samples=DEFAULTS["n_samples"], params=None):
    """Detection in an image file (by extension) or a video."""
    path = Path(path)
    if not path.is_file():
        raise AudeoError(f"{path}: file not found")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return detect_keyboard(read_image(path), source=str(path), params=params)
    return detect_in_video(path, n_samples=n_samples, params=params)


def draw_detection(frame, det):
    """A BGR copy of `frame` with the box (green), key-area corners (red, back edge thick) and side."""
    img = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    x1, y1, x2, y2 = det.box
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (0, 255, 0), 1)
    pts = np.array(det.corners, np.float32)
    if len(pts) == 4:
        cv2.polylines(img, [pts.round().astype(np.int32)], True, (0, 0, 255), 1, cv2.LINE_AA)
        cv2.line(img, tuple(pts[0].round().astype(int)), tuple(pts[1].round().astype(int)), (0, 0, 255), 2)
    label = f"{x1} {y1} {x2} {y2} {'far' if det.far_side else 'player'} side, score {det.score:.2f}"
    cv2.putText(img, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 1, cv2.LINE_AA)
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
    path = Path(args.source)
    if not path.is_file():
        raise AudeoError(f"{path}: file not found")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        frame = read_image(path)
        det = detect_keyboard(frame, source=str(path))
    else:
        frames = sample_video_frames(path, args.samples)
        frame = np.median(np.stack(frames), axis=0).astype(np.uint8) if len(frames) > 1 else frames[0]
        det = detect_keyboard(frames, source=str(path))
    x1, y1, x2, y2 = det.box
    print(f"{x1} {y1} {x2} {y2} {'far' if det.far_side else 'player'}")
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(det.as_dict(), indent=1) + "\n")
    if args.debug:
        with atomic_path(args.debug) as tmp:
            if not cv2.imwrite(str(Path(tmp).with_suffix(".png")) if not tmp.endswith(".png") else tmp,
                               draw_detection(frame, det)):
                raise AudeoError(f"{args.debug}: cannot write the debug image")


if __name__ == "__main__":
    run(main)
