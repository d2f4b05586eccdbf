"""Find where a MIDI file's time 0 falls in a piano video, by aligning the MIDI with what the video shows.

In:  a video's 25 fps keyboard crops (or the video and its box) and a performance MIDI of it.
Out: the offset in seconds (video time of MIDI time 0), found by matching the MIDI's key-down roll
     against Video2Roll's key probabilities for the video: a coarse search over every offset that
     leaves the two overlapping (cross-correlation over whole frames; or +-window around a given
     value), then a fine search at `fine_step` around the best, where each note covers frames fractionally so the score varies
     smoothly below one frame. The score adds the correlation of the key states and of their onsets.

    .venv/bin/python Video_align.py VIDEO --midi REF.mid [--box x1 y1 x2 y2] [--side far] [--pitch-shift 12]
"""
from __future__ import annotations

import argparse

import numpy as np

from audeo_cli import add_device_arg, resolve_device, run
from audeo_constants import FPS, MIDI_LOW, N_KEYS
from audeo_io import AudeoError, load_midi, midi_notes

DEFAULTS = dict(fine_window=0.3, fine_step=0.005, onset_weight=1.0, batch_size=32)


def video_probs(crops, checkpoint=None, device="cpu", batch_size=DEFAULTS["batch_size"]):
    """Video2Roll key-down probabilities (T, 88) for uint8 crops (T, 100, 900)."""
    from Audeo import DEFAULTS as AUDEO
    from Video2Roll_net import iter_logits, load_model, outputs_to_88
    model, config = load_model(checkpoint or AUDEO["video2roll"], device)
    logits = np.stack(list(iter_logits(model, crops, batch_size, device)))
    return outputs_to_88(1 / (1 + np.exp(-logits)), config)


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
    probs = video_probs(crops, checkpoint, device) if probs is None else probs
    onsets = _normalise(np.maximum(np.diff(probs, axis=0, prepend=0), 0))
    probs_n = _normalise(probs)
    if near is None:
        centre, half = coarse_offset(probs, notes), fine_window
    else:
        centre, half = float(near), float(window if window is not None else 1.0)
    best = lambda cands: float(cands[int(np.argmax([score(probs_n, onsets, notes, o, onset_weight) for o in cands]))])
    centre = best(np.arange(centre - half, centre + half + 1e-9, 1 / FPS))          # whole frames first
    return best(np.arange(centre - 1.5 / FPS, centre + 1.5 / FPS + 1e-9, fine_step))  # then below a frame


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("video")
    p.add_argument("--midi", required=True)
    p.add_argument("--box", type=int, nargs=4, metavar=("X1", "Y1", "X2", "Y2"), help="keyboard box (else detected)")
    p.add_argument("--side", choices=("auto", "player", "far"), default="auto")
    p.add_argument("--pitch-shift", type=int, default=0, help="semitones added to the MIDI's notes")
    p.add_argument("--near", type=float, help="search only around this offset (s)")
    p.add_argument("--window", type=float, default=1.0, help="half-width (s) of the search around --near")
    p.add_argument("--checkpoint", help="Video2Roll checkpoint (default: the shipped one)")
    add_device_arg(p)
    args = p.parse_args(argv)
    from Video_prepare import read_crops, resolve_box, shift_pitch
    box, far_side, _ = resolve_box(args.video, args.box, {"auto": None, "player": False, "far": True}[args.side])
    pm = shift_pitch(load_midi(args.midi), args.pitch_shift, args.midi)
    crops = read_crops(args.video, box, far_side)
    offset = estimate_offset(crops, pm, near=args.near, window=args.window if args.near is not None else None,
                             checkpoint=args.checkpoint, device=resolve_device(args.device))
    print(f"{offset:.3f}")


if __name__ == "__main__":
    run(main)
