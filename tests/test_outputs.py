"""Audeo.py's added outputs: the key-overlay video (--overlay), the sheet music (MusicXML and its SVG
preview), the progress hook the web page follows, and all-or-nothing writing of them."""
import importlib.util
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from fractions import Fraction

import cv2
import numpy as np
import pytest

import audeo_overlay as O
import audeo_pipeline as P
import audeo_render as R
import audeo_sheet as S
from audeo_constants import CROP_HEIGHT, CROP_WIDTH, N_WHITE_KEYS, SHEET_DIVISIONS
from audeo_io import load_midi, midi_notes, notes_to_roll
from audeo_video import KeyboardBox, crop_keyboard, frame_to_crop, iter_frames, video_info
from conftest import REPO, audeo_outputs, streams

HAS_VEROVIO = importlib.util.find_spec("verovio") is not None


def greenness(pixels):
    """How much green stands out of BGR pixels (the highlight's colour): G - max(B, R)."""
    px = np.asarray(pixels, int)
    return px[..., 1] - np.maximum(px[..., 0], px[..., 2])


def magentaness(pixels):
    """How much magenta (the outline's colour) BGR pixels show: min(B, R) - G."""
    px = np.asarray(pixels, int)
    return np.minimum(px[..., 0], px[..., 2]) - px[..., 1]


def at(frame, points, radius=0):
    """The pixels of `frame` at (x, y) points: each one's median over a (2r+1)^2 window (compression noise)."""
    out = []
    for x, y in np.rint(points).astype(int):
        window = frame[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1]
        out.append(np.median(window.reshape(-1, 3), axis=0))
    return np.array(out)


def key_points(box, far_side=False):
    """A point inside each key in the frame: a white key's front part, a black key's middle."""
    ux, black_v = CROP_WIDTH / N_WHITE_KEYS, CROP_HEIGHT * R.BLACK_LENGTH / R.KEY_LENGTH
    crop = np.stack([R.KEY_CENTRE * ux, np.where(R.KEY_BLACK, 0.5 * black_v, 0.85 * CROP_HEIGHT)], axis=1)
    return O.to_frame(crop, box, far_side)


def rows_at_frames(roll, n_frames, fps):
    """Each video frame's 25 fps roll row and whether its neighbours agree (so one frame either way is no matter)."""
    r = np.minimum(np.floor(np.arange(n_frames) / fps * 25 + 0.5).astype(int), len(roll) - 1)
    padded = np.concatenate([roll[:1], roll, roll[-1:]])
    stable = (padded[r] == padded[r + 1]) & (padded[r + 2] == padded[r + 1])
    return roll[r].astype(bool), stable


def audeo_cli(*args, cwd):
    return subprocess.run([sys.executable, str(REPO / "Audeo.py"), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


@pytest.fixture(scope="module")
def overlay_run(clip, tmp_path_factory):
    """`Audeo.py VIDEO --overlay` on the rendered clip, the keyboard found (and rectified) by itself."""
    cwd = tmp_path_factory.mktemp("overlay")
    proc = audeo_cli(clip / "video.mp4", "--out", "out", "--overlay", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = cwd / "out"
    return out, json.loads((out / "video.json").read_text()), proc.stdout


# ----------------------------------------------------------------------------- the key-overlay video

def test_overlay_is_the_input_video_with_the_generated_sound(clip, overlay_run):
    out, meta, _ = overlay_run
    assert sorted(p.name for p in out.iterdir()) == audeo_outputs("video", "_keys.mp4")
    has_video, has_audio, seconds = streams(out / "video_keys.mp4")
    src, keys = video_info(clip / "video.mp4"), video_info(out / "video_keys.mp4")
    assert has_video and has_audio and keys.codec in P.H264_FOURCCS
    assert (keys.width, keys.height, keys.fps) == (src.width, src.height, pytest.approx(src.fps))
    n_in, n_out = sum(1 for _ in iter_frames(clip / "video.mp4")), sum(1 for _ in iter_frames(out / "video_keys.mp4"))
    assert abs(n_in - n_out) <= 1 and abs(keys.duration - src.duration) <= 1 / src.fps
    assert abs(seconds - src.duration) < 0.1


def test_overlay_keys_are_where_the_rendered_keys_are(clip, overlay_run):
    """The key shapes mapped back through the rectifying warp of the detected box land on the keys the
    renderer drew (its own homography), within a third of a white key."""
    _, meta, _ = overlay_run
    scene = R.Scene(**json.loads((clip / "render.json").read_text())["scene"])
    _, _, ox, oy = R.canvas_geometry(scene)
    depth = np.where(R.KEY_BLACK, 0.5 * R.BLACK_LENGTH, 0.85 * R.KEY_LENGTH)
    canvas = np.stack([ox + R.KEY_CENTRE * R.PX, oy + depth * R.PX], axis=1)
    truth = cv2.perspectiveTransform(canvas[None], R.homography(scene))[0]
    mapped = key_points(KeyboardBox(meta["box"], meta["corners"]), meta["far_side"])
    white_px = np.linalg.norm(truth[-1] - truth[0]) / (N_WHITE_KEYS - 1)
    assert meta["corners"] and np.abs(mapped - truth).max() < white_px / 3


def test_overlay_draws_the_outline_and_the_held_keys(clip, overlay_run):
    out, meta, _ = overlay_run
    box = KeyboardBox(meta["box"], meta["corners"])
    roll = notes_to_roll(midi_notes(load_midi(out / "video.mid"), sustain=False), n_frames=meta["frames"])
    fps = video_info(clip / "video.mp4").fps
    frames_in, frames_out = list(iter_frames(clip / "video.mp4")), list(iter_frames(out / "video_keys.mp4"))
    down, stable = rows_at_frames(roll, len(frames_out), fps)
    corners = np.array(meta["corners"])
    edges = np.concatenate([a + np.linspace(0.1, 0.9, 9)[:, None] * (b - a)
                            for a, b in zip(corners, np.roll(corners, -1, axis=0))])
    points = key_points(box)
    checked = {"down": 0, "up": 0}
    for i, (before, after) in enumerate(zip(frames_in, frames_out)):
        assert (magentaness(at(after, edges, 2)) > 80).all() and (magentaness(at(before, edges, 2)) < 30).all(), i
        green_before, green_after = greenness(at(before, points, 1)), greenness(at(after, points, 1))
        held, up = down[i] & stable[i], ~down[i] & stable[i] & (green_before < 25)
        assert (green_after[held] > 50).all(), (i, np.flatnonzero(held & (green_after <= 50)))
        assert (green_after[up] < 25).all(), (i, np.flatnonzero(up & (green_after >= 25)))
        checked["down"] += held.sum()
        checked["up"] += up.sum()
    assert checked["down"] >= 100 and checked["up"] >= 50 * len(frames_out), checked


@pytest.mark.parametrize("kind", ["box", "rectified", "rectified far side"])
def test_frame_to_crop_maps_frame_pixels_where_the_crop_shows_them(kind):
    """A bright dot drawn at to_frame(q) shows up at q in crop_keyboard's crop: the overlay's key shapes
    are mapped back through exactly the warp (or scaling) that made the crop, a far-side turn included."""
    corners = [(70, 150), (560, 120), (575, 215), (60, 240)]          # tilted, keystoned key area
    box = (50, 110, 590, 250) if kind == "box" else KeyboardBox((50, 110, 590, 250), corners)
    far = kind.endswith("far side")
    for q in [(120.0, 30.0), (700.0, 80.0), (450.0, 50.0)]:
        frame = np.zeros((300, 640, 3), np.uint8)
        x, y = O.to_frame([q], box, far)[0]
        cv2.circle(frame, (int(round(x * 16)), int(round(y * 16))), 3 * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
        crop = crop_keyboard(frame, box, far).astype(float)
        vs, us = np.mgrid[:CROP_HEIGHT, :CROP_WIDTH]
        centre = np.array([(us * crop).sum(), (vs * crop).sum()]) / crop.sum()
        assert np.abs(centre + 0.5 - np.array(q)).max() < 1.5, (kind, q, centre)
    assert np.allclose(frame_to_crop(box, far) @ np.linalg.inv(frame_to_crop(box, far)), np.eye(3))


# ----------------------------------------------------------------------------- sheet music

def written_notes(path):
    """[(staff, pitch, onset, length)] (quarter notes, Fractions) of every note a MusicXML file starts, its
    tied continuations added to its length, sorted."""
    import music21
    notes, open_notes = [], {}
    for staff, part in enumerate(music21.converter.parse(str(path)).parts):
        for element in part.flatten().notes:
            for n in (element.notes if element.isChord else [element]):
                length = Fraction(element.quarterLength)
                if n.tie is None or n.tie.type == "start":
                    notes.append([staff, n.pitch.midi, Fraction(element.offset), length])
                    open_notes[staff, n.pitch.midi] = notes[-1]
                else:
                    open_notes[staff, n.pitch.midi][3] += length
    return sorted(map(tuple, notes))


def test_sheet_has_the_generated_notes_on_the_grid(overlay_run):
    """Re-read by music21: the generated MIDI's pitches, each onset within half a quantisation step of the
    MIDI's, treble from middle C up, bass below (notes of one key on the same step are written once)."""
    out, meta, _ = overlay_run
    sheet = meta["sheet"]
    assert sheet["step_seconds"] == pytest.approx(60 / sheet["bpm"] / SHEET_DIVISIONS)
    midi = midi_notes(load_midi(out / "video.mid"), sustain=False)
    written = written_notes(out / "video.musicxml")
    distinct = {(p, round((start - sheet["origin"]) / sheet["step_seconds"])) for p, start, _, _ in midi}
    assert len(midi) >= 20 and Counter(n[1] for n in written) == Counter(p for p, _ in distinct)
    assert all((staff == 0) == (pitch >= 60) for staff, pitch, _, _ in written)
    seconds = {}
    for _, pitch, onset, _ in written:
        seconds.setdefault(pitch, []).append(sheet["origin"] + float(onset) * 60 / sheet["bpm"])
    for pitch, start, _, _ in midi:
        assert min(abs(np.array(seconds[pitch]) - start)) <= sheet["step_seconds"] / 2 + 1e-6, (pitch, start)


def hand_made_piece(metre, seed=0):
    """8 bars at 120 bpm (0.5 s a beat) after a one-beat pickup, onsets jittered by up to 20 ms: a long bass
    note and a melody note on each downbeat, a two-note chord on every other beat, a sixteenth on the
    half-beat before the bar line; lengths are whole steps (0.125 s). Returns the notes and what a
    correct sheet holds, by hand: [(staff, pitch, onset, length)] in quarters from the first bar line."""
    rng = np.random.default_rng(seed)
    notes, expected = [], []

    def add(staff, pitch, beat, steps):
        start = 1.0 + 0.5 * beat + rng.uniform(-0.02, 0.02)
        notes.append((pitch, start, start + 0.125 * steps, 80))
        expected.append((staff, pitch, Fraction(metre + beat), Fraction(steps, 4)))

    add(0, 67, -1, 3)
    for bar in range(8):
        down = bar * metre
        add(1, 48, down, 4 * metre - 1)
        add(0, 72 + bar % 3, down, 7)
        add(0, 74, down + metre - 0.5, 1)
        for beat in range(1, metre):
            add(1, 52, down + beat, 2)
            add(1, 55, down + beat, 2)
    return notes, sorted(expected)


@pytest.mark.parametrize("metre, bpm", [(3, 120), (4, 120), (3, 84), (4, 150)])
def test_sheet_of_a_hand_made_piece(tmp_path, metre, bpm):
    """The piece as written (at 120 bpm), and played slower and faster: the same sheet at the tempo played."""
    import music21
    notes, expected = hand_made_piece(metre)
    notes = [(p, a * 120 / bpm, b * 120 / bpm, v) for p, a, b, v in notes]
    sheet = S.write_sheet(notes, tmp_path / "piece.musicxml", title="piece")
    assert sheet["time_signature"] == f"{metre}/4" and sheet["bpm"] == pytest.approx(bpm, rel=0.01)
    assert written_notes(tmp_path / "piece.musicxml") == expected
    score = music21.converter.parse(str(tmp_path / "piece.musicxml"))
    clefs = [type(part.recurse().getElementsByClass("Clef")[0]).__name__ for part in score.parts]
    marks = score.recurse().getElementsByClass("MetronomeMark")
    assert clefs == ["TrebleClef", "BassClef"] and marks[0].number == pytest.approx(bpm, rel=0.01)
    assert score.recurse().getElementsByClass("TimeSignature")[0].ratioString == f"{metre}/4"


def test_sheet_of_the_demo_performance_is_a_polonaise_in_three(tmp_path):
    """examples/demo_schumann.mid, a humanised performance of Clara Schumann's Polonaise op. 1 no. 4 (3/4,
    92 quarters a minute in the score, the performance's tempo drawn within 10 % of that)."""
    notes = midi_notes(load_midi(REPO / "examples" / "demo_schumann.mid"), sustain=False)
    sheet = S.write_sheet(notes, tmp_path / "demo.musicxml")
    assert sheet["time_signature"] == "3/4" and 92 * 0.9 <= sheet["bpm"] <= 92 * 1.1


def test_sheet_quantises_to_the_nearest_step_and_keeps_each_key_to_itself():
    grid = S.Grid(bpm=120, beats_per_bar=4, origin=0.1)                  # steps of 0.125 s from 0.1 s
    notes = [(60, 0.2, 0.5, 80), (60, 0.34, 0.6, 80),                # on step 0.8 -> 1; re-struck on step 2
             (62, 0.45, 0.47, 80),                                   # shorter than a step: one step
             (64, 0.6, 0.7, 80), (64, 0.64, 0.9, 80)]                # struck twice on step 4: once, to step 6
    assert S.quantised(notes, grid) == [(60, Fraction(1, 4), Fraction(1, 4)), (60, Fraction(1, 2), Fraction(1, 2)),
                                        (62, Fraction(3, 4), Fraction(1, 4)), (64, Fraction(1), Fraction(1, 2))]


def test_sheet_of_no_notes_is_an_empty_grand_staff(tmp_path):
    import music21
    sheet = S.write_sheet([], tmp_path / "empty.musicxml")
    score = music21.converter.parse(str(tmp_path / "empty.musicxml"))
    assert sheet["time_signature"] == "4/4" and len(score.parts) == 2 and not score.flatten().notes


def test_sheet_preview_is_the_first_system_or_a_note(tmp_path, overlay_run, monkeypatch):
    out, _, stdout = overlay_run
    if HAS_VEROVIO:
        svg = (out / "video_sheet.svg").read_text()
        assert svg.startswith("<svg") and svg.count('class="system"') == 1 and "sheet preview skipped" not in stdout
    monkeypatch.setitem(sys.modules, "verovio", None)                 # as if it were not installed
    assert "verovio is not installed" in S.preview(out / "video.musicxml", tmp_path / "x.svg")
    assert not (tmp_path / "x.svg").exists()


# ----------------------------------------------------------------------------- progress and all-or-nothing

def test_progress_reports_every_stage_in_order(clip, tmp_path, monkeypatch, capsys):
    """In process, as the web page calls it (and with verovio hidden: the preview is skipped with a note)."""
    monkeypatch.setitem(sys.modules, "verovio", None)
    calls, listing = [], []
    out = tmp_path / "out"

    def progress(stage, done, total):
        calls.append((stage, done, total))
        if stage == "done":
            listing.extend(sorted(p.name for p in out.iterdir()))

    box = tuple(map(int, (clip / "box.txt").read_text().split()))
    meta = P.audeo(clip / "video.mp4", out, box=box, overlay=True, progress=progress)
    stages = [s for i, (s, _, _) in enumerate(calls) if i == 0 or calls[i - 1][0] != s]
    assert stages == list(P.STAGES) and calls[-1] == ("done", 1, 1)
    for stage in P.STAGES[:-1]:
        mine = [(d, t) for s, d, t in calls if s == stage]
        assert mine[0][0] == 0 and mine[-1][0] == mine[-1][1] and all(a[0] <= b[0] for a, b in zip(mine, mine[1:]))
    frames = sum(1 for _ in iter_frames(clip / "video.mp4"))
    assert [c for c in calls if c[0] == "video2roll"][-1] == ("video2roll", meta["frames"], meta["frames"])
    assert [c for c in calls if c[0] == "overlay"][-1] == ("overlay", frames, frames)
    assert listing == [n for n in audeo_outputs("video", "_keys.mp4") if not n.endswith(".svg")]
    assert "sheet preview skipped: verovio is not installed" in capsys.readouterr().out


def test_a_failure_while_drawing_the_overlay_leaves_nothing(clip, tmp_path):
    def progress(stage, done, total):
        if stage == "overlay" and done > 0:
            raise RuntimeError("stopped by the page")

    box = tuple(map(int, (clip / "box.txt").read_text().split()))
    with pytest.raises(RuntimeError, match="stopped by the page"):
        P.audeo(clip / "video.mp4", tmp_path / "out", box=box, overlay=True, progress=progress)
    assert list((tmp_path / "out").iterdir()) == []                  # not even the hidden work folder


def test_a_run_killed_while_writing_the_overlay_leaves_no_overlay(clip, tmp_path):
    box = (clip / "box.txt").read_text().split()
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(REPO / "Audeo.py"), str(clip / "video.mp4"), "--box", *box,
                             "--overlay", "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.stat().st_size > 0 for p in out.rglob("*keys*")):  # the overlay's temporary file, growing
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before its overlay was seen being written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []


def test_is_complete_and_batches_know_about_the_overlay(tmp_path, monkeypatch):
    for name in audeo_outputs("v"):
        (tmp_path / name).touch()
    assert P.is_complete(tmp_path / "v.mp4", tmp_path) and not P.is_complete(tmp_path / "v.mp4", tmp_path, True)
    (tmp_path / "v_sheet.svg").unlink(missing_ok=True)                   # the preview is optional
    assert P.is_complete(tmp_path / "v.mp4", tmp_path)
    calls = []
    monkeypatch.setattr(P, "audeo", lambda video, out, **kw: calls.append((video.name, kw)))
    P.audeo_many([tmp_path / "v.mp4"], tmp_path, overlay=False)
    P.audeo_many([tmp_path / "v.mp4"], tmp_path, overlay=True, progress=print)
    assert calls == [("v.mp4", {"overlay": True, "progress": print})]


def test_sheet_of_a_long_performance_holds_its_first_minutes(tmp_path):
    import music21
    notes = [(60 + i % 12, 0.5 * i, 0.5 * i + 0.4, 80) for i in range(40)]          # one note every 0.5 s, 20 s
    sheet = S.write_sheet(notes, tmp_path / "long.musicxml", max_seconds=10.0)
    written = music21.converter.parse(str(tmp_path / "long.musicxml")).flatten().notes
    assert sheet["cut_at"] == 10.0 and sheet["notes"] == 20 and len(written) == 20
    whole = S.write_sheet(notes, tmp_path / "whole.musicxml", max_seconds=20.0)
    assert whole["cut_at"] is None and whole["notes"] == 40
