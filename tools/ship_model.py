"""Shrink a training checkpoint to the shipped form: config, metrics and fp16 weights only.

    .venv/bin/python tools/ship_model.py RUN/best.pt models/NAME.pt

Works for Video2Roll ({config, model}) and Roll2Midi ({config, generator}) checkpoints; the loaders
(Video2Roll_net.load_model, Roll2Midi_net.load_generator) turn fp16 back into fp32.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audeo_cli import run  # noqa: E402
from audeo_constants import INT8_KEY  # noqa: E402
from audeo_io import AudeoError, half_state, read_torch_file, save_checkpoint  # noqa: E402

WEIGHTS = ("model", "generator")          # the state dict each kind of checkpoint carries
KEEP = ("config", "metrics", "epoch", INT8_KEY)      # the last: tools/calibrate_int8.py


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--threshold", type=float, help="Video2Roll: the frame threshold to ship as the model's own")
    p.add_argument("--onset-threshold", type=float, help="Video2Roll sequence models: the onset threshold to ship")
    args = p.parse_args(argv)
    ckpt = read_torch_file(args.checkpoint)
    key = next((k for k in WEIGHTS if isinstance(ckpt, dict) and k in ckpt), None)
    if key is None or "config" not in ckpt:
        raise AudeoError(f"{args.checkpoint}: no config and model/generator to ship")
    shipped = {k: ckpt[k] for k in KEEP if k in ckpt}
    for field, value in (("frame_threshold", args.threshold), ("onset_threshold", args.onset_threshold)):
        if value is not None:
            if key != "model":
                raise AudeoError(f"{args.checkpoint}: only a Video2Roll checkpoint has an operating point")
            shipped["config"] = {**shipped["config"], field: value}
    shipped[key] = half_state(ckpt[key])
    save_checkpoint(args.out, **shipped)
    print(f"{args.out}: {Path(args.out).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    run(main)
