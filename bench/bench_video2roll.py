"""Benchmark Video2Roll nets on this machine (not a test: timings depend on the machine and its load).

For each preset and precision (fp32; bf16 = autocast, as Video2Roll_train uses on CPUs with AMX):
parameters, GFLOPs per frame, inference frames/s (plain eval and BN-folded `inference_model`),
training samples/s (channels-last, as in Video2Roll_train) on in-memory tensors (model only) and
through the real DataLoader on a dataset (model + data loading), and peak resident memory so far.

    .venv/bin/python bench/bench_video2roll.py [--data DATASET_ROOT] [--presets fast paper]
                                               [--precisions fp32 bf16] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from audeo_constants import CROP_HEIGHT, CROP_WIDTH, SPLITS, STACK_FRAMES  # noqa: E402
from audeo_train import seed_all  # noqa: E402
from Video2Roll_net import autocast_dtype, build_model, count_parameters, flops_per_frame, inference_model, preset  # noqa: E402

DEFAULTS = dict(presets=("fast", "paper"), precisions=("fp32", "bf16"), threads=2, infer_batch=32, train_batch=16,
                seconds=20.0)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, seconds, warmup=1):
    """Calls per second of `fn`, run for about `seconds` after warm-up."""
    for _ in range(warmup):
        fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def bench_preset(name, precision, args):
    config = preset(name)
    model = build_model(config)
    row = dict(preset=name, precision=precision, params=count_parameters(model),
               gflops_per_frame=flops_per_frame(config) / 1e9)
    dtype = autocast_dtype(precision)
    x = torch.rand(args.infer_batch, STACK_FRAMES, CROP_HEIGHT, CROP_WIDTH)
    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        row["infer_fps"] = timed(lambda: model(x), args.seconds) * len(x)
        fused = inference_model(model)
        xc = x.contiguous(memory_format=torch.channels_last)
        row["infer_fps_fused"] = timed(lambda: fused(xc), args.seconds) * len(x)
    row["infer_peak_rss_mb"] = peak_rss_mb()
    model = model.train().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    xb = torch.rand(args.train_batch, STACK_FRAMES, CROP_HEIGHT, CROP_WIDTH)
    yb = (torch.rand(args.train_batch, config.n_keys) > 0.95).float()

    def step(x=xb, y=yb):
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            logits = model(x.contiguous(memory_format=torch.channels_last))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    row["train_samples_per_s_model_only"] = timed(step, args.seconds) * len(xb)
    if args.data:
        from torch.utils.data import DataLoader
        from Video2Roll_dataset import Augment, Video2RollDataset
        ds = Video2RollDataset(args.data, SPLITS[0], augment=Augment())
        loader = iter(DataLoader(ds, batch_size=args.train_batch, shuffle=True, num_workers=1))

        def loaded_step():
            x, y, _ = next(loader)
            step(x, y)

        row["train_samples_per_s_with_data"] = timed(loaded_step, args.seconds) * args.train_batch
    row["train_peak_rss_mb"] = peak_rss_mb()
    return row


def main():
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="dataset root for the with-data-loading training figure")
    p.add_argument("--presets", nargs="*", default=list(d["presets"]))
    p.add_argument("--precisions", nargs="*", default=list(d["precisions"]), choices=("fp32", "bf16"))
    p.add_argument("--threads", type=int, default=d["threads"])
    p.add_argument("--infer-batch", type=int, default=d["infer_batch"])
    p.add_argument("--train-batch", type=int, default=d["train_batch"])
    p.add_argument("--seconds", type=float, default=d["seconds"], help="timing window per figure")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = [bench_preset(name, precision, args) for name in args.presets for precision in args.precisions]
    for row in rows:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    seed_all(0)
    main()
