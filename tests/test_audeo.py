"""Audeo.py end to end with the shipped models: four outputs, an mp4 with sound, clean failures."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, audeo_outputs, shared_data, streams


def audeo(args, cwd):
    return subprocess.run([sys.executable, str(REPO / "Audeo.py"), *args], capture_output=True, text=True, cwd=cwd)


def test_video_to_music_writes_four_files(clip, tmp_path):
    box = (clip / "box.txt").read_text().split()
    proc = audeo([str(clip / "video.mp4"), "--out", "out", "--box", *box, "--reference", str(clip / "performance.mid")],
                 tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == audeo_outputs("video")
    has_video, has_audio, seconds = streams(out / "video.mp4")
    src_seconds = json.loads((clip / "render.json").read_text())["duration"]
    assert has_video and has_audio and abs(seconds - src_seconds) < 0.1
    meta = json.loads((out / "video.json").read_text())
    assert meta["box_source"] == "given" and f"(audio: {meta['synthesizer']})" in proc.stdout
    assert meta["metrics"]["note_onset_f1"] >= 0.8      # 0.92 with the shipped model on this 30 fps clip


def test_without_box_the_keyboard_is_found(clip, tmp_path):
    proc = audeo([str(clip / "video.mp4"), "--out", "out"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((tmp_path / "out" / "video.json").read_text())
    truth = np.array((clip / "box.txt").read_text().split(), float)
    assert meta["box_source"] == "detected" and np.abs(np.array(meta["box"]) - truth).max() <= 6


def test_a_killed_run_leaves_only_complete_files(clip, tmp_path):
    """SIGKILL at several points of a run: whatever is visible in DIR is complete (README: every file
    appears complete, all at the end); only a hidden .audeo.* work folder may be left behind."""
    import time
    import music21
    import pretty_midi
    import soundfile
    box = (clip / "box.txt").read_text().split()
    args = [sys.executable, str(REPO / "Audeo.py"), str(clip / "video.mp4"), "--box", *box]
    start = time.monotonic()
    assert subprocess.run([*args, "--out", str(tmp_path / "full")], capture_output=True).returncode == 0
    seconds = time.monotonic() - start
    checks = {".json": lambda p: json.loads(p.read_text()), ".mid": lambda p: pretty_midi.PrettyMIDI(str(p)),
              ".wav": soundfile.read, ".mp4": streams, ".png": lambda p: p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" or 1 / 0,
              ".musicxml": music21.converter.parse, ".svg": lambda p: p.read_text().rstrip().endswith("</svg>") or 1 / 0}
    for fraction in (0.3, 0.6, 0.85, 0.95):
        out = tmp_path / f"killed_{fraction}"
        proc = subprocess.Popen([*args, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds * fraction)
        proc.kill()
        proc.wait()
        visible = [p for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
        for path in visible:
            checks[path.suffix](path)                  # raises on a truncated or half-written file


@pytest.mark.parametrize("case", ["no_keyboard", "soundfont", "unwritable"])
def test_failures_are_one_line_and_leave_nothing(clip, tmp_path, case):
    import cv2
    video, extra, out = clip / "video.mp4", [], "out"
    if case == "no_keyboard":                           # a video of a plain floor
        video = tmp_path / "floor.mp4"
        from audeo_video import video_writer
        rng = np.random.default_rng(0)
        with video_writer(video, 320, 180, 25) as write:
            for _ in range(30):
                write(cv2.GaussianBlur((rng.random((180, 320, 3)) * 80 + 60).astype(np.uint8), (0, 0), 3))
    elif case == "soundfont":
        extra = ["--soundfont", str(tmp_path / "missing.sf2")]
    else:
        (tmp_path / "afile").write_text("x")
        out = str(tmp_path / "afile" / "out")
    proc = audeo([str(video), "--out", out, *extra], tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert not any((tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else True


@pytest.mark.real_data
def test_real_videos_without_a_box(tmp_path):
    """scarlatti (player side, its own audio, no MIDI) and a held-out AI-Pianist take (far side, pianist 9 is
    in the test split), each with no box given: all outputs, the right side, and a score for the labelled one."""
    from audeo_ai_pianist import PITCH_SHIFT, file_offset
    scarlatti = shared_data("scarlatti", "scarlatti.mp4")
    take = shared_data("ai_pianist", "TrainSet", "9", "0", "1.wmv")
    proc = audeo([str(scarlatti), "--out", "s"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((tmp_path / "s" / "scarlatti.json").read_text())
    assert meta["box_source"] == "detected" and not meta["far_side"]
    assert streams(tmp_path / "s" / "scarlatti.mp4")[:2] == (True, True)
    proc = audeo([str(take), "--out", "a", "--reference", f"{take}.mid", "--reference-pitch-shift", str(PITCH_SHIFT),
                  "--reference-offset", str(file_offset(f"{take}.txt"))], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((tmp_path / "a" / "1.json").read_text())
    assert meta["box_source"] == "detected" and meta["far_side"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == audeo_outputs("1")
    # with the alignment file's offset (0.045 s from the aligned one) the default models score 0.542 (the first seq model 0.589); the fast
    # net that was the default before scored 0.246
    assert meta["metrics"]["note_onset_f1"] >= 0.45


@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_mux_copies_an_h264_picture_and_re_encodes_others(clip, tmp_path, codec):
    from audeo_pipeline import mux
    from audeo_synth import write_wav
    from audeo_video import iter_frames, run_ffmpeg, video_info
    video = clip / "video.mp4"
    if codec != "h264":
        assert run_ffmpeg("-i", video, "-c:v", codec, "-q:v", "2", tmp_path / "in.mp4") is None
        video = tmp_path / "in.mp4"
    info = video_info(video)
    write_wav(tmp_path / "a.wav", np.full(int(info.duration * 16000) + 800, 0.1, np.float32))
    mux(video, tmp_path / "a.wav", tmp_path / "out.mp4", info)
    out = video_info(tmp_path / "out.mp4")
    has_video, has_audio, seconds = streams(tmp_path / "out.mp4")
    assert out.codec == "h264" and has_video and has_audio and seconds == pytest.approx(info.duration, abs=0.1)
    frames_in, frames_out = list(iter_frames(video)), list(iter_frames(tmp_path / "out.mp4"))
    assert len(frames_in) == len(frames_out)
    same = all(np.array_equal(a, b) for a, b in zip(frames_in, frames_out))
    assert same == (codec == "h264")                   # copied bit for bit, or re-encoded


def test_long_rolls_are_drawn_max_pooled_so_every_note_stays_visible():
    from audeo_constants import PICTURE_MAX_FRAMES
    from audeo_pipeline import pooled_columns
    roll = np.zeros((3 * PICTURE_MAX_FRAMES + 1, 88), np.uint8)
    roll[[0, 7, len(roll) - 1], [3, 50, 87]] = 1          # one-frame notes, the last alone in its block
    pooled = pooled_columns(roll, PICTURE_MAX_FRAMES)
    assert len(pooled) <= PICTURE_MAX_FRAMES and pooled.sum() == 3
    assert pooled[0, 3] == pooled[1, 50] == pooled[-1, 87] == 1
    assert np.array_equal(pooled_columns(roll[:100], PICTURE_MAX_FRAMES), roll[:100])       # short: as it is
