"""Keyboard detection: the piano keyboard in a top-down video or photo, its box, corners and camera side.

In:  BGR or gray frames (a still image, or frames of a video: see detect_in_video / load_source).
Out: Detection: the axis-aligned box around the keys in frame pixels (from the back end of the keys to
     the front edge of the white keys, leftmost to rightmost key, clipped to the frame; x2/y2 exclusive,
     the convention of Piano_render's box.txt and of audeo_video.crop_keyboard), the key area's four
     corners, the camera side (`far_side`: the camera is beyond the keyboard, the image turned 180
     degrees: treble on the left, the player and the white keys' front edge at the top; crop with
     far_side=True), angle, score and the black keys counted. Keyboard_detect.py is its command line.

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
rendered (audeo_render) scenes (both with a white body) came out more than 1% off; the side is right in all of them.

Code: every tuning number is a field of `Params` (one block below). The work is a chain of pure steps,
each returning a small frozen dataclass:
    black_key_blobs -> BlackKeys     dark elongated blobs of the (downscaled) working image
    key_rows        -> [blob ids]    RANSAC rows of similar blobs, the best few
    then for every row, in measure_keyboard (the best-scoring keyboard wins):
    key_row         -> Row           the row's axes, its black keys, their gap scale, ends and slant
    key_levels      -> Levels        the image resampled along the row; white, black, half-way level
    orientation     -> Orientation   which side of the black keys is the front (the player's)
    trim_outer_keys -> Row           without "black keys" at the ends that have no white in front
    front_and_back  -> Edges         the white keys' front edge and the keys' back end, v(u)
    keyboard_ends   -> Ends          the image-left and image-right ends, u(v)
    -> Fit                           corners, side, angle and score, working pixels
Coordinates of a row: u runs along the black-key row (image-rightwards), v across it (image-downwards),
both in working pixels from the row's centre. Lines are (knots, values) pairs for np.interp: v(u) for
edges, u(v) for ends.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from audeo_io import AudeoError


# ----------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class Params:
    """Every tuning number of the detector. Lengths are in working pixels unless named after a unit:
    `_keys` = white-key widths, `_len` = black-key lengths (the row's median), `_frac` = a fraction."""
    # -- input
    n_samples: int = 25              # frames sampled across a video for the temporal median
    work_width: int = 960            # images wider than this are analysed at this width (boxes in full pixels)
    min_image_px: int = 16           # a smaller image (either side) has no keyboard to find
    min_box_px: tuple = (8, 4)       # a key area found smaller than this (width, height) is no keyboard
    # -- black-key blobs
    closing_frac: float = 1 / 16     # horizontal closing length (the local white level), of the working width
    min_closing_px: int = 5
    blur_px: int = 3                 # Gaussian blur against noise before thresholding
    min_contrast: int = 30           # grey levels a black key must lie below the local white level (at least)
    contrast_frac: float = 0.3       # ... and at least this fraction of the image's strong contrast,
    contrast_pct: float = 99         # ... the depth below white at this percentile
    bridge_open_px: int = 3          # vertical opening: thin horizontal bridges (shadowed key backs) would
    #                                  join neighbouring keys into one blob
    min_blob_area: int = 6
    min_blob_height: int = 5
    min_elongation: float = 2.5      # blob length / width
    min_blob_width: float = 1.5
    blob_fill: tuple = (0.55, 1.4)   # pixels / (length x width): a solid bar, not a thin curve
    max_blob_tilt: float = 40.0      # degrees from vertical (the row may be tilted by max_angle too)
    # -- the row of black keys (RANSAC through blob centroids)
    max_angle: float = 30.0          # degrees: the keyboard row may be tilted this much from horizontal
    min_black_keys: int = 8          # fewer black keys in the best row -> "no keyboard"
    ransac_iters: int = 1500
    seed: int = 0
    pair_len_log: float = 0.4        # a RANSAC pair: |log| length ratio below this ...
    pair_width_log: float = 0.5      # ... and |log| width ratio below this
    inlier_dist_len: float = 0.2     # inliers lie within this many blob lengths of the pair's line ...
    similar_len_log: float = 0.3     # ... and have a similar length (|log ratio|; also in the refit) ...
    similar_width_log: float = 0.6   # ... and width
    max_hypotheses: int = 200        # best RANSAC lines looked at
    max_row_overlap: float = 0.5     # a row sharing more of its blobs with a better one is the same row
    rows_to_try: int = 4             # distinct rows measured as keyboards
    refine_passes: int = 2           # least-squares refits of a row
    refine_dist_len: float = 0.18    # blob lengths from the refitted line
    min_refine_keys: int = 3
    same_key_width: float = 0.6      # blobs closer than this many black-key widths along the row are one key
    # -- the gap pattern (gaps between neighbouring black keys, in small gaps)
    small_gap: tuple = (0.8, 1.22)   # within a group of two or three
    large_gap: tuple = (1.3, 1.9)    # across E-F and B-C (about 1.5)
    missing_gap: tuple = (1.9, 3.6)  # a key hidden by a hand leaves a gap of about 2..3.5 small ones
    large_to_small: float = 1.5
    min_gaps: int = 4
    gap_try_decimals: int = 1        # candidate small gaps: the gaps rounded to this many decimals
    scale_refits: int = 3            # classify the gaps, refit the scale along the row, repeat
    min_small_gaps: int = 3
    min_large_gaps: int = 1
    min_scale_fit_gaps: int = 6      # gaps needed to fit a linear scale change (perspective)
    max_perspective: float = 2       # the small gap changes at most by this factor along the row
    missing_weight: float = 0.5      # a missing-key gap counts half as explained
    large_share: tuple = (0.4, 0.3)  # large / (small + large) gaps: ideal (3 small : 2 large), tolerance
    black_to_gap: tuple = (0.5, 0.35)  # black-key width / small gap: ideal, tolerance
    width_weight: float = 0.5        # quality = explained x balance x (1 - w + w x width match)
    # -- robust line fits along the keyboard
    outlier_sigmas: float = 3.0      # points beyond this many robust sigmas of the Theil-Sen line are dropped,
    min_outlier_px: float = 1.0      # ... but never closer than this
    # -- sub-pixel edges (the half-way rule)
    edge_level_samples: int = 3      # samples on either side that give the inside and outside levels
    edge_search_px: int = 3          # the half-way crossing may lie this much further in
    # -- levels and the resampled image
    black_end_pct: float = 2         # a black key's ends: this percentile of its pixels from either end
    rect_reach_len: float = 2.6      # the resampled image reaches this far from the row (white keys do not)
    rect_margin_keys: float = 8      # ... and this far beyond the outermost black keys
    level_inner_len: float = 0.2     # the levels come from the black keys' band minus this at both ends
    white_pct: float = 85            # white level: this percentile of that band
    black_pct: float = 10            # black level
    # -- orientation: bright, finely lined white continues past the black keys at the front
    continuation_len: tuple = (0.12, 0.4)  # the strip looked at, past the black keys' ends
    bright_frac: float = 0.6         # bright: past this fraction from the black to the white level
    full_texture: float = 0.03       # line texture (/ contrast) that counts fully
    texture_weight: float = 0.4      # side score = bright x (1 - w + w x texture)
    min_side_score: float = 0.5      # below it on both sides: no white band in front of the keys
    trim_width_frac: float = 0.25    # outer keys: columns within this many black-key widths of the centre
    trim_depth_len: tuple = (0.15, 0.4)   # ... looked at this far in front of the black keys
    full_88_match: float = 0.9       # share of gaps matching the 88-key layout to use its ends
    # -- front and back edges, per chunk along the row
    chunk_keys: float = 1.5          # chunk width in white keys ...
    n_chunks: tuple = (4, 48)        # ... within these counts
    front_pct: float = 50            # profile across a chunk: median (hands cover less than half a chunk)
    back_pct: float = 70             # ... a higher one at the back, where black keys cover much of a chunk
    outside_frac: float = 0.5        # more of it outside the picture than this: outside (a profile sample
    #                                  across a chunk; the levels' band: no keyboard to measure)
    front_start_len: float = 0.1     # walk to the front from this far past the black keys' front ends
    max_key_to_black: float = 2.1    # white keys measured 1.5-1.6 black lengths long: look no further
    texture_window_keys: float = 2   # key-line texture: median over the chunk widened by this on both sides
    line_ref_len: tuple = (0.1, 0.35)   # reference key-line texture just in front of the black keys
    plain_from_len: float = 1.3      # a plain key slip is looked for from here (from the back end) ...
    plain_level: float = 0.35        # ... where the texture falls below this fraction of the reference
    min_line_texture: float = 0.02   # reference texture (/ contrast) needed to trust the key lines
    lines_stop_len: float = 0.12     # the key lines stopping this much before a drop: a pale key slip
    back_start_len: float = 0.25     # walk to the back from this far in front of the black keys' back ends,
    back_start_px: int = 2           # ... at least this far
    back_search_len: float = 0.6     # ... for at most this far
    # -- left and right ends
    slant_at_keys: float = 1.5       # the keys' slant is read this far beyond the outermost black key
    strip_frac: float = 0.06         # strips across the key area for the end profiles: height / key length,
    min_strip_px: float = 2.0        # ... at least this
    end_margin_frac: float = 0.08    # strips keep this fraction of the key length from the black keys' ends
    edge_gap_px: float = 1.5         # ... and this far from the front and back edges
    end_walk_keys: float = 6.0       # walk at most this far out from the last black key
    min_end_points: int = 3
    max_end_overhang: float = 2.4    # white keys beyond the outermost black key: at most ~1.9 keys (C8)
    frame_hit_frac: float = 0.3      # this share of the strips cut by the frame: the keys run out of it
    model_beyond_keys: float = 0.6   # the frame cut further out than the 88-key end: a pale cheek
    end_back_keys: float = 0.7       # among the black keys: start this far inside the front part's end,
    end_step_off_keys: float = 0.5   # ... step off a dark key side for at most this,
    end_walk_black_keys: float = 2.0  # ... and walk at most this far out
    black_band_inner: float = 0.2    # a black key between: rows of the black keys' band minus this share,
    black_gap_keys: float = 0.6      # ... from this far past the last black key,
    black_run_keys: tuple = (0.3, 1.0)  # ... a dark run this long
    pale_ref_keys: float = 2         # pale end: the keys' white measured over this many keys inside,
    pale_ref_pct: float = 75         # ... at this percentile;
    pale_drop: tuple = (6.0, 0.03)   # ... it gives way when below by max(grey levels, fraction),
    pale_run_keys: float = 0.6       # ... for this long (not a line between keys),
    pale_min_run_px: int = 2
    pale_walk_keys: float = 6.0      # ... within this far
    corner_iters: int = 4            # fixed-point iterations intersecting an end u(v) with an edge v(u)
    # -- score: product of factors floor + weight x measure (1 at best)
    score_side: tuple = (0.5, 0.5, 2)     # floor, weight, gain on the side-score difference
    score_contrast: tuple = (0.6, 0.4, 120)   # floor, weight, grey levels (white - black) that count fully
    score_count: tuple = (0.7, 0.3, 20)   # floor, weight, black keys that count fully
    no_front_factor: float = 0.8     # the front edge was not seen (the usual proportion was used)


PARAMS = Params()
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

# Keyboard geometry (facts, not tuning), in white-key widths. Black-key centres within a group of two or
# three are about 7/6 white keys apart, across E-F and B-C about 7/4.
SMALL_GAP = 7 / 6
BLACK_LENGTH_TO_KEY = 95 / 150       # black key length / white key length (real piano: 95 / 150 mm)
_FAR = 1e9                           # knots of the straight lines kept as (knots, values) for np.interp
_KNOTS = np.array([-_FAR, _FAR])
_KNOTS.flags.writeable = False


def _black_keys_88():
    """Centres (white-key widths from A0's left edge) of the 36 black keys of an 88-key piano, bass first
    (the same layout as audeo_render's: the 12 keys of an octave equally spaced at the back)."""
    centres = []
    for pitch in range(21, 109):
        if pitch % 12 in (1, 3, 6, 8, 10):
            centres.append(7 * (pitch // 12) - 12 + (pitch % 12 + 0.5) * 7 / 12)
    return np.array(centres)


BLACK_88 = _black_keys_88()
GAPS_88 = np.diff(BLACK_88) > 1.4                     # True where a large gap (E-F or B-C) lies between
END_88 = (BLACK_88[0], 52 - BLACK_88[-1])             # white keys from the outer black keys to the ends


def resolve_params(params=None):
    """Params from None (the defaults), a Params, or a dict overriding some of its fields."""
    if params is None:
        return PARAMS
    if isinstance(params, Params):
        return params
    unknown = set(params) - {f.name for f in dataclasses.fields(Params)}
    if unknown:
        raise AudeoError(f"unknown keyboard detection parameter(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(PARAMS, **params)


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


def sample_video_frames(path, n_samples=PARAMS.n_samples):
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


# ----------------------------------------------------------------------------- step: black-key blobs

@dataclass(frozen=True)
class BlackKeys:
    """Black-key candidates of the working image (arrays of one value per blob)."""
    cx: np.ndarray       # centroid
    cy: np.ndarray
    length: np.ndarray   # along the blob's major axis
    width: np.ndarray
    axis: np.ndarray     # unit major axis (2, n), pointing down
    labels: np.ndarray   # label image
    ids: np.ndarray      # label id of each blob


def black_key_blobs(gray, p=PARAMS):
    """Dark, elongated, roughly vertical blobs well below the local white level (working image)."""
    labels, n, ok = _dark_components(gray, p)
    if not ok.any():
        return BlackKeys(*(np.zeros(0) for _ in range(4)), np.zeros((2, 0)), labels, np.zeros(0, int))
    cx, cy, length, width, axis, fill = _component_shapes(labels, n, ok)
    tilt = np.degrees(np.arccos(np.clip(axis[1], -1, 1)))
    keep = ok & (length >= p.min_elongation * width) & (width >= p.min_blob_width) & \
        (fill > p.blob_fill[0]) & (fill < p.blob_fill[1]) & (tilt <= p.max_blob_tilt)
    ids = np.flatnonzero(keep)
    return BlackKeys(cx[ids], cy[ids], length[ids], width[ids], axis[:, ids], labels, ids)


def _dark_components(gray, p):
    """(labels, count, big enough?) of the connected components well below the local white level."""
    w = gray.shape[1]
    size = max(p.min_closing_px, int(round(w * p.closing_frac)) | 1)
    blurred = cv2.GaussianBlur(gray, (p.blur_px, p.blur_px), 0)
    line = cv2.getStructuringElement(cv2.MORPH_RECT, (size, 1))
    white = cv2.morphologyEx(blurred, cv2.MORPH_CLOSE, line)      # bright on both sides within `size`
    dark = cv2.erode(blurred, line)
    depth = white.astype(np.int16) - blurred
    thr = max(p.min_contrast, p.contrast_frac * np.percentile(depth, p.contrast_pct))
    nearer_dark = 2 * blurred.astype(np.int16) < white.astype(np.int16) + dark
    mask = ((depth > thr) & nearer_dark).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN,
                            cv2.getStructuringElement(cv2.MORPH_RECT, (1, p.bridge_open_px)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    ok = (stats[:, cv2.CC_STAT_AREA] >= p.min_blob_area) & (stats[:, cv2.CC_STAT_HEIGHT] >= p.min_blob_height)
    ok[0] = False                                                  # the background
    return labels, n, ok


def _component_shapes(labels, n, ok):
    """Centroid, length, width, unit major axis (pointing down) and fill of every component at once
    (second moments; values for the components not `ok` are meaningless)."""
    w = labels.shape[1]
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
    return mx, my, length, width, np.stack([ax, ay]), fill


def _blob_pixels(blobs, m):
    """(rows, cols) of blob m, looking only inside its neighbourhood."""
    r = int(blobs.length[m]) + 3
    x0, y0 = max(0, int(blobs.cx[m]) - r), max(0, int(blobs.cy[m]) - r)
    sub = blobs.labels[y0:int(blobs.cy[m]) + r + 1, x0:int(blobs.cx[m]) + r + 1]
    yy, xx = np.nonzero(sub == blobs.ids[m])
    return yy + y0, xx + x0


# ----------------------------------------------------------------------------- step: candidate rows

def key_rows(blobs, p=PARAMS):
    """RANSAC lines through blob centroids: the best few distinct rows of similar blobs (index arrays)."""
    if len(blobs.cx) < p.min_black_keys:
        return []
    inliers = _ransac_inliers(blobs, p)
    if inliers is None:
        return []
    counts = inliers.sum(1)
    rows, used = [], []
    for k in np.argsort(-counts)[:p.max_hypotheses]:
        if counts[k] < p.min_black_keys:
            break
        members = np.flatnonzero(inliers[k])
        if any(len(np.intersect1d(members, u)) > p.max_row_overlap * len(members) for u in used):
            continue
        used.append(members)
        members = _refine_row(blobs, members, p)
        if len(members) >= p.min_black_keys:
            rows.append(members)
        if len(rows) >= p.rows_to_try:
            break
    return rows


def _ransac_inliers(blobs, p):
    """(hypotheses x blobs) inlier matrix of lines through random pairs of similar blobs, or None."""
    n = len(blobs.cx)
    rng = np.random.default_rng(p.seed)
    pts = np.stack([blobs.cx, blobs.cy], 1)
    i = rng.integers(0, n, p.ransac_iters)
    j = rng.integers(0, n, p.ransac_iters)
    same = (i != j) & (np.abs(np.log(blobs.length[i] / blobs.length[j])) < p.pair_len_log) & \
           (np.abs(np.log(blobs.width[i] / blobs.width[j])) < p.pair_width_log)
    d = pts[j] - pts[i]
    ang = (np.degrees(np.arctan2(d[:, 1], d[:, 0])) + 90) % 180 - 90
    same &= np.abs(ang) <= p.max_angle
    i, j, d = i[same], j[same], d[same]
    if len(i) == 0:
        return None
    dirs = d / np.linalg.norm(d, axis=1, keepdims=True)
    normals = np.stack([-dirs[:, 1], dirs[:, 0]], 1)
    dist = np.abs(np.einsum("kd,knd->kn", normals, pts[None, :, :] - pts[i][:, None, :]))
    ref_len = (blobs.length[i] + blobs.length[j]) / 2
    ref_w = (blobs.width[i] + blobs.width[j]) / 2
    return (dist < p.inlier_dist_len * ref_len[:, None]) & \
        (np.abs(np.log(blobs.length[None, :] / ref_len[:, None])) < p.similar_len_log) & \
        (np.abs(np.log(blobs.width[None, :] / ref_w[:, None])) < p.similar_width_log)


def _refine_row(blobs, members, p):
    """Least-squares line through the members, then re-select similar blobs near it; one blob per key."""
    pts = np.stack([blobs.cx, blobs.cy], 1)
    for _ in range(p.refine_passes):
        slope, intercept = np.polyfit(pts[members, 0], pts[members, 1], 1)
        resid = pts[:, 1] - (slope * pts[:, 0] + intercept)
        med_len = np.median(blobs.length[members])
        med_w = np.median(blobs.width[members])
        near = (np.abs(resid) < p.refine_dist_len * med_len) & \
               (np.abs(np.log(blobs.length / med_len)) < p.similar_len_log) & \
               (np.abs(np.log(blobs.width / med_w)) < p.similar_width_log)
        if near.sum() < p.min_refine_keys:
            break
        members = np.flatnonzero(near)
    # one blob per position (a key split by a hand or a highlight counts once: the longest piece)
    along = (pts[members, 0] + slope * pts[members, 1]) / math.hypot(1, slope)
    order = np.argsort(along)
    members, along = members[order], along[order]
    keep = [0]
    for k in range(1, len(members)):
        if along[k] - along[keep[-1]] < p.same_key_width * np.median(blobs.width[members]):
            if blobs.length[members[k]] > blobs.length[members[keep[-1]]]:
                keep[-1] = k
        else:
            keep.append(k)
    return members[keep]


# ----------------------------------------------------------------------------- the gap pattern

def _classify_gaps(r, p):
    """Gaps in units of the small gap -> (small, large, missing-key) masks."""
    small = (r > p.small_gap[0]) & (r < p.small_gap[1])
    large = (r > p.large_gap[0]) & (r < p.large_gap[1])
    missing = (r >= p.missing_gap[0]) & (r < p.missing_gap[1])
    return small, large, missing


def _gap_pattern(u, width, p=PARAMS):
    """How well sorted positions `u` look like black keys: (quality 0..1, the small gap as a linear function
    of u (np.polyval coefficients: perspective makes one end larger), details)."""
    u = np.asarray(u, float)
    gaps = np.diff(u)
    mids = (u[1:] + u[:-1]) / 2
    if len(gaps) < p.min_gaps:
        return 0.0, None, {}
    best = (0.0, None, {})
    for trial in np.unique(np.round(gaps[gaps > 0], p.gap_try_decimals)):   # each gap as the small one
        scale = _fit_gap_scale(gaps, mids, trial, p)
        r = gaps / np.polyval(scale, mids)
        small, large, missing = _classify_gaps(r, p)
        n_s, n_l, n_m = int(small.sum()), int(large.sum()), int(missing.sum())
        if n_s < p.min_small_gaps or n_l < p.min_large_gaps:
            continue
        explained = (n_s + n_l + p.missing_weight * n_m) / len(gaps)
        ideal, tol = p.large_share
        balance = float(np.clip(1 - abs(n_l / (n_s + n_l) - ideal) / tol, 0, 1))
        wr = float(np.median(np.asarray(width) / np.polyval(scale, u)))     # black width / small gap
        ideal, tol = p.black_to_gap
        q = explained * balance * (1 - p.width_weight + p.width_weight *
                                   float(np.clip(1 - abs(wr - ideal) / tol, 0, 1)))
        if q > best[0]:
            best = (q, scale, dict(n_small=n_s, n_large=n_l, n_missing=n_m, width_ratio=round(wr, 3),
                                   ratio=round(float(np.median(r[large]) / np.median(r[small])), 3)))
    return best


def _fit_gap_scale(gaps, mids, trial, p):
    """The small gap along the row (np.polyval coefficients), starting from a constant `trial`: classify
    the gaps, refit (a line when perspective allows), repeat."""
    scale = np.array([0.0, trial])
    for _ in range(p.scale_refits):
        small, large, _ = _classify_gaps(gaps / np.polyval(scale, mids), p)
        if small.sum() < p.min_small_gaps or large.sum() < p.min_large_gaps:
            break
        unit = np.where(small, gaps, gaps / p.large_to_small)
        sel = small | large
        new = np.array([0.0, np.median(unit[sel])])
        if np.ptp(mids[sel]) > 0 and sel.sum() >= p.min_scale_fit_gaps:
            fit = np.polyfit(mids[sel], unit[sel], 1)
            ends = np.polyval(fit, [mids[0], mids[-1]])
            if ends.min() > 0 and ends.max() / ends.min() <= p.max_perspective:
                new = fit
        scale = new
    return scale


# ----------------------------------------------------------------------------- 1-D helpers

def _at(line, x):
    """A (knots, values) line's value at x, a Python float."""
    return float(np.interp(x, *line))


def _line(u, v, p=PARAMS):
    """A straight line v(u) as (knots, values) for np.interp: Theil-Sen (median of pairwise slopes),
    then a least-squares refit without the points far from it (hands, reflections)."""
    u, v = np.asarray(u, float), np.asarray(v, float)
    if len(u) < 2 or np.ptp(u) < 1e-6:
        return _KNOTS, np.array([np.median(v)] * 2)
    i, j = np.triu_indices(len(u), 1)
    du = u[j] - u[i]
    ok = np.abs(du) > 1e-6
    a = float(np.median((v[j] - v[i])[ok] / du[ok]))
    b = float(np.median(v - a * u))
    r = np.abs(v - (a * u + b))
    ok = r <= max(p.min_outlier_px, p.outlier_sigmas * 1.4826 * np.median(r))   # 1.4826 MAD = 1 sigma
    if ok.sum() >= 2 and np.ptp(u[ok]) > 1e-6:
        a, b = np.polyfit(u[ok], v[ok], 1)
    return _KNOTS, a * _KNOTS + b


def _const(v):
    return _KNOTS, np.array([float(v)] * 2)


def _fit_points(pts, p):
    """Line through (u, v) points (constant below three of them), or None without points."""
    if not pts:
        return None
    arr = np.array(pts, float)
    return _line(arr[:, 0], arr[:, 1], p) if len(arr) >= 3 else _const(np.median(arr[:, 1]))


def _nanpct(a, q, axis):
    """Percentile `q` along `axis` ignoring NaN (nearest rank; NaN where all are NaN). Fast: one sort."""
    a = np.sort(np.moveaxis(np.asarray(a, np.float32), axis, -1), axis=-1)     # NaN sort last
    n = (~np.isnan(a)).sum(-1)
    idx = np.clip(np.round((n - 1) * q / 100.0).astype(int), 0, a.shape[-1] - 1)
    out = np.take_along_axis(a, idx[..., None], -1)[..., 0]
    out[n == 0] = np.nan
    return out


def _odd_kernel(width):
    """Blur length about `width`, odd and at least 3 (a centre and a side each way)."""
    return max(3, int(round(width)) | 1)


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


def _edge_at(profile, k_out, step, p=PARAMS):
    """Sub-pixel boundary near the first outside index k_out (walking by `step` = +-1): where the profile
    crosses half-way between the inside level (a few samples back) and the outside level just past it."""
    n, m = len(profile), p.edge_level_samples
    k_in = k_out - step
    if not 0 <= k_in < n or np.isnan(profile[k_in]):
        return float(k_out - step / 2)
    inside = profile[[i for i in range(k_in - (m - 1) * step, k_in + step, step) if 0 <= i < n]]
    outside = profile[[i for i in range(k_out, k_out + m * step, step) if 0 <= i < n]]
    inside, outside = inside[~np.isnan(inside)], outside[~np.isnan(outside)]
    if not len(outside) or not len(inside):
        return float(k_out - step / 2)
    thr = (float(np.median(inside)) + float(outside.min())) / 2
    k = k_out
    while 0 <= k - step < n and not np.isnan(profile[k - step]) and profile[k - step] < thr and \
            abs(k - step - k_out) < p.edge_search_px:
        k -= step
    if not 0 <= k - step < n:
        return float(k - step / 2)
    a, b = profile[k - step], profile[k]
    if np.isnan(a) or np.isnan(b) or a == b:
        return float(k - step / 2)
    return float(k - step + float(np.clip((a - thr) / (a - b), 0, 1)) * step)


# ----------------------------------------------------------------------------- step: the row's geometry

@dataclass(frozen=True)
class Axes:
    """The row's coordinates: u along the black-key row (image-rightwards), v across it (image-downwards),
    from `origin` (working pixels)."""
    origin: np.ndarray
    e_u: np.ndarray      # unit vectors in the image
    e_v: np.ndarray

    @classmethod
    def along(cls, cx, cy, angle):
        return cls(np.array([cx, cy], float), np.array([math.cos(angle), math.sin(angle)]),
                   np.array([-math.sin(angle), math.cos(angle)]))

    def to_uv(self, x, y):
        d = np.stack([np.asarray(x, float) - self.origin[0], np.asarray(y, float) - self.origin[1]], -1)
        return d @ self.e_u, d @ self.e_v

    def to_xy(self, u, v):
        u, v = np.asarray(u, float), np.asarray(v, float)
        return self.origin[0] + u * self.e_u[0] + v * self.e_v[0], self.origin[1] + u * self.e_u[1] + v * self.e_v[1]

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


@dataclass(frozen=True)
class Row:
    """A row of black keys, sorted along u. Trimming drops keys but keeps the fields measured on the
    whole row (span, gap scale, ends, length, slant)."""
    axes: Axes
    angle: float           # radians, of the row from the image x axis (positive: clockwise)
    blob_ids: np.ndarray   # indices into BlackKeys
    u: np.ndarray          # black-key centres
    v: np.ndarray
    width: np.ndarray      # black-key widths
    span: float            # u from the first to the last black key of the whole row
    gap_scale: np.ndarray  # the small gap (np.polyval coefficients of u)
    quality: float         # how well the gaps fit the keyboard's pattern, 0..1
    pattern: dict
    ends_minus: tuple      # line v(u) through the black keys' ends towards -v
    ends_plus: tuple       # ... towards +v
    black_len: float       # the black keys' median length
    v_minus: float         # median v of their ends towards -v
    v_plus: float          # ... towards +v
    slant: tuple           # line du/dv(u) of the keys' direction (perspective shears the keyboard)

    def white_at(self, u):
        """One white key's width at u."""
        return float(np.polyval(self.gap_scale, u)) / SMALL_GAP

    def white_mid(self):
        """One white key's width in the middle of the black keys."""
        return self.white_at(float(np.median(self.u)))


def key_row(blobs, members, p=PARAMS):
    """The row of black keys `members` in its own axes, or None when its gaps are no keyboard's."""
    xs, ys = blobs.cx[members], blobs.cy[members]
    slope, intercept = np.polyfit(xs, ys, 1)
    angle = math.atan(slope)
    axes = Axes.along(xs.mean(), slope * xs.mean() + intercept, angle)
    u, v = axes.to_uv(xs, ys)
    order = np.argsort(u)
    members, u, v = members[order], u[order], v[order]
    quality, scale, pattern = _gap_pattern(u, blobs.width[members], p)
    if quality <= 0:
        return None
    v_lo, v_hi = _black_key_extents(blobs, members, axes, p)
    bx, by = blobs.axis[:, members]
    ax_u, ax_v = axes.to_uv(axes.origin[0] + bx, axes.origin[1] + by)
    return Row(axes=axes, angle=angle, blob_ids=members, u=u, v=v, width=blobs.width[members],
               span=float(u[-1]) - float(u[0]), gap_scale=scale, quality=quality, pattern=pattern,
               ends_minus=_line(u, v_lo, p), ends_plus=_line(u, v_hi, p),
               black_len=float(np.median(np.array(v_hi) - np.array(v_lo))),
               v_minus=float(np.median(v_lo)), v_plus=float(np.median(v_hi)),
               slant=_line(u, ax_u / np.where(np.abs(ax_v) < 1e-6, 1e-6, ax_v), p))


def _black_key_extents(blobs, members, axes, p):
    """Each black key's two ends across the row (pixel edges: +-half a pixel past the outer centres)."""
    lo, hi = [], []
    for m in members:
        yy, xx = _blob_pixels(blobs, m)
        _, vv = axes.to_uv(xx, yy)
        lo.append(np.percentile(vv, p.black_end_pct) - 0.5)
        hi.append(np.percentile(vv, 100 - p.black_end_pct) + 0.5)
    return lo, hi


def _outer_columns(row, levels):
    """Columns of `levels` at the first and the last black key."""
    return int(np.searchsorted(levels.us, row.u[0])), int(np.searchsorted(levels.us, row.u[-1]))


# ----------------------------------------------------------------------------- step: levels

@dataclass(frozen=True)
class Levels:
    """The working image resampled along the row, and the keys' grey levels."""
    image: np.ndarray      # image[iv, iu] at v = vs[iv], u = us[iu]; NaN outside the picture
    us: np.ndarray
    vs: np.ndarray
    white: float
    black: float
    threshold: float       # half-way between black and white: a pixel past it belongs to the keys


def key_levels(gray, row, p=PARAMS):
    """Resample the image along the row; white and black levels from the black keys' band (None: too
    little contrast or mostly outside the picture)."""
    white_w = row.white_mid()
    reach = p.rect_reach_len * row.black_len
    u_first, u_last = float(row.u[0]), float(row.u[-1])
    image, us, vs = row.axes.rectify(gray, u_first - p.rect_margin_keys * white_w,
                                     u_last + p.rect_margin_keys * white_w, -reach, reach)
    i0, i1 = int(np.searchsorted(us, row.u[0])), int(np.searchsorted(us, row.u[-1]))
    inner = (vs > row.v_minus + p.level_inner_len * row.black_len) & \
            (vs < row.v_plus - p.level_inner_len * row.black_len)
    core = image[:, i0:i1 + 1][inner]
    if core.size == 0 or np.isnan(core).mean() > p.outside_frac:
        return None
    white = float(np.nanpercentile(core, p.white_pct))
    black = float(np.nanpercentile(core, p.black_pct))
    if white - black < p.min_contrast:
        return None
    return Levels(image, us, vs, white, black, black + 0.5 * (white - black))


# ----------------------------------------------------------------------------- step: orientation

@dataclass(frozen=True)
class Orientation:
    front: int             # +1: the front (player's side) is towards +v, -1: towards -v
    confidence: float      # difference of the two sides' scores
    black_front: tuple     # line v(u) through the black keys' front ends
    black_back: tuple      # ... and their back ends


def orientation(row, levels, p=PARAMS):
    """The front is where bright, finely lined white continues past the black keys; a pale piano body
    behind the keys is bright too, but plain. None when neither side shows a white band."""
    scores = {}
    for sign in (+1, -1):
        bright, texture = _continuation(row, levels, sign, p)
        scores[sign] = bright * (1 - p.texture_weight + p.texture_weight * min(1.0, texture / p.full_texture))
    front = +1 if scores[+1] >= scores[-1] else -1
    if max(scores.values()) < p.min_side_score:
        return None
    return Orientation(front=front, confidence=abs(scores[+1] - scores[-1]),
                       black_front=row.ends_plus if front > 0 else row.ends_minus,
                       black_back=row.ends_minus if front > 0 else row.ends_plus)


def _continuation(row, levels, sign, p):
    """(bright fraction, line texture) of the strip just past the black keys' ends on side `sign`."""
    i0, i1 = _outer_columns(row, levels)
    cols = np.arange(i0, i1 + 1)
    end_v = np.interp(levels.us[cols], *(row.ends_plus if sign > 0 else row.ends_minus))
    near = end_v + sign * p.continuation_len[0] * row.black_len
    far = end_v + sign * p.continuation_len[1] * row.black_len
    lo, hi = np.minimum(near, far)[None, :], np.maximum(near, far)[None, :]
    sel = (levels.vs[:, None] > lo) & (levels.vs[:, None] < hi)
    rows = sel.any(1)
    strip = np.where(sel, levels.image[:, cols], np.nan)[rows]
    if strip.size == 0 or np.isnan(strip).all():
        return 0.0, 0.0
    contrast = max(levels.white - levels.black, 1.0)
    with np.errstate(all="ignore"):
        bright = float(np.nanmean(strip[sel[rows]] > levels.black + p.bright_frac * contrast))
        # the thin lines between white keys, one per key, run on in front of the black keys
        filled = np.where(np.isnan(strip), np.nanmean(strip), strip).astype(np.float32)
        hp = np.abs(filled - cv2.blur(filled, (_odd_kernel(row.white_mid()), 1)))
        texture = float(np.nanmean(np.where(np.isnan(strip), np.nan, hp)) / contrast)
    return bright, texture


def trim_outer_keys(row, levels, orient, p=PARAMS):
    """The row without outermost "black keys" that have no white keys in front of them (the dark rim or
    cheek at a keyboard's end passes the shape test too); at least min_black_keys + 1 stay."""
    half_w = max(1, int(round(p.trim_width_frac * np.median(row.width))))

    def white_in_front(uk):
        k = int(round(uk - levels.us[0]))
        depth = (levels.vs - np.interp(uk, *orient.black_front)) * orient.front
        vals = levels.image[(depth > p.trim_depth_len[0] * row.black_len) &
                            (depth < p.trim_depth_len[1] * row.black_len), max(0, k - half_w):k + half_w + 1]
        vals = vals[~np.isnan(vals)]
        return len(vals) == 0 or float(np.median(vals)) >= levels.threshold

    lo, hi = 0, len(row.u) - 1
    while hi - lo >= p.min_black_keys and not white_in_front(row.u[lo]):
        lo += 1
    while hi - lo >= p.min_black_keys and not white_in_front(row.u[hi]):
        hi -= 1
    keep = slice(lo, hi + 1)
    return dataclasses.replace(row, blob_ids=row.blob_ids[keep], u=row.u[keep], v=row.v[keep],
                               width=row.width[keep])


# ----------------------------------------------------------------------------- step: front and back edges

@dataclass(frozen=True)
class Edges:
    back: tuple            # line v(u): the keys' back end
    front: tuple           # line v(u): the white keys' front edge
    front_found: bool      # False: no front edge seen, the usual key proportion was used


def front_and_back(row, levels, orient, p=PARAMS):
    """The white keys' front edge and the keys' back end: per narrow chunk along the row, the first
    drop of the brightness profile across it; then a robust line fit (perspective, hands)."""
    white_w = row.white_mid()
    n_chunks = int(np.clip(round(row.span / (p.chunk_keys * white_w)), *p.n_chunks))
    i0, i1 = _outer_columns(row, levels)
    bounds = np.linspace(i0, i1 + 1, n_chunks + 1).round().astype(int)
    texture = _line_texture(levels, white_w)
    front_pts, back_pts = [], []
    for c0, c1 in zip(bounds[:-1], bounds[1:]):
        if c1 - c0 < 2:
            continue
        uc = float(levels.us[c0:c1].mean())
        prof_front, prof_back = _chunk_profiles(levels.image[:, c0:c1], p)
        v_front = _front_point(prof_front, texture, (c0, c1), uc, row, levels, orient, white_w, p)
        if v_front is not None:
            front_pts.append((uc, v_front))
        v_back = _back_point(prof_back, uc, row, levels, orient, p)
        if v_back is not None:
            back_pts.append((uc, v_back))
    front, back = _fit_points(front_pts, p), _fit_points(back_pts, p)
    if back is None:                                  # pale behind: the black keys' back ends
        back = orient.black_back
    front_found = front is not None
    if not front_found:                               # no visible front edge: the usual proportion
        front = (back[0], np.asarray(back[1]) + orient.front * row.black_len / BLACK_LENGTH_TO_KEY)
    return Edges(back=back, front=front, front_found=front_found)


def _line_texture(levels, white_w):
    """|image - its blur along u over a white key|: high where the thin lines between white keys run."""
    nan = np.isnan(levels.image)
    filled = np.where(nan, levels.white, levels.image).astype(np.float32)
    texture = np.abs(filled - cv2.blur(filled, (_odd_kernel(white_w), 1)))
    texture[nan] = np.nan
    return texture


def _chunk_profiles(chunk, p):
    """Profiles across the row of one chunk: (for the front edge, for the back end)."""
    prof_front = _nanpct(chunk, p.front_pct, 1)
    prof_back = _nanpct(chunk, p.back_pct, 1)
    outside = np.isnan(chunk).mean(1) > p.outside_frac
    prof_front[outside] = np.nan
    prof_back[outside] = np.nan
    return prof_front, prof_back


def _front_point(profile, texture, cols, uc, row, levels, orient, white_w, p):
    """v of the white keys' front edge in one chunk: the first drop walking to the front from the black
    keys, or where the key lines stop before it (a pale key slip), or the frame; None if not seen."""
    black_len, front, vs = row.black_len, orient.front, levels.vs
    v_free = _at(orient.black_front, uc)
    v_back = _at(orient.black_back, uc)
    k_free = int(np.clip(np.searchsorted(vs, v_free), 0, len(vs) - 1))
    k0 = int(np.clip(k_free + front * max(1, int(p.front_start_len * black_len)), 0, len(vs) - 1))
    limit = p.max_key_to_black * black_len - abs(v_free - v_back) - p.front_start_len * black_len
    k, why = _first_drop(profile, k0, front, limit, levels.threshold)
    k_tex, plain = _key_lines_stop(texture, cols, v_free, v_back, row, levels, orient, white_w, p)
    if why == "drop":
        # ... unless the key lines stopped well before it, with plain (key slip) all the way
        if k_tex is not None and (k - k_tex) * front > p.lines_stop_len * black_len and \
                plain[min(k, k_tex):max(k, k_tex)].all():
            return vs[0] + k_tex - front * 0.5
        return vs[0] + _edge_at(profile, k, front, p)
    if why == "frame":                                # cut by the frame: the box is clipped there
        return vs[0] + k
    if k_tex is not None:                             # a pale key slip: where the key lines end
        return vs[0] + k_tex - front * 0.5
    return None


def _key_lines_stop(texture, cols, v_free, v_back, row, levels, orient, white_w, p):
    """(index into vs where the thin lines between white keys give way to plain, or None; the plain mask)
    in front of one chunk (widened by a few keys: there is one line per white key)."""
    black_len, front, vs = row.black_len, orient.front, levels.vs
    c0, c1 = cols
    reach = int(p.texture_window_keys * white_w)
    w0, w1 = max(0, c0 - reach), min(levels.image.shape[1], c1 + reach)
    tex = _nanpct(texture[:, w0:w1], 50, 1)
    depth = (vs - v_back) * front
    free = abs(v_free - v_back)
    ref = tex[(depth > free + p.line_ref_len[0] * black_len) & (depth < free + p.line_ref_len[1] * black_len)]
    ref = float(np.nanmedian(ref)) if np.isfinite(ref).any() else 0.0
    plain = (depth > p.plain_from_len * black_len) & (depth < p.max_key_to_black * black_len) & \
        (tex < p.plain_level * ref)
    cand = np.flatnonzero(plain)
    if ref > p.min_line_texture * (levels.white - levels.black) and len(cand):
        return int(cand[0] if front > 0 else cand[-1]), plain
    return None, plain


def _back_point(profile, uc, row, levels, orient, p):
    """v of the keys' back end in one chunk (keys and black keys start together at the fallboard): the
    first drop walking back from within the black keys, or the frame; None if not seen."""
    front, vs = orient.front, levels.vs
    v_back = _at(orient.black_back, uc)
    k_b = int(np.clip(np.searchsorted(vs, v_back), 0, len(vs) - 1))
    k0 = int(np.clip(k_b + front * max(p.back_start_px, int(p.back_start_len * row.black_len)), 0, len(vs) - 1))
    k, why = _first_drop(profile, k0, -front, p.back_search_len * row.black_len, levels.threshold)
    if why == "drop":
        return vs[0] + _edge_at(profile, k, -front, p)
    if why == "frame":
        return vs[0] + k
    return None


# ----------------------------------------------------------------------------- step: left and right ends

@dataclass(frozen=True)
class Ends:
    left: tuple            # line u(v): the image-left end of the keys (towards -u)
    right: tuple           # ... the image-right end


@dataclass(frozen=True)
class _Side:
    """What the search for one end knows about its side of the keyboard (u, v of the row; working px)."""
    sign: int              # -1: the image-left end, +1: the image-right end
    col: int               # column of levels at the outermost black key
    u: float               # ... its u
    v: float               # ... its centre's v
    white_w: float         # white-key width there
    v_back: float          # back edge, front edge and the black keys' front ends at u
    v_front: float
    v_black_front: float
    slope: float           # du/dv of the keys just beyond it
    shear: float           # ... and at it
    margin: float          # strips keep this far from the black keys' front ends
    step_v: float          # strip height
    model: tuple | None    # the end an 88-key layout puts there, u(v), when all its black keys are seen


def keyboard_ends(row, levels, orient, edges, p=PARAMS):
    """The keyboard's ends beyond the outermost black keys, as lines u(v)."""
    offsets = _full_88_offsets(row, orient, p)
    return Ends(*(_keyboard_end(_side(sign, row, levels, orient, edges, offsets.get(sign), p), levels, orient, p)
                  for sign in (-1, +1)))


def _full_88_offsets(row, orient, p):
    """All 36 black keys of an 88-key piano in view, in the right pattern? Then {side: white keys from the
    outermost black key to the end} (used where the ends cannot be seen), else {}."""
    if len(row.u) != len(BLACK_88):
        return {}
    gaps = np.diff(row.u)
    large = gaps / np.polyval(row.gap_scale, (row.u[1:] + row.u[:-1]) / 2) > p.large_gap[0]
    bass_left = orient.front > 0                      # player side: bass on the image's left
    expected = GAPS_88 if bass_left else GAPS_88[::-1]
    if (large == expected).mean() < p.full_88_match:
        return {}
    return {-1: END_88[0] if bass_left else END_88[1], +1: END_88[1] if bass_left else END_88[0]}


def _side(sign, row, levels, orient, edges, model_offset, p):
    """The _Side of the image-left (sign -1) or image-right (+1) end."""
    i0, i1 = _outer_columns(row, levels)
    col = i1 if sign > 0 else i0
    u_key = float(levels.us[col])
    white_w = row.white_at(u_key)
    v_back, v_front = _at(edges.back, u_key), _at(edges.front, u_key)
    slope = _at(row.slant, u_key + sign * p.slant_at_keys * white_w)
    v_key = float(row.v[0] if sign < 0 else row.v[-1])
    model = None
    if model_offset is not None:
        u_model = u_key + sign * model_offset * row.white_at(u_key + sign * model_offset / 2 * white_w)
        model = (_KNOTS, u_model + slope * (_KNOTS - v_key))
    key_len = abs(v_front - v_back)
    return _Side(sign=sign, col=col, u=u_key, v=v_key, white_w=white_w, v_back=v_back, v_front=v_front,
                 v_black_front=_at(orient.black_front, u_key), slope=slope, shear=_at(row.slant, u_key),
                 margin=p.end_margin_frac * key_len, step_v=max(p.min_strip_px, p.strip_frac * key_len),
                 model=model)


def _keyboard_end(s, levels, orient, p):
    """One end, u(v): the first drop walking out from the last black key in the white keys' front part
    (no black keys there), refined among the black keys; the frame when the keys run out of the picture;
    the 88-key model or a change of tone when there is no dark cheek."""
    front = orient.front
    frame_hits = []                                   # u where strips met the frame instead of an end
    front_pts = []
    for vc, col in _strips(levels, s.v_black_front + front * s.margin, s.v_front - front * p.edge_gap_px, s.step_v):
        u = _walk_out(col, s.col, s.sign, p.end_walk_keys * s.white_w, levels, frame_hits, p)
        if u is not None:
            front_pts.append((vc, u))
    if len(front_pts) < p.min_end_points or _overhangs(s, front_pts, levels, p):
        return _end_without_cheek(s, levels, orient, p)
    if len(frame_hits) >= p.frame_hit_frac * len(front_pts):   # the keys run out of the picture ...
        cut = _frame_line(frame_hits, s.sign)
        beyond = (np.interp(s.v, *cut) - np.interp(s.v, *s.model)) * s.sign if s.model is not None else 0.0
        return s.model if beyond > p.model_beyond_keys * s.white_w else cut   # ... or a pale cheek does
    front_line = _end_line(front_pts, s.slope)
    pts = front_pts + _end_points_among_black(s, front_line, levels, orient, frame_hits, p)
    if len(frame_hits) >= p.frame_hit_frac * len(pts):
        return _frame_line(frame_hits, s.sign)
    return _end_line(pts, s.slope)


def _strips(levels, v_from, v_to, step_v):
    """(v centre, median profile along u) of thin strips across [v_from, v_to]."""
    lo, hi = min(v_from, v_to), max(v_from, v_to)
    for v0 in np.arange(lo, hi - step_v / 2, step_v):
        rows = (levels.vs >= v0) & (levels.vs < v0 + step_v)
        if rows.any():
            yield v0 + step_v / 2, _nanpct(levels.image[rows], 50, 0)


def _walk_out(col, start, sign, limit, levels, frame_hits, p):
    """u of the first drop along a strip's profile walking out by `sign` from column `start`; at the
    frame the frame's u (also noted in frame_hits); None when nothing is met within `limit`."""
    k, why = _first_drop(col, int(np.clip(start, 0, len(col) - 1)), sign, limit, levels.threshold)
    if why == "drop":
        return levels.us[0] + _edge_at(col, k, sign, p)
    if why == "frame":                                # cut by the frame: the box is clipped there
        frame_hits.append(levels.us[0] + k)
        return levels.us[0] + k
    return None


def _frame_line(frame_hits, sign):
    return _const(max(frame_hits) if sign > 0 else min(frame_hits))


def _end_line(points, slope):
    """The end is the outer side of the last white key, parallel to the keys: only its offset is measured,
    as a median (hands, shadows)."""
    off = float(np.median([u - slope * v for v, u in points]))
    return _KNOTS, off + slope * _KNOTS


def _overhangs(s, front_pts, levels, p):
    """Further beyond the last black key (along the keys' slant) than white keys ever reach, with no black
    key on the way: a pale cheek with a bright background behind it."""
    reach = float(np.median([(u - s.u - s.shear * (v - s.v)) * s.sign for v, u in front_pts]))
    return reach > p.max_end_overhang * s.white_w and \
        not _black_key_between(s, s.col + s.sign * int(reach), levels, p)


def _end_points_among_black(s, front_line, levels, orient, frame_hits, p):
    """End points among the black keys: search near the end the front part predicts (a black key or the gap
    beside it is no end)."""
    front, us, pts = orient.front, levels.us, []
    for vc, col in _strips(levels, s.v_back + front * p.edge_gap_px, s.v_black_front + front * s.margin, s.step_v):
        k0 = int(round(_at(front_line, vc) - s.sign * p.end_back_keys * s.white_w - us[0]))
        k1 = k0
        while 0 <= k1 < len(col) and not col[k1] >= levels.threshold and \
                abs(k1 - k0) < p.end_step_off_keys * s.white_w:
            k1 += s.sign                              # step off a dark key side first
        u = _walk_out(col, k1, s.sign, p.end_walk_black_keys * s.white_w, levels, frame_hits, p)
        if u is not None:
            pts.append((vc, u))
    return pts


def _black_key_between(s, k_to, levels, p):
    """Is there a dark run about one black key wide between column s.col (plus a little) and k_to, in the
    black keys' rows?"""
    lo, hi = sorted((s.v_back, s.v_black_front))
    span = hi - lo
    rows = (levels.vs > lo + p.black_band_inner * span) & (levels.vs < hi - p.black_band_inner * span)
    if rows.sum() < 2:
        return False
    prof = _nanpct(levels.image[rows], 50, 0)
    step = 1 if k_to > s.col else -1
    k, run = s.col + step * int(round(p.black_gap_keys * s.white_w)), 0
    shortest, longest = p.black_run_keys
    while 0 <= k < len(prof) and (k - k_to) * step < 0:
        if prof[k] < levels.threshold:
            run += 1
        else:
            if shortest * s.white_w <= run <= longest * s.white_w:
                return True
            run = 0
        k += step
    return False


def _end_without_cheek(s, levels, orient, p):
    """No dark cheek beyond the keys: the 88-key model's end, else a change of tone, else about where a
    keyboard usually ends (one white key beyond the last black key)."""
    if s.model is not None:
        return s.model
    return _tone_change_end(s, levels, orient, p) or _const(s.u + s.sign * s.white_w)


def _tone_change_end(s, levels, orient, p):
    """Where the keys' white gives way for good to a slightly different tone (a pale cheek), walking out
    from the last black key in the white keys' front part; thin dips (the lines between keys) do not
    count. None if nothing is found."""
    lo, hi = sorted((s.v_black_front + orient.front * s.margin, s.v_front - orient.front * p.edge_gap_px))
    rows = (levels.vs > lo) & (levels.vs < hi)
    if rows.sum() < 2:
        return None
    prof = _nanpct(levels.image[rows], 50, 0)
    sign, white_w, k_key = s.sign, s.white_w, s.col
    a, b = sorted((k_key, int(np.clip(k_key - sign * p.pale_ref_keys * white_w, 0, len(prof) - 1))))
    inside = prof[a:b + 1]
    inside = inside[~np.isnan(inside)]
    if not len(inside):
        return None
    ref = float(np.percentile(inside, p.pale_ref_pct))
    t = ref - max(p.pale_drop[0], p.pale_drop[1] * ref)
    run = max(p.pale_min_run_px, int(round(p.pale_run_keys * white_w)))
    k = k_key
    while abs(k - k_key) < p.pale_walk_keys * white_w:
        k += sign
        if not 0 <= k < len(prof) or np.isnan(prof[k]):
            return _const(levels.us[0] + k)
        if prof[k] < t:
            ahead = prof[k:k + sign * run:sign] if sign > 0 else prof[max(0, k - run + 1):k + 1]
            if np.all(ahead[~np.isnan(ahead)] < t):
                p_in, p_out = prof[k - sign], prof[k]
                frac = float(np.clip((p_in - t) / (p_in - p_out), 0, 1)) if p_in > p_out else 0.5
                return _const(levels.us[0] + k - sign + sign * frac)
    return None


# ----------------------------------------------------------------------------- one keyboard, all steps

@dataclass(frozen=True)
class Fit:
    """A keyboard measured on one row of black keys (working pixels)."""
    corners: list          # (x, y) of back-left, back-right, front-right, front-left (as seen in the image)
    far_side: bool
    angle_deg: float
    score: float
    n_black: int
    white_w: float         # one white key's width in the middle
    pattern: dict


def measure_keyboard(gray, blobs, members, p=PARAMS):
    """The keyboard whose black keys are `members` (the steps in order), or None when that row is none."""
    row = key_row(blobs, members, p)
    if row is None:
        return None
    levels = key_levels(gray, row, p)
    if levels is None:
        return None
    orient = orientation(row, levels, p)
    if orient is None:
        return None
    row = trim_outer_keys(row, levels, orient, p)
    edges = front_and_back(row, levels, orient, p)
    ends = keyboard_ends(row, levels, orient, edges, p)
    corners_uv = [_corner(ends.left, edges.back, p), _corner(ends.right, edges.back, p),
                  _corner(ends.right, edges.front, p), _corner(ends.left, edges.front, p)]
    return Fit(corners=[row.axes.to_xy(u, v) for u, v in corners_uv], far_side=orient.front < 0,
               angle_deg=math.degrees(row.angle), score=_score(row, levels, orient, edges, p),
               n_black=len(row.u), white_w=row.white_mid(), pattern=row.pattern)


def _corner(end_line, edge_line, p):
    """Intersection of an end line u(v) with a front/back line v(u)."""
    u = _at(end_line, 0.0)
    for _ in range(p.corner_iters):
        u = _at(end_line, _at(edge_line, u))
    return u, _at(edge_line, u)


def _score(row, levels, orient, edges, p):
    """0..1: the gap pattern's quality times factors for the side's clarity, the keys' contrast, the
    number of black keys and a seen front edge."""
    floor, weight, gain = p.score_side
    side = floor + weight * min(1.0, gain * orient.confidence)
    floor, weight, full = p.score_contrast
    contrast = floor + weight * float(np.clip((levels.white - levels.black) / full, 0, 1))
    floor, weight, full = p.score_count
    count = floor + weight * float(np.clip(len(row.u) / full, 0, 1))
    return float(row.quality * side * contrast * count * (1.0 if edges.front_found else p.no_front_factor))


# ----------------------------------------------------------------------------- public API

def detect_keyboard(frames, source="image", params=None):
    """The keyboard in one BGR/gray frame, or in a list (or stack) of frames after their temporal median.

    Returns a Detection (box in full-frame pixels, x2/y2 exclusive); raises AudeoError("<source>: no
    keyboard found ...") when there is none. `params`: a Params, or a dict overriding some of its fields.
    """
    p = resolve_params(params)
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
    height, width = gray.shape
    if height < p.min_image_px or width < p.min_image_px:
        raise AudeoError(f"{source}: no keyboard found (the image is only {width}x{height})")
    work = _working_image(gray, p)
    blobs = black_key_blobs(work, p)
    fits = [m for m in (measure_keyboard(work, blobs, members, p) for members in key_rows(blobs, p))
            if m is not None]
    best = max(fits, key=lambda m: m.score, default=None)     # the first of equal scores
    if best is None or best.n_black < p.min_black_keys:
        raise AudeoError(f"{source}: no keyboard found (no row of black keys between white keys)")
    sx, sy = width / work.shape[1], height / work.shape[0]
    corners = [((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5) for x, y in best.corners]
    box = _box_around(corners, width, height)
    if box[2] - box[0] < p.min_box_px[0] or box[3] - box[1] < p.min_box_px[1]:
        raise AudeoError(f"{source}: no keyboard found (the key area found is empty)")
    return Detection(box=box, far_side=bool(best.far_side), angle_deg=round(best.angle_deg, 3),
                     score=round(best.score, 4),
                     corners=[[round(float(x), 1), round(float(y), 1)] for x, y in corners],
                     n_black_keys=int(best.n_black), white_key_px=round(best.white_w * sx, 2),
                     frame_size=(width, height), source=str(source))


def _working_image(gray, p):
    """The image at most p.work_width wide (area averaging)."""
    height, width = gray.shape
    scale = min(1.0, p.work_width / width)
    if scale == 1.0:
        return gray
    return cv2.resize(gray, (int(round(width * scale)), int(round(height * scale))), interpolation=cv2.INTER_AREA)


def _box_around(corners, width, height):
    """Axis-aligned box (x2, y2 exclusive) of the pixels inside the corners, clipped to the frame. Corners
    are boundary positions (pixel centres at integers): a pixel belongs to the keys when its centre lies
    inside, i.e. its value is past half-way between the key and the surroundings."""
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    x1, x2 = math.ceil(min(xs) - 1e-6), math.floor(max(xs) + 1e-6) + 1
    y1, y2 = math.ceil(min(ys) - 1e-6), math.floor(max(ys) + 1e-6) + 1
    return tuple(int(v) for v in (max(0, x1), max(0, y1), min(width, x2), min(height, y2)))


def detect_in_video(path, n_samples=PARAMS.n_samples, params=None):
    """The keyboard in a video: detect_keyboard on the temporal median of `n_samples` frames spread across it."""
    return detect_keyboard(sample_video_frames(path, n_samples), source=str(path), params=params)


def read_image(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise AudeoError(f"{path}: cannot be read as an image")
    return img


def load_source(path, n_samples=PARAMS.n_samples):
    """The frame(s) to look at: [image] for a still (by extension), sampled frames for a video."""
    path = Path(path)
    if not path.is_file():
        raise AudeoError(f"{path}: file not found")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return [read_image(path)]
    return sample_video_frames(path, n_samples)


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
