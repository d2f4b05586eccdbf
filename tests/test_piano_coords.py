"""The original's 27 videos and crop boxes."""
import piano_coords as pc
from conftest import REPO


def test_videos_and_boxes():
    assert len(pc.train_piano_coords) == 24 and len(pc.test_piano_coords) == 3 and len(pc.VIDEOS) == 27
    for v in pc.VIDEOS:
        x1, y1, x2, y2 = v.box
        assert 0 <= x1 < x2 <= 1920 and 0 <= y1 < y2 <= 1080
        assert 9.0 < (x2 - x1) / (y2 - y1) < 9.9           # the original's crop aspect
    assert pc.box_of("_3qnL9ddHuw") == (68, 674, 1869, 863)
    assert pc.box_of("Bach Prelude and Fugue No.3 B2") == (40, 671, 1879, 871)
    text = (REPO / "Video_Id.md").read_text()
    assert all(v.youtube_id in text for v in pc.VIDEOS)
