"""Video_prepare: any frame rate -> 25 fps crops whose labels line up with the MIDI."""
import json

import numpy as np

import audeo_io as aio
import audeo_render as R
import Video_prepare
from audeo_video import crop_keyboard, iter_frames, read_box, resample_indices, video_info
from conftest import write_clip_midi


def test_thirty_fps_video_becomes_25_fps_frames_aligned_with_labels(tmp_path):
    clip = tmp_path / "clip"
    R.render(write_clip_midi(tmp_path / "in.mid", seconds=3.0, seed=4), clip, seed=9, fps=30, progress=False)
    video, box = clip / "video.mp4", read_box(clip / "box.txt")
    info = video_info(video)
    Video_prepare.main([str(video), "--out", str(tmp_path / "data"), "--name", "c", "--box", *map(str, box),
                        "--midi", str(clip / "performance.mid"), "--no-trim"])
    frames = np.load(tmp_path / "data" / "frames" / "testing" / "c.npy")
    n_src = sum(1 for _ in iter_frames(video))
    picks = resample_indices(info.fps, n_src)
    assert len(frames) == len(picks) == int(np.floor(n_src / 30 * 25 + 1e-6))
    source = [crop_keyboard(f, box) for f in iter_frames(video)]
    assert all(np.array_equal(frames[i], source[j]) for i, j in enumerate(picks))   # resampled in time
    # labels at 25 fps vs the key state drawn in the 30 fps frame each 25 fps frame came from
    _, keydown = aio.load_labels(tmp_path / "data" / "labels_keydown" / "testing" / "c.pkl")
    drawn = R.Performance(aio.load_midi(clip / "performance.mid"), 30, R.DEFAULTS["tail"]).keys_down[picks]
    mismatch = np.flatnonzero((keydown > 0) != drawn) // 88
    assert len(mismatch) < 0.02 * keydown.size
    changes = np.flatnonzero(np.any(np.diff(keydown, axis=0) != 0, axis=1))
    assert all(np.min(np.abs(changes - t)) <= 1 for t in np.unique(mismatch))   # only at key transitions
    meta = json.loads((tmp_path / "data" / "prepared" / "c.json").read_text())
    assert meta["source_fps"] == 30 and meta["fps"] == 25


def _prepare_cli(args, cwd):
    import subprocess
    import sys
    from conftest import REPO
    return subprocess.run([sys.executable, str(REPO / "Video_prepare.py"), *args], capture_output=True, text=True,
                          cwd=cwd)


def test_bad_videos_one_line_error_and_nothing_written(tmp_path):
    clip = tmp_path / "clip"
    R.render(write_clip_midi(tmp_path / "in.mid", seconds=1.0), clip, seed=1, progress=False)
    empty, corrupt = tmp_path / "empty.mp4", tmp_path / "corrupt.mp4"
    empty.write_bytes(b"")
    corrupt.write_bytes(b"\x00\x01" * 4000)
    box = (clip / "box.txt").read_text().split()
    cases = [([str(clip / "video.mp4"), "--box", *box, "--audio-labels"], "no audio track"),
             ([str(empty), "--box", *box], "cannot be decoded"),
             ([str(corrupt), "--box", *box], "cannot be decoded"),
             ([str(clip / "video.mp4"), "--box", "0", "0", "5000", "10"], "outside")]
    for args, expect in cases:
        proc = _prepare_cli(args + ["--out", "data"], tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and expect in lines[0], (args, proc.stderr)
        assert not (tmp_path / "data").exists()


def test_audio_labels_from_the_videos_own_sound(tmp_path):
    """A rendered clip muxed with its own audio: basic-pitch labels match the performance's notes."""
    import subprocess
    import imageio_ffmpeg
    from Audio_evaluate import score_notes
    clip = tmp_path / "clip"
    R.render(write_clip_midi(tmp_path / "in.mid", seconds=3.0, seed=7), clip, seed=3, progress=False)
    video = tmp_path / "with_sound.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(clip / "video.mp4"), "-i",
                    str(clip / "audio.wav"), "-c:v", "copy", "-c:a", "aac", str(video)], check=True)
    Video_prepare.main([str(video), "--out", str(tmp_path / "data"), "--name", "c", "--box-file",
                        str(clip / "box.txt"), "--audio-labels", "--no-trim"])
    labelled = aio.midi_notes(aio.load_midi(tmp_path / "data" / "performances" / "testing" / "c.mid"), sustain=False)
    truth = aio.midi_notes(aio.load_midi(clip / "performance.mid"), sustain=False)
    assert score_notes(labelled, truth)["onset_f1"] > 0.6      # random dense chords; omaps_010 scores 0.74


def test_detected_corners_rectify_a_tilted_keyboard():
    """A 100x900 pattern pasted rotated 6 degrees and shrunk on one side: the rectified crop is the pattern
    again (both camera sides), the axis-aligned crop of the same box is not."""
    import cv2
    from audeo_video import KeyboardBox
    rng = np.random.default_rng(0)
    pattern = cv2.resize((rng.random((10, 90)) * 255).astype(np.uint8), (900, 100), interpolation=cv2.INTER_NEAREST)
    src = np.float32([[0, 0], [900, 0], [900, 100], [0, 100]])
    quad = np.float32([[60, 200], [950, 110], [960, 190], [70, 300]])         # back-left, back-right, front-right, ...
    for far_side in (False, True):
        shown = cv2.rotate(pattern, cv2.ROTATE_180) if far_side else pattern     # a far camera sees it turned
        corners = quad[[3, 2, 1, 0]] if far_side else quad                       # far: the back is at the bottom
        frame = cv2.warpPerspective(shown, cv2.getPerspectiveTransform(src, quad), (1024, 400))
        box = (60, 110, 961, 301)
        rectified = crop_keyboard(frame, KeyboardBox(box, corners), far_side).astype(float)
        plain = crop_keyboard(frame, box, far_side).astype(float)
        inner = (slice(5, -5), slice(20, -20))                                 # away from interpolated edges
        assert np.corrcoef(rectified[inner].ravel(), pattern[inner].ravel().astype(float))[0, 1] > 0.9
        assert np.corrcoef(plain[inner].ravel(), pattern[inner].ravel().astype(float))[0, 1] < 0.5
