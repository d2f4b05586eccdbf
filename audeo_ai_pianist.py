"""Facts about the real AI-Pianist videos (../shared/data/ai_pianist, from its README and PROBLEMS.txt).

Layout: TrainSet/<pianist>[/<angle>]/<take>.wmv with <take>.wmv.mid (the human MIDI, stored an octave
low: PITCH_SHIFT) and <take>.wmv.txt (alignment: line 1 the frame rate `30`, line 2 `h:m:s:frame`, the
video time of MIDI time 0). The camera is on the far side (detected, not assumed). Used by
tools/prepare_ai_pianist.py, tools/align_ai_pianist.py and tools/score_ai_pianist.py.
"""
from __future__ import annotations

from pathlib import Path

from audeo_constants import SPLITS

PITCH_SHIFT = 12
# Held-out pianists: validation and testing (the rest train). 9, 10 and 13 hold 9 of the README's
# checked alignments, so automatic alignment can be scored on takes no model was trained on.
SPLIT_OF_PIANIST = {"9": SPLITS[2], "10": SPLITS[2], "13": SPLITS[2], "11": SPLITS[1]}
TEST_PIANISTS = tuple(p for p, s in SPLIT_OF_PIANIST.items() if s == SPLITS[2])
# Takes whose alignment file the README says was checked against hand motion (to within 0.3 s, by hand).
CHECKED = ("1/3", "2/+45/1", "4/2", "6/0/1", "7/1.1", "7/4", "9/0/1", "9/+45/1", "9/-45/1", "9/-45/2", "10/0/1",
           "10/+45/1", "11/-45/1", "13/0/2", "13/+45/3.1", "13/-45/2")
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
OFFSETS = Path(__file__).resolve().parent / "tools" / "ai_pianist_offsets.json"   # {offsets: {take: s}}, aligned


def take_id(video, src):
    """'9/0/1' for SRC/9/0/1.wmv."""
    return str(Path(video).relative_to(src)).removesuffix(".wmv")


def split_of(take):
    """The split of a take: its pianist's held-out split, else training."""
    return SPLIT_OF_PIANIST.get(take.split("/")[0], SPLITS[0])


def take_name(take):
    """The dataset name of a take: ai_pianist_9_0_1, ai_pianist_9_p45_1, ai_pianist_9_m45_1."""
    return "ai_pianist_" + take.replace("/", "_").replace("+", "p").replace("-", "m")


def file_offset(path):
    """Video time (s) of MIDI time 0 from an alignment file: line 1 `30`, line 2 `h:m:s:frame`."""
    lines = Path(path).read_text().split()
    h, m, s, f = (int(x) for x in lines[1].split(":"))
    return 3600 * h + 60 * m + s + f / int(lines[0])


def given_offset(take, video):
    """The offset the data gives for a take: the README's correction, else its alignment file."""
    return OFFSET_FIX.get(take, file_offset(f"{video}.txt"))
