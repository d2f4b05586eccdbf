"""Piano_render / audeo_render: outputs, the picture's key state against the MIDI, camera sides, bad inputs."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

import audeo_io as aio
import audeo_render as R
from audeo_constants import FPS, N_KEYS, SAMPLE_RATE
from audeo_video import crop_keyboard, read_box, video_info
from conftest import REPO, assert_roll_follows_notes, write_clip_midi


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("render")
    midi = write_clip_midi(d / "in.mid")
    meta = R.render(midi, d / "out", seed=5, progress=False)
    return d / "out", meta


def test_outputs_exist_and_agree(clip):
    out, meta = clip
    assert sorted(p.name for p in out.iterdir()) == ["audio.wav", "box.txt", "performance.mid", "render.json",
                                                      "video.mp4"]
    info = video_info(out / "video.mp4")
    assert info.fps == FPS and (info.width, info.height) == tuple(meta["scene"]["size"])
    frames = sum(1 for _ in __import__("audeo_video").iter_frames(out / "video.mp4"))
    assert frames == meta["n_frames"] == json.loads((out / "render.json").read_text())["n_frames"]
    x1, y1, x2, y2 = read_box(out / "box.txt")
    assert 0 <= x1 < x2 <= info.width and 0 <= y1 < y2 <= info.height and (x2 - x1) > 5 * (y2 - y1)
    audio, sr = soundfile.read(out / "audio.wav")
    assert sr == SAMPLE_RATE and np.abs(audio).max() > 0.1
    assert abs(len(audio) / sr - meta["duration"]) < 2.0
    assert "synthesizer" in meta and meta["synthesizer"]


def test_picture_shows_key_down_state_frame_by_frame(clip):
    out, meta = clip
    pm = aio.load_midi(out / "performance.mid")
    perf = R.Performance(pm, FPS, R.DEFAULTS["tail"])
    assert perf.n_frames == meta["n_frames"]
    assert assert_roll_follows_notes(perf.keys_down, pm, FPS) >= 1   # the picture follows the keys, not the pedal
    art = R.KeyboardArt(R.sample_scene(meta["scene"]["seed"]))
    for t in range(0, perf.n_frames, 7):
        img = art.compose(perf.keys_down[t])
        changed = _changed_keys(art, img)
        assert changed == set(np.flatnonzero(perf.keys_down[t])), t


def _changed_keys(art, img):
    """Keys whose own top surface differs from the all-keys-up picture."""
    changed = set()
    for k in range(N_KEYS):
        x0, y0, x1, y1 = art._key_rect(k)
        if not R.KEY_BLACK[k]:
            y0 = y1 - int(0.2 * R.KEY_LENGTH * R.PX)        # the white key's front, clear of black keys
            x0, x1 = x0 + 3, x1 - 3
        else:
            x0, x1 = x0 + 3, x1 - 3
        if np.any(img[y0:y1, x0:x1] != art.base[y0:y1, x0:x1]):
            changed.add(k)
    return changed


def test_far_side_is_the_same_view_turned(tmp_path):
    pm = aio.load_midi(write_clip_midi(tmp_path / "a.mid", seconds=1.0))
    perf = R.Performance(R.shift_performance(pm, 0.6), FPS, 0.2)
    crops = []
    for far in (False, True):
        scene = R.sample_scene(11, far_side=far)
        frame = R.FrameRenderer(scene).render(perf.keys_down[20], perf.tips[:, 20], perf.pressing[:, 20],
                                              perf.present[:, 20])
        crops.append(crop_keyboard(frame, R.keyboard_box(scene), far_side=far).astype(float))
    assert np.abs(crops[0] - crops[1]).mean() < 8
    # bass on the left in both crops: the top (black-key) row darker on average than the front row
    assert crops[1][:30].mean() < crops[1][-30:].mean() + 40


def test_thirty_fps_render(tmp_path):
    midi = write_clip_midi(tmp_path / "a.mid", seconds=1.0)
    meta = R.render(midi, tmp_path / "o", seed=1, fps=30, progress=False)
    assert video_info(tmp_path / "o" / "video.mp4").fps == 30
    assert meta["n_frames"] == int(np.ceil(meta["duration"] * 30 - 1e-6))


@pytest.mark.parametrize("content,expect", [
    (None, "not found"),
    (b"garbage", "not a readable MIDI"),
    ("empty", "no notes"),
    ("low", "outside the 88 keys"),
])
def test_bad_inputs_one_line_error_no_output(tmp_path, content, expect):
    midi = tmp_path / "in.mid"
    if content == "empty":
        aio.write_midi(aio.notes_to_pretty_midi([]), midi)
    elif content == "low":
        aio.write_midi(aio.notes_to_pretty_midi([(12, 0, 1, 80), (60, 0, 1, 80)]), midi)
    elif content is not None:
        midi.write_bytes(content)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "Piano_render.py"), "--midi", str(midi), "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "in.mid" in lines[0]
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == (["in.mid"] if content else [])
