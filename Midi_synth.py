"""Midi_synth: piano rolls -> MIDI files and 16 kHz wavs (the original's last stage, fixed).

In:  --rolls FOLDER   either a folder of video folders (e.g. Roll2Midi_results/testing or
                      estimate_Roll/testing) or one video's segment folder, holding
                      `<start>-<end>.npz` segments with array --key (`midi`: Roll2Midi results,
                      51 or 88 columns; `roll`: Video2Roll estimates, 88 columns)
     --restrike-depth D (optional) also split held notes where the Video2Roll probability
                      sigmoid(`logit`) dips by at least D: the `logit` arrays come from --logits
                      (a folder laid out like --rolls, e.g. estimate_Roll/testing; default --rolls)
Out: OUT/<video>.mid  the notes (program 0, constant velocity, time 0 = the first segment's start)
     OUT/<video>.wav  them synthesised at 16 kHz mono (16-bit PCM); at least as long as the roll
One log line per video names the synthesizer (FluidSynth or tinysoundfont, and the soundfont).
Each file appears only when complete.

Roll -> notes (`roll_notes`):
  * segments are concatenated in numeric order of their start frame (the original sorted by path
    depth and crashed); 51-key rolls go to the 88-key columns 15..65; pitch = 21 + column;
  * each run of on-frames [a, b) of a key is one note from a/25 s to b/25 s (a note still on at the
    last frame ends there), as the original;
  * runs shorter than --min-frames are dropped (Video2Roll flicker);
  * a binary roll cannot show a re-strike without an off frame, so given probabilities a run is
    split after every interior local minimum m whose dip is at least --restrike-depth below the
    highest probability on each side of it (within the current note and within the rest of the run):
    the second note starts at frame m + 1. A split is made only when both parts keep at least
    --min-frames frames. A slow rise at a note's start is no dip (nothing higher comes before it).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from audeo_cli import run
from audeo_constants import DEFAULT_VELOCITY, FPS, MIDI_LOW, SAMPLE_RATE
from audeo_io import (AudeoError, atomic_path, check_writable, list_segments, notes_to_pretty_midi, read_segments, roll_to_notes,
                      to_88_keys, write_midi)

DEFAULTS = dict(key="midi", out="Midi_Synth", velocity=DEFAULT_VELOCITY, min_frames=1, restrike_depth=None)
KEYS = ("midi", "roll")          # Roll2Midi results / Video2Roll estimates
LOGIT_KEY = "logit"              # Video2Roll estimates also hold the logits


# ----------------------------------------------------------------------------- roll -> notes

def restrike_splits(probs, start, end, depth, min_frames=1):
    """Frames inside the run [start, end) of one key's probabilities where a re-struck note begins.

    A split follows each interior local minimum m (p[m] < p[m-1] and p[m] <= p[m+1]) whose
    probability lies at least `depth` below the maximum of the current note so far and below the
    maximum of the rest of the run; the new note starts at m + 1. Both parts of a split keep at
    least `min_frames` frames.
    """
    p = np.asarray(probs, dtype=float)
    splits, current = [], start
    for m in range(start + 1, end - 1):
        if m <= current or not (p[m] < p[m - 1] and p[m] <= p[m + 1]):
            continue
        s = m + 1
        if (p[current:m].max() - p[m] >= depth and p[s:end].max() - p[m] >= depth
                and s - current >= min_frames and end - s >= min_frames):
            splits.append(s)
            current = s
    return splits


def roll_notes(roll, fps=FPS, velocity=DEFAULT_VELOCITY, min_frames=1, probs=None, restrike_depth=None):
    """(T, 51|88) roll -> [(pitch, start, end, velocity)] sorted by start, pitch.

    One note per run of on-frames (audeo_io.roll_to_notes); runs shorter than `min_frames` are
    dropped; with `probs` (same shape as `roll`, Video2Roll sigmoid probabilities) and
    `restrike_depth`, runs are split at re-strikes (see `restrike_splits`).
    """
    roll = to_88_keys(np.asarray(roll) > 0)
    split = probs is not None and restrike_depth is not None
    if split:
        probs = to_88_keys(np.asarray(probs, dtype=np.float32), "probabilities")
        if probs.shape != roll.shape:
            raise AudeoError(f"probabilities have shape {probs.shape}, the roll {roll.shape}")
    notes = []
    for pitch, start, end, _ in roll_to_notes(roll, fps=fps):
        a, b = int(round(start * fps)), int(round(end * fps))
        if b - a < min_frames:
            continue
        bounds = [a] + (restrike_splits(probs[:, pitch - MIDI_LOW], a, b, restrike_depth, min_frames)
                        if split else []) + [b]
        notes += [(pitch, f0 / fps, f1 / fps, velocity) for f0, f1 in zip(bounds, bounds[1:])]
    return sorted(notes, key=lambda n: (n[1], n[0]))


def roll_to_midi(roll, fps=FPS, velocity=DEFAULT_VELOCITY, min_frames=1, probs=None, restrike_depth=None):
    """(T, 51|88) roll -> PrettyMIDI with one piano (program 0); see `roll_notes`."""
    if not 1 <= velocity <= 127:
        raise AudeoError(f"velocity {velocity}: expected 1..127")
    return notes_to_pretty_midi(roll_notes(roll, fps, velocity, min_frames, probs, restrike_depth))


# ----------------------------------------------------------------------------- notes -> files

def output_paths(out_stem):
    """(OUT_STEM.mid, OUT_STEM.wav); the suffix is appended, so names with dots ('No.1') survive."""
    out_stem = Path(out_stem)
    return out_stem.with_name(out_stem.name + ".mid"), out_stem.with_name(out_stem.name + ".wav")


def render(roll, out_stem, synth=None, velocity=DEFAULT_VELOCITY, fps=FPS, min_frames=1, probs=None,
           restrike_depth=None):
    """Write OUT_STEM.mid and OUT_STEM.wav (16 kHz mono) for a (T, 51|88) roll.

    Returns (mid path, wav path, synthesizer description). `synth` is an audeo_synth.Synthesizer
    (default: audeo_synth.find_synthesizer()). The wav lasts at least T / fps seconds (plus the
    synthesizer's release tail). Both files appear together, only when both are complete.
    """
    from audeo_synth import find_synthesizer, synthesize, write_wav
    synth = synth or find_synthesizer()
    roll = np.asarray(roll)
    pm = roll_to_midi(roll, fps, velocity, min_frames, probs, restrike_depth)
    audio = synthesize(pm, synth, SAMPLE_RATE)
    audio = np.pad(audio, (0, max(0, int(np.ceil(len(roll) / fps * SAMPLE_RATE)) - len(audio))))
    mid, wav = output_paths(out_stem)
    try:
        with atomic_path(mid) as tmp_mid, atomic_path(wav) as tmp_wav:
            write_midi(pm, tmp_mid)
            write_wav(tmp_wav, audio, SAMPLE_RATE)
    except OSError as e:
        raise AudeoError(f"{mid.parent}: cannot write output ({e.strerror or e})") from None
    return mid, wav, synth.description


# ----------------------------------------------------------------------------- folders

def _has_segments(folder):
    try:
        list_segments(folder)
        return True
    except AudeoError:
        return False


def find_videos(rolls, videos=None):
    """{video name: segment folder}: `rolls` itself when it holds segments, else its sub-folders that do."""
    rolls = Path(rolls)
    if not rolls.is_dir():
        raise AudeoError(f"{rolls}: roll folder not found")
    if _has_segments(rolls):
        found = {rolls.resolve().name: rolls}
    else:
        found = {p.name: p for p in sorted(rolls.iterdir()) if p.is_dir() and _has_segments(p)}
        if not found:
            raise AudeoError(f"{rolls}: no <start>-<end>.npz segments in it or in its sub-folders")
    if videos:
        missing = sorted(set(videos) - set(found))
        if missing:
            raise AudeoError(f"{rolls}: no video {missing[0]!r}")
        found = {v: f for v, f in found.items() if v in videos}
    return found


def read_video_roll(folder, key=DEFAULTS["key"]):
    """(first frame, (T, 88) uint8 roll) of one video's segments, in numeric order."""
    first, roll = read_segments(folder, key)
    return first, to_88_keys(roll > 0, folder).astype(np.uint8)


def read_video_probs(folder, first, n_frames):
    """Sigmoid of the `logit` segments in `folder`, (n_frames, 88), aligned with a roll starting at `first`."""
    start, logit = read_segments(folder, LOGIT_KEY)
    if start != first or len(logit) < n_frames:
        raise AudeoError(f"{folder}: logits cover frames {start}..{start + len(logit)}, the roll "
                         f"{first}..{first + n_frames}")
    logit = to_88_keys(logit[:n_frames].astype(np.float32), folder)
    return 1 / (1 + np.exp(-logit))


def main(argv=None):
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--rolls", required=True, help="folder of video folders, or one video's segment folder")
    p.add_argument("--key", default=d["key"], choices=KEYS,
                   help="array to read: midi (Roll2Midi results) or roll (Video2Roll estimates)")
    p.add_argument("--out", default=d["out"], help="output folder for <video>.mid and <video>.wav")
    p.add_argument("--videos", nargs="*", help="only these videos")
    p.add_argument("--velocity", type=int, default=d["velocity"], help="constant note velocity (1..127)")
    p.add_argument("--min-frames", type=int, default=d["min_frames"], help="drop notes shorter than this (frames)")
    p.add_argument("--restrike-depth", type=float, default=d["restrike_depth"],
                   help="split held notes at probability dips this deep (needs logits; None: no splitting)")
    p.add_argument("--logits", help="folder laid out like --rolls holding `logit` segments (None: --rolls itself)")
    p.add_argument("--soundfont", help="sf2/sf3 file (None: the best one installed)")
    args = p.parse_args(argv)
    if not 1 <= args.velocity <= 127:
        p.error("--velocity must be in 1..127")
    if args.min_frames < 1:
        p.error("--min-frames must be at least 1")
    if args.restrike_depth is not None and not 0 < args.restrike_depth <= 1:
        p.error("--restrike-depth must be in (0, 1]")
    if args.logits and args.restrike_depth is None:
        p.error("--logits is only used with --restrike-depth")

    from tqdm import tqdm
    from audeo_synth import find_synthesizer
    synth = find_synthesizer(args.soundfont)              # a missing soundfont fails before any work
    videos = find_videos(args.rolls, args.videos)
    logit_folders = None
    if args.restrike_depth is not None:
        logit_root = Path(args.logits or args.rolls)
        logit_folders = {v: logit_root if _has_segments(logit_root) else logit_root / v for v in videos}
    out = Path(args.out)
    check_writable(out)
    for video, folder in tqdm(videos.items(), desc="videos", unit="video", disable=len(videos) < 2):
        first, roll = read_video_roll(folder, args.key)
        probs = read_video_probs(logit_folders[video], first, len(roll)) if logit_folders else None
        mid, wav, name = render(roll, out / video, synth=synth, velocity=args.velocity, min_frames=args.min_frames,
                                probs=probs, restrike_depth=args.restrike_depth)
        n_notes = len(roll_notes(roll, min_frames=args.min_frames, probs=probs, restrike_depth=args.restrike_depth))
        tqdm.write(f"{video}: {n_notes} notes, {len(roll)} frames ({len(roll) / FPS:.1f} s) -> {mid}, {wav} "
                   f"(synthesizer: {name})")


if __name__ == "__main__":
    run(main)
