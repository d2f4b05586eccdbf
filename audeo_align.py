"""Alignment: where a MIDI file's time 0 falls in a piano video, from what the video shows.

In:  a video's 25 fps keyboard crops (or Video2Roll's key probabilities for them) and a performance MIDI.
Out: the offset in seconds (video time of MIDI time 0), found by matching the MIDI's key-down roll
     against Video2Roll's key probabilities for the video: a coarse search over every offset that
     leaves the two overlapping (cross-correlation over whole frames; or +-window around a given
     value), then a fine search at `fine_step` around the best, where each note covers frames
     fractionally so the score varies smoothly below one frame. The score adds the correlation of the
     key states and of their onsets.
"""
from __future__ import annotations

import numpy as np

from audeo_constants import FPS, MIDI_LOW, N_KEYS, VIDEO2ROLL_MODEL
from audeo_io import AudeoError, midi_notes, sigmoid, to_88_keys

DEFAULTS = dict(fine_window=0.3, fine_step=0.005, onset_weight=1.0, batch_size=32)


def frame_probs(crops, checkpoint=None, device="cpu", batch_size=DEFAULTS["batch_size"]):
    """Video2Roll key-down probabilities (T, 88) for uint8 crops (T, 100, 900) (default: the shipped model)."""
    from Video2Roll_net import load_model, video_outputs
    model, _ = load_model(checkpoint or VIDEO2ROLL_MODEL, device)
    logits, _ = video_outputs(model, crops, batch_size, device)
    return to_88_keys(sigmoid(logits[:, 0]))


def soft_roll(notes, offset, n_frames):
    """(T, 88) fraction of each 25 fps frame that each key is down, notes moved by `offset` seconds."""
    roll = np.zeros((n_frames + 1, N_KEYS), np.float32)
    for pitch, start, end, _ in notes:
        a, b = (start + offset) * FPS, (end + offset) * FPS
        a, b = max(a, 0.0), min(b, float(n_frames))
        if b <= a:
            continue
        fa, fb, key = int(a), int(b), pitch - MIDI_LOW
        if fa == fb:
            roll[fa, key] += b - a
            continue
        roll[fa, key] += fa + 1 - a
        roll[fa + 1:fb, key] += 1
        roll[fb, key] += b - fb
    return np.minimum(roll[:n_frames], 1)


def _normalise(x):
    x = x - x.mean(axis=0, keepdims=True)
    return x / (np.linalg.norm(x) + 1e-9)


def score(probs, onsets, notes, offset, onset_weight):
    ref = soft_roll(notes, offset, len(probs))
    ref_on = np.maximum(np.diff(ref, axis=0, prepend=0), 0)
    return float((probs * _normalise(ref)).sum() + onset_weight * (onsets * _normalise(ref_on)).sum())


def coarse_offset(probs, notes):
    """Best whole-frame offset over every shift that overlaps video and MIDI (FFT cross-correlation)."""
    end = max(n[2] for n in notes)
    ref = soft_roll(notes, 0.0, int(np.ceil(end * FPS)) + 1)
    a, b = probs - probs.mean(0), ref - ref.mean(0)
    n = len(a) + len(b)
    corr = np.fft.irfft(np.fft.rfft(a, n, axis=0) * np.conj(np.fft.rfft(b, n, axis=0)), n, axis=0).sum(1)
    shifts = np.r_[np.arange(len(a)), np.arange(-len(b), 0)]
    return shifts[int(np.argmax(corr))] / FPS


def estimate_offset(crops, pm, probs=None, near=None, window=None, checkpoint=None, device="cpu",
                    fine_window=DEFAULTS["fine_window"], fine_step=DEFAULTS["fine_step"],
                    onset_weight=DEFAULTS["onset_weight"]):
    """Video time (s) of MIDI time 0. `near` (with `window`, s) limits the search around a known value."""
    notes = [n for n in midi_notes(pm, sustain=False) if MIDI_LOW <= n[0] < MIDI_LOW + N_KEYS]
    if not notes:
        raise AudeoError("the MIDI has no notes on the 88 keys to align")
    probs = frame_probs(crops, checkpoint, device) if probs is None else probs
    onsets = _normalise(np.maximum(np.diff(probs, axis=0, prepend=0), 0))
    probs_n = _normalise(probs)
    if near is None:
        centre, half = coarse_offset(probs, notes), fine_window
    else:
        centre, half = float(near), float(window if window is not None else 1.0)
    best = lambda cands: float(cands[int(np.argmax([score(probs_n, onsets, notes, o, onset_weight) for o in cands]))])
    centre = best(np.arange(centre - half, centre + half + 1e-9, 1 / FPS))          # whole frames first
    return best(np.arange(centre - 1.5 / FPS, centre + 1.5 / FPS + 1e-9, fine_step))  # then below a frame
