"""The shipped models on real footage: Audeo.py with no box on two held-out AI-Pianist takes and on
scarlatti (a second camera set-up, test-only), scored against human MIDI / the recording's own notes.

The figures expected are in tests/data/real_video_scores.json and in README's table "Shipped models on
real takes" (a test checks both say the same); a drop of more than TOLERANCE fails. A random-weight
Video2Roll must fail the same check. Skipped, with the reason, when ../shared/data is absent.
"""
import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO, shared_data

EXPECTED = json.loads((REPO / "tests" / "data" / "real_video_scores.json").read_text())
TOLERANCE = EXPECTED["tolerance"]
METRICS = ("frame_pooled_f1", "note_onset_f1")
OFFSETS = json.loads((REPO / "tools" / "ai_pianist_offsets.json").read_text())["offsets"]
pytestmark = pytest.mark.real_data


def audeo(video, out, *extra):
    proc = subprocess.run([sys.executable, str(REPO / "Audeo.py"), str(video), "--out", str(out), *extra],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / f"{video.stem}.json").read_text())


def take_args(take):
    *folders, name = take.split("/")
    video = shared_data("ai_pianist", "TrainSet", *folders, f"{name}.wmv")
    return video, ["--reference", f"{video}.mid", "--reference-pitch-shift", "12",
                   "--reference-offset", str(OFFSETS[take])]


def within(meta, expected):
    return all(meta["metrics"][m] >= expected[m] - TOLERANCE for m in METRICS)


@pytest.mark.parametrize("take", sorted(EXPECTED["takes"]))
def test_shipped_models_on_a_held_out_take(take, tmp_path):
    video, extra = take_args(take)
    meta = audeo(video, tmp_path / "out", *extra)
    assert meta["box_source"] == "detected" and meta["far_side"]
    got = {m: round(meta["metrics"][m], 3) for m in METRICS}
    assert within(meta, EXPECTED["takes"][take]), f"{take}: {got}, README: {EXPECTED['takes'][take]}"


def test_shipped_models_on_scarlatti_against_its_own_audio(tmp_path):
    video = shared_data("scarlatti", "scarlatti.mp4")
    meta = audeo(video, tmp_path / "out", "--reference-audio", str(shared_data("scarlatti", "scarlatti.mp3")))
    assert meta["box_source"] == "detected" and not meta["far_side"]
    got = {m: round(meta["metrics"][m], 3) for m in METRICS}
    assert within(meta, EXPECTED["scarlatti"]), f"scarlatti: {got}, README: {EXPECTED['scarlatti']}"


def test_a_random_weight_model_fails_the_check(tmp_path):
    from dataclasses import asdict
    from audeo_train import read_torch_file, save_checkpoint
    from Video2Roll_net import build_model, load_model
    shipped = REPO / "models" / "video2roll_seq.pt"
    _, config = load_model(shipped, fuse=False)
    torch.manual_seed(0)
    random_path = tmp_path / "random.pt"
    save_checkpoint(random_path, config=asdict(config), model=build_model(config).state_dict())
    assert read_torch_file(random_path)["config"] == read_torch_file(shipped)["config"]
    take = min(EXPECTED["takes"])
    video, extra = take_args(take)
    meta = audeo(video, tmp_path / "out", *extra, "--video2roll", str(random_path), "--roll2midi", "none")
    assert not within(meta, EXPECTED["takes"][take])


def test_readme_quotes_the_expected_figures():
    readme = (REPO / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| ")]
    for name, expected in [*EXPECTED["takes"].items(), ("scarlatti", EXPECTED["scarlatti"])]:
        row = next((r for r in rows if f"| {name} " in r and "shipped" in r), None)
        assert row is not None, f"README has no 'shipped' table row for {name}"
        for m in METRICS:
            assert f"{expected[m]:.3f}" in row, f"README's row for {name} does not show {m} {expected[m]:.3f}"
