"""The original's file formats and MIDI <-> roll conversions."""
import os
import pickle

import numpy as np
import pytest

import audeo_io as aio
from audeo_constants import FPS, MIDI_LOW, N_KEYS, PAPER_N_KEYS, SEGMENT_FRAMES


def grid_notes():
    """Notes on the 25 fps grid, with chords and distinct pitches per time span."""
    f = 1 / FPS
    return [(60, 0 * f, 10 * f, 80), (64, 0 * f, 10 * f, 80), (21, 5 * f, 7 * f, 80),
            (108, 12 * f, 30 * f, 80), (60, 20 * f, 21 * f, 80), (72, 40 * f, 75 * f, 80)]


def test_midi_roll_notes_round_trip(tmp_path):
    notes = grid_notes()
    path = tmp_path / "x.mid"
    aio.write_midi(aio.notes_to_pretty_midi(notes), path)
    roll = aio.midi_to_roll(aio.load_midi(path), sustain=False)
    assert roll.shape == (75, N_KEYS) and roll.dtype == np.uint8
    assert roll[0:10, 60 - MIDI_LOW].all() and not roll[10, 60 - MIDI_LOW]
    back = aio.roll_to_notes(roll, velocity=80)
    got = sorted((p, round(s * FPS), round(e * FPS)) for p, s, e, _ in back)
    want = sorted((p, round(s * FPS), round(e * FPS)) for p, s, e, _ in notes)
    assert got == want


def test_restruck_key_stays_two_notes():
    f = 1 / FPS
    roll = aio.notes_to_roll([(60, 0, 10 * f, 80), (60, 10 * f, 20 * f, 80)])
    assert roll[9, 60 - MIDI_LOW] == 0        # one-frame gap before the re-strike
    assert len(aio.roll_to_notes(roll)) == 2


def test_sustain_extends_until_pedal_lifts_or_key_restruck():
    f = 1 / FPS
    notes = [(60, 0, 5 * f, 80), (64, 2 * f, 4 * f, 80), (60, 30 * f, 35 * f, 80), (67, 50 * f, 52 * f, 80)]
    pm = aio.notes_to_pretty_midi(notes, pedal=[(3 * f, 40 * f)])
    dry = aio.midi_to_roll(pm, sustain=False)
    wet = aio.midi_to_roll(pm, sustain=True)
    k60, k64, k67 = 60 - MIDI_LOW, 64 - MIDI_LOW, 67 - MIDI_LOW
    assert dry[:, k64].sum() == 2 and wet[2:40, k64].all() and not wet[40, k64]
    assert wet[0:29, k60].all() and not wet[29, k60]   # cut by the re-strike at frame 30 (gap)
    assert wet[30:40, k60].all() and not wet[40, k60]  # then rings until the pedal lifts
    assert len(wet) == 52 and wet[50:52, k67].all()   # pressed after the pedal lifted: unchanged


def test_label_pickle_loads_the_original_way(tmp_path):
    roll = np.zeros((7, N_KEYS), np.uint8)
    roll[3, 40] = 1
    path = tmp_path / "labels" / "v.pkl"
    aio.save_labels(path, roll, first_frame=10)
    original = np.load(path, allow_pickle=True)       # how the original reads it
    assert sorted(original) == list(range(10, 17)) and original[13].shape == (N_KEYS,)
    assert original[13][40] > 0
    frames, back = aio.load_labels(path)
    assert frames.tolist() == list(range(10, 17)) and np.array_equal(back, roll)


class Hostile:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({0: Hostile()}))
    with pytest.raises(aio.AudeoError, match="evil.pkl.*refused"):
        aio.load_labels(path)
    assert not (tmp_path / "pwned").exists()


def test_segments_round_trip_and_original_reading(tmp_path):
    rng = np.random.default_rng(0)
    midi = (rng.random((123, N_KEYS)) > 0.9).astype(np.uint8)
    aio.write_segments(tmp_path / "v", first_frame=253, midi=midi)
    names = sorted(p.name for p in (tmp_path / "v").iterdir())
    assert names == ["253-303.npz", "303-353.npz", "353-376.npz"]
    assert np.load(tmp_path / "v" / "253-303.npz", allow_pickle=True)["midi"].shape == (SEGMENT_FRAMES, N_KEYS)
    start, back = aio.read_segments(tmp_path / "v", "midi")
    assert start == 253 and back.shape == (123, N_KEYS)
    assert np.array_equal(back, midi)


def test_segment_gap_is_an_error(tmp_path):
    aio.save_npz(tmp_path / "0-50.npz", midi=np.zeros((50, N_KEYS)))
    aio.save_npz(tmp_path / "60-110.npz", midi=np.zeros((50, N_KEYS)))
    with pytest.raises(aio.AudeoError, match="60-110.npz"):
        aio.read_segments(tmp_path, "midi")


def test_paper_keys_round_trip():
    roll = np.arange(3 * N_KEYS).reshape(3, N_KEYS)
    small = aio.to_paper_keys(roll)
    assert small.shape == (3, PAPER_N_KEYS) and small[0, 0] == 15
    full = aio.to_88_keys(small)
    assert np.array_equal(full[:, 15:66], roll[:, 15:66]) and not full[:, :15].any()
    with pytest.raises(aio.AudeoError, match="keys"):
        aio.to_88_keys(np.zeros((2, 60)))
    # a model's outputs: any leading shape, columns outside the paper's keys set to `fill`
    heads = aio.to_88_keys(np.ones((4, 3, PAPER_N_KEYS), np.float32), fill=-1)
    assert heads.shape == (4, 3, N_KEYS) and (heads[..., 15:66] == 1).all() and (heads[..., :15] == -1).all()
    assert aio.key_slice(N_KEYS) == slice(0, N_KEYS) and aio.key_slice(PAPER_N_KEYS) == slice(15, 66)
    with pytest.raises(aio.AudeoError):
        aio.key_slice(60)


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with aio.atomic_dir(tmp_path / "out") as d:
            (d / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_bad_midi_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file")
    with pytest.raises(aio.AudeoError, match="bad.mid: not a readable MIDI"):
        aio.load_midi(bad)
    with pytest.raises(aio.AudeoError, match="not found"):
        aio.load_midi(tmp_path / "missing.mid")
