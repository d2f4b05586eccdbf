"""Shared test fixtures. Tests run from the repo root's modules; real data comes from ../shared/data."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts):
    """Path inside ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test material not present: {path} (../shared/data is not in a user's clone)")
    return path


TINY_CLIPS = 3


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Three short rendered clips in the original layout (one per split), built once per session."""
    import Render_dataset
    from test_render import write_clip_midi
    d = tmp_path_factory.mktemp("tiny")
    midis = [str(write_clip_midi(d / f"clip{i}.mid", seconds=2.5, seed=10 + i)) for i in range(TINY_CLIPS)]
    Render_dataset.main(["--out", str(d / "data"), "--no-corpus", "--midi", *midis, "--workers", "2",
                         "--far-side-fraction", "0.34", "--box-jitter", "0"])
    return d / "data"
