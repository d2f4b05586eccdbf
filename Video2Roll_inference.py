"""Video2Roll inference: keyboard frames -> the original's estimate_Roll npz segments.

In:  --checkpoint  a Video2Roll checkpoint, and either
       a dataset split:  --data ROOT --split testing [--videos A B]   (frame store or frame images), or
       video files:      VIDEO ... [--box X1 Y1 X2 Y2] [--side auto|player|far] [--name NAME (one VIDEO)]
                         (any frame rate: resampled to 25 fps; without --box the keyboard is found and its
                         crops rectified, as Audeo.py does; frames are read as a stream, so memory stays
                         flat however long the video is; folders are searched for videos, those with a
                         complete output folder are skipped, and under torchrun rank k of N takes every
                         N-th video)
Out: OUT/estimate_Roll/<split>/<video>/<start>-<end>.npz with `logit` float32 (50, 88) and `roll`
     uint8 (50, 88) = sigmoid(logit) >= --threshold; columns outside the model's keys are 0, as in
     the original. A sequence model (frame, onset and offset outputs) also writes `onset_logit` and
     `offset_logit` (50, 88), `hand` (50, 1: a hand over the keys), and its `roll` holds the notes
     decoded from onsets and frames. The last segment keeps its true length. Each video's folder
     appears only when complete.
"""
from __future__ import annotations

from pathlib import Path

from audeo_cli import (SIDES, add_device_arg, add_precision_arg, add_video_args, parser, resolve_device, run, run_each,
                       video_list)
from audeo_constants import ESTIMATE_DIR, PRECISIONS, SPLITS
from audeo_video import resolve_box, video_crops
from Video2Roll_dataset import dataset_videos, first_label_frame, load_frames
from Video2Roll_net import autocast_dtype, load_model, video_outputs, write_estimates

DEFAULTS = dict(split=SPLITS[2], batch_size=32, threshold=None, onset_threshold=None, out=".",   # None: the model's
                precision=PRECISIONS[0])


def main(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    p.add_argument("--checkpoint", required=True, help="Video2Roll checkpoint (.pt)")
    add_video_args(p, optional=True, many=True)
    p.add_argument("--name", help="output folder name for VIDEO (default: the file's stem)")
    p.add_argument("--data", help="dataset root (original layout) to run on instead of a VIDEO")
    p.add_argument("--split", default=d["split"])
    p.add_argument("--videos", nargs="*", help="only these videos of the split")
    p.add_argument("--out", default=d["out"], help=f"root under which {ESTIMATE_DIR}/<split>/<video>/ is written")
    p.add_argument("--n-keys", type=int, choices=(88, 51), help="keys to predict: 51 narrows an 88-key model to the paper's keys; 88 from a 51-key model is an error")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--threshold", type=float, default=d["threshold"],
                   help="frame output threshold (default: the model's, 0.4 for models without one)")
    p.add_argument("--onset-threshold", type=float, default=d["onset_threshold"],
                   help="sequence models: a note starts at an onset peak at least this high (default: the model's)")
    add_precision_arg(p, d["precision"])
    add_device_arg(p)
    args = p.parse_args(argv)
    if bool(args.data) == bool(args.video):
        p.error("give either --data (a dataset split) or VIDEO (files or folders)")
    device, dtype = resolve_device(args.device), autocast_dtype(args.precision)
    model, config = load_model(args.checkpoint, device, n_keys=args.n_keys, precision=args.precision)   # fails before anything is written
    out = Path(args.out) / ESTIMATE_DIR / args.split

    def estimate(name, crops, first_frame=0):
        logits, hands = video_outputs(model, crops, args.batch_size, device, dtype, source=name)
        write_estimates(out / name, logits, hands, config, args.threshold, args.onset_threshold, first_frame)
        return len(logits)

    if args.video:
        videos = video_list(args.video)
        if args.name and len(videos) > 1:
            p.error("--name names the output of one VIDEO")
        todo = [v for v in videos if not (out / (args.name or v.stem)).is_dir()]
        if len(todo) < len(videos):
            print(f"skipping {len(videos) - len(todo)} video(s) with complete estimates in {out}")

        def one(video):
            box, far_side, how = resolve_box(video, args.box, SIDES[args.side])
            name = args.name or video.stem
            n = estimate(name, video_crops(video, box, far_side, desc=name))
            print(f"{name}: {n} frames (box {' '.join(map(str, box))} {how}, {'far' if far_side else 'player'} "
                  f"side) -> {out / name}")
        run_each(todo, one)
        return
    from tqdm import tqdm
    for video in tqdm(dataset_videos(args.data, args.split, args.videos), desc="videos", unit="video"):
        estimate(video, load_frames(args.data, args.split, video), first_label_frame(args.data, args.split, video))
    print(f"estimates for split {args.split} -> {out}")


if __name__ == "__main__":
    run(main)
