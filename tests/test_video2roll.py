"""Video2Roll training, resume, torchrun, evaluation and inference on tiny rendered clips."""
import json
import os
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch

import audeo_io as aio
import audeo_render
import Video2Roll_evaluate
import Video2Roll_inference
import Video_prepare
from audeo_constants import ESTIMATE_DIR, N_KEYS
from audeo_io import save_checkpoint
from conftest import REPO, hand_made_rolls, kill_after_mid_epoch_save, kill_inside, read_log, torchrun, write_clip_midi
from Video2Roll_net import build_model, preset

TINY_NET = json.dumps({"stem_channels": [8, 16], "trunk_channels": [16, 16, 16], "seq_channels": 32,
                       "seq_dilations": [1, 2, 4], "attn_channels": 8})
TRAIN = [sys.executable, str(REPO / "Video2Roll_train.py")]


def tiny_args(data, out, *extra):
    return ["--data", str(data), "--out", str(out), "--preset", "fast", "--net", TINY_NET, "--workers", "0",
            "--sampler", "shuffle", "--no-augment", *extra]


def test_tiny_net_overfits_a_clip(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    subprocess.run(TRAIN + tiny_args(tiny_dataset, out, "--epochs", "30", "--batch-size", "8", "--lr", "3e-3",
                                     "--labels", "labels_keydown", "--val-split", "training"),
                   check=True, capture_output=True)
    log = read_log(out)
    assert float(log[-1]["train_loss"]) < 0.5 * float(log[0]["train_loss"])
    assert max(float(r["val_f1"]) for r in log) > 0.9
    assert {"best.pt", "last.pt", "log.csv"} <= {p.name for p in out.iterdir()}


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


TINY_SEQ_NET = json.dumps({**json.loads(TINY_NET), "temporal_channels": 8, "temporal_dilations": [1, 2],
                           "temporal_lookahead": [1, 0]})
RESUME_CONFIGS = {
    "frame_plain": ["--preset", "fast", "--net", TINY_NET, "--workers", "0", "--sampler", "shuffle", "--no-augment"],
    # the defaults: balanced sampler, augmentation, one loader worker
    "frame_default": ["--preset", "fast", "--net", TINY_NET, "--draws", "48"],
    "sequence_default": ["--preset", "seq", "--net", TINY_SEQ_NET, "--length", "8", "--draws", "24",
                         "--val-max-frames", "60"],
}


def resume_args(data, config):
    return ["--data", str(data), *RESUME_CONFIGS[config], "--epochs", "3", "--batch-size", "4", "--save-minutes", "1e-9"]


@pytest.fixture(scope="module")
def uninterrupted(tiny_dataset, tmp_path_factory):
    """config -> the final weights of an uninterrupted 3-epoch run (trained once per module)."""
    done = {}

    def weights(config):
        if config not in done:
            out = tmp_path_factory.mktemp(f"uninterrupted_{config}")
            subprocess.run(TRAIN + ["--out", str(out), *resume_args(tiny_dataset, config)], check=True,
                           capture_output=True)
            done[config] = _weights(out / "last.pt")
        return done[config]
    return weights


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("config", sorted(RESUME_CONFIGS))
def test_killed_and_resumed_run_ends_with_identical_weights(tiny_dataset, tmp_path, config, uninterrupted):
    common = resume_args(tiny_dataset, config)
    killed = kill_after_mid_epoch_save(TRAIN + ["--out", str(tmp_path / "b"), *common], tmp_path / "b" / "last.pt")
    assert (killed["epoch"], killed["step"]) < (3, 0)
    subprocess.run(TRAIN + ["--out", str(tmp_path / "b"), *common], check=True, capture_output=True)
    assert _same_weights(uninterrupted(config), _weights(tmp_path / "b" / "last.pt"))
    # augmentation differs from one epoch to the next (the dataset is told the epoch)
    if "--no-augment" not in common:
        import Video2Roll_dataset as vd
        ds = vd.Video2RollDataset(tiny_dataset, "training", augment=vd.Augment())
        first = ds[0][0]
        ds.set_epoch(1)
        assert not torch.equal(first, ds[0][0])


@pytest.mark.parametrize("config", ["frame_default", "sequence_default"])
@pytest.mark.parametrize("point, nth", [("checkpoint_write", 3), ("validation", 2)])
def test_killed_during_a_checkpoint_write_or_validation_resumes_to_identical_weights(tiny_dataset, tmp_path, config,
                                                                                      point, nth, uninterrupted):
    common = ["--out", str(tmp_path / "b"), *resume_args(tiny_dataset, config)]
    kill_inside(point, nth, REPO / "Video2Roll_train.py", common)
    left = torch.load(tmp_path / "b" / "last.pt", weights_only=True)     # the previous checkpoint, whole
    assert (left["epoch"], left["step"]) < (3, 0)
    if point == "validation":                  # killed in epoch 2's validation: epoch 2 is not recorded yet
        assert left["epoch"] == 1 and len(read_log(tmp_path / "b")) == 1
    else:                                      # the half-written temporary file is left beside it
        assert len(list((tmp_path / "b").glob(".last.*.tmp.pt"))) == 1
    subprocess.run(TRAIN + common, check=True, capture_output=True)
    assert _same_weights(uninterrupted(config), _weights(tmp_path / "b" / "last.pt"))


def test_tiny_sequence_model_learns_onsets(tiny_dataset, tmp_path):
    out = tmp_path / "seq"
    proc = subprocess.run(TRAIN + ["--data", str(tiny_dataset), "--out", str(out), "--preset", "seq", "--net",
                                   TINY_SEQ_NET, "--length", "16", "--draws", "64", "--epochs", "12", "--lr", "3e-3",
                                   "--batch-size", "4", "--val-split", "training", "--no-augment", "--workers", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = read_log(out)
    key = next(k for k in log[0] if k.endswith("_onset_f1"))
    assert float(log[-1]["train_loss"]) < 0.5 * float(log[0]["train_loss"])
    assert max(float(r[key]) for r in log) > 0.5 and max(float(r["val_score"]) for r in log) > 0.6


def test_torchrun_two_cpu_processes_only_rank0_writes(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    cmd = torchrun("Video2Roll_train.py", *tiny_args(tiny_dataset, out, "--epochs", "2", "--batch-size", "4"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "log.csv"]
    assert len(read_log(out)) == 2                       # one row per epoch, not one per rank
    assert proc.stdout.count("training fast") == 1
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2


def test_evaluate_on_hand_made_rolls(tmp_path):
    """Two videos, hand-made estimates and labels; every figure checked against a hand computation."""
    root = tmp_path
    target, logit = hand_made_rolls()          # note A found, note B missed, a false note (see conftest)
    for video in ("v1", "v2"):
        aio.save_labels(root / "labels_keydown" / "testing" / f"{video}.pkl", target)
        aio.write_segments(root / "est" / ESTIMATE_DIR / "testing" / video, logit=logit, roll=(logit > 0).astype(np.uint8))
    Video2Roll_evaluate.main(["--data", str(root), "--estimates", str(root / "est"), "--json", str(root / "r.json")])
    result = json.loads((root / "r.json").read_text())
    overall = result["overall"]
    # key 40 (C#4) is black, keys 50 and 60 (B4, A5) white: note A is all the black keys have, and it
    # is found; the white keys hold B (missed) and the false note
    by = {row["subset"]: row for row in result["protocols"]}
    assert by["black keys"]["frame_pooled_f1"] == 1 and by["black keys"]["note_onset_f1"] == 1
    assert by["white keys"]["frame_pooled_f1"] == 0 and by["white keys"]["note_onset_f1"] == 0
    # frames: f0 TP, f1 TP, f2 FN (pred empty), f3 FP (target empty) -> pooled P 2/3, R 2/3
    assert overall["frame_pooled_precision"] == pytest.approx(2 / 3)
    assert overall["frame_pooled_recall"] == pytest.approx(2 / 3)
    # sklearn samples: P = (1 + 1 + 1[empty pred, zero_division] + 0) / 4, R = (1 + 1 + 0 + 1) / 4
    assert overall["frame_sklearn_precision"] == pytest.approx(0.75)
    assert overall["frame_sklearn_recall"] == pytest.approx(0.75)
    # accuracy per frame TP/(TP+FP+FN): 1, 1, 0, 0 -> 0.5
    assert overall["frame_sklearn_accuracy"] == pytest.approx(0.5)
    # notes per video: ref {A, B}, est {A, false}: 1 matched of 2 and 2 -> onset P = R = 0.5
    assert overall["note_onset_precision"] == pytest.approx(0.5)
    assert overall["note_onset_recall"] == pytest.approx(0.5)
    assert overall["note_onset_offset_f1"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def video_and_checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("v2r_video")
    audeo_render.render(write_clip_midi(d / "in.mid", seconds=1.5), d / "clip", seed=2, fps=30, progress=False)
    torch.manual_seed(0)
    config = preset("fast", **{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(TINY_NET).items()})
    model = build_model(config)
    model.eval()
    save_checkpoint(d / "tiny.pt", config=asdict(config), model=model.state_dict())
    return d


def test_inference_from_video_equals_inference_from_its_dataset(video_and_checkpoint, tmp_path, capsys):
    d = video_and_checkpoint
    box = (d / "clip" / "box.txt").read_text().split()
    Video_prepare.main([str(d / "clip" / "video.mp4"), "--out", str(tmp_path / "data"), "--name", "clip",
                        "--box", *box])
    common = ["--checkpoint", str(d / "tiny.pt"), "--out", str(tmp_path / "o"), "--batch-size", "7"]
    Video2Roll_inference.main(common + ["--data", str(tmp_path / "data"), "--split", "testing"])
    Video2Roll_inference.main(common + [str(d / "clip" / "video.mp4"), "--box", *box, "--name", "clip_file",
                                        "--split", "testing"])
    start_a, a = aio.read_segments(tmp_path / "o" / "estimate_Roll" / "testing" / "clip", "logit")
    start_b, b = aio.read_segments(tmp_path / "o" / "estimate_Roll" / "testing" / "clip_file", "logit")
    n_video = json.loads((d / "clip" / "render.json").read_text())["duration"] * 25
    assert start_a == start_b == 0 and a.shape == b.shape == (int(n_video), N_KEYS)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # no box: the keyboard is found and its crops rectified, as in Audeo.py; the same frames come out
    capsys.readouterr()
    Video2Roll_inference.main(common + [str(d / "clip" / "video.mp4"), "--name", "clip_found"])
    assert "detected, player side" in capsys.readouterr().out
    _, found = aio.read_segments(tmp_path / "o" / "estimate_Roll" / "testing" / "clip_found", "logit")
    assert found.shape == a.shape
    _, roll = aio.read_segments(tmp_path / "o" / "estimate_Roll" / "testing" / "clip", "roll")
    assert np.array_equal(roll, (1 / (1 + np.exp(-a)) >= 0.4).astype(np.uint8))
    # bf16 autocast: the same logits up to bf16 rounding (8 mantissa bits)
    Video2Roll_inference.main(["--checkpoint", str(d / "tiny.pt"), "--out", str(tmp_path / "bf16"),
                               "--data", str(tmp_path / "data"), "--split", "testing", "--precision", "bf16"])
    _, c = aio.read_segments(tmp_path / "bf16" / "estimate_Roll" / "testing" / "clip", "logit")
    assert c.shape == a.shape and np.abs(c - a).max() < 0.05 * max(1.0, np.abs(a).max())


def _run_inference(args, cwd):
    return subprocess.run([sys.executable, str(REPO / "Video2Roll_inference.py"), *args], capture_output=True,
                          text=True, cwd=cwd)


@pytest.mark.parametrize("case", ["missing", "corrupt", "keys", "video", "box"])
def test_inference_bad_inputs(video_and_checkpoint, tmp_path, case):
    d = video_and_checkpoint
    ckpt, video, box, extra = d / "tiny.pt", d / "clip" / "video.mp4", ["10", "10", "300", "60"], []
    if case == "missing":
        ckpt = tmp_path / "none.pt"
    elif case == "corrupt":
        ckpt = tmp_path / "bad.pt"
        ckpt.write_bytes(b"\x80garbage" * 100)
    elif case == "keys":
        config = preset("fast51", **{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(TINY_NET).items()})
        ckpt = tmp_path / "k51.pt"
        save_checkpoint(ckpt, config=asdict(config), model=build_model(config).state_dict())
        extra = ["--n-keys", "88"]
    elif case == "video":
        video = tmp_path / "broken.mp4"
        video.write_bytes(b"\x00" * 5000)
    elif case == "box":
        box = ["10", "10", "5000", "60"]
    proc = _run_inference(["--checkpoint", str(ckpt), str(video), "--box", *box, "--out", "o", *extra], tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.npz"))
