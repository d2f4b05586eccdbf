"""Prepare a real piano video for Video2Roll: 25 fps grayscale keyboard crops (and labels) in the dataset layout.

In:  a video OpenCV can read (any frame rate, size, camera side). The keyboard box comes from --box or
     --box-file, else it is found automatically (Keyboard_detect.py), and with it the camera side.
     Labels, optionally: --midi REF.mid with --midi-offset (the video time at which MIDI time 0 falls;
     `auto` searches it by aligning the MIDI with the video), --pitch-shift for MIDI stored in another
     octave; or --audio-labels: the video's own audio track transcribed with basic-pitch (as the
     original used Onsets and Frames on its audio).
Out: ROOT/frames/<split>/<name>.npy            uint8 (T, 100, 900) crops at 25 fps (resampled in time)
     ROOT/labels/<split>/<name>.pkl, labels_keydown/, midi/<split>/<name>/<s>-<e>.npz, performances/
                                               with labels, on the same 25 fps frames
     ROOT/prepared/<name>.json                 what was done (source, fps, box, side, offset, trimming)
With labels, leading frames before the first key press are trimmed, as the original did. --exclude
START-END (seconds of video time) cuts spans out (e.g. wrongly labelled ones); the parts that remain
are written as <name>__p0, <name>__p1, ... so no 5-frame stack straddles a cut.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from audeo_cli import run
from audeo_constants import FPS, MIDI_HIGH, MIDI_LOW, SPLITS
from audeo_io import (AudeoError, atomic_path, load_midi, midi_to_roll, notes_to_pretty_midi, regrid,
                      write_dataset_video)
from audeo_video import KeyboardBox, check_box, iter_crops, read_box, video_info

DEFAULTS = dict(split=SPLITS[2], midi_offset="0", pitch_shift=0, min_part_seconds=2.0)
PREPARED_DIR = "prepared"


def read_crops(video, box, far_side):
    """All crops of a video at 25 fps, uint8 (T, 100, 900)."""
    from tqdm import tqdm
    total = int(video_info(video).duration * FPS)
    crops = list(tqdm(iter_crops(video, box, far_side=far_side), total=total, desc=Path(video).name, unit="frame"))
    if not crops:
        raise AudeoError(f"{video}: no frames could be decoded")
    return np.stack(crops)


def first_key_press(pm, n_frames):
    keydown = midi_to_roll(pm, sustain=False, n_frames=n_frames)
    pressed = np.flatnonzero(keydown.any(1))
    return int(pressed[0]) if len(pressed) else None


def audio_notes(video):
    """Notes transcribed by basic-pitch from the video's own audio track (video time)."""
    import subprocess
    import tempfile
    import imageio_ffmpeg
    from audeo_synth import transcribe
    with tempfile.TemporaryDirectory(prefix="audeo_audio.") as tmp:
        wav = Path(tmp) / "audio.wav"
        proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(video), "-vn",
                               "-ac", "1", "-ar", "22050", str(wav)], capture_output=True, text=True)
        if proc.returncode != 0 or not wav.is_file() or wav.stat().st_size < 1000:
            raise AudeoError(f"{video}: has no audio track to take labels from")
        return transcribe(wav)


def keep_spans(n_frames, exclude, min_frames):
    """[start, end) frame spans left after cutting out `exclude` [(start s, end s)] (video time)."""
    keep = np.ones(n_frames, bool)
    for a, b in exclude:
        keep[max(0, int(np.floor(a * FPS))):max(0, int(np.ceil(b * FPS)))] = False
    edges = np.flatnonzero(np.diff(np.r_[0, keep.astype(int), 0]))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2]) if e - s >= min_frames]


def prepare(video, root, split, name, box=None, far_side=None, midi=None, midi_offset=0.0, pitch_shift=0,
            audio_labels=False, exclude=(), trim=True, min_part_seconds=DEFAULTS["min_part_seconds"]):
    """Crops and labels of one video into `root`; returns the prepared/<name>.json contents."""
    root = Path(root)
    info = video_info(video)
    box, far_side, box_source = resolve_box(video, box, far_side)
    heard = audio_notes(video) if audio_labels else None          # fails early on a silent video
    crops = read_crops(video, box, far_side)
    meta = dict(source=str(video), source_fps=info.fps, size=[info.width, info.height], box=list(box),
                corners=getattr(box, "corners", None), box_source=box_source, far_side=far_side, fps=FPS,
                midi=str(midi) if midi else None, pitch_shift=pitch_shift, audio_labels=audio_labels,
                exclude=[list(x) for x in exclude])
    pm = None
    if audio_labels:
        pm = notes_to_pretty_midi(heard)
    elif midi:
        pm = shift_pitch(load_midi(midi), pitch_shift, midi)
        if midi_offset == "auto":
            from Video_align import estimate_offset
            midi_offset = estimate_offset(crops, pm)
        pm = regrid(pm, shift=float(midi_offset))
        meta["midi_offset"] = float(midi_offset)
    parts = keep_spans(len(crops), exclude, int(min_part_seconds * FPS))
    if pm is not None and trim:                       # leading silence trimmed to the first key press
        first = first_key_press(pm, len(crops))
        if first is None:
            raise AudeoError(f"{midi or video}: no notes fall inside the video")
        parts = [(max(s, first), e) for s, e in parts if e > first]
    if not parts:
        raise AudeoError(f"{video}: nothing left to prepare after trimming and --exclude")
    names = [name] if len(parts) == 1 else [f"{name}__p{i}" for i in range(len(parts))]
    for part, (s, e) in zip(names, parts):
        write_dataset_video(root, split, part, crops[s:e], None if pm is None else regrid(pm, -s / FPS))
    meta.update(parts={n: [s, e] for n, (s, e) in zip(names, parts)}, frames=sum(e - s for s, e in parts))
    with atomic_path(root / PREPARED_DIR / f"{name}.json") as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=1))
    return meta


def resolve_box(video, box, far_side):
    """(box, far_side, how): as given, or detected (the side too, unless given)."""
    if box is not None:
        info = video_info(video)
        return check_box(box, info.width, info.height, video), bool(far_side), "given"
    from Keyboard_detect import detect_in_video
    found = detect_in_video(video)
    return KeyboardBox(found.box, found.corners), found.far_side if far_side is None else bool(far_side), "detected"


def shift_pitch(pm, semitones, source):
    """Every note moved by `semitones` (e.g. +12 for MIDI stored an octave low); must stay on 88 keys."""
    if not semitones:
        return pm
    for inst in pm.instruments:
        for n in inst.notes:
            n.pitch += semitones
    outside = [n.pitch for i in pm.instruments for n in i.notes if not MIDI_LOW <= n.pitch <= MIDI_HIGH]
    if outside:
        raise AudeoError(f"{source}: --pitch-shift {semitones} puts notes outside the 88 keys (MIDI {outside[0]})")
    return pm


def parse_exclude(text):
    try:
        a, b = (float(x) for x in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected START-END in seconds") from None
    return a, b


def main(argv=None):
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("video", help="input video file")
    p.add_argument("--out", required=True, help="dataset root")
    p.add_argument("--split", default=d["split"])
    p.add_argument("--name", help="video name in the dataset (default: the file's stem)")
    p.add_argument("--box", type=int, nargs=4, metavar=("X1", "Y1", "X2", "Y2"), help="keyboard box (else detected)")
    p.add_argument("--box-file", help="file holding `x1 y1 x2 y2` (e.g. a render's box.txt)")
    p.add_argument("--side", choices=("auto", "player", "far"), default="auto",
                   help="camera side; auto = detected with the box (player side when a box is given)")
    p.add_argument("--midi", help="reference MIDI for labels")
    p.add_argument("--midi-offset", default=d["midi_offset"], help="video time (s) of MIDI time 0, or 'auto'")
    p.add_argument("--pitch-shift", type=int, default=d["pitch_shift"], help="semitones added to the MIDI's notes")
    p.add_argument("--audio-labels", action="store_true", help="labels from the video's own audio (basic-pitch)")
    p.add_argument("--exclude", type=parse_exclude, nargs="*", default=[], metavar="START-END",
                   help="video-time spans (s) to leave out")
    p.add_argument("--no-trim", dest="trim", action="store_false", help="keep frames before the first key press")
    args = p.parse_args(argv)
    if args.midi and args.audio_labels:
        p.error("--midi and --audio-labels are alternatives")
    box = read_box(args.box_file) if args.box_file else args.box
    far_side = {"auto": None, "player": False, "far": True}[args.side]
    if args.midi_offset != "auto":
        try:
            float(args.midi_offset)
        except ValueError:
            p.error(f"--midi-offset {args.midi_offset!r}: a number of seconds or 'auto'")
    name = args.name or Path(args.video).stem
    meta = prepare(args.video, args.out, args.split, name, box, far_side, args.midi, args.midi_offset,
                   args.pitch_shift, args.audio_labels, args.exclude, args.trim)
    print(f"{name}: {meta['frames']} frames at {FPS} fps (from {meta['source_fps']:.3g} fps), box "
          f"{' '.join(map(str, meta['box']))} ({meta['box_source']}, {'far' if meta['far_side'] else 'player'} side)"
          f" -> {args.out}")


if __name__ == "__main__":
    run(main)
