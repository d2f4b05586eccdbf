"""Align every AI-Pianist take's MIDI with its video using a Video2Roll model (audeo_align, as Video_align.py).

    .venv/bin/python tools/align_ai_pianist.py --src ../shared/data/ai_pianist/TrainSet --checkpoint MODEL.pt --json offsets.json

Searches +-WINDOW s around the alignment file's value (or the README's correction) and writes
{take: offset} plus, per take, the file value, the difference, and the offsets found from the first
and the second half of the take alone (their spread measures how well the take's labels can line
up; takes whose halves disagree by more than --max-spread are left out of `offsets`), for
tools/prepare_ai_pianist.py --offsets. `--splits training --base OLD.json` re-aligns only the training
takes and keeps OLD.json's values for the rest (so held-out labels never depend on the model scored on them).
"""
import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audeo_ai_pianist import PITCH_SHIFT, given_offset, split_of, take_id  # noqa: E402
from audeo_align import estimate_offset, frame_probs  # noqa: E402
from audeo_cli import add_device_arg, resolve_device, run  # noqa: E402
from audeo_constants import FPS, SPLITS  # noqa: E402
from audeo_io import atomic_path, load_midi, shift_pitch  # noqa: E402
from audeo_video import read_crops, resolve_box  # noqa: E402

WINDOW = 3.0          # s: wider than the README's worst known error (2.5 s)
MAX_SPREAD = 0.1      # s: halves of a take that disagree by more than this leave it out
HALF_WINDOW = 0.5     # s: each half is searched this far around the whole take's offset


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", required=True, help="ai_pianist/TrainSet folder")
    p.add_argument("--checkpoint", required=True, help="Video2Roll checkpoint")
    p.add_argument("--json", required=True, help="write {offsets, report} here")
    p.add_argument("--window", type=float, default=WINDOW, help="half-width (s) of the search around the given offset")
    p.add_argument("--max-spread", type=float, default=MAX_SPREAD, help="leave out takes whose halves disagree more (s)")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="align only these splits' takes")
    p.add_argument("--takes", nargs="+", help="align only these takes (e.g. 5/0/2), of --splits")
    p.add_argument("--base", help="an earlier --json whose offsets and report are kept for the takes not aligned")
    p.add_argument("--about", default="", help="what made these offsets (written into the JSON)")
    add_device_arg(p)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    base = json.loads(Path(args.base).read_text()) if args.base else dict(offsets={}, report={})
    offsets, report = {}, {}
    for video in sorted(Path(args.src).rglob("*.wmv")):
        take = take_id(video, Path(args.src))
        if split_of(take) not in args.splits or (args.takes and take not in args.takes):
            offsets.update({take: base["offsets"][take]} if take in base["offsets"] else {})
            report.update({take: base["report"][take]} if take in base["report"] else {})
            continue
        box, far_side, _ = resolve_box(video, None, None)
        with contextlib.redirect_stderr(io.StringIO()):
            crops = read_crops(video, box, far_side)
        pm = shift_pitch(load_midi(f"{video}.mid"), PITCH_SHIFT, video)
        given = given_offset(take, video)
        probs = frame_probs(crops, args.checkpoint, device)
        found = estimate_offset(None, pm, probs=probs, near=given, window=args.window)
        half = len(probs) // 2
        first = estimate_offset(None, pm, probs=probs[:half], near=found, window=HALF_WINDOW)
        second = estimate_offset(None, pm, probs=probs[half:], near=found - half / FPS, window=HALF_WINDOW) + half / FPS
        spread = abs(first - second)
        if spread <= args.max_spread:
            offsets[take] = round(found, 4)
        report[take] = dict(file=round(given, 4), found=round(found, 4), diff=round(found - given, 4),
                            first_half=round(first, 4), second_half=round(second, 4), spread=round(spread, 4))
        print(f"{take}: file {given:.3f} found {found:.3f} ({found - given:+.3f} s), halves {first:.3f} / "
              f"{second:.3f} (spread {spread:.3f} s){'' if spread <= args.max_spread else ' -> left out'}", flush=True)
    with atomic_path(args.json) as tmp:
        Path(tmp).write_text(json.dumps(dict(about=args.about, offsets=offsets, report=report), indent=1))


if __name__ == "__main__":
    run(main)
