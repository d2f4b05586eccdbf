"""Render a silent top-down video of a pianist playing a MIDI file, with its audio and labels.

In:  --midi FILE   a performance MIDI file (notes, velocities, sustain pedal); --seed, --side, --fps
Out: OUT/video.mp4   silent H.264 video of two hands playing an 88-key keyboard (--fps, default 25)
     OUT/audio.wav   the same performance through FluidSynth (16 kHz mono)
     OUT/performance.mid  the performance itself (the label source)
     OUT/box.txt     the keyboard's crop box `x1 y1 x2 y2` in video pixels
     OUT/render.json every random choice, the synthesizer used, frame count
The folder appears only when complete. --side far puts the camera beyond the keyboard (the image
turned 180 degrees). What is drawn, and how: audeo_render.py.
"""
from __future__ import annotations

from audeo_cli import parser, run
from audeo_render import DEFAULTS, render


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--midi", required=True, help="performance MIDI file to play")
    p.add_argument("--out", required=True, help="output folder (replaced only when complete)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="draws camera, lighting, tones, hands")
    p.add_argument("--side", choices=("player", "far"), default="far" if DEFAULTS["far_side"] else "player",
                   help="camera side: player, or far (beyond the keyboard: the image turned 180 degrees)")
    p.add_argument("--fps", type=float, default=DEFAULTS["fps"], help="video frame rate")
    args = p.parse_args(argv)
    render(args.midi, args.out, seed=args.seed, far_side=args.side == "far", fps=args.fps)


if __name__ == "__main__":
    run(main)
