"""Add an int8 calibration to a Video2Roll checkpoint (fast or seq net), in place.

In:  CHECKPOINT (shipped or training), a dataset split's frame stores (--data ROOT --split training), and
     how much of it to see: every --every-th video, its first --frames frames.
Out: CHECKPOINT rewritten atomically with `int8_observers` (audeo_constants.INT8_KEY): the activation
     statistics of the net's convolutional body on those crops, reference keyboard included. With it,
     `--precision int8` (load_model(..., int8=True)) runs the body in int8 on the CPU. Calibrate on
     training takes only: never on held-out or test-only videos.

    .venv/bin/python tools/calibrate_int8.py models/video2roll_seq.pt --data data/ai_pianist_v2
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audeo_cli import run  # noqa: E402
from audeo_constants import INT8_KEY, SPLITS  # noqa: E402
from audeo_io import read_torch_file, save_checkpoint  # noqa: E402
from Video2Roll_dataset import dataset_videos, load_frames  # noqa: E402
from Video2Roll_net import calibrate_int8, load_model  # noqa: E402

DEFAULTS = dict(split=SPLITS[0], every=3, frames=400, batch_size=32)


def main(argv=None):
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="dataset root with frame stores")
    p.add_argument("--split", default=d["split"])
    p.add_argument("--every", type=int, default=d["every"], help="calibrate on every N-th video of the split")
    p.add_argument("--frames", type=int, default=d["frames"], help="the first N frames of each of those videos")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    args = p.parse_args(argv)
    model, _ = load_model(args.checkpoint, "cpu", fuse=False)
    videos = dataset_videos(args.data, args.split)[::args.every]
    streams = (load_frames(args.data, args.split, v)[:args.frames] for v in videos)
    observers = calibrate_int8(model, streams, args.batch_size)
    ckpt = read_torch_file(args.checkpoint)
    save_checkpoint(args.checkpoint, **{**ckpt, INT8_KEY: observers})
    print(f"{args.checkpoint}: int8 calibration from {len(videos)} videos of {args.data} ({args.split}), "
          f"{len(observers)} tensors")


if __name__ == "__main__":
    run(main)
