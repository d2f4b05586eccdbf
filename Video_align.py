"""Find where a MIDI file's time 0 falls in a piano video, by aligning the MIDI with what the video shows.

In:  VIDEO (with --box / --side, else the keyboard is found), --midi REF.mid (--pitch-shift N for a file
     stored N semitones low), --checkpoint (a Video2Roll model; default: the shipped one)
Out: stdout  the offset in seconds (video time of MIDI time 0); how it is found: audeo_align.py.

    .venv/bin/python Video_align.py VIDEO --midi REF.mid [--box X1 Y1 X2 Y2] [--side far] [--pitch-shift 12]
"""
from __future__ import annotations

from audeo_align import estimate_offset
from audeo_cli import SIDES, add_device_arg, add_video_args, parser, resolve_device, run
from audeo_io import load_midi, shift_pitch
from audeo_video import read_crops, resolve_box


def main(argv=None):
    p = parser(__doc__)
    add_video_args(p)
    p.add_argument("--midi", required=True, help="performance MIDI of the video")
    p.add_argument("--pitch-shift", type=int, default=0, help="semitones added to the MIDI's notes")
    p.add_argument("--near", type=float, help="search only around this offset (s)")
    p.add_argument("--window", type=float, default=1.0, help="half-width (s) of the search around --near")
    p.add_argument("--checkpoint", help="Video2Roll checkpoint (default: the shipped one)")
    add_device_arg(p)
    args = p.parse_args(argv)
    box, far_side, _ = resolve_box(args.video, args.box, SIDES[args.side])
    pm = shift_pitch(load_midi(args.midi), args.pitch_shift, args.midi)
    crops = read_crops(args.video, box, far_side)
    offset = estimate_offset(crops, pm, near=args.near, window=args.window if args.near is not None else None,
                             checkpoint=args.checkpoint, device=resolve_device(args.device))
    print(f"{offset:.3f}")


if __name__ == "__main__":
    run(main)
