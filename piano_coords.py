"""The original Audeo videos' keyboard crop boxes, with their YouTube ids and pieces.

Boxes are (upper_left_x, upper_left_y, lower_right_x, lower_right_y) in the pixels of the downloaded
video (1920x1080, except training videos 7, 8, 11, 12, which are 1280x720); crop as
frame[y1:y2, x1:x2]. Order and ids follow Video_Id.md. `train_piano_coords` and `test_piano_coords`
keep the original file's names and values; `VIDEOS` adds the id and piece of each box.
"""
from __future__ import annotations

from typing import NamedTuple

train_piano_coords = [(68, 674, 1869, 863), (38, 680, 1882, 875), (42, 678, 1870, 874), (42, 678, 1870, 874),
                      (44, 670, 1876, 865), (35, 678, 1875, 869), (30, 451, 1249, 583), (28, 454, 1254, 584),
                      (39, 678, 1886, 881), (33, 671, 1886, 860), (29, 446, 1252, 576), (26, 447, 1252, 577),
                      (42, 673, 1879, 871), (43, 669, 1870, 869), (45, 675, 1864, 870), (53, 674, 1868, 860),
                      (51, 679, 1866, 866), (51, 674, 1861, 861), (48, 674, 1878, 861), (45, 671, 1879, 870),
                      (50, 671, 1879, 866), (54, 670, 1864, 863), (50, 670, 1870, 867), (43, 673, 1882, 869)]

test_piano_coords = [(41, 679, 1880, 881), (43, 675, 1883, 875), (40, 671, 1879, 871)]

TRAIN_IDS = ("_3qnL9ddHuw", "HB8-w5CvMls", "vGdV4mJhaKU", "W5lOLZsjOp8", "vHi3_k4XOrA", "PIS76X17Mf8",
             "DMdJLEGrUrg", "xXwCryMItHs", "49dCBsIGsgY", "OZVMVVQPPPI", "cAnmwgC-JRw", "w77mBaWOOh0",
             "MGMxImcYhiI", "WqFyqbD9VEQ", "V0P_2QG84MM", "1eEcy3MgqxA", "GH-kkZQQ8G8", "Kk58v56rD0s",
             "WWqRR7RZGXw", "ouhp7O3Sz8M", "U0v4CckNE68", "VaqWF70DjYs", "m2yadhLP8H8", "wRJlm0lCyoI")
TEST_IDS = ("u5nBBJndN3I", "nwwHuxHMIpc", "ra1jf2nzJPg")


class Video(NamedTuple):
    split: str        # "training" or "testing", the original's folder names
    name: str         # the original's label/frame folder name
    piece: str
    youtube_id: str
    box: tuple


def _videos(split, ids, boxes, book):
    return [Video(split, f"Bach Prelude and Fugue No.{i} {book}",
                  f"J.S. Bach, Well-Tempered Clavier Book {book[1]}, Prelude and Fugue No. {i}", vid, box)
            for i, (vid, box) in enumerate(zip(ids, boxes), start=1)]


VIDEOS = tuple(_videos("training", TRAIN_IDS, train_piano_coords, "B1")
               + _videos("testing", TEST_IDS, test_piano_coords, "B2"))


def box_of(name_or_id):
    """The crop box of a video given its folder name or YouTube id."""
    for v in VIDEOS:
        if name_or_id in (v.name, v.youtube_id):
            return v.box
    raise KeyError(f"unknown Audeo video: {name_or_id}")
