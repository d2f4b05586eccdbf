"""Roll2Midi inference: Video2Roll estimates -> the original's Roll2Midi_results npz segments.

In:  a Roll2Midi checkpoint (best.pt or last.pt of Roll2Midi_train.py, or the original's generator
     state dict), and --estimates ESTIMATES holding ESTIMATES/estimate_Roll/<split>/<video>/<s>-<e>.npz
     (Video2Roll_inference.py --out ESTIMATES).
Out: OUT/Roll2Midi_results/<split>/<video>/<s>-<e>.npz with key `midi` uint8 (frames, n_keys)
     = generator output >= --threshold (0.5, the original's); n_keys is the model's (the original
     wrote 51 columns; an 88-key model writes 88). One file per estimate segment, with the same name
     and number of frames. Each video's folder appears only when complete.

Each video is cut into non-overlapping 100-frame windows from its first frame; the last window is
zero-padded (probability 0) and the padding trimmed again, so no frame is dropped (the original
dropped an odd last segment) and no window spans two videos. `refine` / `refine_probs` do the same
for any (T, n_keys) probability array, e.g. in an end-to-end pipeline.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from audeo_cli import add_device_arg, resolve_device, run
from audeo_constants import MIDI_THRESHOLD, N_KEYS, ONSET_THRESHOLD, PAPER_N_KEYS, ROLL2MIDI_DIR, ROLL2MIDI_FRAMES, SPLITS
from audeo_io import AudeoError, atomic_dir, decode_roll, list_segments, save_npz, segment_name
from Roll2Midi_dataset import cut_window, estimate_folder, list_estimate_videos, load_estimate, to_model_input, \
    window_starts
from Roll2Midi_net import Generator, Roll2MidiConfig

DEFAULTS = dict(split=SPLITS[2], batch_size=16, threshold=MIDI_THRESHOLD, onset_threshold=ONSET_THRESHOLD, out=".")
_FIRST_WEIGHT = "down1.model.0.weight"      # present in every generator state dict (ours and the original's)


# ----------------------------------------------------------------------------- checkpoints

def _generator_state(ckpt, path, n_keys):
    """(config, generator state dict) of this project's checkpoint or the original's."""
    if isinstance(ckpt, dict) and "config" in ckpt and "generator" in ckpt:
        try:
            return Roll2MidiConfig(**ckpt["config"]), ckpt["generator"]
        except (TypeError, ValueError) as e:
            raise AudeoError(f"{path}: not a Roll2Midi checkpoint config ({e})") from None
    state = None
    if isinstance(ckpt, dict) and _FIRST_WEIGHT in ckpt:                 # the original's bare state dict
        state = ckpt
    elif isinstance(ckpt, dict):                                           # the original's .tar: a nested one
        state = next((v for v in ckpt.values() if isinstance(v, dict) and _FIRST_WEIGHT in v), None)
    if state is None or not isinstance(state[_FIRST_WEIGHT], torch.Tensor):
        raise AudeoError(f"{path}: not a Roll2Midi generator checkpoint (no config/generator)")
    # the original: 51 keys (unless told), BatchNorm eps 0.8, width from the first conv
    return Roll2MidiConfig(n_keys=n_keys or PAPER_N_KEYS, original_bn_eps=True,
                           base_channels=int(state[_FIRST_WEIGHT].shape[0])), state


def load_generator(path, device="cpu", n_keys=None):
    """(eval-mode Generator on `device`, its Roll2MidiConfig) from a checkpoint file.

    Reads best.pt/last.pt of Roll2Midi_train.py ({'config', 'generator', ...}) with
    weights_only=True, or the original's generator state dict (taken as 51 keys, eps 0.8).
    n_keys, when given, must equal the model's key count. Problems are one-line AudeoErrors.
    """
    from audeo_train import read_torch_file
    ckpt = read_torch_file(path)
    config, state = _generator_state(ckpt, path, n_keys)
    if n_keys is not None and n_keys != config.n_keys:
        raise AudeoError(f"{path}: the generator was trained on {config.n_keys} keys, not {n_keys}")
    generator = Generator(config)
    try:
        generator.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (RuntimeError, AttributeError) as e:
        raise AudeoError(f"{path}: weights do not fit a Roll2Midi generator of width {config.base_channels} "
                         f"({str(e).splitlines()[0]})") from None
    return generator.to(torch.device(device)).eval(), config


# ----------------------------------------------------------------------------- refinement

@torch.no_grad()
def refine_probs(generator, probs, device="cpu", batch_size=DEFAULTS["batch_size"], frames=ROLL2MIDI_FRAMES):
    """Generator probabilities (T, K) float32 for Video2Roll probabilities (T, K), any T.

    Non-overlapping `frames`-long windows from frame 0, the last one zero-padded and trimmed.
    `probs` must have the generator's key count (its config.n_keys); the generator is put in eval mode.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim not in (2, 3):
        raise AudeoError(f"probabilities have shape {probs.shape}, expected (frames, keys[, channels])")
    generator.eval()
    device = torch.device(device)
    starts = window_starts(len(probs), frames, frames)
    out = np.zeros((len(starts) * frames, probs.shape[1]), np.float32)
    for b in range(0, len(starts), batch_size):
        chunk = starts[b:b + batch_size]
        x = to_model_input([cut_window(probs, s, frames) for s in chunk]).to(device)
        y = generator(x).float()[:, 0].transpose(1, 2).cpu().numpy()     # (B, frames, K)
        out[chunk[0]:chunk[-1] + frames] = y.reshape(-1, probs.shape[1])
    return out[:len(probs)]


def refine(generator, probs, device="cpu", batch_size=DEFAULTS["batch_size"], threshold=MIDI_THRESHOLD,
           frames=ROLL2MIDI_FRAMES, onset_threshold=ONSET_THRESHOLD):
    """Binary roll (T, K) uint8 of the generator's output for `probs` (T, K) or (T, K, 2): output >=
    threshold; with onset probabilities (the second channel), notes start at their peaks and last while
    the output holds (audeo_io.decode_roll)."""
    refined = refine_probs(generator, probs, device, batch_size, frames)
    if np.ndim(probs) == 3:
        return decode_roll(refined, np.asarray(probs)[..., 1], threshold, onset_threshold)
    return (refined >= threshold).astype(np.uint8)


def write_results(folder, roll, segments, first_frame):
    """Write `roll` (frames from `first_frame`) as `midi` segments named like `segments` [(s, e, path)]."""
    with atomic_dir(folder) as tmp:
        for start, end, _ in segments:
            save_npz(Path(tmp) / segment_name(start, end), midi=roll[start - first_frame:end - first_frame])


# ----------------------------------------------------------------------------- main

def main(argv=None):
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="Roll2Midi checkpoint (best.pt / last.pt)")
    p.add_argument("--estimates", required=True,
                   help="Video2Roll_inference --out folder holding estimate_Roll/<split>/<video>/")
    p.add_argument("--out", default=d["out"], help=f"root under which {ROLL2MIDI_DIR}/<split>/<video>/ is written")
    p.add_argument("--split", default=d["split"])
    p.add_argument("--videos", nargs="*", help="only these videos of the split")
    p.add_argument("--n-keys", type=int, choices=(N_KEYS, PAPER_N_KEYS),
                   help="expected key count (default: the checkpoint's; a different one is an error)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--threshold", type=float, default=d["threshold"], help="generator output threshold")
    p.add_argument("--onset-threshold", type=float, default=d["onset_threshold"],
                   help="two-channel generators: notes start at Video2Roll onset peaks at least this high")
    add_device_arg(p)
    args = p.parse_args(argv)
    from tqdm import tqdm
    device = resolve_device(args.device)
    generator, config = load_generator(args.checkpoint, device, n_keys=args.n_keys)   # fails before any output
    folder = estimate_folder(args.estimates, args.split)
    videos = list_estimate_videos(args.estimates, args.split, args.videos)
    # read every video first: a broken estimate stops the run before anything is written
    inputs = {v: (list_segments(folder / v), *load_estimate(folder / v, config.n_keys, config.in_channels))
              for v in videos}
    out = Path(args.out) / ROLL2MIDI_DIR / args.split
    for video in tqdm(videos, desc="videos", unit="video"):
        segments, first, probs = inputs[video]
        roll = refine(generator, probs, device, args.batch_size, args.threshold, config.frames, args.onset_threshold)
        write_results(out / video, roll, segments, first)
    print(f"Roll2Midi ({config.n_keys} keys) for split {args.split}: {len(videos)} videos -> {out}")


if __name__ == "__main__":
    run(main)
