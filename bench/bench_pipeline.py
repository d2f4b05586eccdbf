"""Benchmark every stage of the Audeo pipeline, and Audeo.py end to end, on this machine (not a test).

In:  a video (default examples/demo_schumann.mp4; --repeat-to S loops it with the bundled ffmpeg, stream
     copy, until it lasts at least S seconds, so that start-up costs stop dominating) and the checkpoints
     in models/ (Video2Roll fast and seq, Audeo's default, in fp32 and int8 (NAME-int8: --precision int8);
     paper with --models ... paper; Roll2Midi).
Out: one table row per stage, printed: seconds, video frames/s (frames = video duration x 25 fps), x real
     time (frames/s / 25), peak RSS, and for the Video2Roll nets GFLOPs per frame, the GFLOP/s they reach
     and the fraction of this machine's fp32 matmul peak (torch.matmul 2048 x 2048, best of a few, measured
     before and after the stages; the higher counts, the two show how the load changed).
     Live: `Audeo.py VIDEO --live` per net (not paper, which cannot keep up) with the file played at 25 fps:
     look-ahead and latency (frame in -> its sound written; median, p95, max of the steady state after
     the first 5 s, and the start-up's max). --long-minutes M: Audeo.py's peak RSS on the video looped to
     1 and to M minutes (the flat-memory check: within 10 %).
     --json OUT: all figures with the machine (CPU model, cores, torch, AMX/AVX-512, date);
     --markdown bench/README.md: appends the table as a dated section between the marker comments
     (keeping the last few sections).

    .venv/bin/python bench/bench_pipeline.py [--repeat-to 60] [--models fast seq paper] [--stages ...] [--long-minutes 60]
                                             [--json bench/pipeline.json] [--markdown bench/README.md]

Method. Each stage runs in its own subprocess (this script with --stage), so its peak RSS (VmHWM of
/proc/self/status, else ru_maxrss) is its own, the Python interpreter, torch and every other import
included. A stage's seconds are wall-clock of its work alone: imports, loading a checkpoint (reported
apart as load_seconds) and writing its result for the next stage are left out. Stages hand their
outputs on through a temporary folder: the keyboard box, the crops (raw uint8, read back one frame at a
time so that no stage holds the whole video), the nets' probabilities and rolls, the wav. The end-to-end
rows run `Audeo.py VIDEO --out TMP --video2roll NET` in a small wrapper process (--stage end_to_end)
and time all of it, interpreter start-up included; their peak RSS is getrusage(RUSAGE_CHILDREN) of the
wrapper after Audeo.py exits: the largest single process of that tree (its ffmpeg children included).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audeo_constants import FPS, MIDI_THRESHOLD, MODELS_DIR, ROLL2MIDI_MODEL, VIDEO2ROLL_MODEL  # noqa: E402

DEFAULTS = dict(video=REPO / "examples" / "demo_schumann.mp4", models=("fast", "seq", "fast-int8", "seq-int8"),
                all_models=("fast", "seq", "paper", "fast-int8", "seq-int8"),
                matmul_size=2048, matmul_repeats=5, keep_sections=5, flat_memory=0.10, target_real_time=4.0, target_model="fast")
STAGES = ("startup", "decode", "detect", "crop", "video2roll", "roll2midi", "synthesis", "mux", "end_to_end", "live")
NEEDS = dict(crop=("detect",), video2roll=("crop",), roll2midi=("video2roll",), synthesis=("video2roll",),
             mux=("synthesis",))          # a stage's inputs come from these
START, END = "<!-- bench_pipeline:start -->", "<!-- bench_pipeline:end -->"
CROPS = "crops.u8"                        # (T, CROP_HEIGHT, CROP_WIDTH) uint8, raw


def net_spec(model):
    """(checkpoint, precision) of a bench net name: fast, seq or paper, fp32; NAME-int8: that net in int8."""
    net, _, precision = model.partition("-")
    return MODELS_DIR / f"video2roll_{net}.pt", precision or "fp32"


def net_args(model):
    """Audeo.py's options that select a bench net."""
    path, precision = net_spec(model)
    return ["--video2roll", str(path), "--precision", precision]


DEFAULT_MODEL = next((m for m in DEFAULTS["all_models"] if net_spec(m) == (VIDEO2ROLL_MODEL, "fp32")), "seq")


# ----------------------------------------------------------------------------- in a stage's own process

class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def peak_rss_mb():
    """This process's peak resident memory: VmHWM (reset by exec), else ru_maxrss (which can include the
    parent's memory at fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_of(args):
    from audeo_cli import resolve_device
    return resolve_device(args.device)


def stored_crops(work):
    """The crop stage's crops, one (H, W) uint8 frame at a time."""
    import numpy as np
    from audeo_constants import CROP_HEIGHT, CROP_WIDTH
    with open(work / CROPS, "rb") as f:
        while chunk := f.read(CROP_HEIGHT * CROP_WIDTH):
            yield np.frombuffer(chunk, np.uint8).reshape(CROP_HEIGHT, CROP_WIDTH)


def stage_startup(args):
    """What every stage's figures include: the interpreter plus its imports (no frames)."""
    with Stopwatch() as clock:
        import cv2  # noqa: F401
        import torch  # noqa: F401
        import audeo_video, Video2Roll_net  # noqa: F401, E401
    return clock, {}


def stage_decode(args):
    from audeo_video import iter_frames
    with Stopwatch() as clock:
        n = sum(1 for _ in iter_frames(args.video))
    return clock, dict(decoded_frames=n)


def stage_detect(args):
    from audeo_keyboard import detect_in_video
    with Stopwatch() as clock:
        found = detect_in_video(args.video)
    box = dict(box=[int(v) for v in found.box], corners=found.corners, far_side=bool(found.far_side))
    (args.work / "box.json").write_text(json.dumps(box))
    return clock, box


def stage_crop(args):
    from audeo_video import KeyboardBox, iter_crops
    found = json.loads((args.work / "box.json").read_text())
    box = KeyboardBox(found["box"], found["corners"])
    n = 0
    with open(args.work / CROPS, "wb") as out, Stopwatch() as clock:
        for crop in iter_crops(args.video, box, found["far_side"]):
            out.write(crop.tobytes())        # to the page cache: microseconds a frame
            n += 1
    return clock, dict(crops=n)


def stage_video2roll(args):
    import numpy as np
    import torch
    from audeo_io import sigmoid, to_88_keys
    from Video2Roll_net import estimate_arrays, iter_outputs, load_model
    device = device_of(args)
    path, precision = net_spec(args.model)
    with Stopwatch() as load:
        model, config = load_model(path, device, precision=precision)
    with Stopwatch() as clock:
        outputs = list(iter_outputs(model, stored_crops(args.work), device=device))
    logits = np.stack([lg for lg, _ in outputs])
    hands = np.array([bool(hand) for _, hand in outputs])
    np.save(args.work / f"probs_{args.model}.npy", to_88_keys(sigmoid(logits)))          # (T, heads, 88)
    np.save(args.work / f"roll_{args.model}.npy", estimate_arrays(logits, hands, config)["roll"])
    return clock, dict(load_seconds=load.seconds, torch_threads=torch.get_num_threads())


def stage_roll2midi(args):
    import numpy as np
    from audeo_io import key_slice
    from Roll2Midi_net import load_generator, refine
    device = device_of(args)
    probs = np.load(args.work / f"probs_{args.model}.npy")
    with Stopwatch() as load:
        generator, config = load_generator(ROLL2MIDI_MODEL, device)
    cols = key_slice(config.n_keys)
    if config.in_channels == 1:
        inputs = probs[:, 0, cols]                               # frame probabilities (T, K)
    elif probs.shape[1] >= 2:
        inputs = probs[:, :2, cols].transpose(0, 2, 1)           # frame and onset (T, K, 2)
    else:
        raise SystemExit(f"{ROLL2MIDI_MODEL} takes onsets, which the {args.model} net has not")
    with Stopwatch() as clock:
        refine(generator, inputs, device, threshold=MIDI_THRESHOLD, frames=config.frames)
    return clock, dict(load_seconds=load.seconds, in_channels=config.in_channels)


def stage_synthesis(args):
    import numpy as np
    from audeo_synth import find_synthesizer, render
    roll = np.load(args.work / f"roll_{args.model}.npy").astype(np.uint8)
    with Stopwatch() as clock:
        _, _, synth = render(roll, args.work / "synth", synth=find_synthesizer())
    return clock, dict(synthesizer=synth, notes_frames=int(roll.sum()))


def stage_mux(args):
    from audeo_pipeline import mux
    from audeo_video import video_info
    info = video_info(args.video)
    with Stopwatch() as clock:
        mux(args.video, args.work / "synth.wav", args.work / "mux.mp4", info)
    return clock, {}


def stage_end_to_end(args):
    """The wrapper around one `Audeo.py` run: wall-clock of all of it, the peak RSS of its process tree."""
    cmd = [sys.executable, str(REPO / "Audeo.py"), str(args.video), "--out", str(args.work / f"e2e_{args.model}"),
           *net_args(args.model)] + (["--device", args.device] if args.device else [])
    with Stopwatch() as clock:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"Audeo.py failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
    return clock, dict(peak_rss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def stage_live(args):
    """`Audeo.py VIDEO --live` (the file played at its own rate) in a wrapper process: its latency summary."""
    out = args.work / f"live_{args.model}"
    cmd = [sys.executable, str(REPO / "Audeo.py"), str(args.video), "--live", "--out", str(out), "--name", "live",
           *net_args(args.model)] + (["--device", args.device] if args.device else [])
    with Stopwatch() as clock:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"Audeo.py --live failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
    meta = json.loads((out / "live.json").read_text())
    return clock, dict(peak_rss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                       lookahead_ms=meta["lookahead_ms"], **{f"latency_{k}": v for k, v in meta["latency"].items()})


def matmul_peak_gflops(size, repeats):
    """fp32 GFLOP/s of torch.matmul on two size x size matrices, best of `repeats` (after one warm-up)."""
    import torch
    a, b = torch.rand(size, size), torch.rand(size, size)
    torch.matmul(a, b)
    best = math.inf
    for _ in range(repeats):
        with Stopwatch() as clock:
            torch.matmul(a, b)
        best = min(best, clock.seconds)
    return 2 * size ** 3 / best / 1e9


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def cpu_flags():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


def stage_matmul(args):
    return None, dict(matmul_gflops=matmul_peak_gflops(DEFAULTS["matmul_size"], DEFAULTS["matmul_repeats"]))


def stage_probe(args):
    """The video's length and format."""
    from audeo_video import video_info
    info = video_info(args.video)
    return None, dict(video=str(args.video), video_seconds=info.duration, video_fps=info.fps,
                      video_size=[info.width, info.height])


def stage_machine(args):
    """The machine, the video and the nets' FLOPs: what the table's header and FLOP columns need."""
    import torch
    from Video2Roll_net import flops_per_frame, load_model
    flags = cpu_flags()
    return None, dict(
        date=datetime.datetime.now().astimezone().isoformat(timespec="minutes"), cpu=cpu_model(),
        cores=os.cpu_count(), usable_cores=len(os.sched_getaffinity(0)), torch=torch.__version__,
        torch_threads=torch.get_num_threads(), amx=any(f.startswith("amx") for f in flags),
        avx512="avx512f" in flags, avx2="avx2" in flags, **stage_probe(args)[1],
        gflops_per_frame={m: flops_per_frame(load_model(net_spec(m)[0], "cpu", fuse=False)[1]) / 1e9
                          for m in args.models})


def run_stage_here(args):
    """--stage: run one stage in this process and write its result file."""
    clock, extra = globals()[f"stage_{args.stage}"](args)
    result = dict(seconds=clock.seconds if clock else None, peak_rss_mb=peak_rss_mb())
    result.update(extra)
    (args.work / f"{args.stage}_{args.model or ''}.json").write_text(json.dumps(result))


# ----------------------------------------------------------------------------- the driver

def run_stage(stage, args, model=None, video=None):
    """Run `stage` in a fresh process (on `video`, default args.video); its result dict."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--work", str(args.work),
           "--video", str(video or args.video), "--models", *args.models] + (["--model", model] if model else []) \
        + (["--device", args.device] if args.device else [])
    print(f"... {stage} {model or ''}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        sys.exit(f"bench stage {stage} {model or ''} failed: {proc.stderr.strip()[-2000:]}")
    return json.loads((args.work / f"{stage}_{model or ''}.json").read_text())


def repeat_video(video, seconds, duration, work):
    """`video` looped (stream copy, the bundled ffmpeg) to at least `seconds` long, in `work`."""
    import imageio_ffmpeg
    loops = max(0, math.ceil(seconds / duration) - 1)
    out = work / f"{Path(video).stem}_x{loops + 1}{Path(video).suffix}"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-stream_loop", str(loops),
                    "-i", str(video), "-c", "copy", str(out)], check=True)
    return out


def stage_plan(stages, models):
    """[(stage, model)] to run, in order: the selected stages, the ones they need and, per model, the nets."""
    wanted = set(stages)
    for stage in reversed(STAGES):                # NEEDS only points backwards: one pass from the end
        if stage in wanted:
            wanted |= set(NEEDS.get(stage, ()))
    source = DEFAULTS["target_model"] if DEFAULTS["target_model"] in models else models[0]
    rolls = DEFAULT_MODEL if DEFAULT_MODEL in models else models[0]
    per_stage = dict(video2roll=models, end_to_end=models, live=[m for m in models if not m.startswith("paper")],
                     roll2midi=[source], synthesis=[rolls], mux=[rolls])      # paper cannot keep up live
    return [(s, m) for s in STAGES if s in wanted for m in per_stage.get(s, [None])]


def make_row(stage, model, result, machine):
    fps = None if stage in ("startup", "live") else machine["video_seconds"] * FPS / result["seconds"]
    row = dict(stage=stage, model=model, frames_per_s=fps, real_time=fps and fps / FPS, **result)
    if stage == "video2roll":
        flops = machine["gflops_per_frame"][model]
        row.update(gflops_per_frame=flops, gflops_per_s=flops * fps,
                   peak_fraction=flops * fps / machine["matmul_gflops"])
    return row


def label(row):
    what = dict(startup="startup: torch, cv2 imports (no frames)", roll2midi=f"roll2midi ({row['model']} probs)",
                synthesis=f"synthesis ({row['model']} roll)",
                mux="mux", end_to_end=f"end to end, Audeo.py {row['model']}", video2roll=f"video2roll {row['model']}",
                live=f"live, Audeo.py --live {row['model']}")
    return what.get(row["stage"], row["stage"])


def fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def table(rows):
    lines = ["| stage | seconds | frames/s | x real time | peak RSS (MB) | GFLOP/frame | GFLOP/s | % of matmul peak |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        fraction = r.get("peak_fraction")
        lines.append(f"| {label(r)} | {fmt(r.get('seconds'), '.2f')} | {fmt(r.get('frames_per_s'), '.1f')} | "
                     f"{fmt(r.get('real_time'), '.2f')} | {fmt(r.get('peak_rss_mb'), '.0f')} | "
                     f"{fmt(r.get('gflops_per_frame'), '.3f')} | {fmt(r.get('gflops_per_s'), '.1f')} | "
                     f"{fmt(None if fraction is None else 100 * fraction, '.1f')} |")
    return lines


def live_lines(rows):
    """The --live rows' latency: frame in -> its sound written, steady state (after the start-up)."""
    live = [r for r in rows if r["stage"] == "live"]
    if not live:
        return []
    lines = ["", "| live (file played at 25 fps) | look-ahead (ms) | latency median (ms) | p95 (ms) | max (ms) | "
                 "start-up max (ms) |", "|---|---:|---:|---:|---:|---:|"]
    for r in live:
        lines.append(f"| {r['model']} | {r['lookahead_ms']:.0f} | {r['latency_median_ms']:.0f} | "
                     f"{r['latency_p95_ms']:.0f} | {r['latency_max_ms']:.0f} | {r['latency_warmup_max_ms']:.0f} |")
    return lines


def memory_lines(memory):
    if not memory:
        return []
    (short, a), (long, b) = memory["runs"].items()
    return ["", f"Flat memory, Audeo.py {memory['model']} end to end: {short} min video peak RSS {a['peak_rss_mb']:.0f} MB "
                f"({a['seconds']:.0f} s), {long} min video {b['peak_rss_mb']:.0f} MB ({b['seconds']:.0f} s): "
                f"{100 * memory['growth']:+.1f} % ({'within' if memory['within'] else 'beyond'} "
                f"{100 * DEFAULTS['flat_memory']:.0f} %)."]


def section(report, command):
    m = report["machine"]
    yes = lambda flag: "yes" if flag else "no"
    lines = [f"### {m['date']}", "",
             f"{m['cpu']}, {m['usable_cores']} of {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
             f"AMX {yes(m['amx'])}, AVX-512 {yes(m['avx512'])}, AVX2 {yes(m['avx2'])}; fp32 matmul peak "
             f"{m['matmul_gflops']:.1f} GFLOP/s (before / after the stages: "
             f"{' / '.join(f'{g:.1f}' for g in m['matmul_gflops_runs'])}). "
             f"Video {Path(m['video']).name}: {m['video_seconds']:.1f} s = "
             f"{m['video_seconds'] * FPS:.0f} frames at {FPS} fps.", "", f"`{command}`", "", *table(report["rows"])]
    lines += live_lines(report["rows"]) + memory_lines(report.get("memory"))
    target = report.get("target")
    if target:
        lines += ["", f"Target end to end >= {target['want']:g}x real time with the {target['model']} net: "
                      f"{target['got']:.2f}x, {'met' if target['met'] else 'not met'}."]
    return "\n".join(lines) + "\n"


def update_markdown(path, new_section, keep):
    """Append `new_section` between the markers of `path` (created if absent), keeping the last `keep`."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START not in text:
        text = f"{text.rstrip()}\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    body, tail = rest.split(END, 1)
    sections = [s.strip() + "\n" for s in re.split(r"(?m)^(?=### )", body) if s.startswith("### ")]
    sections = (sections + [new_section])[-keep:]
    path.write_text(f"{head}{START}\n" + "\n".join(sections) + f"{END}{tail}")


def target_check(rows):
    """The target (DEFAULTS target_real_time) against the fastest end-to-end run of the target net, any precision."""
    e2e = [r for r in rows if r["stage"] == "end_to_end" and r["model"].partition("-")[0] == DEFAULTS["target_model"]]
    if not e2e:
        return None
    best = max(e2e, key=lambda r: r["real_time"])
    want = DEFAULTS["target_real_time"]
    return dict(model=best["model"], want=want, got=best["real_time"], met=best["real_time"] >= want)


def bench(args):
    """Every selected stage, each in its own process; the report dict."""
    if args.repeat_to:
        seconds = run_stage("probe", args)["video_seconds"]
        if args.repeat_to > seconds:
            args.video = repeat_video(args.video, args.repeat_to, seconds, args.work)
    first = run_stage("matmul", args)["matmul_gflops"]
    machine = run_stage("machine", args)
    plan = stage_plan(args.stages, args.models)
    results = [run_stage(stage, args, model) for stage, model in plan]
    runs = [first, run_stage("matmul", args)["matmul_gflops"]]          # before and after: the load may change
    machine.update(matmul_gflops=max(runs), matmul_gflops_runs=runs)
    rows = [make_row(stage, model, result, machine) for (stage, model), result in zip(plan, results)]
    return dict(machine=machine, rows=rows, target=target_check(rows),
                memory=flat_memory(args, machine["video_seconds"]) if args.long_minutes else None)


def flat_memory(args, seconds):
    """Peak RSS of Audeo.py (the target net, int8 when measured) on the video looped to 1 minute and to --long-minutes."""
    target = [m for m in args.models if m.partition("-")[0] == DEFAULTS["target_model"]]
    model = max(target, key=lambda m: m.endswith("-int8")) if target else args.models[0]
    runs, folder = {}, args.work / "flat_memory"
    folder.mkdir()
    for minutes in (1, args.long_minutes):
        video = repeat_video(args.video, minutes * 60, seconds, folder)
        result = run_stage("end_to_end", args, model, video=video)
        runs[minutes] = dict(seconds=result["seconds"], peak_rss_mb=result["peak_rss_mb"])
        video.unlink()
    one, long = runs[1]["peak_rss_mb"], runs[args.long_minutes]["peak_rss_mb"]
    return dict(model=model, runs=runs, growth=long / one - 1, within=long <= one * (1 + DEFAULTS["flat_memory"]))


def main():
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, default=d["video"])
    p.add_argument("--repeat-to", type=float, metavar="SECONDS",
                   help="loop the video (stream copy) until it lasts at least this long")
    p.add_argument("--models", nargs="+", default=list(d["models"]), choices=d["all_models"],
                   help="Video2Roll nets (paper: about 10x the fast net's time, in its row and its end-to-end row)")
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES,
                   help="stages to measure (the ones they take their input from run too)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--long-minutes", type=int, default=0, metavar="M",
                   help="also compare Audeo.py's peak RSS on the video looped to 1 and to M minutes (M x real time)")
    p.add_argument("--json", type=Path, help="write the report here")
    p.add_argument("--markdown", type=Path, help="append the table as a dated section to this file (bench/README.md)")
    p.add_argument("--keep", type=int, default=d["keep_sections"], help="dated sections --markdown keeps")
    p.add_argument("--stage", choices=("probe", "matmul", "machine", *STAGES),
                   help=argparse.SUPPRESS)                 # internal: run one stage in this process
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.stage:
        return run_stage_here(args)
    args.video = args.video.resolve()
    command = " ".join(["bench/bench_pipeline.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="audeo_bench.") as work:
        args.work = Path(work)
        report = bench(args)
    report["command"] = command
    text = section(report, command)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    if args.markdown:
        update_markdown(args.markdown, text, args.keep)


if __name__ == "__main__":
    main()
