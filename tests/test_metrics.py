"""audeo_metrics on hand-made rolls: every expected number is computed by hand in the comments."""
import warnings

import mir_eval
import numpy as np
import pytest
from sklearn.metrics import multilabel_confusion_matrix

import audeo_io as aio
import audeo_metrics as am
from audeo_constants import N_KEYS, PAPER_MIDI_LOW, PAPER_MIN_KEY, PAPER_N_KEYS

A, B, C = 40, 41, 42     # three 88-key columns


def roll(n_frames, on, n_keys=N_KEYS):
    """Binary roll with {(frame, key)} set."""
    r = np.zeros((n_frames, n_keys), dtype=np.uint8)
    for f, k in on:
        r[f, k] = 1
    return r


def note_roll(n_frames, notes, n_keys=N_KEYS):
    """Roll from (key, first frame, end frame exclusive) notes."""
    r = np.zeros((n_frames, n_keys), dtype=np.uint8)
    for k, f0, f1 in notes:
        r[f0:f1, k] = 1
    return r


# --------------------------------------------------------------------------- frame metrics

def four_frames():
    # frame  target   pred    TP FP FN   P    R    F1    acc (TP/(TP+FP+FN))
    #   0    {A}      {A}      1  0  0   1    1    1     1
    #   1    {A,B}    {A}      1  0  1   1    1/2  2/3   1/2
    #   2    {}       {}       0  0  0   1*   1*   1*    1*     (* empty frame counts as perfect)
    #   3    {C}      {B}      0  1  1   0    0    0     0
    target = roll(4, [(0, A), (1, A), (1, B), (3, C)])
    pred = roll(4, [(0, A), (1, A), (3, B)])
    return pred, target


def test_original_metrics_average_over_frames():
    m = am.original_frame_metrics(*four_frames())
    assert m["precision"] == pytest.approx((1 + 1 + 1 + 0) / 4)          # 0.75
    assert m["recall"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)           # 0.625
    assert m["f1"] == pytest.approx((1 + 2 / 3 + 1 + 0) / 4)             # 0.6667
    assert m["accuracy"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)         # 0.625


def test_pooled_metrics_count_over_all_frames():
    # Pooled: TP = 2, estimates = 3, references = 4.
    m = am.pooled_frame_metrics(*four_frames())
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))   # 4/7
    assert m["accuracy"] == pytest.approx(2 / (3 + 4 - 2))                      # TP/(TP+FP+FN) = 0.4


def test_accuracy_equals_the_originals_samplewise_confusion_matrix():
    rng = np.random.default_rng(0)
    target = (rng.random((200, PAPER_N_KEYS)) < 0.05).astype(int)
    pred = (rng.random((200, PAPER_N_KEYS)) < 0.05).astype(int)
    target[:20] = pred[:20] = 0                                           # some silent frames
    mcm = multilabel_confusion_matrix(target, pred, samplewise=True)
    tp, fp, fn = mcm[:, 1, 1], mcm[:, 0, 1], mcm[:, 1, 0]
    den = tp + fp + fn
    expected = np.where(den > 0, tp / np.maximum(den, 1), 1.0).mean()    # the original's _prf_divide
    assert am.original_frame_metrics(pred, target)["accuracy"] == pytest.approx(expected)


def test_empty_frames_count_as_perfect_in_the_original_metric_only():
    # 10 frames; the only sounding frame (frame 0, key A) is missed, nothing is predicted.
    target = roll(10, [(0, A)])
    pred = roll(10, [])
    orig = am.original_frame_metrics(pred, target)
    # frame 0: P = 1 (nothing predicted, zero_division=1), R = 0, F1 = 0, acc = 0; frames 1..9: all 1.
    assert orig["precision"] == pytest.approx(1.0)
    assert orig["recall"] == orig["f1"] == orig["accuracy"] == pytest.approx(9 / 10)
    pooled = am.pooled_frame_metrics(pred, target)
    # pooled: TP 0 of 1 reference -> recall 0, F1 0; no estimates -> precision 0/0 = 1.
    assert (pooled["precision"], pooled["recall"], pooled["f1"], pooled["accuracy"]) == (1.0, 0.0, 0.0, 0.0)
    silent = am.original_frame_metrics(roll(5, []), roll(5, []))
    assert all(v == 1.0 for v in silent.values())


@pytest.mark.parametrize("n_keys,first_midi", [(N_KEYS, 21), (PAPER_N_KEYS, PAPER_MIDI_LOW)])
def test_pooled_equals_mir_eval_multipitch(n_keys, first_midi):
    rng = np.random.default_rng(1)
    target = (rng.random((120, n_keys)) < 0.06).astype(np.uint8)
    pred = target.copy()
    flip = rng.random(pred.shape) < 0.03
    pred[flip] = 1 - pred[flip]
    target[:10] = 0                                     # silent reference frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, acc = am.mir_eval_frame_metrics(pred, target, first_midi=first_midi)
    m = am.pooled_frame_metrics(pred, target)
    assert (m["precision"], m["recall"], m["accuracy"]) == pytest.approx((p, r, acc))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        am.pooled_frame_metrics(roll(4, []), roll(5, []))
    with pytest.raises(ValueError):
        am.original_frame_metrics(roll(4, [], n_keys=PAPER_N_KEYS), roll(4, []))


# --------------------------------------------------------------------------- note metrics

def test_notes_one_match_one_miss_one_false_positive():
    # target: key A frames 0..9 (0.00-0.40 s), key B frames 5..14.
    # pred:   key A frames 1..10 (onset 40 ms late, offset 0.44 s vs 0.40 s), key C frames 20..24.
    # Onset: A matched (|0.04| <= 0.05), B missed, C false positive -> P = R = F1 = 1/2.
    # Offset tolerance for A = max(0.2 * 0.40, 0.05) = 0.08 s >= |0.44 - 0.40| -> onset+offset also 1/2.
    target = note_roll(30, [(A, 0, 10), (B, 5, 15)])
    pred = note_roll(30, [(A, 1, 11), (C, 20, 25)])
    m = am.note_metrics(pred, target)
    assert (m["n_ref"], m["n_est"], m["onset_matched"], m["onset_offset_matched"]) == (2, 2, 1, 1)
    for k in ("onset_precision", "onset_recall", "onset_f1", "onset_offset_f1"):
        assert m[k] == pytest.approx(0.5)


def test_offset_outside_tolerance_fails_only_onset_offset():
    # pred A ends at frame 20 (0.80 s) vs 0.40 s: |0.40| > 0.08 -> onset matches, onset+offset does not.
    target = note_roll(30, [(A, 0, 10)])
    pred = note_roll(30, [(A, 0, 20)])
    m = am.note_metrics(pred, target)
    assert m["onset_f1"] == 1.0 and m["onset_offset_f1"] == 0.0


@pytest.mark.parametrize("shift,matched", [(0, 1), (1, 1), (2, 0)])
def test_onset_within_one_frame_matches_two_frames_do_not(shift, matched):
    # One frame = 1/25 s = 40 ms <= 50 ms tolerance; two frames = 80 ms > 50 ms.
    target = note_roll(30, [(A, 5, 15)])
    pred = note_roll(30, [(A, 5 + shift, 15 + shift)])
    m = am.note_metrics(pred, target)
    assert m["onset_matched"] == matched
    assert m["onset_f1"] == float(matched)


def test_notes_equal_mir_eval_on_a_random_roll():
    rng = np.random.default_rng(2)
    target = (rng.random((150, N_KEYS)) < 0.03).astype(np.uint8)
    pred = target.copy()
    pred[1:] |= target[:-1]                    # every note one frame longer
    pred[rng.random(pred.shape) < 0.01] = 1    # plus spurious notes
    m = am.note_metrics(pred, target)
    ref, est = am.roll_to_mir_eval_notes(target), am.roll_to_mir_eval_notes(pred)
    for name, ratio in (("onset", None), ("onset_offset", 0.2)):
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(*ref, *est, offset_ratio=ratio)
        assert (m[f"{name}_precision"], m[f"{name}_recall"], m[f"{name}_f1"]) == pytest.approx((p, r, f))


def test_51_key_rolls_are_placed_at_their_88_key_pitches():
    # 51-key column 0 is MIDI 36; the same notes in 88 columns give identical metrics.
    target51 = note_roll(20, [(0, 0, 5), (50, 3, 9)], n_keys=PAPER_N_KEYS)
    pred51 = note_roll(20, [(0, 1, 5)], n_keys=PAPER_N_KEYS)
    intervals, pitches = am.roll_to_mir_eval_notes(target51)
    assert sorted(np.round(mir_eval.util.hz_to_midi(pitches)).astype(int)) == [PAPER_MIDI_LOW, PAPER_MIDI_LOW + 50]
    m51 = am.note_metrics(pred51, target51)
    m88 = am.note_metrics(aio.to_88_keys(pred51), aio.to_88_keys(target51))
    assert m51 == m88
    assert m51["onset_precision"] == 1.0 and m51["onset_recall"] == 0.5     # 1 of 1 est, 1 of 2 ref
    assert aio.to_88_keys(target51)[0, PAPER_MIN_KEY] == 1


def test_empty_note_sets_do_not_crash():
    empty, some = roll(10, []), note_roll(10, [(A, 0, 5)])
    both = am.note_metrics(empty, empty)              # nothing to find, nothing claimed: perfect
    assert (both["onset_precision"], both["onset_recall"], both["onset_f1"]) == (1.0, 1.0, 1.0)
    no_ref = am.note_metrics(some, empty)             # all estimates false: P 0, recall 0/0 = 1
    assert (no_ref["onset_precision"], no_ref["onset_recall"], no_ref["onset_f1"]) == (0.0, 1.0, 0.0)
    no_est = am.note_metrics(empty, some)             # everything missed: precision 0/0 = 1, R 0
    assert (no_est["onset_offset_precision"], no_est["onset_offset_recall"],
            no_est["onset_offset_f1"]) == (1.0, 0.0, 0.0)


# --------------------------------------------------------------------------- combined and helpers

def test_all_metrics_names_and_threshold_sweep():
    pred, target = four_frames()
    m = am.all_metrics(pred, target)
    for key in ("frame_sklearn_precision", "frame_sklearn_accuracy", "frame_pooled_f1", "note_onset_f1",
                "note_onset_offset_f1", "note_n_ref"):
        assert key in m
    assert m["frame_pooled_f1"] == pytest.approx(4 / 7)
    probs = np.where(target > 0, 0.7, 0.1) + np.where(pred > 0, 0.2, 0.0)   # pred>0 & target>0 -> 0.9
    sweep = am.threshold_sweep(probs, target, [0.3, 0.8])
    assert [t for t, _ in sweep] == [0.3, 0.8]
    low, high = sweep[0][1], sweep[1][1]
    # >= 0.3: the 4 target cells and the predicted-only one (0.1 + 0.2); >= 0.8: the two 0.9 cells of 4
    assert (low["frame_pooled_precision"], low["frame_pooled_recall"]) == (pytest.approx(0.8), 1.0)
    assert (high["frame_pooled_precision"], high["frame_pooled_recall"]) == (1.0, 0.5)
    assert high["frame_pooled_f1"] == pytest.approx(2 / 3)
    quick = am.threshold_sweep(probs, target, [0.5], notes=False)[0][1]
    assert not any(k.startswith("note_") for k in quick)
    assert am.best_threshold(sweep)[0] == 0.3


def test_format_table_aligns_columns():
    text = am.format_table([{"model": "paper", "f1": 0.5, "n": 3}, {"model": "fast", "f1": 0.75}])
    lines = text.splitlines()
    assert lines[0].split() == ["model", "f1", "n"]
    assert lines[2].split() == ["paper", "0.500", "3"] and lines[3].split() == ["fast", "0.750"]
    assert len({len(line) for line in lines[:3]}) == 1              # aligned columns


def test_video_set_metrics_pools_frames_and_notes_over_videos():
    # video 1: target A frames 0..4, pred A frames 0..4 (1 matched note); ends sounding.
    # video 2: target A frames 0..4 (starts sounding), pred nothing.
    # Concatenated, A would be one 10-frame note; per video it is two notes: n_ref 2, n_est 1, 1 match.
    t1, p1 = note_roll(5, [(A, 0, 5)]), note_roll(5, [(A, 0, 5)])
    t2, p2 = note_roll(5, [(A, 0, 5)]), roll(5, [])
    m = am.video_set_metrics([p1, p2], [t1, t2])
    assert (m["note_n_ref"], m["note_n_est"], m["note_onset_matched"]) == (2, 1, 1)
    assert m["note_onset_precision"] == 1.0 and m["note_onset_recall"] == 0.5
    whole = am.all_metrics(np.concatenate([p1, p2]), np.concatenate([t1, t2]), notes=False)
    assert {k: v for k, v in m.items() if k.startswith("frame_")} == whole
    assert set(am.SUMMARY_COLUMNS) <= set(m)
    assert am.video_set_metrics([p1], [t1], notes=False) == am.all_metrics(p1, t1, notes=False)


def test_short_headers():
    assert am.short_name("frame_sklearn_accuracy") == "orig_acc"
    assert am.short_name("frame_pooled_f1") == "frame_F1"
    assert am.short_name("note_onset_offset_recall") == "onoff_R"
    assert am.short_name("note_onset_precision") == "onset_P"
    assert am.short_name("video") == "video"
    text = am.format_table([{"note_onset_f1": 0.5}])
    assert text.splitlines()[0] == "onset_F1"
    assert am.format_table([{"note_onset_f1": 0.5}], short_headers=False).startswith("note_onset_f1")
    assert am.short_name("f1") == "f1" and am.short_name("note_n_ref") == "note_n_ref"
