"""Midi_synth: rolls -> notes (51/88 keys, re-strikes, minimum length), files, numeric segment order, errors."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile

import audeo_io as aio
import Midi_synth
import audeo_synth as S
from audeo_constants import DEFAULT_VELOCITY, FPS, MIDI_LOW, N_KEYS, PAPER_MIDI_LOW, PAPER_N_KEYS, SAMPLE_RATE
from conftest import REPO, melody_roll

F = 1 / FPS


def midi_notes_frames(pm):
    """[(pitch, start frame, end frame, velocity)] of a PrettyMIDI, sorted."""
    notes = [(n.pitch, round(n.start * FPS), round(n.end * FPS), n.velocity) for n in pm.instruments[0].notes]
    return sorted(notes, key=lambda n: (n[1], n[0]))


# ----------------------------------------------------------------------------- roll -> notes

def test_roll_to_midi_gives_exactly_the_runs():
    roll = np.zeros((12, N_KEYS), np.uint8)
    roll[2:6, 60 - MIDI_LOW] = 1                    # one note, frames 2..5
    roll[0:2, 64 - MIDI_LOW] = 1                    # two notes of one key with an off frame between
    roll[3:5, 64 - MIDI_LOW] = 1
    roll[2:6, 67 - MIDI_LOW] = 1                    # a chord with the first note
    roll[9:12, 108 - MIDI_LOW] = 1                  # still on at the end: ends at T
    roll[7, 21 - MIDI_LOW] = 1                      # a one-frame note
    pm = S.roll_to_midi(roll)
    assert len(pm.instruments) == 1 and pm.instruments[0].program == 0
    v = DEFAULT_VELOCITY
    assert midi_notes_frames(pm) == [(64, 0, 2, v), (60, 2, 6, v), (67, 2, 6, v), (64, 3, 5, v), (21, 7, 8, v),
                                     (108, 9, 12, v)]
    assert pm.instruments[0].notes[0].start == pytest.approx(0.0)
    assert max(n.end for n in pm.instruments[0].notes) == pytest.approx(12 * F)
    assert {n.velocity for n in S.roll_to_midi(roll, velocity=57).instruments[0].notes} == {57}


def test_51_key_roll_is_placed_at_midi_36_to_86():
    roll = np.zeros((4, PAPER_N_KEYS), np.uint8)
    roll[0:2, 0] = 1
    roll[1:4, PAPER_N_KEYS - 1] = 1
    roll[2, 24] = 1
    assert [(p, a, b) for p, a, b, _ in midi_notes_frames(S.roll_to_midi(roll))] == [(36, 0, 2), (86, 1, 4), (60, 2, 3)]
    with pytest.raises(aio.AudeoError):
        S.roll_to_midi(np.zeros((4, 60), np.uint8))


def test_restrike_split_at_probability_dip():
    roll = np.zeros((11, N_KEYS), np.uint8)
    roll[:, 60 - MIDI_LOW] = 1
    probs = np.zeros((11, N_KEYS), np.float32)
    probs[:, 60 - MIDI_LOW] = [0.9, 0.95, 0.9, 0.8, 0.7, 0.5, 0.8, 0.9, 0.9, 0.9, 0.9]
    assert len(S.roll_notes(roll)) == 1                                   # a binary roll alone: one note
    notes = S.roll_notes(roll, probs=probs, restrike_depth=0.3)
    assert [(p, round(s * FPS), round(e * FPS)) for p, s, e, _ in notes] == [(60, 0, 6), (60, 6, 11)]
    assert len(S.roll_notes(roll, probs=probs, restrike_depth=0.5)) == 1  # dip 0.45 deep: not enough
    assert len(S.roll_notes(roll, probs=probs, restrike_depth=0.3, min_frames=6)) == 1   # second part too short


def test_slow_rise_and_shallow_wobble_are_not_restrikes():
    probs = np.array([0.45, 0.42, 0.9, 0.95, 0.8, 0.85, 0.9, 0.41, 0.95])
    assert S.restrike_splits(probs, 0, 9, depth=0.3) == [8]     # only the deep dip at frame 7
    assert S.restrike_splits(probs, 0, 7, depth=0.3) == []
    # two re-strikes in one run
    probs = np.array([0.9, 0.5, 0.9, 0.9, 0.5, 0.9])
    assert S.restrike_splits(probs, 0, 6, depth=0.3) == [2, 5]


def test_min_frames_drops_flicker():
    roll = np.zeros((10, N_KEYS), np.uint8)
    roll[0, 40] = 1
    roll[2:4, 41] = 1
    roll[4:9, 42] = 1
    assert [n[0] - MIDI_LOW for n in S.roll_notes(roll, min_frames=2)] == [41, 42]
    assert [n[0] - MIDI_LOW for n in S.roll_notes(roll, min_frames=3)] == [42]


# ----------------------------------------------------------------------------- files

def test_render_writes_midi_and_16k_wav_that_transcribes_back(tmp_path):
    Audio_evaluate = pytest.importorskip("Audio_evaluate")
    roll, probs = melody_roll()
    mid, wav, description = S.render(roll, tmp_path / "Bach No.1 B1", probs=probs, restrike_depth=0.3)
    assert (mid.name, wav.name) == ("Bach No.1 B1.mid", "Bach No.1 B1.wav")
    assert description and sorted(p.name for p in tmp_path.iterdir()) == [mid.name, wav.name]
    audio, sr = soundfile.read(wav)
    assert sr == SAMPLE_RATE and audio.ndim == 1
    assert len(audio) >= len(roll) * F * SAMPLE_RATE and np.abs(audio).max() > 0.1
    want = S.roll_notes(roll, probs=probs, restrike_depth=0.3)
    assert len(want) == 15 and midi_notes_frames(aio.load_midi(mid)) == [
        (p, round(s * FPS), round(e * FPS), v) for p, s, e, v in want]
    got = Audio_evaluate.transcribe(wav)
    scores = Audio_evaluate.score_notes(got, want)
    assert scores["onset_f1"] >= 0.8, scores
    assert any(p == 60 and abs(s - 125 * F) < 0.05 for p, s, _, _ in got)   # the re-strike is heard


@pytest.mark.parametrize("backend", ["fluidsynth", "tinysoundfont"])
def test_each_synthesizer_backend_plays_the_right_notes(tmp_path, backend):
    """Both back-ends, forced (the search picks FluidSynth whenever it is installed), with the soundfont
    every install has (pretty_midi's TimGM6mb): audible, and the transcription hears the roll's pitches."""
    import importlib.util
    Audio_evaluate = pytest.importorskip("Audio_evaluate")
    if backend == "fluidsynth" and not S.fluidsynth_available():
        pytest.skip("libfluidsynth is not installed here")
    if backend == "tinysoundfont" and importlib.util.find_spec("tinysoundfont") is None:
        pytest.skip("tinysoundfont is not installed here")
    roll, _ = melody_roll()
    synth = S.Synthesizer(backend, S.bundled_soundfont())
    _, wav, description = S.render(roll, tmp_path / "melody", synth=synth)
    assert description == f"{backend} + TimGM6mb.sf2"
    audio, _ = soundfile.read(wav)
    assert np.abs(audio).max() > 0.1
    scores = Audio_evaluate.score_notes(Audio_evaluate.transcribe(wav), S.roll_notes(roll))
    assert scores["onset_f1"] >= 0.8, scores


def _segments(folder, spans, key="midi", n_keys=PAPER_N_KEYS):
    """Write one segment per (start, end, pitch): that pitch sounds in the segment's first two frames."""
    for start, end, pitch in spans:
        a = np.zeros((end - start, n_keys), np.uint8)
        a[0:2, pitch - (PAPER_MIDI_LOW if n_keys == PAPER_N_KEYS else MIDI_LOW)] = 1
        aio.save_npz(folder / aio.segment_name(start, end), **{key: a})


def test_segments_concatenate_in_numeric_order(tmp_path, capsys):
    rolls = tmp_path / "Roll2Midi_results" / "testing"
    _segments(rolls / "a", [(0, 50, 60), (50, 100, 62), (100, 123, 64)])       # '100-123' < '50-100' as strings
    _segments(rolls / "b", [(950, 1000, 70), (1000, 1050, 72)])                # '1000-1050' < '950-1000'
    Midi_synth.main(["--rolls", str(rolls), "--out", str(tmp_path / "out")])
    log = capsys.readouterr().out
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["a.mid", "a.wav", "b.mid", "b.wav"]
    a = [(p, s, e) for p, s, e, _ in midi_notes_frames(aio.load_midi(out / "a.mid"))]
    assert a == [(60, 0, 2), (62, 50, 52), (64, 100, 102)]
    b = [(p, s, e) for p, s, e, _ in midi_notes_frames(aio.load_midi(out / "b.mid"))]
    assert b == [(70, 0, 2), (72, 50, 52)]                                    # time 0 = the first segment
    assert soundfile.info(out / "a.wav").duration >= 123 * F
    lines = [line for line in log.splitlines() if line.startswith(("a:", "b:"))]
    assert len(lines) == 2 and all("synthesizer: " in line and ".sf" in line for line in lines), log
    # one video's own segment folder works too
    Midi_synth.main(["--rolls", str(rolls / "b"), "--out", str(tmp_path / "one")])
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["b.mid", "b.wav"]


def test_estimates_with_logits_split_restrikes(tmp_path):
    est = tmp_path / "estimate_Roll" / "testing" / "v"
    logit = np.full((50, N_KEYS), -6.0, np.float32)
    logit[5:30, 60 - MIDI_LOW] = 4.0
    logit[17, 60 - MIDI_LOW] = -0.2                 # probability 0.45: still on at threshold 0.4, but a dip
    roll = (1 / (1 + np.exp(-logit)) >= 0.4).astype(np.uint8)
    aio.write_segments(est, logit=logit, roll=roll)
    for extra, n in (([], 1), (["--restrike-depth", "0.3"], 2)):
        Midi_synth.main(["--rolls", str(est.parent), "--key", "roll", "--out", str(tmp_path / "o"), *extra])
        notes = midi_notes_frames(aio.load_midi(tmp_path / "o" / "v.mid"))
        assert len(notes) == n
    assert [(p, a, b) for p, a, b, _ in notes] == [(60, 5, 18), (60, 18, 30)]


def _run(args, cwd):
    return subprocess.run([sys.executable, str(REPO / "Midi_synth.py"), *args], capture_output=True, text=True, cwd=cwd)


def _one_line_error(proc):
    lines = proc.stderr.strip().splitlines()
    return proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:")


@pytest.mark.parametrize("case", ["soundfont", "unwritable", "no_segments", "wrong_key"])
def test_bad_inputs_give_one_line_errors_and_no_output(tmp_path, case):
    rolls = tmp_path / "rolls"
    _segments(rolls / "v", [(0, 50, 60)])
    out, extra = tmp_path / "out", []
    if case == "soundfont":
        extra = ["--soundfont", str(tmp_path / "missing.sf2")]
    elif case == "unwritable":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "out"                  # a folder under a plain file
    elif case == "no_segments":
        rolls = tmp_path / "empty"
        rolls.mkdir()
    elif case == "wrong_key":
        extra = ["--key", "roll"]
    proc = _run(["--rolls", str(rolls), "--out", str(out), *extra], tmp_path)
    assert _one_line_error(proc), proc.stderr
    if case == "soundfont":
        assert "missing.sf2" in proc.stderr
    assert not out.exists() or not any(out.iterdir())
    assert (tmp_path / "afile").read_text() == "x" if case == "unwritable" else True
