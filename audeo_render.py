"""Rendering: a silent top-down video of a pianist playing a MIDI performance (Piano_render.py's library).

In:  a performance (PrettyMIDI: notes, velocities, sustain pedal), a seed, a camera side.
Out: `render` writes a video folder (video.mp4, audio.wav, performance.mid, box.txt, render.json: see
     Piano_render.py); `sample_scene`, `Performance` and `FrameRenderer` give the camera, the hands'
     plan and the frames one at a time (as Render_dataset.py uses them).

The picture shows key-down state (a held key is depressed only subtly: a few pixels of shift and
shading); audio and labels follow the sustain pedal. Each seed draws its own camera (position,
scale, small rotation and perspective), lighting, key/body/background tones, skin and clothes,
motion blur, sensor noise and compression. A far-side camera sits beyond the keyboard: the
image is turned 180 degrees (treble on the left, the player at the top).

Everything is drawn in a canonical top view of the keyboard (1 unit = one white-key width), which a
homography maps into the video frame; hands and arms are drawn through the same homography.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from itertools import combinations

import cv2
import numpy as np

from audeo_constants import FPS, MIDI_LOW, N_KEYS, N_WHITE_KEYS, SAMPLE_RATE, WHITE_PITCH_CLASSES
from audeo_io import (AudeoError, atomic_dir, load_midi, midi_notes, notes_to_roll, regrid, roll_to_notes,
                      time_to_frame, write_midi)

# ----------------------------------------------------------------------------- defaults
DEFAULTS = dict(seed=0, fps=FPS, far_side=False,
                lead_in=0.6,     # s of hands approaching before the first note (Render_dataset trims it from the labels)
                tail=0.8)        # s rendered after the last note ends

# Keyboard proportions (units: white-key widths; real piano: white 23.5 mm x 150 mm, black 13.7 x 95 mm)
KEY_LENGTH = 150 / 23.5
BLACK_LENGTH = 95 / 23.5
BLACK_WIDTH = 13.7 / 23.5
KEYBOARD_WIDTH = N_WHITE_KEYS        # 52 units
PX = 24                              # canonical pixels per unit
WHITE_RANK = {pc: i for i, pc in enumerate(WHITE_PITCH_CLASSES)}

# Hand geometry (units). Offsets of fingertips from the hand centre, thumb..pinky, right hand.
FINGER_OFFSET = np.array([-2.0, -1.0, 0.0, 1.0, 1.9])
FINGER_WIDTH = np.array([0.95, 0.8, 0.82, 0.76, 0.66])
FINGER_REACH = np.array([1.6, 0.0, -0.2, 0.0, 0.8])   # thumb and pinky tips rest nearer the player
PALM_BACK = 4.3       # palm centre sits this far in front of the fingertips' mean reach
KNUCKLE_X = np.array([-1.9, -1.3, -0.45, 0.4, 1.2])   # thumb root, index..pinky knuckles
KNUCKLE_Y = np.array([0.3, -1.3, -1.55, -1.4, -1.05])  # relative to palm centre (back is negative)
ANTICIPATE = 0.16     # s: a finger hovers over its next key this long before pressing
REST_GAP = 2.5        # s: silences longer than this let the hand drop back off the keys
HAND_SPAN = 8.0       # units one hand may cover without the other hand taking over
FINGER_SMOOTH = 0.45  # per-frame smoothing weights (at 25 fps) of fingertips and hand centre
HAND_SMOOTH = 0.25

# Floor/table tones (BGR): wood, dark wood, grey carpet, beige, near-black stage, white table.
BACKGROUND_TONES = np.array([[70, 110, 160], [40, 60, 90], [110, 110, 105], [150, 170, 185], [30, 30, 32],
                             [200, 200, 195]], float)

# Output frame sizes a video may have (even dimensions for yuv420p).
FRAME_SIZES = ((640, 360), (854, 480), (960, 540), (1024, 576), (1280, 720))


# ----------------------------------------------------------------------------- keyboard geometry

def key_extents():
    """(x0, x1, is_black) arrays for the 88 keys, in units from the left edge of A0."""
    x0, x1, black = np.zeros(N_KEYS), np.zeros(N_KEYS), np.zeros(N_KEYS, bool)
    for k in range(N_KEYS):
        pitch = MIDI_LOW + k
        octave_left = 7 * (pitch // 12) - 12         # left edge of this octave's C (A0 is at 0)
        pc = pitch % 12
        if pc in WHITE_RANK:
            x0[k] = octave_left + WHITE_RANK[pc]
            x1[k] = x0[k] + 1
        else:   # the 12 keys are nearly equally spaced at the back of a real keyboard
            centre = octave_left + (pc + 0.5) * 7 / 12
            x0[k], x1[k], black[k] = centre - BLACK_WIDTH / 2, centre + BLACK_WIDTH / 2, True
    return x0, x1, black


KEY_X0, KEY_X1, KEY_BLACK = key_extents()
KEY_CENTRE = (KEY_X0 + KEY_X1) / 2


# ----------------------------------------------------------------------------- the scene

@dataclass
class Scene:
    """Every random choice of one video (stored in render.json)."""
    seed: int
    far_side: bool
    fps: float
    size: tuple
    corners: list            # output pixel corners of the key area: back-left, back-right, front-right, front-left
    back_depth: float        # units of piano body behind the keys
    front_depth: float
    side_depth: float
    body_bgr: tuple
    white_bgr: tuple
    black_bgr: tuple
    felt: bool
    panel: bool
    background_bgr: tuple
    skin_bgr: tuple
    sleeve_bgr: tuple
    sleeve_start: float      # units from the wrist where the sleeve starts
    torso_bgr: tuple
    hair_bgr: tuple
    show_player: bool
    press_shift: float       # px (canonical) a pressed key's front edge moves
    press_dark: float        # fraction a pressed key darkens at its front
    light_dir: tuple
    light_gain: tuple
    vignette: float
    gradient: float
    noise_sigma: float
    jpeg_quality: int
    blur_sigma: float
    motion_blur: float
    shadow_strength: float
    hand_scale: float
    extra: dict = field(default_factory=dict)


def _tone(rng, lo, hi, tint=6):
    base = rng.uniform(lo, hi)
    return tuple(float(np.clip(base + rng.uniform(-tint, tint), 0, 255)) for _ in range(3))


def sample_scene(seed, far_side=False, fps=FPS):
    rng = np.random.default_rng(seed)
    w, h = FRAME_SIZES[rng.integers(len(FRAME_SIZES))]
    body = rng.choice(["black", "grey", "wood", "white"], p=[0.45, 0.3, 0.15, 0.1])
    body_bgr = {"black": _tone(rng, 12, 40, 3), "grey": _tone(rng, 45, 90, 4),
                "wood": tuple(np.array([40, 70, 110]) * rng.uniform(0.6, 1.3)),
                "white": _tone(rng, 200, 235, 4)}[body]
    skin = np.array([150, 180, 225]) * rng.uniform(0.35, 1.05) + rng.uniform(-10, 10, 3)
    return Scene(
        seed=seed, far_side=far_side, fps=fps, size=(int(w), int(h)),
        corners=_sample_corners(rng, w, h),
        back_depth=rng.uniform(1.5, 6.0), front_depth=rng.uniform(0.4, 1.4), side_depth=rng.uniform(0.8, 3.0),
        body_bgr=tuple(map(float, body_bgr)),
        white_bgr=tuple(np.clip(np.array([228, 238, 242]) * rng.uniform(0.85, 1.05)
                                + [rng.uniform(-12, 0), 0, 0], 0, 255)),
        black_bgr=_tone(rng, 8, 35, 2), felt=bool(rng.random() < 0.4), panel=bool(rng.random() < 0.5),
        background_bgr=tuple(BACKGROUND_TONES[rng.integers(len(BACKGROUND_TONES))] * rng.uniform(0.6, 1.25)), skin_bgr=tuple(np.clip(skin, 20, 255)),
        sleeve_bgr=_tone(rng, 20, 220, 40), sleeve_start=rng.uniform(2.0, 12.0),
        torso_bgr=_tone(rng, 20, 220, 40), hair_bgr=_tone(rng, 10, 120, 10),
        show_player=bool(rng.random() < 0.7),
        press_shift=rng.uniform(1.0, 3.5), press_dark=rng.uniform(0.04, 0.14),
        light_dir=tuple(rng.normal(size=2) / 2), light_gain=tuple(rng.uniform(0.9, 1.1, 3)),
        vignette=rng.uniform(0.0, 0.35), gradient=rng.uniform(0.0, 0.3),
        noise_sigma=rng.uniform(1.0, 6.0), jpeg_quality=int(rng.integers(35, 92)),
        blur_sigma=rng.uniform(0.0, 1.1), motion_blur=rng.uniform(0.3, 1.0),
        shadow_strength=rng.uniform(0.15, 0.45), hand_scale=rng.uniform(0.95, 1.15))


def _sample_corners(rng, w, h):
    """Where the key area's corners land in the frame: scale, aspect, perspective, rotation."""
    width = rng.uniform(0.72, 0.96) * w
    height = width / (KEYBOARD_WIDTH / KEY_LENGTH) * rng.uniform(0.75, 1.2)
    back = rng.uniform(0.93, 1.04)              # back edge narrower: camera in front of the keyboard
    tilt = rng.uniform(-0.08, 0.08)             # one end nearer the camera (side views)
    angle = math.radians(rng.uniform(-3.0, 3.0))
    pts = np.array([[-width / 2 * back, -height / 2 * (1 - tilt)], [width / 2 * back, -height / 2 * (1 + tilt)],
                    [width / 2, height / 2 * (1 + tilt)], [-width / 2, height / 2 * (1 - tilt)]])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pts = pts @ rot.T
    span = pts.max(0) - pts.min(0)
    cx = rng.uniform(span[0] / 2 + 4, w - span[0] / 2 - 4)
    cy = rng.uniform(max(span[1] / 2 + 4, 0.25 * h), min(h - span[1] / 2 - 4, 0.7 * h))
    return (pts + [cx, cy]).round(2).tolist()


# ----------------------------------------------------------------------------- canonical drawing

def canvas_geometry(scene):
    """Canonical canvas size (px) and the pixel origin of the key area's back-left corner."""
    ox, oy = scene.side_depth * PX, scene.back_depth * PX
    cw = int(round((KEYBOARD_WIDTH + 2 * scene.side_depth) * PX))
    ch = int(round((scene.back_depth + KEY_LENGTH + scene.front_depth) * PX))
    return cw, ch, ox, oy


def homography(scene):
    """Canonical canvas px -> output frame px (including the 180-degree turn of a far-side camera)."""
    _, _, ox, oy = canvas_geometry(scene)
    src = np.float32([[ox, oy], [ox + KEYBOARD_WIDTH * PX, oy], [ox + KEYBOARD_WIDTH * PX, oy + KEY_LENGTH * PX],
                      [ox, oy + KEY_LENGTH * PX]])
    hom = cv2.getPerspectiveTransform(src, np.float32(scene.corners))
    if scene.far_side:
        w, h = scene.size
        hom = np.array([[-1, 0, w - 1], [0, -1, h - 1], [0, 0, 1]], float) @ hom
    return hom


def keyboard_box(scene):
    """Axis-aligned box (x1, y1, x2, y2) around the keys in the output frame."""
    pts = np.array(scene.corners)
    if scene.far_side:
        pts = np.array(scene.size) - 1 - pts
    x1, y1 = np.floor(pts.min(0)).astype(int)
    x2, y2 = np.ceil(pts.max(0)).astype(int) + 1
    w, h = scene.size
    return max(0, int(x1)), max(0, int(y1)), min(w, int(x2)), min(h, int(y2))


class KeyboardArt:
    """The canonical keyboard picture with all keys up, and each key's pressed-down patch."""

    def __init__(self, scene):
        self.scene = scene
        cw, ch, ox, oy = canvas_geometry(scene)
        self.ox, self.oy = ox, oy
        rng = np.random.default_rng(scene.seed + 1)
        body = np.empty((ch, cw, 3), np.float32)
        body[:] = scene.body_bgr
        body *= 1 + 0.05 * cv2.resize(rng.normal(size=(4, 20)).astype(np.float32), (cw, ch))[..., None]
        self._draw_body_details(body, rng)
        whites = body.copy()
        self._draw_white_keys(whites)
        self.whites = whites                       # white keys + black-key shadows, no black keys
        full = whites.copy()
        self.black_rects = {}
        for k in np.flatnonzero(KEY_BLACK):
            self.black_rects[k] = self._key_rect(k)
            self._draw_black_key(full, k, pressed=False)
        self.base = np.clip(full, 0, 255).astype(np.uint8)
        self.white_down, self.black_down = {}, {}
        for k in range(N_KEYS):
            if KEY_BLACK[k]:   # pressed black key: front recedes, neighbours' side walls show as shadow
                x0, y0, x1, y1 = self.black_rects[k]
                patch = full[y0:y1 + 2, x0 - 2:x1 + 2].copy()
                patch[:, :2] *= 0.6
                patch[:, -2:] *= 0.6
                self.black_down[k] = patch
                sub = full.copy()
                self._draw_black_key(sub, k, pressed=True)
                patch[:y1 - y0, 2:-2] = sub[y0:y1, x0:x1]
                self.black_down[k] = np.clip(patch, 0, 255).astype(np.uint8)
            else:
                self.white_down[k] = self._pressed_white(k)

    def _key_rect(self, k):
        x0 = int(round(self.ox + KEY_X0[k] * PX))
        x1 = int(round(self.ox + KEY_X1[k] * PX))
        length = BLACK_LENGTH if KEY_BLACK[k] else KEY_LENGTH
        return x0, int(round(self.oy)), x1, int(round(self.oy + length * PX))

    def _draw_body_details(self, img, rng):
        s = self.scene
        y0 = int(self.oy)
        if s.felt:   # red felt strip behind the keys, as on acoustic pianos
            cv2.rectangle(img, (int(self.ox), y0 - int(0.3 * PX)), (int(self.ox + KEYBOARD_WIDTH * PX), y0),
                          (30, 30, 110), -1)
        if s.panel:  # a digital piano's control panel: a display and some buttons
            for _ in range(rng.integers(4, 14)):
                x = int(self.ox + rng.uniform(0, KEYBOARD_WIDTH) * PX)
                y = int(rng.uniform(0.2, 0.8) * max(self.oy - 0.4 * PX, 1))
                bw, bh = int(rng.uniform(0.3, 3) * PX), int(rng.uniform(0.2, 0.8) * PX)
                tone = np.array(s.body_bgr) + rng.uniform(-40, 60)
                cv2.rectangle(img, (x, y), (x + bw, y + bh), tuple(map(float, np.clip(tone, 0, 255))), -1)
        # the key slip's top edge catches light
        yf = int(self.oy + KEY_LENGTH * PX)
        img[yf:yf + 2] = img[yf:yf + 2] * 0.7 + 0.3 * 200

    def _draw_white_keys(self, img):
        s = self.scene
        y0, y1 = int(round(self.oy)), int(round(self.oy + KEY_LENGTH * PX))
        x_left, x_right = int(round(self.ox)), int(round(self.ox + KEYBOARD_WIDTH * PX))
        ramp = np.linspace(0.9, 1.0, y1 - y0, dtype=np.float32)[:, None, None]   # fallboard shadow at the back
        img[y0:y1, x_left:x_right] = np.array(s.white_bgr, np.float32) * ramp
        gap = np.array(s.white_bgr, np.float32) * 0.45
        for k in np.flatnonzero(~KEY_BLACK):
            x = int(round(self.ox + KEY_X0[k] * PX))
            img[y0:y1, x] = gap
        img[y0:y1, x_right - 1] = gap
        img[y1 - 2:y1] *= 0.8                     # rounded front edge
        shadow = np.zeros(img.shape[:2], np.float32)
        dx, dy = (np.array(s.light_dir) * 0.25 * PX).astype(int)
        for k in np.flatnonzero(KEY_BLACK):
            x0, ya, x1, yb = self._key_rect(k)
            cv2.rectangle(shadow, (x0 + dx, ya), (x1 + dx, yb + abs(dy) + 2), 1.0, -1)
        shadow = cv2.GaussianBlur(shadow, (0, 0), 0.12 * PX)
        img *= (1 - 0.35 * shadow)[..., None]

    def _draw_black_key(self, img, k, pressed):
        s = self.scene
        x0, y0, x1, y1 = self._key_rect(k)
        shift = int(round(s.press_shift)) if pressed else 0
        top = np.array(s.black_bgr, np.float32)
        img[y0:y1, x0:x1] = top * 0.8
        bevel = max(1, int(0.07 * PX))
        hi = top + (30 if not pressed else 18)
        img[y0:y1 - shift, x0 + bevel:x1 - bevel] = top
        img[y0:y1 - shift, x0:x0 + bevel] = hi        # side bevels catch light
        front = int(0.35 * PX)
        img[y1 - front - shift:y1 - shift, x0:x1] = top + (45 if not pressed else 20)   # sloped front
        if shift:
            img[y1 - shift:y1, x0:x1] = top * 0.5

    def _pressed_white(self, k):
        """Pressed white key: darker towards the front, wider side gaps, front edge a few px back."""
        s = self.scene
        x0, y0, x1, y1 = self._key_rect(k)
        patch = self.whites[y0:y1, x0:x1 + 1].copy()
        n = y1 - y0
        patch *= (1 - s.press_dark * np.linspace(0.3, 1.0, n, dtype=np.float32) ** 1.5)[:, None, None]
        gap = np.array(s.white_bgr, np.float32) * 0.35
        patch[:, :2] = gap
        patch[:, -2:] = gap
        shift = int(round(s.press_shift))
        patch[n - shift - 2:n] = patch[n - shift - 2:n] * 0.45
        return (x0, y0), np.clip(patch, 0, 255).astype(np.uint8)

    def compose(self, pressed_keys):
        """Canonical image (uint8) with `pressed_keys` (88 booleans) held down."""
        img = self.base.copy()
        redraw = set()
        for k in np.flatnonzero(pressed_keys & ~KEY_BLACK):
            (x0, y0), patch = self.white_down[k]
            img[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] = patch
            redraw.update(b for b in (k - 1, k + 1) if 0 <= b < N_KEYS and KEY_BLACK[b])
        redraw.update(np.flatnonzero(pressed_keys & KEY_BLACK))
        for k in redraw:
            x0, y0, x1, y1 = self.black_rects[k]
            if pressed_keys[k]:
                img[y0:y1 + 2, x0 - 2:x1 + 2] = self.black_down[k]
            else:
                img[y0:y1, x0:x1] = self.base[y0:y1, x0:x1]
        return img


# ----------------------------------------------------------------------------- hands

def assign_hands(notes):
    """Split notes between the hands: per chord, the split point that keeps each hand compact.

    `notes` are (key, on_frame, off_frame); returns an array of 0 (left) / 1 (right).
    """
    order = sorted(range(len(notes)), key=lambda i: (notes[i][1], KEY_CENTRE[notes[i][0]]))
    hand = np.zeros(len(notes), int)
    centres = [KEY_CENTRE[39 - 12], KEY_CENTRE[39 + 12]]    # around C3 and C5
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and notes[order[j]][1] - notes[order[i]][1] <= 1:
            j += 1
        chord = order[i:j]
        xs = [KEY_CENTRE[notes[c][0]] for c in chord]
        best, best_cost = 0, float("inf")
        for split in range(len(chord) + 1):
            left, right = xs[:split], xs[split:]
            cost = sum(abs(x - centres[0]) for x in left) + sum(abs(x - centres[1]) for x in right)
            cost += sum(20 for part in (left, right) if part and max(part) - min(part) > HAND_SPAN)
            if cost < best_cost:
                best, best_cost = split, cost
        for n, c in enumerate(chord):
            hand[c] = 0 if n < best else 1
        for h, part in ((0, xs[:best]), (1, xs[best:])):
            if part:
                centres[h] = 0.4 * centres[h] + 0.6 * float(np.mean(part))
        if centres[1] - centres[0] < 3:           # keep the hands from collapsing onto each other
            mid = (centres[0] + centres[1]) / 2
            centres = [mid - 1.5, mid + 1.5]
        i = j
    return hand


def _finger_layout(hand):
    """Fingers in left-to-right order and their natural x offsets for hand 0 (left) or 1 (right)."""
    if hand == 1:
        return [0, 1, 2, 3, 4], FINGER_OFFSET
    return [4, 3, 2, 1, 0], -FINGER_OFFSET[::-1]


def assign_fingers(notes, hand_notes, hand, n_frames):
    """Finger (0=thumb..4=pinky) for each note of one hand, and the hand centre at each event.

    Held notes keep their finger; new notes take the order-preserving choice of free fingers that
    best fits a relaxed hand shape near the previous hand position.
    """
    order_fingers, offsets = _finger_layout(hand)
    finger_of, centre_events = {}, []
    onsets = sorted({notes[i][1] for i in hand_notes})
    prev_centre = None
    for f in onsets:
        active = [i for i in hand_notes if notes[i][1] <= f < notes[i][2]]
        active.sort(key=lambda i: KEY_CENTRE[notes[i][0]])
        active = active[:5]
        xs = np.array([KEY_CENTRE[notes[i][0]] for i in active])
        best = None
        for combo in combinations(range(5), len(active)):
            fingers = [order_fingers[c] for c in combo]
            held_cost = sum(3.0 for i, fi in zip(active, fingers) if i in finger_of and finger_of[i] != fi)
            centre = float(np.mean(xs - offsets[list(combo)]))
            cost = float(np.sum((xs - offsets[list(combo)] - centre) ** 2)) + held_cost
            if prev_centre is not None:
                cost += 0.05 * (centre - prev_centre) ** 2
            if best is None or cost < best[0]:
                best = (cost, fingers, centre)
        _, fingers, centre = best
        for i, fi in zip(active, fingers):
            finger_of[i] = fi
        centre_events.append((f, centre))
        prev_centre = centre
    return finger_of, centre_events


def _smooth(x, weight):
    """Zero-phase exponential smoothing along axis 0 (forward then backward)."""
    y = x.copy()
    for t in range(1, len(y)):
        y[t] = y[t - 1] + weight * (y[t] - y[t - 1])
    for t in range(len(y) - 2, -1, -1):
        y[t] = y[t + 1] + weight * (y[t] - y[t + 1])
    return y


def press_depth(key, finger):
    """Where a fingertip sits on a key (units from the back of the keys)."""
    if KEY_BLACK[key]:
        return BLACK_LENGTH * 0.75 + 0.3 * FINGER_REACH[finger]
    return min(KEY_LENGTH * 0.78 + 0.6 * FINGER_REACH[finger], KEY_LENGTH - 0.3)


def plan_hands(notes, n_frames, fps):
    """Per-frame poses of both hands in canonical units.

    Returns tips (2, T, 5, 2) fingertip x/y, pressing (2, T, 5) in [0, 1], present (2, T) in [0, 1]
    (0 = the hand rests off the keyboard, in front of it).
    """
    hand_of = assign_hands(notes)
    tips = np.zeros((2, n_frames, 5, 2))
    pressing = np.zeros((2, n_frames, 5))
    present = np.ones((2, n_frames))
    antic = max(1, int(round(ANTICIPATE * fps)))
    weight = lambda w: 1 - (1 - w) ** (FPS / fps)     # same smoothing in seconds at any fps
    for hand in (0, 1):
        mine = [i for i in range(len(notes)) if hand_of[i] == hand]
        default_centre = KEY_CENTRE[39 + (12 if hand else -12)]
        if not mine:
            centre = np.full(n_frames, default_centre)
            present[hand] = 0
        else:
            finger_of, events = assign_fingers(notes, mine, hand, n_frames)
            spans = sorted((notes[i][1], notes[i][2]) for i in mine)
            centre = _centre_track(events, spans, n_frames, fps, present[hand])
        centre = _smooth(centre, weight(HAND_SMOOTH))
        target_x = centre[:, None] + (FINGER_OFFSET if hand else -FINGER_OFFSET)[None, :]
        target_y = np.tile(KEY_LENGTH * 0.85 + FINGER_REACH, (n_frames, 1))   # hovering
        target_p = np.zeros((n_frames, 5))
        for i in (mine if mine else []):
            key, on, off = notes[i]
            fi = finger_of.get(i)
            if fi is None:
                continue
            lo = max(0, on - antic)
            target_x[lo:off, fi] = KEY_CENTRE[key]
            target_y[lo:off, fi] = press_depth(key, fi)
            target_p[on:off, fi] = 1
        tips[hand, :, :, 0] = _smooth(target_x, weight(FINGER_SMOOTH))
        tips[hand, :, :, 1] = _smooth(target_y, weight(FINGER_SMOOTH))
        pressing[hand] = _smooth(target_p, weight(0.8))
        present[hand] = _smooth(present[hand], weight(0.2))
    return tips, pressing, present


def _centre_track(events, spans, n_frames, fps, present):
    """Hand centre per frame: the current chord's, moving ahead to the next chord during gaps.

    `spans` are the hand's (on, off) frames sorted by onset; long silences clear `present`.
    """
    frames = [f for f, _ in events]
    centre = np.full(n_frames, events[0][1])
    busy, k = 0, 0
    for e, (f, c) in enumerate(events):
        while k < len(spans) and spans[k][0] <= f:
            busy = max(busy, spans[k][1])
            k += 1
        nxt = frames[e + 1] if e + 1 < len(frames) else n_frames
        centre[f:nxt] = c
        if e + 1 < len(frames) and busy < nxt:          # travel to the next chord before it starts
            centre[max(busy, nxt - int(0.35 * fps)):nxt] = events[e + 1][1]
        if (nxt - busy) / fps > REST_GAP:                # long silence: the hand drops off the keys
            present[busy + int(0.3 * fps):nxt - int(0.6 * fps)] = 0
    return centre


# ----------------------------------------------------------------------------- hand drawing

class HandPainter:
    """Draws the player, arms, palms and fingers in the output frame through the scene's homography.

    A hand is first laid out as shapes in canonical units, then all its points go through the
    homography in one call and are drawn with OpenCV (anti-aliased, sub-pixel precision).
    """

    def __init__(self, scene, hom, art):
        self.scene, self.hom, self.art = scene, hom, art
        p = self.to_px(np.array([[26.0, 3.0], [27.0, 3.0]]))
        self.unit = float(np.linalg.norm(p[1] - p[0]))         # output px per unit near the centre
        rng = np.random.default_rng(scene.seed + 2)
        self.body_x = 26 + rng.uniform(-4, 4)
        self.body_y = KEY_LENGTH + rng.uniform(7, 10)
        skin = np.array(scene.skin_bgr)
        self.colors = {"skin": tuple(skin), "dark": tuple(0.78 * skin), "light": tuple(np.minimum(255, skin * 1.12 + 8)),
                       "sleeve": scene.sleeve_bgr, "torso": scene.torso_bgr, "hair": scene.hair_bgr}

    def to_px(self, pts_units):
        """Canonical units (x from A0's left edge, y from the back of the keys) -> output px."""
        pts = np.asarray(pts_units, np.float64).reshape(-1, 1, 2) * PX + [self.art.ox, self.art.oy]
        return cv2.perspectiveTransform(pts, self.hom).reshape(-1, 2)

    def draw(self, img, shapes, mask=False):
        """Draw shapes [(kind, points (n, 2) units, size units, colour name, detail?)]; `mask` draws 255 silhouettes."""
        if not shapes:
            return
        pts = self.to_px(np.concatenate([sh[1] for sh in shapes]))
        i = 0
        for kind, p, size, color, detail in shapes:
            q, i = pts[i:i + len(p)], i + len(p)
            if mask and detail:
                continue
            col = 255 if mask else self.colors[color]
            if kind == "poly":
                cv2.fillPoly(img, [(q * 16).round().astype(np.int32)], col, cv2.LINE_AA, shift=4)
                continue
            th = max(1, int(round(size * self.unit)))
            a = (q * 16).round().astype(np.int32)
            if kind == "line":
                cv2.line(img, tuple(a[0]), tuple(a[1]), col, th, cv2.LINE_AA, shift=4)
            else:
                cv2.circle(img, tuple(a[0]), th * 8, col, -1, cv2.LINE_AA, shift=4)

    def player_shapes(self):
        if not self.scene.show_player:
            return []
        ang = np.linspace(0, 2 * np.pi, 40)
        bx, by = self.body_x, self.body_y
        return [("poly", np.c_[bx + 10 * np.cos(ang), by + 2.5 + 4.5 * np.sin(ang)], 0, "torso", False),
                ("poly", np.c_[bx + 3.3 * np.cos(ang), by + 1.2 + 3.8 * np.sin(ang)], 0, "hair", False)]

    def hand_shapes(self, tips, pressing, present, hand):
        """One hand as shapes: forearm, palm, then the fingers from the pinky side in."""
        s = self.scene
        k = s.hand_scale
        side = 1 if hand == 1 else -1
        tips = tips + [0, (1 - present) * 9.0]          # resting hands sink towards the player
        centre = np.array([np.mean(tips[:, 0] - FINGER_OFFSET * side * k),
                           np.mean(tips[:, 1] - FINGER_REACH) + PALM_BACK * k])
        elbow = np.array([self.body_x + side * 8.0, self.body_y - 3.0])
        arm = centre - elbow
        angle = math.atan2(arm[0], -arm[1]) * 0.6        # palm turns towards the forearm's direction
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        local = lambda xy: centre + (np.asarray(xy, float) * k) @ rot.T
        wrist = local([0.0, 2.6])
        sleeve_at = wrist + (elbow - wrist) * min(1, s.sleeve_start / (np.linalg.norm(elbow - wrist) + 1e-9))
        rim = 2.0 / self.unit                              # a 2-px darker rim around skin
        shapes = [("line", np.array([sleeve_at, elbow]), 3.4 * k, "sleeve", False),
                  ("disc", elbow[None], 1.7 * k, "sleeve", False),
                  ("line", np.array([wrist, sleeve_at]), 2.5 * k, "dark", False),
                  ("line", np.array([wrist, sleeve_at]), 2.5 * k - rim, "skin", True)]
        knuckles = local(np.c_[KNUCKLE_X * side, KNUCKLE_Y])
        palm = np.array([local([-1.9 * side, 2.5]), local([1.6 * side, 2.6]), local([1.8 * side, -0.6]),
                         knuckles[4], knuckles[3], knuckles[2], knuckles[1], local([-2.2 * side, -0.4])])
        shapes.append(("poly", palm, 0, "skin", False))
        for f in (4, 3, 2, 1, 0):
            root, tip = knuckles[f], tips[f]
            width = FINGER_WIDTH[f] * k * (0.92 if pressing[f] > 0.5 else 1.0)
            along = (root - tip) / (np.linalg.norm(root - tip) + 1e-9)
            shapes += [("line", np.array([root, tip]), width, "dark", False),
                       ("disc", tip[None], width / 2, "dark", False),
                       ("line", np.array([root, tip]), width - rim, "skin", True),
                       ("disc", tip[None], (width - rim) / 2, "skin", True),
                       ("line", np.array([tip + along * 0.5, root - along * 0.3]), width * 0.25, "light", True),
                       ("disc", (tip + along * 0.3)[None], width * 0.22, "light", True)]
        return shapes

    def both_hands(self, tips, pressing, present):
        return self.hand_shapes(tips[0], pressing[0], present[0], 0) + \
            self.hand_shapes(tips[1], pressing[1], present[1], 1)


# ----------------------------------------------------------------------------- frames

class FrameRenderer:
    """Turns (key-down state, hand poses) at one instant into a finished, degraded video frame."""

    def __init__(self, scene):
        self.scene = scene
        self.art = KeyboardArt(scene)
        self.hom = homography(scene)
        self.hands = HandPainter(scene, self.hom, self.art)
        w, h = scene.size
        rng = np.random.default_rng(scene.seed + 3)
        self.background = _background(rng, w, h, scene.background_bgr)
        self.light = _light_field(scene, w, h)
        noise = [rng.normal(0, scene.noise_sigma, (h, w, 3)) for _ in range(4)]   # sensor noise, +/- parts
        self.noise_up = [np.clip(n, 0, 255).astype(np.uint8) for n in noise]
        self.noise_down = [np.clip(-n, 0, 255).astype(np.uint8) for n in noise]
        self.rng = rng

    def render(self, pressed_keys, tips, pressing, present, prev_tips=None):
        s = self.scene
        w, h = s.size
        canon = self.art.compose(pressed_keys)
        frame = cv2.warpPerspective(canon, self.hom, (w, h), dst=self.background.copy(),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        hands = self.hands.both_hands(tips, pressing, present)
        self.hands.draw(frame, self.hands.player_shapes())
        light = self._light_with_shadow(hands)
        drawn = frame.copy()
        self.hands.draw(drawn, hands)
        if prev_tips is not None:                      # motion blur: blend with a half-step-earlier pose
            speed = np.abs(tips - prev_tips).max() * self.hands.unit
            if speed * s.motion_blur > 3:
                self.hands.draw(frame, self.hands.both_hands((tips + prev_tips) / 2, pressing, present))
                drawn = cv2.addWeighted(drawn, 0.55, frame, 0.45, 0)
        frame = cv2.multiply(drawn, light, scale=1 / 128, dtype=cv2.CV_8U)
        if s.blur_sigma > 0.3:
            frame = cv2.GaussianBlur(frame, (5, 5), s.blur_sigma)
        k = self.rng.integers(len(self.noise_up))
        frame = cv2.subtract(cv2.add(frame, self.noise_up[k]), self.noise_down[k])
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)

    def _light_with_shadow(self, hands):
        """The lighting field darkened by the hands' soft shadow, offset away from the light."""
        s = self.scene
        h, w = self.light.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        self.hands.draw(mask, hands, mask=True)
        dx, dy = (np.array(s.light_dir) * 0.6 * self.hands.unit).astype(int)
        mask = np.roll(mask, (dy, dx), (0, 1))
        radius = max(1, int(0.4 * self.hands.unit)) * 2 + 1
        mask = cv2.blur(cv2.blur(mask, (radius, radius)), (radius, radius))
        shade = cv2.subtract(255, cv2.multiply(mask, s.shadow_strength))
        return cv2.multiply(self.light, cv2.cvtColor(shade, cv2.COLOR_GRAY2BGR), scale=1 / 255)


def _background(rng, w, h, tone):
    """Floor/table: soft light blotches, a wood/carpet grain, a few cables and objects."""
    low = cv2.resize(rng.normal(size=(4, 7)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    grain_axis = np.arange(h if rng.random() < 0.5 else w, dtype=np.float32)
    grain = np.sin(grain_axis * rng.uniform(0.05, 0.5) + rng.normal(size=grain_axis.size).cumsum() * 0.05)
    grain = grain[:, None] if grain.size == h else grain[None, :]
    texture = rng.normal(size=(h // 4 + 1, w // 4 + 1)).astype(np.float32)
    texture = cv2.resize(texture, (w, h))[:h, :w]
    shade = 1 + 0.12 * low + rng.uniform(0, 0.08) * grain + rng.uniform(0, 0.05) * texture
    img = np.array(tone, np.float32) * shade[..., None]
    for _ in range(rng.integers(1, 7)):
        pts = (rng.random((4, 2)) * [w, h]).astype(np.int32)
        color = tuple(float(c) for c in np.array(tone) * rng.uniform(0.2, 1.6))
        if rng.random() < 0.7:     # cables
            cv2.polylines(img, [pts], False, color, int(rng.integers(1, 5)), cv2.LINE_AA)
        else:                      # books, a tablet, a bench edge
            x, y = pts[0]
            cv2.rectangle(img, (int(x), int(y)), (int(x + rng.uniform(0.05, 0.3) * w),
                                                  int(y + rng.uniform(0.05, 0.3) * h)), color, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _light_field(scene, w, h):
    """Multiplicative lighting (uint8, 128 = 1.0): colour gain, a gradient and a vignette."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xn, yn = xx / w - 0.5, yy / h - 0.5
    lx, ly = scene.light_dir
    field = 1 + scene.gradient * (xn * lx + yn * ly) - scene.vignette * (xn ** 2 + yn ** 2)
    gains = np.array(scene.light_gain, np.float32)
    return np.clip(128 * field[..., None] * gains, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- whole videos

def check_performance(pm, source):
    """Reject MIDI that cannot be rendered: no notes, or notes outside the 88 keys."""
    notes = midi_notes(pm, sustain=False)
    if not notes:
        raise AudeoError(f"{source}: MIDI has no notes")
    outside = sorted({n[0] for n in notes if not MIDI_LOW <= n[0] < MIDI_LOW + N_KEYS})
    if outside:
        raise AudeoError(f"{source}: notes outside the 88 keys (MIDI {outside[0]}..{outside[-1]}); "
                         f"the piano spans MIDI {MIDI_LOW}..{MIDI_LOW + N_KEYS - 1}")
    return notes


def shift_performance(pm, lead_in):
    """The performance moved so its first note starts `lead_in` seconds in, on the MIDI tick grid."""
    first = min(n.start for inst in pm.instruments for n in inst.notes)
    return regrid(pm, lead_in - first)


class Performance:
    """A rendering plan: the key-down roll at the video's fps and the hands' poses."""

    def __init__(self, pm, fps, tail):
        notes = midi_notes(pm, sustain=False)
        end = max(n[2] for n in midi_notes(pm, sustain=True))
        self.n_frames = int(math.ceil((end + tail) * fps))
        self.keys_down = notes_to_roll(notes, n_frames=self.n_frames, fps=fps).astype(bool)
        spans = [(p - MIDI_LOW, time_to_frame(s, fps), time_to_frame(e, fps))
                 for p, s, e, _ in roll_to_notes(self.keys_down, fps=fps)]
        self.tips, self.pressing, self.present = plan_hands(spans, self.n_frames, fps)

    def frames(self, renderer):
        """Yield rendered frames in order."""
        prev = None
        for t in range(self.n_frames):
            tips = self.tips[:, t]
            yield renderer.render(self.keys_down[t], tips, self.pressing[:, t], self.present[:, t], prev)
            prev = tips


def render(midi_path, out_dir, seed=DEFAULTS["seed"], far_side=DEFAULTS["far_side"], fps=DEFAULTS["fps"],
           lead_in=DEFAULTS["lead_in"], tail=DEFAULTS["tail"], progress=True):
    """Render `midi_path` into `out_dir` (all or nothing). Returns the render.json dict."""
    from tqdm import tqdm
    from audeo_synth import find_synthesizer, synthesize, write_wav
    from audeo_video import video_writer

    pm = load_midi(midi_path)
    check_performance(pm, midi_path)
    if fps <= 0:
        raise AudeoError(f"--fps {fps}: must be positive")
    pm = shift_performance(pm, lead_in)
    synth = find_synthesizer()
    scene = sample_scene(seed, far_side=far_side, fps=fps)
    perf = Performance(pm, fps, tail)
    renderer = FrameRenderer(scene)
    with atomic_dir(out_dir) as tmp:
        write_midi(pm, tmp / "performance.mid")
        write_wav(tmp / "audio.wav", synthesize(pm, synth, SAMPLE_RATE), SAMPLE_RATE)
        w, h = scene.size
        with video_writer(tmp / "video.mp4", w, h, fps, crf=int(np.interp(scene.jpeg_quality, [35, 92], [30, 20]))) as write:
            for frame in tqdm(perf.frames(renderer), total=perf.n_frames, desc="render", unit="frame",
                              disable=not progress):
                write(frame)
        box = keyboard_box(scene)
        (tmp / "box.txt").write_text(" ".join(map(str, box)) + "\n")
        meta = dict(scene=asdict(scene), box=box, n_frames=perf.n_frames, fps=fps,
                    duration=perf.n_frames / fps, synthesizer=synth.description, source=str(midi_path))
        (tmp / "render.json").write_text(json.dumps(meta, indent=1))
    print(f"rendered {perf.n_frames} frames ({perf.n_frames / fps:.1f} s) at {w}x{h}, "
          f"{'far' if far_side else 'player'} side, audio by {synth.description} -> {out_dir}")
    return meta
