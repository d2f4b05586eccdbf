"""Prepare the real AI-Pianist videos (../shared/data/ai_pianist) as a Video2Roll/Roll2Midi dataset.

In:  the AI-Pianist TrainSet folder: <pianist>[/<angle>]/<take>.wmv, .wmv.mid (labels), .wmv.txt (alignment).
Out: OUT in the dataset layout (frames/, labels/, labels_keydown/, midi/, performances/, prepared/), one
     video per take (or per part when spans are cut out), split by pianist, plus OUT/ai_pianist.json.

Facts applied (audeo_ai_pianist.py, from ai_pianist/README.md): MIDI pitches are stored an octave low
(+12); the camera is on the far side (detected, not assumed); the alignment file gives the video time
of MIDI time 0, except where the README says it is wrong (corrected, or the take is left out when only
a rough value is known); PROBLEMS.txt's bad-key and blocking spans are cut out. The keyboard box is
found automatically and its crops rectified (audeo_keyboard). --offsets (tools/align_ai_pianist.py's
output, e.g. tools/ai_pianist_offsets.json) overrides the alignment files; takes whose file is only
rough stay out unless --include-rough.

    .venv/bin/python tools/prepare_ai_pianist.py --src ../shared/data/ai_pianist/TrainSet --out data/ai_pianist
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audeo_ai_pianist import (CHECKED, EXCLUDE, PITCH_SHIFT, ROUGH, given_offset, split_of, take_id,  # noqa: E402
                              take_name)
from audeo_cli import run  # noqa: E402
from audeo_io import AudeoError, atomic_path  # noqa: E402
from audeo_prepare import prepare  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", required=True, help="ai_pianist/TrainSet folder")
    p.add_argument("--out", required=True, help="dataset root to write")
    p.add_argument("--only-checked", action="store_true", help="only the takes whose alignment the README checked")
    p.add_argument("--offsets", help="JSON {offsets: {take: s}} overriding the alignment files (tools/align_ai_pianist.py)")
    p.add_argument("--include-rough", action="store_true",
                   help="also the takes with only a rough alignment file whose --offsets value both halves of "
                        "the take confirmed (a 'spread' in its report)")
    args = p.parse_args(argv)
    aligned = json.loads(Path(args.offsets).read_text()) if args.offsets else dict(offsets={}, report={})
    override = aligned["offsets"]
    confirmed = {t for t in override if "spread" in aligned.get("report", {}).get(t, {})}
    src = Path(args.src)
    videos = sorted(src.rglob("*.wmv"))
    if not videos:
        raise AudeoError(f"{src}: no .wmv takes")
    summary = []
    for video in videos:
        take = take_id(video, src)
        if (take in ROUGH and not (args.include_rough and take in confirmed)) or (args.only_checked and take not in CHECKED):
            continue
        offset = override.get(take, given_offset(take, video))
        split = split_of(take)
        name = take_name(take)
        meta = prepare(video, args.out, split, name, midi=f"{video}.mid", midi_offset=offset,
                       pitch_shift=PITCH_SHIFT, exclude=EXCLUDE.get(take, []))
        summary.append(dict(take=take, name=name, split=split, checked=take in CHECKED, offset=offset,
                            box=meta["box"], far_side=meta["far_side"], frames=meta["frames"], parts=meta["parts"]))
        print(f"{take}: {split}, {meta['frames']} frames, box {meta['box']}, far side {meta['far_side']}")
    with atomic_path(Path(args.out) / "ai_pianist.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    run(main)
