"""Render_dataset: the original's layout, labels that match the MIDI, splits by piece, bad inputs."""
import json
import subprocess
import sys

import numpy as np
import pytest

import Render_dataset as B
import audeo_io as aio
from audeo_constants import CROP_HEIGHT, CROP_WIDTH, FPS, N_KEYS, SEGMENT_FRAMES
from conftest import REPO, assert_roll_follows_notes, write_clip_midi


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("build")
    midis = [str(write_clip_midi(d / f"clip{i}.mid", seconds=2.0, seed=i)) for i in range(3)]
    out = d / "data"
    B.main(["--out", str(out), "--no-corpus", "--midi", *midis, "--workers", "2", "--jpg",
            "--far-side-fraction", "0.5"])
    return out, json.loads((out / "manifest.json").read_text())


def test_layout_and_manifest(built):
    out, manifest = built
    assert {v["split"] for v in manifest["videos"]} == {"training", "validation", "testing"}
    assert manifest["frames"] == sum(v["n_frames"] for v in manifest["videos"]) > 0
    for v in manifest["videos"]:
        split, name, n = v["split"], v["name"], v["n_frames"]
        frames = np.load(out / "frames" / split / f"{name}.npy")
        assert frames.shape == (n, CROP_HEIGHT, CROP_WIDTH) and frames.dtype == np.uint8
        labels = np.load(out / "labels" / split / f"{name}.pkl", allow_pickle=True)   # the original's way
        assert sorted(labels) == list(range(n)) and labels[0].shape == (N_KEYS,)
        assert len(list((out / "input_images" / split / name).glob("frame*.jpg"))) == n
        segs = aio.list_segments(out / "midi" / split / name)
        assert segs[0][:2] == (0, min(SEGMENT_FRAMES, n)) and segs[-1][1] == n


def test_labels_match_the_performance_midi_frame_by_frame(built):
    out, manifest = built
    for v in manifest["videos"]:
        split, name, n = v["split"], v["name"], v["n_frames"]
        pm = aio.load_midi(out / "performances" / split / f"{name}.mid")
        _, labels = aio.load_labels(out / "labels" / split / f"{name}.pkl")
        _, keydown = aio.load_labels(out / "labels_keydown" / split / f"{name}.pkl")
        assert_roll_follows_notes(keydown, pm, FPS)
        held = labels & ~keydown                                # the pedal only lengthens notes ...
        assert not (keydown & ~labels).any() and held.any()
        pedal_frames = np.arange(n)[held.any(axis=1)] / FPS    # ... while it is down (1.0-2.0 s + a frame)
        assert 1.0 - 1 / FPS <= pedal_frames.min() and pedal_frames.max() <= 2.0 + 1 / FPS
        assert labels[0].any()                                  # leading silence trimmed
        _, segments = aio.read_segments(out / "midi" / split / name, "midi")
        assert np.array_equal(segments, labels)


def test_rebuild_resumes_without_rerendering(built, tmp_path):
    out, manifest = built
    before = {p: p.stat().st_mtime_ns for p in (out / "frames").rglob("*.npy")}
    midis = [v["source"] for v in manifest["videos"]]
    B.main(["--out", str(out), "--no-corpus", "--midi", *midis, "--workers", "1", "--far-side-fraction", "0.5"])
    assert {p: p.stat().st_mtime_ns for p in (out / "frames").rglob("*.npy")} == before


@pytest.mark.parametrize("kind,expect", [("missing", "not found"), ("garbage", "MIDI"), ("empty", "no notes"),
                                         ("outside", "88 keys")])
def test_bad_midi_one_line_error_and_no_output(tmp_path, kind, expect):
    midi = tmp_path / "bad.mid"
    if kind == "garbage":
        midi.write_bytes(b"nope")
    elif kind == "empty":
        aio.write_midi(aio.notes_to_pretty_midi([]), midi)
    elif kind == "outside":
        aio.write_midi(aio.notes_to_pretty_midi([(110, 0, 1, 80)]), midi)
    out = tmp_path / "data"
    proc = subprocess.run([sys.executable, str(REPO / "Render_dataset.py"), "--out", str(out), "--no-corpus",
                           "--midi", str(midi)], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "bad.mid" in lines[0]
    assert not out.exists()
