"""Find the piano keyboard in a top-down video or photo: its crop box and which side the camera is on.

In:  VIDEO_OR_IMAGE  a video OpenCV can read (any size, frame rate, camera side) or a still image (png/jpg/...).
Out: stdout  `x1 y1 x2 y2 far|player`: the axis-aligned box around the keys in frame pixels (from the
             back end of the keys to the front edge of the white keys, leftmost to rightmost key,
             clipped to the frame; x2/y2 exclusive, the convention of Piano_render's box.txt and of
             audeo_video.crop_keyboard) and the camera side (`far`: the camera is beyond the keyboard,
             the image turned 180 degrees: treble on the left, the player and the white keys' front
             edge at the top; crop with far_side=True)
     --json  the same plus angle, score, the key area's four corners and the black keys counted
     --debug a PNG of the (median) frame with the detection drawn on it
How it finds the keyboard (classical vision, no learning): see audeo_keyboard.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2

from audeo_cli import parser, run
from audeo_io import AudeoError, atomic_path
from audeo_keyboard import PARAMS, detect_keyboard, draw_detection, load_source, median_frame


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("source", metavar="VIDEO_OR_IMAGE", help="a video, or a still image of the keyboard")
    p.add_argument("--json", help="write the detection as JSON here")
    p.add_argument("--debug", help="write a PNG with the detection drawn on the (median) frame here")
    p.add_argument("--samples", type=int, default=PARAMS.n_samples, help="video frames for the temporal median")
    args = p.parse_args(argv)
    if args.samples < 1:
        raise AudeoError(f"--samples {args.samples}: must be at least 1")
    frames = load_source(args.source, args.samples)
    frame = frames[0] if len(frames) == 1 else median_frame(frames, args.source)
    det = detect_keyboard(frame, source=args.source)
    x1, y1, x2, y2 = det.box
    print(f"{x1} {y1} {x2} {y2} {'far' if det.far_side else 'player'}")
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(det.as_dict(), indent=1) + "\n")
    if args.debug:
        with atomic_path(Path(args.debug).with_suffix(".png")) as tmp:
            if not cv2.imwrite(tmp, draw_detection(frame, det)):
                raise AudeoError(f"{args.debug}: cannot write the debug image")


if __name__ == "__main__":
    run(main)
