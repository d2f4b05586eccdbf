"""Bad input and faults, across the scripts: each case is one line on stderr naming the file and the
problem, exit code 1, and no output file (not even a partial one). Odd but valid videos (one frame,
7 fps) run through. More cases live beside each script's own tests (test_audeo, test_midi_synth,
test_prepare, test_render, test_render_dataset, test_roll2midi, test_video2roll, test_io)."""
import json
import pickle
import resource
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

import audeo_io as aio
import audeo_render as R
from audeo_train import read_torch_file, save_checkpoint
from audeo_video import video_writer
from conftest import REPO, audeo_outputs, write_clip_midi

MODELS = REPO / "models"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A rendered clip and broken copies of its video, a MIDI reference and the shipped checkpoint."""
    d = tmp_path_factory.mktemp("faults")
    R.render(write_clip_midi(d / "in.mid", seconds=3.0, seed=3), d / "clip", seed=24, progress=False)
    video = (d / "clip" / "video.mp4").read_bytes()
    (d / "empty.mp4").write_bytes(b"")
    (d / "truncated.mp4").write_bytes(video[:len(video) // 3])
    (d / "text.mp4").write_text("this is not a video\n")
    frames = read_all(d / "clip" / "video.mp4")
    h, w = frames[0].shape[:2]
    with video_writer(d / "zero.mp4", w, h, 25):
        pass
    with video_writer(d / "one.mp4", w, h, 25) as write:
        write(frames[40])
    with video_writer(d / "7fps.mp4", w, h, 7) as write:
        for f in frames[::4]:
            write(f)
    with video_writer(d / "tiny.mp4", 32, 18, 25) as write:
        for f in frames[:30]:
            write(cv2.resize(f, (32, 18), interpolation=cv2.INTER_AREA))
    (d / "empty.mid").write_bytes(b"")
    (d / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    checkpoint = (MODELS / "video2roll_seq.pt").read_bytes()
    (d / "truncated.pt").write_bytes(checkpoint[:len(checkpoint) // 2])
    newer = read_torch_file(MODELS / "video2roll_seq.pt")
    newer["config"]["a_field_from_a_newer_version"] = 1
    save_checkpoint(d / "newer.pt", **newer)
    return d


def read_all(path):
    cap, frames = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        frames.append(got[1])
    return frames


def run(script, args, cwd, file_size_limit=None):
    limit = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit,) * 2)) if file_size_limit else None
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, preexec_fn=limit)


def assert_one_line_error(proc, *expected):
    errors = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert all(e in errors[0] for e in expected), errors[0]


def nothing_written(folder):
    return not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]


# ----------------------------------------------------------------------------- Audeo.py

def box(inputs):
    return ["--box", *(inputs / "clip" / "box.txt").read_text().split()]


AUDEO_CASES = {   # case: (arguments after the video, video, what the error line says)
    "missing video": ([], "missing.mp4", ["missing.mp4", "not found"]),
    "empty file": ([], "empty.mp4", ["empty.mp4", "cannot be decoded"]),
    "truncated video": ([], "truncated.mp4", ["truncated.mp4", "cannot be decoded"]),
    "text file": ([], "text.mp4", ["text.mp4", "cannot be decoded"]),
    "zero frames": ([], "zero.mp4", ["zero.mp4", "cannot be decoded"]),
    "tiny frames": ([], "tiny.mp4", ["tiny.mp4", "no keyboard found"]),
    "box outside the frame": (["--box", "800", "100", "2000", "300"], "clip/video.mp4", ["outside the 854x480 frame"]),
    "empty reference": (["BOX", "--reference", "empty.mid"], "clip/video.mp4", ["empty.mid", "not a readable MIDI"]),
    "corrupt reference": (["BOX", "--reference", "corrupt.mid"], "clip/video.mp4", ["corrupt.mid", "not a readable MIDI"]),
    "truncated checkpoint": (["BOX", "--video2roll", "truncated.pt"], "clip/video.mp4",
                             ["truncated.pt", "not a readable checkpoint"]),
    "newer checkpoint": (["BOX", "--video2roll", "newer.pt"], "clip/video.mp4",
                         ["newer.pt", "a_field_from_a_newer_version"]),
    "Roll2Midi file as Video2Roll": (["BOX", "--video2roll", MODELS / "roll2midi.pt"], "clip/video.mp4",
                                     ["roll2midi.pt", "not a Video2Roll checkpoint"]),
    "Video2Roll file as Roll2Midi": (["BOX", "--roll2midi", MODELS / "video2roll_seq.pt"], "clip/video.mp4",
                                     ["video2roll_seq.pt", "not a Roll2Midi"]),
}


@pytest.mark.parametrize("case", sorted(AUDEO_CASES))
def test_audeo_bad_input(inputs, tmp_path, case):
    extra, video, expected = AUDEO_CASES[case]
    args = [inputs / video, "--out", tmp_path / "out"]
    for a in extra:
        args += box(inputs) if a == "BOX" else [inputs / a if isinstance(a, str) and a.endswith((".mid", ".pt")) else a]
    assert_one_line_error(run("Audeo.py", args, tmp_path), *expected)
    assert nothing_written(tmp_path / "out")


@pytest.mark.parametrize("limit, expected", [(20_000, "cannot be written"), (200_000, "SIGXFSZ")])
def test_audeo_full_disk(inputs, tmp_path, limit, expected):
    """A file size limit stands in for a full disk: the wav (20 kB) or the muxed mp4 (200 kB) cannot be written."""
    proc = run("Audeo.py", [inputs / "clip" / "video.mp4", *box(inputs), "--out", tmp_path / "out"], tmp_path,
               file_size_limit=limit)
    assert_one_line_error(proc, expected)
    assert nothing_written(tmp_path / "out")


@pytest.mark.parametrize("video, n_frames", [("one.mp4", 1), ("7fps.mp4", 34 * 25 // 7)])
def test_audeo_odd_but_valid_videos_run(inputs, tmp_path, video, n_frames):
    proc = run("Audeo.py", [inputs / video, *box(inputs), "--out", tmp_path / "out"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stem = video.removesuffix(".mp4")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == audeo_outputs(stem)
    meta = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
    assert abs(meta["frames"] - n_frames) <= 1, meta        # resampled to 25 fps


# ----------------------------------------------------------------------------- dataset files

@pytest.fixture
def dataset(tiny_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    return root


def first(root, pattern):
    return sorted(root.glob(pattern))[0]


def break_labels(root, how):
    path = first(root, "labels_keydown/testing/*.pkl")
    if how == "wrong dims":
        with open(path, "wb") as f:
            pickle.dump({0: np.zeros(50, np.float32), 1: np.zeros(50, np.float32)}, f)
    elif how == "hostile":
        path.write_bytes(b"cos\nsystem\n(S'touch HACKED'\ntR.")
    else:                                                  # truncated
        path.write_bytes(path.read_bytes()[:20])
    return path


@pytest.mark.parametrize("how, expected", [("wrong dims", "50"), ("hostile", "refused"), ("truncated", "pkl")])
def test_evaluate_bad_label_pickles(dataset, tmp_path, how, expected):
    path = break_labels(dataset, how)
    proc = run("Video2Roll_evaluate.py", ["--data", dataset, "--split", "testing", "--checkpoint",
                                          MODELS / "video2roll_fast.pt", "--json", tmp_path / "m.json"], tmp_path)
    assert_one_line_error(proc, path.name, expected)
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "HACKED").exists()


def break_segment(root, how):
    path = first(root, "midi/testing/*/*.npz")
    roll = np.load(path)["midi"]
    if how == "wrong keys":
        np.savez(path, notes=roll)
    elif how == "wrong shape":
        np.savez(path, midi=roll[:, :10])
    elif how == "wrong dtype":
        np.savez(path, midi=np.full(roll.shape, "x"))
    else:                                                  # NaN
        np.savez(path, midi=np.where(roll > 0, np.nan, 0.0))
    return path


@pytest.mark.parametrize("how, expected", [("wrong keys", "midi"), ("wrong shape", "10"), ("wrong dtype", "dtype"),
                                           ("NaN", "NaN")])
def test_midi_synth_bad_segments(dataset, tmp_path, how, expected):
    path = break_segment(dataset, how)
    proc = run("Midi_synth.py", ["--rolls", path.parent, "--out", tmp_path / "out"], tmp_path)
    assert_one_line_error(proc, path.name, expected)
    assert nothing_written(tmp_path / "out")
