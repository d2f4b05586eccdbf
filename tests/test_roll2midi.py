"""Roll2Midi windows, GAN training with resume and torchrun, inference and before/after evaluation."""
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch

import Roll2Midi_dataset as rd
import Roll2Midi_evaluate
import Roll2Midi_inference
import Roll2Midi_net as rn
import Video2Roll_inference
import audeo_io as aio
from audeo_constants import (ESTIMATE_DIR, MIDI_DIR, N_KEYS, PAPER_MAX_KEY, PAPER_MIN_KEY, PAPER_N_KEYS,
                             ROLL2MIDI_DIR, ROLL2MIDI_FRAMES)
from audeo_io import save_checkpoint
from conftest import REPO, hand_made_rolls, kill_after_mid_epoch_save, read_log, torchrun
from Roll2Midi_net import Generator, Roll2MidiConfig, build_models
from Video2Roll_net import build_model, preset

TINY = {"base_channels": 4}
TINY_NET = json.dumps(TINY)
TRAIN = [sys.executable, str(REPO / "Roll2Midi_train.py")]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- hand-made data

def write_video(estimates, root, split, video, target, logit):
    """Reference midi segments and Video2Roll estimate segments (50 frames, last one shorter)."""
    aio.write_segments(root / MIDI_DIR / split / video, midi=target.astype(np.uint8))
    aio.write_segments(estimates / ESTIMATE_DIR / split / video, logit=logit.astype(np.float32),
                       roll=(logit > 0).astype(np.uint8))


def random_video(rng, n_frames):
    """A sparse random reference and noisy logits that mostly agree with it."""
    target = (rng.random((n_frames, N_KEYS)) < 0.05).astype(np.uint8)
    logit = np.where(target > 0, 2.0, -2.0) + rng.normal(0, 1.5, target.shape)
    return target, logit.astype(np.float32)


def make_dataset(tmp, splits):
    """{split: [frame counts]} -> (estimates, root) with random videos v0, v1, ..."""
    rng = np.random.default_rng(0)
    estimates, root = tmp / "est", tmp / "data"
    for split, lengths in splits.items():
        for i, n in enumerate(lengths):
            write_video(estimates, root, split, f"v{i}", *random_video(rng, n))
    return estimates, root


def sigmoid(x):
    """In float64: an independent reference for the float32 sigmoid the code uses."""
    return 1 / (1 + np.exp(-x.astype(np.float64)))


def error_line(proc):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


def tiny_generator_checkpoint(path, n_keys, seed=0):
    torch.manual_seed(seed)
    config = Roll2MidiConfig(n_keys=n_keys, **TINY)
    g, d = build_models(config)
    save_checkpoint(path, config=asdict(config), generator=g.state_dict(), discriminator=d.state_dict(),
                    metrics={}, epoch=0)
    return path


# ----------------------------------------------------------------------------- windows

def test_window_starts_cover_every_frame():
    assert rd.window_starts(0, 50) == []
    assert rd.window_starts(30, 50) == [0]
    assert rd.window_starts(100, 50) == [0]
    assert rd.window_starts(200, 50) == [0, 50, 100]          # 4 segments: the original's 3 pairs
    assert rd.window_starts(230, 50) == [0, 50, 100, 150]     # 5 segments: 4 pairs, the last one padded
    assert rd.window_starts(230, 100) == [0, 100, 200]        # evaluation: the odd last segment kept
    assert rd.window_starts(200, 100) == [0, 100]


def test_windows_never_span_videos_and_pad_with_zero(tmp_path):
    rng = np.random.default_rng(1)
    lengths = {"a": 131, "b": 77}               # odd lengths: last segments of 31 and 27 frames
    data = {v: random_video(rng, n) for v, n in lengths.items()}
    for v, (target, logit) in data.items():
        write_video(tmp_path / "est", tmp_path / "data", "training", v, target, logit)
    train = rd.Roll2MidiDataset(tmp_path / "est", tmp_path / "data", "training")
    evals = rd.Roll2MidiDataset(tmp_path / "est", tmp_path / "data", "training", stride=None)
    assert train.videos == ["a", "b"]
    assert train.index.tolist() == [[0, 0], [0, 50], [1, 0]]
    assert evals.index.tolist() == [[0, 0], [0, 100], [1, 0]]
    for ds in (train, evals):
        for i in range(len(ds)):
            x, y, (v, s) = ds[i]
            assert x.shape == y.shape == (1, N_KEYS, ROLL2MIDI_FRAMES) and x.dtype == torch.float32
            target, logit = data[ds.videos[v]]
            n = ds.valid_frames(i)
            assert n == min(ROLL2MIDI_FRAMES, len(target) - s)
            np.testing.assert_allclose(x[0].T[:n].numpy(), sigmoid(logit[s:s + n]), rtol=1e-5, atol=1e-6)
            assert np.array_equal(y[0].T[:n].numpy(), target[s:s + n])
            assert not x[0].T[n:].any() and not y[0].T[n:].any()      # padding: probability 0, target 0
    # the padded windows: a's second train window has 81 real frames, b's only window 77
    assert [train.valid_frames(i) for i in range(3)] == [100, 81, 77]
    assert [evals.valid_frames(i) for i in range(3)] == [100, 31, 77]


def test_paper_keys_and_unpredicted_columns(tmp_path):
    target = np.zeros((60, N_KEYS), np.uint8)
    target[:, [0, 20, 70]] = 1
    logit = np.zeros((60, N_KEYS), np.float32)                 # a 51-key Video2Roll model's estimate:
    logit[:, PAPER_MIN_KEY:PAPER_MAX_KEY + 1] = -1.0           # 0 outside its keys
    logit[5, 20] = 0.0                                         # a single 0 inside is a real prediction
    write_video(tmp_path / "est", tmp_path / "data", "testing", "v", target, logit)
    ds88 = rd.Roll2MidiDataset(tmp_path / "est", tmp_path / "data", "testing", stride=None)
    x, y, _ = ds88[0]
    assert not x[0, :PAPER_MIN_KEY].any() and not x[0, PAPER_MAX_KEY + 1:].any()   # not 0.5
    assert x[0, 20, 5] == 0.5 and x[0, 20, 4] == pytest.approx(sigmoid(np.float32(-1)))
    assert y[0, 0, :60].all() and y[0, 70, :60].all()
    ds51 = rd.Roll2MidiDataset(tmp_path / "est", tmp_path / "data", "testing", n_keys=PAPER_N_KEYS, stride=None)
    x51, y51, _ = ds51[0]
    assert x51.shape == (1, PAPER_N_KEYS, ROLL2MIDI_FRAMES)
    assert torch.equal(x51[0], x[0, PAPER_MIN_KEY:PAPER_MAX_KEY + 1])
    assert torch.equal(y51[0], y[0, PAPER_MIN_KEY:PAPER_MAX_KEY + 1])


def test_mismatching_frame_counts_is_one_line_error(tmp_path):
    target, logit = random_video(np.random.default_rng(2), 120)
    write_video(tmp_path / "est", tmp_path / "data", "training", "v", target, logit[:-1])
    with pytest.raises(aio.AudeoError) as e:
        rd.Roll2MidiDataset(tmp_path / "est", tmp_path / "data", "training")
    assert "\n" not in str(e.value) and str(tmp_path / "est" / ESTIMATE_DIR / "training" / "v") in str(e.value)


# ----------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    # training: 4 + 3 overlapping windows; validation: 2 windows (the second one padded)
    return make_dataset(tmp_path_factory.mktemp("r2m_train"), {"training": [230, 175], "validation": [130]})


def tiny_args(data, out, *extra):
    estimates, root = data
    return ["--estimates", str(estimates), "--data", str(root), "--out", str(out), "--net", TINY_NET,
            "--n-keys", "51", *extra]


def _state(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt["generator"], ckpt["discriminator"]


def test_tiny_gan_trains_two_epochs_and_writes_checkpoints(train_data, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(TRAIN + tiny_args(train_data, out, "--epochs", "2", "--batch-size", "4"),
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "log.csv"]
    log = read_log(out)
    assert [int(r["epoch"]) for r in log] == [1, 2]
    for r in log:
        for k in ("train_g_loss", "train_d_loss", "val_g_loss", "val_d_loss", "val_f1", "lr"):
            assert math.isfinite(float(r[k])), (k, r)
    assert "7 train windows from 2 videos, 2 validation windows" in proc.stdout
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    assert set(best) == {"config", "generator", "discriminator", "metrics", "epoch"}
    assert best["config"] == asdict(Roll2MidiConfig(n_keys=PAPER_N_KEYS, **TINY))
    assert best["metrics"]["val_score"] == max(float(r["val_score"]) for r in log)
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert (last["epoch"], last["step"]) == (2, 0)
    for path in (out / "best.pt", out / "last.pt"):
        g, config = rn.load_generator(path, "cpu")
        assert config.n_keys == PAPER_N_KEYS and not g.training


def test_onset_channel_generator_trains_and_decodes_notes_at_onsets(tmp_path):
    """A two-channel generator (frame + onset probabilities) trains, and its roll starts notes only
    at Video2Roll's onset peaks."""
    rng = np.random.default_rng(1)
    estimates, root = tmp_path / "est", tmp_path / "data"
    for split, n in (("training", 230), ("validation", 130)):
        target, logit = random_video(rng, n)
        onset = np.where(np.diff(np.pad(target, ((1, 0), (0, 0))), axis=0) > 0, 3.0, -4.0).astype(np.float32)
        aio.write_segments(root / MIDI_DIR / split / "v0", midi=target)
        aio.write_segments(estimates / ESTIMATE_DIR / split / "v0", logit=logit, roll=(logit > 0).astype(np.uint8),
                           onset_logit=onset)
    out = tmp_path / "run"
    net = json.dumps({**TINY, "in_channels": 2})
    proc = subprocess.run(TRAIN + ["--estimates", str(estimates), "--data", str(root), "--out", str(out), "--net", net,
                                   "--epochs", "1", "--batch-size", "4"], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    g, config = rn.load_generator(out / "best.pt")
    assert config.in_channels == 2
    _, probs = rd.load_estimate(estimates / ESTIMATE_DIR / "validation" / "v0", channels=2)
    assert probs.shape == (130, N_KEYS, 2)
    roll = rn.refine(g, probs, "cpu", threshold=0.0)           # every frame on: notes only split at onsets
    starts = np.diff(np.pad(roll, ((1, 0), (0, 0))).astype(int), axis=0) > 0
    peaks = probs[..., 1] >= 0.5
    assert starts.any() and not (starts & ~peaks).any()


def test_killed_and_resumed_run_ends_with_identical_weights(train_data, tmp_path):
    common = ["--epochs", "3", "--batch-size", "2", "--save-minutes", "1e-9"]
    subprocess.run(TRAIN + tiny_args(train_data, tmp_path / "a", *common), check=True, capture_output=True, env=ENV)
    killed = kill_after_mid_epoch_save(TRAIN + tiny_args(train_data, tmp_path / "b", *common), tmp_path / "b" / "last.pt",
                                       env=ENV)
    assert killed["step"] > 0 and (killed["epoch"], killed["step"]) < (3, 0)
    resumed = subprocess.run(TRAIN + tiny_args(train_data, tmp_path / "b", *common), capture_output=True, text=True,
                             env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed" in resumed.stdout
    (ga, da), (gb, db) = _state(tmp_path / "a" / "last.pt"), _state(tmp_path / "b" / "last.pt")
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    assert all(torch.equal(da[k], db[k]) for k in da)
    assert len(read_log(tmp_path / "b")) == 3


def test_torchrun_two_cpu_processes_only_rank0_writes_and_each_rank_resumes_its_own_rng(train_data, tmp_path):
    """Two ranks: one log row per epoch, only rank 0's files; the generator's dropout draws from each rank's
    own RNG, so a run stopped after epoch 1 and resumed ends with the weights of an uninterrupted one only
    when every rank restores its own RNG state (not rank 0's)."""
    def run(out, epochs):
        proc = subprocess.run(torchrun("Roll2Midi_train.py", *tiny_args(train_data, out, "--epochs", epochs,
                                                                         "--batch-size", "2")),
                              capture_output=True, text=True, env=ENV)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    proc = run(tmp_path / "ddp", "2")
    out = tmp_path / "ddp"
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "log.csv"]
    assert len(read_log(out)) == 2                       # one row per epoch, not one per rank
    assert proc.stdout.count("training Roll2Midi") == 1
    assert "x2:" in proc.stdout
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and len(last["ranks"]) == 2
    assert not torch.equal(last["ranks"][0]["rng"]["torch"], last["ranks"][1]["rng"]["torch"])
    run(tmp_path / "resumed", "1")
    assert "resumed" in run(tmp_path / "resumed", "2").stdout
    (ga, da), (gb, db) = _state(out / "last.pt"), _state(tmp_path / "resumed" / "last.pt")
    assert all(torch.equal(ga[k], gb[k]) for k in ga) and all(torch.equal(da[k], db[k]) for k in da)


# ----------------------------------------------------------------------------- inference

def _window_by_window(generator, probs):
    """Independent reference: pad each 100-frame window by hand, run G, threshold at 0.5, trim."""
    out = []
    for s in range(0, len(probs), ROLL2MIDI_FRAMES):
        part = probs[s:s + ROLL2MIDI_FRAMES]
        x = torch.zeros(1, 1, probs.shape[1], ROLL2MIDI_FRAMES)
        x[0, 0, :, :len(part)] = torch.from_numpy(part.T.astype(np.float32))
        with torch.no_grad():
            out.append(generator(x)[0, 0].T[:len(part)].numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("n_frames", [1, 99, 100, 101, 250])
def test_refine_any_length_equals_window_by_window(n_frames):
    torch.manual_seed(3)
    g = Generator(Roll2MidiConfig(n_keys=PAPER_N_KEYS, **TINY)).eval()
    probs = np.random.default_rng(n_frames).random((n_frames, PAPER_N_KEYS)).astype(np.float32)
    p = rn.refine_probs(g, probs, "cpu", batch_size=2)
    assert p.shape == probs.shape and p.dtype == np.float32
    np.testing.assert_allclose(p, _window_by_window(g, probs), atol=1e-6)
    assert np.array_equal(rn.refine(g, probs, "cpu", batch_size=3), (p >= 0.5).astype(np.uint8))


def test_inference_keeps_odd_last_segment_and_segment_names(tmp_path):
    estimates, _ = make_dataset(tmp_path, {"testing": [230, 75]})      # 4 + 30 and 50 + 25 frames
    ckpt = tiny_generator_checkpoint(tmp_path / "g.pt", N_KEYS)
    Roll2Midi_inference.main(["--checkpoint", str(ckpt), "--estimates", str(estimates), "--out", str(tmp_path / "o"),
             "--batch-size", "1"])
    g, _ = rn.load_generator(ckpt)
    for video in ("v0", "v1"):
        est = aio.list_segments(estimates / ESTIMATE_DIR / "testing" / video)
        res = aio.list_segments(tmp_path / "o" / ROLL2MIDI_DIR / "testing" / video)
        assert [(s, e) for s, e, _ in res] == [(s, e) for s, e, _ in est]
        _, logit = aio.read_segments(estimates / ESTIMATE_DIR / "testing" / video, "logit")
        expected = (_window_by_window(g, aio.estimate_probs(logit)) >= 0.5).astype(np.uint8)
        for s, e, path in res:
            with np.load(path) as z:
                assert set(z.files) == {"midi"}
                midi = z["midi"]
            assert midi.dtype == np.uint8 and midi.shape == (e - s, N_KEYS)
            assert np.array_equal(midi, expected[s:e])
    assert [(s, e) for s, e, _ in res] == [(0, 50), (50, 75)]


def test_pipeline_video2roll_estimates_to_roll2midi_results(tiny_dataset, tmp_path):
    """Video2Roll_inference (tiny random net) on the rendered test clip, then Roll2Midi on its output."""
    torch.manual_seed(0)
    v2r_net = {"stem_channels": (8, 16), "trunk_channels": (16, 16, 16), "seq_channels": 32,
               "seq_dilations": (1, 2, 4), "attn_channels": 8}
    config = preset("fast51", **v2r_net)                   # 51 keys: the estimates hold 0 outside them
    save_checkpoint(tmp_path / "v2r.pt", config=asdict(config), model=build_model(config).eval().state_dict())
    Video2Roll_inference.main(["--checkpoint", str(tmp_path / "v2r.pt"), "--data", str(tiny_dataset),
                               "--split", "testing", "--out", str(tmp_path / "est")])
    ckpt = tiny_generator_checkpoint(tmp_path / "g.pt", N_KEYS, seed=1)
    Roll2Midi_inference.main(["--checkpoint", str(ckpt), "--estimates", str(tmp_path / "est"), "--split", "testing",
             "--out", str(tmp_path / "o")])
    g, _ = rn.load_generator(ckpt)
    videos = sorted(p.name for p in (tmp_path / "est" / ESTIMATE_DIR / "testing").iterdir())
    assert videos
    for video in videos:
        est_dir = tmp_path / "est" / ESTIMATE_DIR / "testing" / video
        res_dir = tmp_path / "o" / ROLL2MIDI_DIR / "testing" / video
        assert [p.name for *_, p in aio.list_segments(res_dir)] == [p.name for *_, p in aio.list_segments(est_dir)]
        _, logit = aio.read_segments(est_dir, "logit")
        probs = aio.estimate_probs(logit)
        assert not probs[:, :PAPER_MIN_KEY].any()          # unpredicted keys are probability 0
        _, midi = aio.read_segments(res_dir, "midi")
        assert np.array_equal(midi, (_window_by_window(g, probs) >= 0.5).astype(np.uint8))
        # the estimates tie up with the reference, so evaluation runs on them as they are
        _, ref = rd.load_reference(tiny_dataset / MIDI_DIR / "testing" / video)
        assert len(ref) == len(midi)
    Roll2Midi_evaluate.main(["--checkpoint", str(ckpt), "--estimates", str(tmp_path / "est"), "--data",
                             str(tiny_dataset), "--json", str(tmp_path / "r.json")])
    result = json.loads((tmp_path / "r.json").read_text())
    assert set(result["overall"]) == {"video2roll@0.4", "roll2midi@0.5"}


# ----------------------------------------------------------------------------- evaluation

def constant_generator_checkpoint(path, n_keys, value, in_channels=1):
    """A generator whose output is `value` everywhere: all weights 0, the last bias logit(value)."""
    config = Roll2MidiConfig(n_keys=n_keys, in_channels=in_channels, **TINY)
    g = Generator(config)
    with torch.no_grad():
        for p in g.parameters():
            p.zero_()
        g.conv1d.bias.fill_(math.log(value / (1 - value)))
    save_checkpoint(path, config=asdict(config), generator=g.state_dict(), metrics={}, epoch=0)
    return path


def test_evaluate_before_and_after_on_hand_made_rolls(tmp_path, capsys):
    """Two videos of 4 frames; a generator that outputs 0.45 everywhere: nothing at 0.5, everything at 0.4."""
    target, logit = hand_made_rolls()          # note A found, note B missed, a false note (see conftest)
    for video in ("v1", "v2"):
        write_video(tmp_path / "est", tmp_path / "data", "testing", video, target, logit)
    ckpt = constant_generator_checkpoint(tmp_path / "g.pt", N_KEYS, 0.45)
    Roll2Midi_evaluate.main(["--checkpoint", str(ckpt), "--estimates", str(tmp_path / "est"), "--data",
                             str(tmp_path / "data"), "--extra-midi-thresholds", "0.4", "--json", str(tmp_path / "r.json")])
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 + 3 * 3                            # header, rule, 3 stages x (2 videos + overall)
    assert table[-1].split()[:3] == ["overall", "roll2midi@0.4", "8"]
    result = json.loads((tmp_path / "r.json").read_text())
    assert [(r["video"], r["stage"]) for r in result["videos"]][:3] == [
        ("v1", "video2roll@0.4"), ("v1", "roll2midi@0.5"), ("v1", "roll2midi@0.4")]
    before, after, after04 = (result["overall"][k] for k in ("video2roll@0.4", "roll2midi@0.5", "roll2midi@0.4"))
    approx = pytest.approx
    # before: frames f0 TP, f1 TP, f2 FN (empty prediction), f3 FP (empty target)
    assert (before["frame_pooled_precision"], before["frame_pooled_recall"]) == (approx(2 / 3), approx(2 / 3))
    assert (before["frame_sklearn_precision"], before["frame_sklearn_recall"]) == (approx(0.75), approx(0.75))
    assert before["frame_sklearn_accuracy"] == approx(0.5)
    assert (before["note_onset_precision"], before["note_onset_recall"]) == (approx(0.5), approx(0.5))
    # after at 0.5: nothing predicted. Pooled P = 0/0 = 1, R = 0; per frame P = 1 (empty prediction),
    # R = 1 only on the silent frame f3, F1 and accuracy likewise 1/4; no notes: P 1, R 0
    assert (after["frame_pooled_precision"], after["frame_pooled_recall"], after["frame_pooled_f1"]) == (1, 0, 0)
    assert after["frame_sklearn_precision"] == approx(1.0)
    assert after["frame_sklearn_recall"] == approx(0.25)
    assert after["frame_sklearn_f1"] == approx(0.25)
    assert after["frame_sklearn_accuracy"] == approx(0.25)
    assert (after["note_onset_precision"], after["note_onset_recall"]) == (1, 0)
    # after at 0.4: every key on in every frame: 3 of 4 x 88 cells right per video
    assert after04["frame_pooled_precision"] == approx(3 / 352)
    assert after04["frame_pooled_recall"] == approx(1.0)
    assert after04["frame_sklearn_precision"] == approx(3 / 352)   # (1/88 + 1/88 + 1/88 + 0) / 4
    assert after04["frame_sklearn_recall"] == approx(1.0)
    assert after04["frame_sklearn_accuracy"] == approx(3 / 352)
    # notes: 88 per video all starting at 0 s; A (onset 0) matched, B (onset 0.08 s) too late; A's
    # offset 0.16 s vs 0.08 s is beyond the 50 ms tolerance
    assert after04["note_n_est"] == 176 and after04["note_n_ref"] == 4
    assert (after04["note_onset_precision"], after04["note_onset_recall"]) == (approx(2 / 176), approx(0.5))
    assert after04["note_onset_offset_f1"] == 0


def test_evaluate_onset_channel_decodes_both_stages_at_onsets(tmp_path, capsys):
    """A key struck twice (frames 0-1 and 3-5) whose frame probabilities hold through the gap: with the
    onsets (peaks at 0 and 3) the Video2Roll stage gives the two notes exactly (thresholded alone it would be
    one); a constant 0.45 generator at 0.4 is on everywhere, yet its notes start only where Video2Roll's onsets
    peak: both onsets right, the first note cut before the re-strike, the second held to the end."""
    key, n = 40, 8
    target = np.zeros((n, N_KEYS), np.uint8)
    target[0:2, key] = target[3:6, key] = 1
    logit = np.full((n, N_KEYS), -5.0, np.float32)
    logit[0:6, key] = 3.0
    onset = np.full((n, N_KEYS), -5.0, np.float32)
    onset[[0, 3], key] = 3.0
    aio.write_segments(tmp_path / "data" / MIDI_DIR / "testing" / "v1", midi=target)
    aio.write_segments(tmp_path / "est" / ESTIMATE_DIR / "testing" / "v1", logit=logit, roll=target, onset_logit=onset)
    ckpt = constant_generator_checkpoint(tmp_path / "g.pt", N_KEYS, 0.45, in_channels=2)
    Roll2Midi_evaluate.main(["--checkpoint", str(ckpt), "--estimates", str(tmp_path / "est"), "--data",
                             str(tmp_path / "data"), "--midi-threshold", "0.4", "--onset-threshold", "0.5",
                             "--json", str(tmp_path / "r.json")])
    capsys.readouterr()
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["onset_threshold"] == 0.5
    before, after = result["overall"]["video2roll@0.4"], result["overall"]["roll2midi@0.4"]
    for m in (before, after):
        assert (m["note_n_est"], m["note_n_ref"], m["note_onset_f1"]) == (2, 2, 1)
    assert before["note_onset_offset_f1"] == 1 and before["frame_pooled_f1"] == 1
    assert after["note_onset_offset_f1"] == 0.5


# ----------------------------------------------------------------------------- bad inputs

@pytest.fixture(scope="module")
def bad_input_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("r2m_bad")
    estimates, root = make_dataset(d, {"training": [120], "validation": [60], "testing": [120, 60]})
    tiny_generator_checkpoint(d / "g88.pt", N_KEYS)
    tiny_generator_checkpoint(d / "g51.pt", PAPER_N_KEYS)
    (d / "corrupt.pt").write_bytes(b"\x80garbage" * 100)
    return d, estimates, root


CASES = ["infer-missing", "infer-corrupt", "infer-keys", "infer-broken-estimate", "eval-missing", "eval-keys",
         "eval-frames", "train-frames", "train-net"]


@pytest.mark.parametrize("case", CASES)
def test_bad_inputs_one_line_error_and_no_output(bad_input_data, tmp_path, case):
    d, estimates, root = bad_input_data
    if case.endswith("frames"):                             # a reference one frame longer than its estimate
        root = tmp_path / "data"
        shutil.copytree(d / "data", root)
        split = "training" if case.startswith("train") else "testing"
        shutil.rmtree(root / MIDI_DIR / split / "v0")
        aio.write_segments(root / MIDI_DIR / split / "v0", midi=random_video(np.random.default_rng(5), 121)[0])
    if case == "infer-broken-estimate":                     # the second video's last segment is garbage
        estimates = tmp_path / "est"
        for v in ("v0", "v1"):
            _, logit = aio.read_segments(d / "est" / ESTIMATE_DIR / "testing" / v, "logit")
            aio.write_segments(estimates / ESTIMATE_DIR / "testing" / v, logit=logit, roll=(logit > 0))
        (estimates / ESTIMATE_DIR / "testing" / "v1" / "50-60.npz").write_bytes(b"not an npz")
    ckpt = {"missing": tmp_path / "none.pt", "corrupt": d / "corrupt.pt", "keys": d / "g51.pt"}.get(
        case.split("-", 1)[1], d / "g88.pt")
    keys = ["--n-keys", "88"] if case.endswith("keys") else []
    out = tmp_path / "out"
    if case.startswith("infer"):
        cmd = ["Roll2Midi_inference.py", "--checkpoint", str(ckpt), "--estimates", str(estimates), "--out", str(out)]
    elif case.startswith("eval"):
        cmd = ["Roll2Midi_evaluate.py", "--checkpoint", str(ckpt), "--estimates", str(estimates), "--data", str(root),
               "--json", str(out / "r.json")]
    else:
        net = '{"base_channels": 6}' if case == "train-net" else TINY_NET
        cmd = ["Roll2Midi_train.py", "--estimates", str(estimates), "--data", str(root), "--out", str(out),
               "--net", net, "--epochs", "1"]
    proc = subprocess.run([sys.executable, str(REPO / cmd[0]), *cmd[1:], *keys], capture_output=True, text=True,
                          env=ENV, cwd=tmp_path)
    line = error_line(proc)
    expect = {"missing": "not found", "corrupt": "not a readable checkpoint", "keys": "trained on 51 keys, not 88",
              "frames": "v0", "broken-estimate": "50-60.npz", "net": "base_channels"}[case.split("-", 1)[1]]
    assert expect in line, line
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
