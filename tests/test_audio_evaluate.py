"""Audio_evaluate: note scoring by hand, the reference rendering's ceiling, real recordings' pseudo labels."""
import json
import subprocess
import sys

import pytest

import audeo_io as aio
import Audio_evaluate as A
import audeo_synth as S
from conftest import REPO, melody_roll, shared_data

# Floors from measurements on this machine (basic-pitch 0.4.0, ONNX, default thresholds), minus about 0.05:
# omaps_010 onset F1 0.744 (onset+offset 0.310); bytedance cut_bach onset F1 0.706 (onset+offset 0.164).
OMAPS_ONSET_F1_FLOOR = 0.69
BACH_ONSET_F1_FLOOR = 0.65


def test_score_notes_by_hand():
    ref = [(60, 0.0, 1.0, 80), (64, 1.0, 1.5, 80), (67, 2.0, 2.4, 80), (72, 3.0, 3.2, 80)]
    est = [(60, 0.0, 1.0, 90),          # exact
           (64, 1.03, 2.5, 90),         # onset within 50 ms, offset far off
           (66, 2.0, 2.4, 90),          # wrong pitch
           (72, 3.08, 3.2, 90),         # onset 80 ms late
           (50, 4.0, 4.5, 90)]          # a note that is not there
    s = A.score_notes(est, ref)
    assert (s["n_ref"], s["n_est"], s["onset_matched"], s["onset_offset_matched"]) == (4, 5, 2, 1)
    assert s["onset_precision"] == pytest.approx(2 / 5) and s["onset_recall"] == pytest.approx(2 / 4)
    assert s["onset_f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert s["onset_offset_f1"] == pytest.approx(2 * 0.2 * 0.25 / 0.45)
    empty = A.score_notes([], ref)
    assert (empty["onset_precision"], empty["onset_recall"], empty["onset_f1"]) == (1.0, 0.0, 0.0)


def test_generated_audio_and_ceiling_on_a_hand_made_piece(tmp_path):
    roll, _ = melody_roll()
    ref = tmp_path / "ref.mid"
    aio.write_midi(S.roll_to_midi(roll), ref)
    _, wav, _ = S.render(roll, tmp_path / "gen")
    proc = subprocess.run([sys.executable, str(REPO / "Audio_evaluate.py"), "--wav", str(wav), "--reference", str(ref),
                           "--json", str(tmp_path / "r" / "scores.json")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "r" / "scores.json").read_text())
    assert result["n_reference_notes"] == 14 and result["synthesizer"]
    assert result["scores"]["onset_f1"] >= 0.8, result
    assert result["ceiling"]["onset_f1"] >= 0.8, result         # the reference's own rendering
    assert "generated gen.wav" in proc.stdout and result["synthesizer"] in proc.stdout


@pytest.mark.parametrize("case", ["audio", "reference", "soundfont", "garbage"])
def test_bad_inputs_give_one_line_errors(tmp_path, case):
    roll, _ = melody_roll()
    ref = tmp_path / "ref.mid"
    aio.write_midi(S.roll_to_midi(roll[:30]), ref)
    audio, extra = tmp_path / "x.wav", []
    if case == "audio":
        audio = tmp_path / "missing.wav"
    elif case == "reference":
        ref = tmp_path / "missing.mid"
    elif case == "soundfont":
        extra = ["--soundfont", str(tmp_path / "missing.sf2")]
    if case != "audio":
        S.render(roll[:30], tmp_path / "x")
    if case == "garbage":
        audio.write_bytes(b"\x00garbage" * 200)
    proc = subprocess.run([sys.executable, str(REPO / "Audio_evaluate.py"), "--audio", str(audio), "--reference",
                           str(ref), "--json", str(tmp_path / "o.json"), *extra], capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("folder, name, floor", [("omaps_010", "010", OMAPS_ONSET_F1_FLOOR),
                                                 ("bytedance_demo", "cut_bach", BACH_ONSET_F1_FLOOR)])
@pytest.mark.real_data
def test_real_recordings_against_their_midi(folder, name, floor):
    audio = shared_data(folder, f"{name}.mp3")
    result = A.evaluate(audio, shared_data(folder, f"{name}.mid"), ceiling=False)
    assert result["scores"]["onset_f1"] >= floor, result["scores"]
