"""The checkpoints shipped in models/: small, safe to load (weights_only), and good enough on the demo clip.

Every Video2Roll in models/ (and every Roll2Midi on the default Video2Roll's output) must score within TOLERANCE of
the figures in tests/data/shipped_model_scores.json on examples/demo_schumann.mp4 (a rendered test-split
excerpt; keyboard found as `make demo` finds it), in fp32 and, for the nets that ship an int8 calibration, in int8, and
README's table "Shipped models on the demo clip" quotes the same figures; a random-weight network of the same config
must fail the check.
"""
import json
from dataclasses import asdict

import pytest
import torch

from audeo_constants import N_KEYS, ROLL2MIDI_MODEL, VIDEO2ROLL_MODEL
from audeo_io import reference_roll
from audeo_metrics import all_metrics
from audeo_pipeline import load_stages, thresholds, video_roll
from audeo_train import save_checkpoint
from audeo_video import iter_crops, resolve_box
from conftest import REPO
from Video2Roll_net import INT8_KEY, build_model, load_model

MODELS = REPO / "models"
MAX_BYTES = 30_000_000
VIDEO2ROLL = sorted(MODELS.glob("video2roll_*.pt"))
ROLL2MIDI = sorted(MODELS.glob("roll2midi*.pt"))
DEMO = REPO / "examples" / "demo_schumann.mp4"
EXPECTED = json.loads((REPO / "tests" / "data" / "shipped_model_scores.json").read_text())
TOLERANCE = EXPECTED["tolerance"]
METRICS = ("frame_pooled_f1", "note_onset_f1")


def demo_metrics(video2roll, roll2midi="none", precision="fp32"):
    """Audeo's own stages (audeo_pipeline) on the demo clip, each at its operating point."""
    box, far_side, _ = resolve_box(DEMO)                # found and rectified, as `make demo` does
    model, refiner = load_stages(video2roll, roll2midi, "cpu", precision)
    threshold, onset_threshold = thresholds(model, refiner, None, None, 0.5)
    roll, _ = video_roll(iter_crops(DEMO, box, far_side), model, refiner, "cpu", 32, threshold, onset_threshold)
    return all_metrics(roll, reference_roll(DEMO.with_suffix(".mid"), 0.0, len(roll), 0))


def within(metrics, expected):
    return all(metrics[m] >= expected[m] - TOLERANCE for m in METRICS)


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.pt")), ids=lambda p: p.name)
def test_shipped_checkpoint_is_small_and_loads_without_pickled_code(path):
    assert path.stat().st_size <= MAX_BYTES
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(ckpt["config"], dict) and ckpt["config"]["n_keys"] == N_KEYS


def test_every_shipped_model_has_expected_figures():
    assert set(EXPECTED["models"]) == {p.name for p in MODELS.glob("*.pt")}
    assert VIDEO2ROLL_MODEL.name in EXPECTED["models"] and ROLL2MIDI_MODEL.exists()


@pytest.mark.parametrize("path", VIDEO2ROLL, ids=lambda p: p.name)
def test_shipped_video2roll_on_the_demo_clip(path):
    metrics = demo_metrics(path)
    got = {m: round(metrics[m], 3) for m in METRICS}
    assert within(metrics, EXPECTED["models"][path.name]), f"{path.name}: {got}, expected {EXPECTED['models'][path.name]}"


@pytest.mark.parametrize("path", [p for p in VIDEO2ROLL if INT8_KEY in torch.load(p, weights_only=True)],
                         ids=lambda p: p.name)
def test_shipped_video2roll_in_int8_meets_the_same_figures(path):
    metrics = demo_metrics(path, precision="int8")
    got = {m: round(metrics[m], 3) for m in METRICS}
    assert within(metrics, EXPECTED["models"][path.name]), f"{path.name} int8: {got}, expected {EXPECTED['models'][path.name]}"


def test_the_fast_and_seq_nets_ship_an_int8_calibration():
    for name in ("video2roll_fast.pt", "video2roll_seq.pt"):
        assert INT8_KEY in torch.load(MODELS / name, weights_only=True), name


@pytest.mark.parametrize("path", ROLL2MIDI, ids=lambda p: p.name)
def test_shipped_roll2midi_on_the_default_video2roll(path):
    metrics = demo_metrics(VIDEO2ROLL_MODEL, path)
    got = {m: round(metrics[m], 3) for m in METRICS}
    expected = EXPECTED["models"][path.name]
    assert within(metrics, expected), f"{path.name}: {got}, expected {expected}"


def test_a_random_weight_video2roll_fails_the_demo_check(tmp_path):
    _, config = load_model(VIDEO2ROLL_MODEL, fuse=False)
    torch.manual_seed(0)
    path = tmp_path / "random.pt"
    save_checkpoint(path, config=asdict(config), model=build_model(config).state_dict())
    assert not within(demo_metrics(path), EXPECTED["models"][VIDEO2ROLL_MODEL.name])


def test_readme_quotes_the_demo_figures():
    rows = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `")]
    for name, expected in EXPECTED["models"].items():
        row = next((r for r in rows if r.startswith(f"| `{name}`")), None)
        assert row is not None, f"README has no demo-clip row for {name}"
        for m in METRICS:
            assert f"{expected[m]:.3f}" in row, f"README's row for {name} does not show {m} {expected[m]:.3f}"
