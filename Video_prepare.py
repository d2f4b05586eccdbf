"""Prepare a real piano video for Video2Roll: 25 fps grayscale keyboard crops (and labels) in the dataset layout.

In:  VIDEO, any video OpenCV can read (any frame rate, size, camera side). The keyboard box comes from --box
     or --box-file, else it is found automatically (audeo_keyboard), and with it the camera side (--side).
     Labels, optionally: --midi REF.mid with --midi-offset (the video time at which MIDI time 0 falls;
     `auto` searches it by aligning the MIDI with the video, on --device), --pitch-shift for MIDI stored in another
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
from pathlib import Path

from audeo_cli import SIDES, add_device_arg, add_video_args, parser, resolve_device, run
from audeo_constants import FPS, SPLITS
from audeo_prepare import prepare
from audeo_video import read_box

DEFAULTS = dict(split=SPLITS[2], midi_offset="0", pitch_shift=0)


def parse_exclude(text):
    try:
        a, b = (float(x) for x in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected START-END in seconds") from None
    return a, b


def main(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    add_video_args(p)
    p.add_argument("--box-file", help="file holding `x1 y1 x2 y2` (e.g. a render's box.txt), instead of --box")
    p.add_argument("--out", required=True, help="dataset root")
    p.add_argument("--split", default=d["split"])
    p.add_argument("--name", help="video name in the dataset (default: the file's stem)")
    p.add_argument("--midi", help="reference MIDI for labels")
    p.add_argument("--midi-offset", default=d["midi_offset"], help="video time (s) of MIDI time 0, or 'auto'")
    p.add_argument("--pitch-shift", type=int, default=d["pitch_shift"], help="semitones added to the MIDI's notes")
    p.add_argument("--audio-labels", action="store_true", help="labels from the video's own audio (basic-pitch)")
    p.add_argument("--exclude", type=parse_exclude, nargs="*", default=[], metavar="START-END",
                   help="video-time spans (s) to leave out")
    p.add_argument("--no-trim", dest="trim", action="store_false", help="keep frames before the first key press")
    add_device_arg(p)
    args = p.parse_args(argv)
    if args.midi and args.audio_labels:
        p.error("--midi and --audio-labels are alternatives")
    if args.box and args.box_file:
        p.error("--box and --box-file are alternatives")
    if args.midi_offset != "auto":
        try:
            float(args.midi_offset)
        except ValueError:
            p.error(f"--midi-offset {args.midi_offset!r}: a number of seconds or 'auto'")
    name = args.name or Path(args.video).stem
    meta = prepare(args.video, args.out, args.split, name, read_box(args.box_file) if args.box_file else args.box,
                   SIDES[args.side], args.midi, args.midi_offset, args.pitch_shift, args.audio_labels, args.exclude,
                   args.trim, device=resolve_device(args.device))
    print(f"{name}: {meta['frames']} frames at {FPS} fps (from {meta['source_fps']:.3g} fps), box "
          f"{' '.join(map(str, meta['box']))} ({meta['box_source']}, {'far' if meta['far_side'] else 'player'} side)"
          f" -> {args.out}")


if __name__ == "__main__":
    run(main)
