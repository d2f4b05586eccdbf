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
