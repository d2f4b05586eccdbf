"""Align every AI-Pianist take's MIDI with its video using a Video2Roll model (Video_align.py).

    .venv/bin/python tools/align_ai_pianist.py --src ../shared/data/ai_pianist/TrainSet --checkpoint MODEL.pt --out offsets.json

Searches +-WINDOW s around the alignment file's value (or the README's correction) and writes
{take: offset} plus, per take, the file value and the difference, for tools/prepare_ai_pianist.py --offsets.
"""
import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audeo_cli import run  # noqa: E402
from audeo_io import atomic_path, load_midi  # noqa: E402

WINDOW = 3.0          # s: wider than the README's worst known error (2.5 s)


def main(argv=None):
    import Video_align
    from tools.prepare_ai_pianist import OFFSET_FIX, PITCH_SHIFT, file_offset, take_id
    from Video_prepare import read_crops, resolve_box, shift_pitch
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--window", type=float, default=WINDOW)
    args = p.parse_args(argv)
    offsets, report = {}, {}
    for video in sorted(Path(args.src).rglob("*.wmv")):
        take = take_id(video, Path(args.src))
        box, far_side, _ = resolve_box(video, None, None)
        with contextlib.redirect_stderr(io.StringIO()):
            crops = read_crops(video, box, far_side)
        pm = shift_pitch(load_midi(f"{video}.mid"), PITCH_SHIFT, video)
        given = OFFSET_FIX.get(take, file_offset(f"{video}.txt"))
        found = Video_align.estimate_offset(crops, pm, near=given, window=args.window, checkpoint=args.checkpoint)
        offsets[take] = round(found, 4)
        report[take] = dict(file=round(given, 4), found=round(found, 4), diff=round(found - given, 4))
        print(f"{take}: file {given:.3f} found {found:.3f} ({found - given:+.3f} s)", flush=True)
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(json.dumps(dict(offsets=offsets, report=report), indent=1))


if __name__ == "__main__":
    run(main)
