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

Segments are concatenated in numeric order of their start frame (the original sorted by path depth
and crashed). Roll -> notes is audeo_synth.roll_notes: one note per run of on-frames, runs shorter
than --min-frames dropped, held runs split at probability dips of at least --restrike-depth.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from audeo_cli import parser, run
from audeo_constants import DEFAULT_VELOCITY, FPS
from audeo_io import AudeoError, check_writable, list_segments, read_segments, select_videos, sigmoid, to_88_keys
from audeo_synth import find_synthesizer, render, roll_notes

DEFAULTS = dict(key="midi", out="Midi_Synth", velocity=DEFAULT_VELOCITY, min_frames=1, restrike_depth=None)
KEYS = ("midi", "roll")          # Roll2Midi results / Video2Roll estimates
LOGIT_KEY = "logit"              # Video2Roll estimates also hold the logits


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
    return {v: found[v] for v in select_videos(list(found), videos, rolls)}


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
    return sigmoid(to_88_keys(logit[:n_frames].astype(np.float32), folder))


def main(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
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
