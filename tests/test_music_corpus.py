"""The default music corpus: listing, humanised performances of real scores, performance MIDI."""
import dataclasses
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest
from conftest import REPO, shared_data

import audeo_io as aio
import music_corpus as mc
from audeo_constants import MIDI_HIGH, MIDI_LOW, SUSTAIN_CC

SOLO = "schoenberg_opus19_movement2"     # the shortest solo piece (92 notes)
CHORALE = "chorale_bwv269"               # |: A :| B, so repeats are exercised


@pytest.fixture(scope="module")
def pieces():
    return {p.name: p for p in mc.default_pieces()}


def played(piece, seed, **change):
    pm = mc.performance(dataclasses.replace(piece, **change), seed)
    assert len(pm.instruments) == 1 and pm.instruments[0].program == 0
    return pm


def note_list(pm):
    return [(n.pitch, n.start, n.end, n.velocity) for n in pm.instruments[0].notes]


def test_import_parses_nothing():
    code = "import sys, music_corpus; assert 'music21' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_default_pieces_lists_solo_and_chorales(pieces):
    kinds = [p.kind for p in pieces.values()]
    assert kinds.count("solo") == 12 and kinds.count("chorale") >= 360
    assert len(pieces) == len(kinds)                      # names unique
    assert all(p.name == mc._safe(p.name) for p in pieces.values())
    assert pieces["joplin_maple_leaf_rag"].group == "joplin_maple_leaf_rag"
    assert pieces["bach_bwv846"].group == "bach_bwv846"
    assert pieces["chorale_bwv18_5-lz"].group == pieces["chorale_bwv18_5-w"].group  # two versions


@pytest.mark.parametrize("name", [SOLO, CHORALE])
def test_performance_is_humanised_and_deterministic(pieces, name):
    a = note_list(played(pieces[name], 1))
    assert a == note_list(played(pieces[name], 1))
    assert a != note_list(played(pieces[name], 2))
    pitch, start, end, vel = map(np.array, zip(*a))
    assert MIDI_LOW <= pitch.min() and pitch.max() <= MIDI_HIGH
    assert (end - start >= mc.HumanizeConfig().min_note_s - 1e-6).all()
    assert len(np.unique(start)) > 0.9 * len(start)       # chords spread, no exact grid
    assert len(np.unique(vel)) > 10 and vel.std() > 4


@pytest.mark.parametrize("name", [SOLO, CHORALE])
def test_pedal_only_when_used(pieces, name):
    cc = played(pieces[name], 0, pedal_prob=1.0).instruments[0].control_changes
    assert cc and all(c.number == SUSTAIN_CC for c in cc)
    assert not played(pieces[name], 0, pedal_prob=0.0).instruments[0].control_changes


def test_chorale_is_keyboard_playable(pieces):
    pm = played(pieces[CHORALE], 0)
    assert 30 < pm.get_end_time() < 300
    notes = sorted(note_list(pm))
    for a, b in zip(notes, notes[1:]):                    # one key is never held twice at once
        assert a[0] != b[0] or a[2] <= b[1]


def test_repeats_and_voltas_are_played_in_order():
    # |: m0 m1 [1. m2 :| [2. m3 | m4 :|   the second repeat goes back to where the first one ended
    table = [(0, 4, 1, True, 0, None), (4, 4, 1, False, 0, None), (8, 4, 1, False, 2, {1}),
             (12, 4, 1, False, 0, {2}), (16, 4, 1, False, 2, None)]
    assert mc._play_order(table) == [0, 1, 2, 0, 1, 3, 4, 4]


@pytest.mark.real_data
def test_asap_performance_is_taken_as_is(tmp_path):
    path = shared_data("asap", "Bach_WTC1_Prelude1_BWV846_Shi05M.mid")
    piece = [p for p in mc.default_pieces([path]) if p.kind == "performance"][0]
    assert piece.name == "asap_Bach_WTC1_Prelude1_BWV846_Shi05M"
    assert piece.group == "bach_bwv846"                   # same work as the score bach_bwv846
    assert note_list(mc.performance(piece, 0)) == note_list(pretty_midi.PrettyMIDI(str(path)))


def test_bad_midi_files_are_errors(tmp_path):
    text = tmp_path / "notes.mid"
    text.write_text("not a MIDI file")
    empty = tmp_path / "empty.mid"
    aio.write_midi(aio.notes_to_pretty_midi([]), empty)
    low = tmp_path / "low.mid"
    aio.write_midi(aio.notes_to_pretty_midi([(12, 0.0, 1.0, 80)]), low)
    for path, words in [(text, "not a readable MIDI"), (empty, "no notes"), (low, "outside the 88 keys")]:
        with pytest.raises(aio.AudeoError, match=words) as err:
            mc.default_pieces([path])
        assert str(path) in str(err.value)


def test_unreadable_score_is_skipped_with_warning(pieces):
    ghost = mc.Piece("ghost", "ghost", "solo", "nobody/nothing", 100, 0.5)
    with pytest.warns(RuntimeWarning, match="skipped ghost"):
        out = list(mc.iter_performances([ghost, pieces[SOLO]], seed=0))
    assert [p.name for p, _ in out] == [SOLO]


def test_cli_writes_midi_and_totals(tmp_path, capsys):
    mc.main(["--out", str(tmp_path), "--limit", "1"])
    assert aio.load_midi(tmp_path / "bach_bwv846.mid").instruments[0].notes
    assert "1 of 1 pieces" in capsys.readouterr().out
