"""Roll2Midi inference: Video2Roll estimates -> the original's Roll2Midi_results npz segments.

In:  --checkpoint  a Roll2Midi checkpoint (best.pt or last.pt of Roll2Midi_train.py, or the original's
                   generator state dict)
     --estimates ESTIMATES holding ESTIMATES/estimate_Roll/<split>/<video>/<s>-<e>.npz
                   (Video2Roll_inference.py --out ESTIMATES)
Out: OUT/Roll2Midi_results/<split>/<video>/<s>-<e>.npz with key `midi` uint8 (frames, n_keys)
     = generator output >= --midi-threshold (0.5, the original's; a two-channel generator's notes start
     at Video2Roll's onset peaks >= --onset-threshold); n_keys is the model's (the original wrote 51
     columns; an 88-key model writes 88). One file per estimate segment, with the same name and number
     of frames. Each video's folder appears only when complete.
Windows: non-overlapping, per video, the last one padded and trimmed (see Roll2Midi_net).
"""
from __future__ import annotations

from pathlib import Path

from audeo_cli import add_device_arg, add_estimate_args, parser, resolve_device, run
from audeo_constants import MIDI_THRESHOLD, N_KEYS, ONSET_THRESHOLD, PAPER_N_KEYS, ROLL2MIDI_DIR, SPLITS
from audeo_io import estimate_folder, list_estimate_videos, list_segments
from Roll2Midi_dataset import load_estimate
from Roll2Midi_net import BATCH_SIZE, load_generator, refine, write_results

DEFAULTS = dict(split=SPLITS[2], batch_size=BATCH_SIZE, midi_threshold=MIDI_THRESHOLD, onset_threshold=ONSET_THRESHOLD, out=".")


def main(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    p.add_argument("--checkpoint", required=True, help="Roll2Midi checkpoint (best.pt / last.pt)")
    add_estimate_args(p, d["split"])
    p.add_argument("--out", default=d["out"], help=f"root under which {ROLL2MIDI_DIR}/<split>/<video>/ is written")
    p.add_argument("--n-keys", type=int, choices=(N_KEYS, PAPER_N_KEYS),
                   help="expected key count (default: the checkpoint's; a different one is an error)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--midi-threshold", type=float, default=d["midi_threshold"], help="generator output threshold")
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
        roll = refine(generator, probs, device, args.batch_size, args.midi_threshold, config.frames,
                      args.onset_threshold)
        write_results(out / video, roll, segments, first)
    print(f"Roll2Midi ({config.n_keys} keys) for split {args.split}: {len(videos)} videos -> {out}")


if __name__ == "__main__":
    run(main)
