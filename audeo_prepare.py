"""Dataset preparation of a real video: 25 fps grayscale keyboard crops and labels in the dataset layout.

In:  a video OpenCV can read (any frame rate, size, camera side); the keyboard box and side (given, or
     found by audeo_keyboard); labels from a MIDI file (at a given offset, or 'auto': aligned with the
     video by audeo_align; pitch-shifted), or from the video's own audio track (basic-pitch), or none.
Out: ROOT/frames/<split>/<name>.npy            uint8 (T, 100, 900) crops at 25 fps (resampled in time)
     ROOT/labels/<split>/<name>.pkl, labels_keydown/, midi/<split>/<name>/<s>-<e>.npz, performances/
                                               with labels, on the same 25 fps frames
     ROOT/prepared/<name>.json                 what was done (source, fps, box, side, offset, trimming)
With labels, leading frames before the first key press are trimmed, as the original did. Excluded spans
(e.g. wrongly labelled ones) are cut out; the parts that remain are written as <name>__p0, <name>__p1,
... so no 5-frame stack straddles a cut.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audeo_align import estimate_offset
from audeo_constants import FPS
from audeo_io import (AudeoError, atomic_path, load_midi, midi_to_roll, notes_to_pretty_midi, regrid, shift_pitch,
                      write_dataset_video)
from audeo_video import read_crops, resolve_box, run_ffmpeg, video_info

DEFAULTS = dict(min_part_seconds=2.0)     # shorter parts left after --exclude are dropped
PREPARED_DIR = "prepared"


def first_key_press(pm, n_frames):
    keydown = midi_to_roll(pm, sustain=False, n_frames=n_frames)
    pressed = np.flatnonzero(keydown.any(1))
    return int(pressed[0]) if len(pressed) else None


def audio_notes(video):
    """Notes transcribed by basic-pitch from the video's own audio track (video time)."""
    import tempfile
    from audeo_synth import transcribe
    with tempfile.TemporaryDirectory(prefix="audeo_audio.") as tmp:
        wav = Path(tmp) / "audio.wav"
        failed = run_ffmpeg("-i", video, "-vn", "-ac", "1", "-ar", "22050", wav)
        if failed or not wav.is_file() or wav.stat().st_size < 1000:
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
            audio_labels=False, exclude=(), trim=True, min_part_seconds=DEFAULTS["min_part_seconds"], device="cpu"):
    """Crops and labels of one video into `root`; returns the prepared/<name>.json contents.

    box/far_side: as audeo_video.resolve_box; midi_offset: seconds, or 'auto' (aligned with Video2Roll
    on `device`); exclude: [(start s, end s)] of video time left out."""
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
            midi_offset = estimate_offset(crops, pm, device=device)
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
