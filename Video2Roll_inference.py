"""Video2Roll inference: keyboard frames -> the original's estimate_Roll npz segments.

In:  a Video2Roll checkpoint, and either
       a dataset split:  --data ROOT --split testing [--videos A B]   (frame store or frame images), or
       a video file:     --video FILE --box x1 y1 x2 y2 [--far-side] [--name NAME]
                         (any frame rate: resampled to 25 fps; frames are read as a stream, so memory
                         stays flat however long the video is)
Out: OUT/estimate_Roll/<split>/<video>/<start>-<end>.npz with `logit` float32 (50, 88) and `roll`
     uint8 (50, 88) = sigmoid(logit) >= --threshold; columns outside the model's keys are 0, as in
     the original. A sequence model (frame, onset and offset outputs) also writes `onset_logit` and
     `offset_logit` (50, 88), `hand` (50, 1: a hand over the keys), and its `roll` holds the notes
     decoded from onsets and frames. The last segment keeps its true length. Each video's folder
     appears only when complete.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from audeo_cli import add_device_arg, resolve_device, run
from audeo_constants import ESTIMATE_DIR, LABELS_DIR, SPLITS
from audeo_io import AudeoError, atomic_dir, decode_roll, load_labels, write_segments
from Video2Roll_net import iter_outputs, load_model, operating_point, outputs_to_88

DEFAULTS = dict(split=SPLITS[2], batch_size=32, threshold=None, onset_threshold=None, out=".",   # None: the model's
                precision="fp32")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def write_estimates(folder, outputs, config, threshold=None, onset_threshold=None, first_frame=0):
    """Write a video's estimate segments into `folder` (atomically) from iter_outputs rows; returns the
    frame count. `roll` is sigmoid(logit) >= threshold for a frame model, and the notes decoded from
    onsets and frames (audeo_io.decode_roll) for a sequence model, which also writes `onset_logit`,
    `offset_logit` and `hand` (1 where a hand is over the keys)."""
    rows, hands = [], []
    for logits, hand in outputs:
        rows.append(logits)
        hands.append(bool(hand))
    if not rows:
        raise AudeoError(f"{folder.name}: no frames to run Video2Roll on")
    arrays = estimate_arrays(np.stack(rows), np.array(hands), config, threshold, onset_threshold)
    with atomic_dir(folder) as tmp:
        write_segments(tmp, first_frame=first_frame, **arrays)
    return len(rows)


def estimate_arrays(logits, hands, config, threshold=None, onset_threshold=None):
    """{npz key: (T, 88) array} of a video's logits (T, n_heads, n_keys) and hand flags (T,); thresholds
    default to the model's operating point."""
    threshold, onset_threshold = operating_point(config, threshold, onset_threshold)
    probs = 1 / (1 + np.exp(-logits))
    if config.is_sequence:
        roll = decode_roll(probs[:, 0], probs[:, 1], threshold, onset_threshold)
    else:
        roll = (probs[:, 0] >= threshold).astype(np.uint8)
    arrays = dict(logit=outputs_to_88(logits[:, 0].astype(np.float32), config), roll=outputs_to_88(roll, config))
    if config.is_sequence:
        arrays.update(onset_logit=outputs_to_88(logits[:, 1].astype(np.float32), config),
                      offset_logit=outputs_to_88(logits[:, 2].astype(np.float32), config))
    if config.reference:
        arrays["hand"] = hands.astype(np.uint8)[:, None]
    return arrays


def dataset_videos(root, split, videos):
    from Video2Roll_dataset import list_videos
    names = list_videos(root, split)
    if videos:
        missing = sorted(set(videos) - set(names))
        if missing:
            raise AudeoError(f"{root}: no video {missing[0]!r} in split {split}")
        names = [v for v in names if v in videos]
    return names


def first_label_frame(root, split, video):
    path = Path(root) / LABELS_DIR / split / f"{video}.pkl"
    return int(load_labels(path)[0][0]) if path.is_file() else 0


def main(argv=None):
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="Video2Roll checkpoint (.pt)")
    p.add_argument("--out", default=d["out"], help=f"root under which {ESTIMATE_DIR}/<split>/<video>/ is written")
    p.add_argument("--data", help="dataset root (original layout) to run on")
    p.add_argument("--split", default=d["split"])
    p.add_argument("--videos", nargs="*", help="only these videos of the split")
    p.add_argument("--video", help="a video file to run on instead of a dataset")
    p.add_argument("--box", type=int, nargs=4, metavar=("X1", "Y1", "X2", "Y2"), help="keyboard box in the video")
    p.add_argument("--far-side", action="store_true", help="camera beyond the keyboard: turn crops 180 degrees")
    p.add_argument("--name", help="output folder name for --video (default: the file's stem)")
    p.add_argument("--n-keys", type=int, choices=(88, 51), help="keys to predict: 51 narrows an 88-key model to the paper's keys; 88 from a 51-key model is an error")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--threshold", type=float, default=d["threshold"],
                   help="frame output threshold (default: the model's, 0.4 for models without one)")
    p.add_argument("--onset-threshold", type=float, default=d["onset_threshold"],
                   help="sequence models: a note starts at an onset peak at least this high (default: the model's)")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default=d["precision"],
                   help="bf16: autocast, ~3x faster on CPUs with AMX; logits differ by bf16 rounding")
    add_device_arg(p)
    args = p.parse_args(argv)
    dtype = PRECISIONS[args.precision]
    if bool(args.data) == bool(args.video):
        p.error("give either --data (a dataset split) or --video (a file)")
    device = resolve_device(args.device)
    model, config = load_model(args.checkpoint, device, n_keys=args.n_keys)   # fails before anything is written
    out = Path(args.out) / ESTIMATE_DIR / args.split
    if args.video:
        from tqdm import tqdm
        from audeo_constants import FPS
        from audeo_video import check_box, iter_crops, video_info
        if args.box is None:
            raise AudeoError(f"{args.video}: no --box given (automatic keyboard detection is not available here)")
        info = video_info(args.video)
        check_box(args.box, info.width, info.height, args.video)
        name = args.name or Path(args.video).stem
        total = int(info.duration * FPS)
        crops = tqdm(iter_crops(args.video, args.box, far_side=args.far_side), total=total, desc=name, unit="frame")
        n = write_estimates(out / name, iter_outputs(model, crops, args.batch_size, device, dtype), config,
                            args.threshold, args.onset_threshold)
        print(f"{name}: {n} frames -> {out / name}")
        return
    from tqdm import tqdm
    from Video2Roll_dataset import load_frames
    for video in tqdm(dataset_videos(args.data, args.split, args.videos), desc="videos", unit="video"):
        frames = load_frames(args.data, args.split, video)
        first = first_label_frame(args.data, args.split, video)
        write_estimates(out / video, iter_outputs(model, frames, args.batch_size, device, dtype), config,
                        args.threshold, args.onset_threshold, first_frame=first)
    print(f"estimates for split {args.split} -> {out}")


if __name__ == "__main__":
    run(main)
