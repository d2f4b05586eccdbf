"""The checkpoints shipped in models/: small, safe to load (weights_only), and working at 88 keys."""
import pytest
import torch

from audeo_constants import CROP_HEIGHT, CROP_WIDTH, N_KEYS, SEGMENT_FRAMES, STACK_FRAMES
from conftest import REPO
from Roll2Midi_net import load_generator
from Video2Roll_net import load_model

MODELS = REPO / "models"
MAX_BYTES = 30_000_000
VIDEO2ROLL = sorted(MODELS.glob("video2roll_*.pt"))


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.pt")), ids=lambda p: p.name)
def test_shipped_checkpoint_is_small_and_loads_without_pickled_code(path):
    assert path.stat().st_size <= MAX_BYTES
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(ckpt["config"], dict) and ckpt["config"]["n_keys"] == N_KEYS


@pytest.mark.parametrize("path", VIDEO2ROLL, ids=lambda p: p.name)
def test_shipped_video2roll_predicts_88_keys(path):
    model, config = load_model(path)
    with torch.inference_mode():
        logits = model(torch.rand(2, STACK_FRAMES, CROP_HEIGHT, CROP_WIDTH))
    assert config.n_keys == N_KEYS and logits.shape == (2, N_KEYS) and torch.isfinite(logits).all()


def test_shipped_models_include_both_video2roll_nets_and_roll2midi():
    assert {p.name for p in VIDEO2ROLL} >= {"video2roll_fast.pt"}
    generator, config = load_generator(MODELS / "roll2midi.pt")
    with torch.inference_mode():
        out = generator(torch.rand(1, 1, config.n_keys, SEGMENT_FRAMES * 2))   # (B, 1, keys, frames)
    assert out.shape == (1, 1, N_KEYS, SEGMENT_FRAMES * 2) and ((out >= 0) & (out <= 1)).all()
