"""The reference keyboard, the sequence Video2Roll (frame/onset/offset), its streaming inference and
the onsets-and-frames note decoding."""
import numpy as np
import pytest
import torch

import audeo_video as av
import Video2Roll_net as vn
from audeo_constants import REFERENCE_DRIFT, REFERENCE_INIT_FRAMES, REFERENCE_INIT_STRIDE
from audeo_io import decode_roll, roll_to_notes
from Video2Roll_dataset import SequenceDataset, note_targets

TINY_SEQ = dict(stem_channels=(8, 8), trunk_channels=(8, 8, 8), seq_channels=16, seq_dilations=(1, 2),
                attn_channels=4, temporal_channels=8, temporal_dilations=(1, 2, 4), temporal_lookahead=(1, 0, 1))


def keyboard(h=100, w=900):
    """A plain synthetic keyboard crop: white keys with dark gaps, black keys in the upper 60 %."""
    img = np.full((h, w), 220, np.uint8)
    img[:, ::17] = 90
    for x in range(8, w - 10, 34):
        img[: int(0.6 * h), x:x + 9] = 25
    return img


def with_hand(img, x, y=55, size=(40, 70)):
    out = img.copy()
    out[y:y + size[0], x:x + size[1]] = 140
    return out


def test_reference_forgets_a_moving_hand_and_keeps_the_keyboard():
    kb = keyboard()
    crops = np.stack([with_hand(kb, 50 + 6 * t) for t in range(120)])    # a hand sweeping right
    refs, hands = av.keyboard_references(crops)
    assert hands.all()                                                   # the hand is always there
    under = (slice(55, 95), slice(50 + 6 * 119, 50 + 6 * 119 + 70))      # where the hand is at the end
    dwell = 70 / 6 + 1                                                   # frames the hand covers a pixel
    # ... the reference shows the keys there, off only by the slow drift towards the frame
    assert np.abs(refs[-1][under].astype(int) - kb[under]).max() <= REFERENCE_DRIFT * dwell + 1
    # an empty keyboard gives no hand and a reference equal to it
    refs, hands = av.keyboard_references(np.stack([kb] * 60))
    assert not hands.any() and np.array_equal(refs[-1], kb)


def test_reference_stream_equals_whole_video():
    rng = np.random.default_rng(0)
    kb = keyboard()
    crops = np.stack([np.clip(with_hand(kb, int(x)) + rng.normal(0, 3, kb.shape), 0, 255).astype(np.uint8)
                      for x in np.linspace(100, 700, 90)])
    refs, hands = av.keyboard_references(crops)
    streamed = list(av.iter_with_references(iter(crops)))
    assert len(streamed) == len(crops)
    assert all(np.array_equal(c, crops[t]) and np.array_equal(r, refs[t]) and h == hands[t]
               for t, (c, r, h) in enumerate(streamed))
    short = list(av.iter_with_references(iter(crops[:7])))               # shorter than the start-up buffer
    assert np.array_equal(np.stack([r for _, r, _ in short]), av.keyboard_references(crops[:7])[0])


def test_reference_starts_from_the_median_of_the_first_frames():
    kb = keyboard()
    crops = np.stack([with_hand(kb, 100 + 30 * t) for t in range(REFERENCE_INIT_FRAMES)])
    ref = av.KeyboardReference()
    ref.start(crops)
    sample = crops[::REFERENCE_INIT_STRIDE].astype(np.float32)
    assert np.array_equal(ref.ref, np.median(sample, axis=0))
    assert np.abs(ref.ref - kb).max() == 0         # the hand was never twice in one place: gone


def tiny_seq_model(seed=0):
    torch.manual_seed(seed)
    model = vn.build_model(vn.preset("seq", **TINY_SEQ))
    for p in model.temporal.parameters():          # the head starts as the identity: make it matter
        torch.nn.init.normal_(p, 0, 0.2)
    return model.eval()


def test_sequence_config_context():
    c = vn.preset("seq", **TINY_SEQ)
    assert c.heads == ("frame", "onset", "offset") and c.in_channels == 6
    assert c.lookahead == 2 + 1 + 4 and c.lookback == 2 + 1 + 4 + 4


@pytest.mark.parametrize("chunk", [5, 16, 200])
def test_streaming_equals_the_whole_sequence(chunk):
    model = tiny_seq_model()
    rng = np.random.default_rng(1)
    kb = keyboard()
    crops = np.stack([np.clip(with_hand(kb, int(x)) + rng.normal(0, 4, kb.shape), 0, 255).astype(np.uint8)
                      for x in np.linspace(50, 750, 73)])
    refs, hands = av.keyboard_references(crops)
    ids = np.clip(np.arange(-2, len(crops) + 2), 0, len(crops) - 1)
    with torch.no_grad():
        whole = model(torch.from_numpy(crops[ids]).float()[None] / 255, torch.from_numpy(refs).float()[None] / 255)
    whole = whole[0].numpy().transpose(1, 0, 2)                              # (T, 3, K)
    out = list(vn.iter_outputs(model, iter(crops), batch_size=8, chunk=chunk))
    streamed = np.stack([o for o, _ in out])
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    assert [h for _, h in out] == list(hands)
    # the temporal head changes the frame output: this is not the per-frame encoder alone
    stacks = np.stack([np.concatenate([crops[ids[t:t + 5]], refs[t][None]]) for t in range(len(crops))])
    with torch.no_grad():
        per_frame = model.encode_frames(torch.from_numpy(stacks).float() / 255)[0].numpy()
    assert np.abs(per_frame - whole[:, 0]).max() > 1e-2


def test_streaming_with_idle_input_equals_the_whole_sequence():
    """A live stream whose input goes idle at random moments runs the encoder and the temporal head on partial
    batches and chunks; the outputs are the whole-sequence ones all the same, and partial runs did happen."""
    model = tiny_seq_model()
    rng = np.random.default_rng(2)
    kb = keyboard()
    crops = np.stack([np.clip(with_hand(kb, int(x)) + rng.normal(0, 4, kb.shape), 0, 255).astype(np.uint8)
                      for x in np.linspace(50, 750, 61)])
    whole = np.stack([o for o, _ in vn.iter_outputs(model, iter(crops), batch_size=64, chunk=200)])
    calls, flips = [], np.random.default_rng(3)

    def idle():
        calls.append(bool(flips.random() < 0.3))
        return calls[-1]
    streamed = np.stack([o for o, _ in vn.iter_outputs(model, iter(crops), batch_size=16, chunk=16, idle=idle)])
    assert sum(calls) > 5
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_fused_inference_model_gives_the_same_outputs():
    model = tiny_seq_model()
    x, r = torch.rand(1, 14, 100, 900), torch.rand(1, 10, 100, 900)
    with torch.no_grad():
        np.testing.assert_allclose(vn.inference_model(model)(x, r).numpy(), model(x, r).numpy(), atol=1e-4)


def test_a_sequence_model_starts_from_a_frame_model():
    frame_cfg = vn.preset("fast", **{k: v for k, v in TINY_SEQ.items() if not k.startswith("temporal")})
    torch.manual_seed(3)
    frame_model = vn.build_model(frame_cfg).eval()
    seq = vn.build_model(vn.preset("seq", **TINY_SEQ))
    fresh = vn.load_compatible(seq, frame_model.state_dict())
    assert all(k.startswith("temporal.") or k.endswith(".mix") for k in fresh)
    seq.eval()
    crops = (np.random.default_rng(0).random((12, 100, 900)) * 255).astype(np.uint8)
    a = np.stack([o[0] for o, _ in vn.iter_outputs(frame_model, iter(crops))])
    b = np.stack([o[0] for o, _ in vn.iter_outputs(seq, iter(crops))])
    np.testing.assert_allclose(a, b, atol=1e-5)       # the reference channel and the head start silent


def test_note_targets():
    roll = np.zeros((8, 2), np.uint8)
    roll[1:4, 0] = 1
    roll[5:6, 0] = 1
    roll[0:8, 1] = 1
    t = note_targets(roll)
    assert t[1, :, 0].nonzero()[0].tolist() == [1, 5] and t[2, :, 0].nonzero()[0].tolist() == [3, 5]
    assert t[1, :, 1].nonzero()[0].tolist() == [0] and t[2, :, 1].nonzero()[0].tolist() == [7]


def test_decode_starts_notes_at_onset_peaks_and_splits_restrikes():
    frame = np.array([.1, .9, .9, .9, .9, .9, .9, .2, .9, .9, .1])[:, None]
    onset = np.array([.1, .8, .9, .2, .1, .7, .2, .1, .2, .1, .1])[:, None]
    roll = decode_roll(frame, onset, 0.5, 0.5)
    # peak at 2 (not 1: 0.9 > 0.8), re-struck at 5 (one-frame gap before it); 8-9 has no onset: dropped
    assert roll[:, 0].tolist() == [0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0]
    assert len(roll_to_notes(np.pad(roll, ((0, 0), (0, 87))))) == 2
    with_orphans = decode_roll(frame, onset, 0.5, 0.5, min_orphan=2)
    assert with_orphans[8:10, 0].tolist() == [1, 1]
    # an onset whose frame output is low still gives a one-frame note
    assert decode_roll(np.zeros((3, 1)), np.array([[0.], [0.9], [0.]]), 0.5, 0.5)[:, 0].tolist() == [0, 1, 0]


def test_sequence_dataset_runs_and_targets(tiny_dataset):
    from audeo_io import load_labels
    ds = SequenceDataset(tiny_dataset, "training", length=16, augment=None)
    x, ref, y = ds[0]
    assert x.shape == (20, 100, 900) and ref.shape == (16, 100, 900) and y.shape == (3, 16, 88)
    v, start = ds.index[len(ds) // 2]
    x, ref, y = ds[len(ds) // 2]
    frames = ds.frames[v]
    assert np.allclose(x[2].numpy(), frames[start] / 255)                   # x[2] is the run's first frame
    _, labels = load_labels(tiny_dataset / "labels_keydown" / "training" / f"{ds.videos[v]}.pkl")
    assert np.array_equal(y[0].numpy(), labels[start:start + 16])
    assert (tiny_dataset / "references" / "training" / f"{ds.videos[v]}.npy").is_file()    # cached
