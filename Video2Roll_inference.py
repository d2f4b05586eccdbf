"""Video2Roll inference: keyboard frames -> the original's estimate_Roll npz segments.

In:  a Video2Roll checkpoint, and either
       a dataset split:  --data ROOT --split testing [--videos A B]   (frame store or frame images), or
       a video file:     --video FILE --box x1 y1 x2 y2 [--far-side] [--name NAME]
                         (any frame rate: resampled to 25 fps; frames are read as a stream, so memory
                         stays flat however long the video is)
Out: OUT/estimate_Roll/<split>/<video>/<start>-<end>.npz with `logit` float32 (50, 88) and `roll`
     uint8 (50, 88) = sigmoid(logit) >= --threshold; columns outside the model's keys are 0, as in
     the original. The last segment keeps its true length. Each video's folder appears only when
     complete.
"""
from __future__ import annotations

import argparse
from collections import deque
from pathlib import Path

import numpy as np
import torch

from audeo_cli import add_device_arg, resolve_device, run
from audeo_constants import ESTIMATE_DIR, LABELS_DIR, ROLL_THRESHOLD, SEGMENT_FRAMES, SPLITS, STACK_FRAMES
from audeo_io import AudeoError, atomic_dir, load_labels, save_npz, segment_name
from Video2Roll_net import load_model, outputs_to_88

DEFAULTS = dict(split=SPLITS[2], batch_size=32, threshold=ROLL_THRESHOLD, out=".", precision="fp32")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def iter_stacks(frames):
    """Stacks of frames t-2..t+2 for every t of a frame stream, the edge frames repeated."""
    it = iter(frames)
    first = next(it, None)
    if first is None:
        return
    radius = STACK_FRAMES // 2
    window = deque([first] * (radius + 1), maxlen=STACK_FRAMES)
    pending = 1                                     # frames seen but not yet the centre of a stack
    for frame in it:
        window.append(frame)
        pending += 1
        if len(window) == STACK_FRAMES and pending > radius:
            yield np.stack(window)
            pending -= 1
    while pending > 0:                              # flush: repeat the last frame
        window.append(window[-1])
        if len(window) == STACK_FRAMES:
            yield np.stack(window)
            pending -= 1


def iter_logits(model, frames, batch_size, device, dtype=None):
    """(n_keys,) float32 logits for each frame of a uint8 (H, W) frame stream, in order.
    dtype=torch.bfloat16 runs the net under autocast (about 3x faster on CPUs with AMX)."""
    batch = []

    def run_batch():
        x = torch.from_numpy(np.stack(batch)).to(device, dtype=torch.float32).div_(255)
        with torch.inference_mode(), torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            out = model(x).float().cpu().numpy()
        batch.clear()
        return out

    for stack in iter_stacks(frames):
        batch.append(stack)
        if len(batch) == batch_size:
            yield from run_batch()
    if batch:
        yield from run_batch()


def write_estimates(folder, logits, config, threshold, first_frame=0):
    """Write logit/roll segments of SEGMENT_FRAMES frames into `folder` (atomically); returns frame count."""
    count = 0
    with atomic_dir(folder) as tmp:
        rows = []
        for row in logits:
            rows.append(row)
            if len(rows) == SEGMENT_FRAMES:
                count = _flush(tmp, rows, config, threshold, first_frame + count) + count
        if rows:
            count = _flush(tmp, rows, config, threshold, first_frame + count) + count
        if count == 0:
            raise AudeoError(f"{folder.name}: no frames to run Video2Roll on")
    return count


def _flush(folder, rows, config, threshold, start):
    logit = np.stack(rows).astype(np.float32)
    roll = (1 / (1 + np.exp(-logit)) >= threshold).astype(np.uint8)
    save_npz(Path(folder) / segment_name(start, start + len(rows)), logit=outputs_to_88(logit, config),
             roll=outputs_to_88(roll, config))
    n = len(rows)
    rows.clear()
    return n


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
    p.add_argument("--threshold", type=float, default=d["threshold"])
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
        n = write_estimates(out / name, iter_logits(model, crops, args.batch_size, device, dtype), config, args.threshold)
        print(f"{name}: {n} frames -> {out / name}")
        return
    from tqdm import tqdm
    from Video2Roll_dataset import load_frames
    for video in tqdm(dataset_videos(args.data, args.split, args.videos), desc="videos", unit="video"):
        frames = load_frames(args.data, args.split, video)
        first = first_label_frame(args.data, args.split, video)
        write_estimates(out / video, iter_logits(model, frames, args.batch_size, device, dtype), config, args.threshold,
                        first_frame=first)
    print(f"estimates for split {args.split} -> {out}")


if __name__ == "__main__":
    run(main)
