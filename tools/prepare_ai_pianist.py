"""Prepare the real AI-Pianist videos (../shared/data/ai_pianist) as a Video2Roll/Roll2Midi dataset.

In:  the AI-Pianist TrainSet folder: <pianist>[/<angle>]/<take>.wmv, .wmv.mid (labels), .wmv.txt (alignment).
Out: OUT in the dataset layout (frames/, labels/, labels_keydown/, midi/, performances/, prepared/), one
     video per take (or per part when spans are cut out), split by pianist, plus OUT/ai_pianist.json.

Facts applied (ai_pianist/README.md): MIDI pitches are stored an octave low (+12); the camera is on the
far side (detected, not assumed); the alignment file's line 2 `h:m:s:frame` (frame in 30 fps units)
is the video time of MIDI time 0, except where the README says it is wrong (corrected below, or the
take is left out when only a rough value is known); PROBLEMS.txt's bad-key and blocking spans are
cut out. The keyboard box is found automatically (Keyboard_detect.py).

    .venv/bin/python tools/prepare_ai_pianist.py --src ../shared/data/ai_pianist/TrainSet --out /work/data/ai_pianist
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audeo_cli import run  # noqa: E402
from audeo_constants import SPLITS  # noqa: E402
from audeo_io import AudeoError, atomic_path  # noqa: E402

PITCH_SHIFT = 12
# Held-out pianists: validation and testing (the rest train). 9, 10 and 13 hold 9 of the README's
# checked alignments, so automatic alignment can be scored on takes no model was trained on.
SPLIT_OF_PIANIST = {"9": SPLITS[2], "10": SPLITS[2], "13": SPLITS[2], "11": SPLITS[1]}
CHECKED = {"1/3", "2/+45/1", "4/2", "6/0/1", "7/1.1", "7/4", "9/0/1", "9/+45/1", "9/-45/1", "9/-45/2", "10/0/1",
           "10/+45/1", "11/-45/1", "13/0/2", "13/+45/3.1", "13/-45/2"}
OFFSET_FIX = {"7/1.2": 2.33, "13/+45/3.2": 3.3}        # the README: the file says 0, the truth is about this
ROUGH = {"8/-45/1", "6/-45/2", "5/+45/1.1", "5/0/2", "6/-45/1", "5/-45/2", "11/+45/3"}   # off by 0.5-2.5 s
# PROBLEMS.txt spans (seconds of video) of the takes named there: bad keys and recording stalls
# ("blocking"); a lone "second N" covers [N, N+1).
EXCLUDE = {
    "2/0/3": [(3.4, 5.3), (24, 25)], "3/1": [(3, 4), (43, 45)], "3/2": [(3, 4), (40, 41)],
    "3/4": [(3, 4), (39, 41)], "4/4": [(58, 60)], "8/+45/2": [(2.7, 3.5)], "8/0/2": [(58, 59)],
    "8/-45/2": [(51.9, 52.4)], "14/1": [(2.5, 5.0), (38, 40)], "14/2": [(11, 12)], "14/3": [(2.5, 3.5), (50, 51)],
    "5/+45/1": [(33.4, 1e9)], "6/+45/1": [(47.7, 55.3)], "7/1": [(38.3, 45.8)], "13/+45/3": [(72, 76)],
}


def take_id(video, src):
    return str(video.relative_to(src)).removesuffix(".wmv")


def file_offset(path):
    """Video time (s) of MIDI time 0 from an alignment file: line 1 `30`, line 2 `h:m:s:frame`."""
    lines = Path(path).read_text().split()
    h, m, s, f = (int(x) for x in lines[1].split(":"))
    return 3600 * h + 60 * m + s + f / int(lines[0])


def main(argv=None):
    from Video_prepare import prepare
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", required=True, help="ai_pianist/TrainSet folder")
    p.add_argument("--out", required=True, help="dataset root to write")
    p.add_argument("--only-checked", action="store_true", help="only the takes whose alignment the README checked")
    p.add_argument("--offsets", help="JSON {take: offset s} overriding the alignment files (e.g. from tools/align_ai_pianist.py)")
    args = p.parse_args(argv)
    override = json.loads(Path(args.offsets).read_text())["offsets"] if args.offsets else {}
    src = Path(args.src)
    videos = sorted(src.rglob("*.wmv"))
    if not videos:
        raise AudeoError(f"{src}: no .wmv takes")
    summary = []
    for video in videos:
        take = take_id(video, src)
        if (take in ROUGH and take not in override) or (args.only_checked and take not in CHECKED):
            continue
        offset = override.get(take, OFFSET_FIX.get(take, file_offset(f"{video}.txt")))
        split = SPLIT_OF_PIANIST.get(take.split("/")[0], SPLITS[0])
        name = "ai_pianist_" + take.replace("/", "_").replace("+", "p").replace("-", "m")
        meta = prepare(video, args.out, split, name, midi=f"{video}.mid", midi_offset=offset,
                       pitch_shift=PITCH_SHIFT, exclude=EXCLUDE.get(take, []))
        summary.append(dict(take=take, name=name, split=split, checked=take in CHECKED, offset=offset,
                            box=meta["box"], far_side=meta["far_side"], frames=meta["frames"], parts=meta["parts"]))
        print(f"{take}: {split}, {meta['frames']} frames, box {meta['box']}, far side {meta['far_side']}")
    with atomic_path(Path(args.out) / "ai_pianist.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    run(main)
