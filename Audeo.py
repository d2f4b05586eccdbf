"""Audeo end to end: a silent piano video -> MIDI, audio, the video with that audio, and a roll picture.

In:  VIDEO (any format and frame rate OpenCV reads), optionally --box x1 y1 x2 y2 (else the keyboard is
     found automatically and rectified) and --side player|far (else detected), --reference REF.mid to score
     against (with --reference-offset: the video time of MIDI time 0; --reference-pitch-shift N for a file
     stored N semitones low, e.g. 12 for AI-Pianist) or --reference-audio REC to score against the notes
     basic-pitch transcribes from a recording of the performance.
Out: DIR/<name>.mid        the generated performance (Video2Roll -> Roll2Midi -> notes)
     DIR/<name>.wav        it, synthesised at 16 kHz (the log names the synthesizer)
     DIR/<name>.mp4        the input video with the generated sound (H.264 + AAC, the ffmpeg bundled in
                           the imageio-ffmpeg wheel)
     DIR/<name>_roll.png   the predicted roll; with --reference, reference and prediction side by side
                           and the metrics in the title
     DIR/<name>.json       box, side, frame counts, models, synthesizer and metrics
Runs with the checkpoints shipped in models/ by default. Every file appears only when all are done.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from audeo_cli import add_device_arg, resolve_device, run
from audeo_constants import FPS, MIDI_THRESHOLD
from audeo_io import AudeoError, check_writable, decode_roll, load_midi, midi_to_roll, notes_to_roll, regrid
from audeo_video import iter_crops, video_info
from Video_prepare import resolve_box, shift_pitch

MODELS = Path(__file__).resolve().parent / "models"
SIDES = {"auto": None, "player": False, "far": True}
DEFAULTS = dict(video2roll=MODELS / "video2roll_fast.pt", roll2midi=MODELS / "roll2midi.pt", batch_size=32,
                threshold=None, onset_threshold=None,            # None: the Video2Roll model's operating point
                midi_threshold=MIDI_THRESHOLD, velocity=None, reference_offset=0.0, reference_pitch_shift=0)


# ----------------------------------------------------------------------------- stages

def video_to_outputs(video, box, far_side, checkpoint, device, batch_size):
    """Video2Roll read as a stream: (probabilities (T, n_heads, 88) at 25 fps, hand flags (T,), config)."""
    from tqdm import tqdm
    from Video2Roll_net import iter_outputs, load_model, outputs_to_88
    model, config = load_model(checkpoint, device)
    total = int(video_info(video).duration * FPS)
    crops = tqdm(iter_crops(video, box, far_side=far_side), total=total, desc="video2roll", unit="frame")
    out = list(iter_outputs(model, crops, batch_size, device))
    if not out:
        raise AudeoError(f"{video}: no frames could be decoded")
    probs = 1 / (1 + np.exp(-np.stack([o for o, _ in out])))
    return outputs_to_88(probs.astype(np.float32), config), np.array([bool(h) for _, h in out]), config


def refine(probs, onsets, checkpoint, device, batch_size, threshold, onset_threshold):
    """Roll2Midi's binary roll (T, 88) from Video2Roll probabilities (T, 88) (and onsets, for a generator
    that takes them)."""
    from Roll2Midi_inference import load_generator, refine as refine_roll
    from Video2Roll_dataset import key_slice
    generator, config = load_generator(checkpoint, device)
    cols = key_slice(config.n_keys)
    if config.in_channels == 2:
        if onsets is None:
            raise AudeoError(f"{checkpoint}: this Roll2Midi needs a Video2Roll with an onset output")
        inputs = np.stack([probs[:, cols], onsets[:, cols]], axis=2)
    else:
        inputs = probs[:, cols]
    out = np.zeros(probs.shape, np.uint8)
    out[:, cols] = refine_roll(generator, inputs, device, batch_size, threshold, config.frames, onset_threshold)
    return out


def mux(video, wav, out_mp4, duration):
    """The input video's picture (re-encoded to H.264) with `wav` as its sound, cut to the video's length."""
    import imageio_ffmpeg
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(video), "-i", str(wav),
           "-map", "0:v:0", "-map", "1:a:0", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
           "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:a", "aac", "-b:a", "128k",
           "-t", f"{duration:.3f}", str(out_mp4)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AudeoError(f"{video}: muxing the generated audio failed ({proc.stderr.strip().splitlines()[-1:]})")


def reference_roll(path, offset, n_frames, pitch_shift=0):
    """A reference MIDI as a sustain-extended 88-key roll on the video's 25 fps frames."""
    pm = shift_pitch(load_midi(path), pitch_shift, path)
    return midi_to_roll(regrid(pm, shift=offset), sustain=True, n_frames=n_frames)


def audio_reference_roll(path, n_frames):
    """The notes basic-pitch hears in an audio recording of the performance (on the video's time line)
    as an 88-key roll: a reference for videos that have sound but no MIDI (about 0.75 onset F1 itself)."""
    from audeo_synth import transcribe
    return notes_to_roll(transcribe(path), n_frames=n_frames)


def roll_picture(path, pred, reference=None, metrics=None, title=""):
    """Piano-roll PNG: prediction alone, or reference and prediction side by side with metrics."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("prediction", pred)] if reference is None else [("reference", reference), ("prediction", pred)]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4), squeeze=False)
    seconds = len(pred) / FPS
    for ax, (name, roll) in zip(axes[0], panels):
        ax.imshow(roll.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                  extent=(0, seconds, 20.5, 108.5))
        ax.set(title=name, xlabel="time (s)", ylabel="MIDI pitch")
    if metrics:
        title += (f"\nframe F1 {metrics['frame_pooled_f1']:.3f} (sklearn samples F1 "
                  f"{metrics['frame_sklearn_f1']:.3f})   note onset F1 {metrics['note_onset_f1']:.3f}   "
                  f"onset+offset F1 {metrics['note_onset_offset_f1']:.3f}")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ----------------------------------------------------------------------------- the pipeline

def audeo(video, out, box=None, side="auto", reference=None, reference_audio=None,
          reference_offset=DEFAULTS["reference_offset"], reference_pitch_shift=DEFAULTS["reference_pitch_shift"],
          video2roll=DEFAULTS["video2roll"], roll2midi=DEFAULTS["roll2midi"], device=None,
          batch_size=DEFAULTS["batch_size"], velocity=DEFAULTS["velocity"], threshold=DEFAULTS["threshold"],
          onset_threshold=DEFAULTS["onset_threshold"], midi_threshold=DEFAULTS["midi_threshold"], soundfont=None):
    """Run the whole pipeline on one video; returns the metadata written to DIR/<name>.json."""
    from Midi_synth import render as synth_render
    from audeo_metrics import all_metrics
    from audeo_synth import find_synthesizer
    video, out = Path(video), Path(out)
    device = resolve_device(device)
    check_writable(out)
    synth = find_synthesizer(soundfont)                # fail early when no synthesizer exists
    name = video.stem
    box, far_side, how = resolve_box(video, box, SIDES[side])
    print(f"keyboard box {' '.join(map(str, box))} ({how}), {'far' if far_side else 'player'} side")
    outputs, hands, v2r_config = video_to_outputs(video, box, far_side, video2roll, device, batch_size)
    from Video2Roll_net import operating_point
    threshold, onset_threshold = operating_point(v2r_config, threshold, onset_threshold)
    probs = outputs[:, 0]
    onsets = outputs[:, 1] if v2r_config.is_sequence else None
    if str(roll2midi) != "none":
        roll = refine(probs, onsets, roll2midi, device, batch_size, midi_threshold, onset_threshold) > 0
    elif onsets is not None:
        roll = decode_roll(probs, onsets, threshold, onset_threshold) > 0
    else:
        roll = probs >= threshold
    duration = video_info(video).duration
    meta = dict(video=str(video), box=list(box), corners=getattr(box, "corners", None), far_side=far_side,
                box_source=how, frames=len(roll), fps=FPS, hand_frames=int(hands.sum()),
                video2roll=str(video2roll), roll2midi=str(roll2midi))
    with tempfile.TemporaryDirectory(dir=out, prefix=".audeo.") as tmp:
        tmp = Path(tmp)
        kwargs = {} if velocity is None else {"velocity": velocity}
        mid, wav, synth_name = synth_render(roll.astype(np.uint8), tmp / name, synth=synth, **kwargs)
        mux(video, wav, tmp / f"{name}.mp4", duration)
        ref, metrics = None, None
        if reference:
            ref = reference_roll(reference, reference_offset, len(roll), reference_pitch_shift)
            meta.update(reference=str(reference), reference_offset=reference_offset,
                        reference_pitch_shift=reference_pitch_shift)
        elif reference_audio:
            ref = audio_reference_roll(reference_audio, len(roll))
            meta.update(reference_audio=str(reference_audio), reference_transcriber="basic-pitch")
        if ref is not None:
            metrics = all_metrics(roll, ref)
            meta["metrics"] = metrics
        roll_picture(tmp / f"{name}_roll.png", roll, ref, metrics, title=name)
        meta["synthesizer"] = synth_name
        (tmp / f"{name}.json").write_text(json.dumps(meta, indent=1))
        outputs = [f"{name}.mid", f"{name}.wav", f"{name}.mp4", f"{name}_roll.png", f"{name}.json"]
        for f in outputs:
            os.replace(tmp / f, out / f)
    print(f"wrote {', '.join(str(out / f) for f in outputs[:4])} (audio: {synth_name})")
    if metrics:
        print(f"frame F1 {metrics['frame_pooled_f1']:.3f}  note onset F1 {metrics['note_onset_f1']:.3f}  "
              f"onset+offset F1 {metrics['note_onset_offset_f1']:.3f}")
    return meta


def main(argv=None):
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("video", help="silent piano video")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--box", type=int, nargs=4, metavar=("X1", "Y1", "X2", "Y2"), help="keyboard box (else detected)")
    p.add_argument("--side", choices=sorted(SIDES), default="auto",
                   help="camera side: player (bass on the image left) or far (beyond the keyboard); auto detects it")
    ref = p.add_mutually_exclusive_group()
    ref.add_argument("--reference", help="reference MIDI to score against")
    ref.add_argument("--reference-audio", help="score against the notes basic-pitch hears in this recording "
                                               "(e.g. the video's own sound, on the video's time line)")
    p.add_argument("--reference-offset", type=float, default=d["reference_offset"],
                   help="video time (s) at which the reference MIDI's time 0 falls")
    p.add_argument("--reference-pitch-shift", type=int, default=d["reference_pitch_shift"],
                   help="semitones added to the reference's notes (e.g. 12 for AI-Pianist's octave-low files)")
    p.add_argument("--video2roll", default=str(d["video2roll"]), help="Video2Roll checkpoint")
    p.add_argument("--roll2midi", default=str(d["roll2midi"]), help="Roll2Midi checkpoint, or 'none' to skip it")
    p.add_argument("--threshold", type=float, default=d["threshold"], help="Video2Roll frame threshold without Roll2Midi (default: the model's)")
    p.add_argument("--onset-threshold", type=float, default=d["onset_threshold"],
                   help="Video2Roll onset threshold (sequence models: notes start at onset peaks; default: the model's)")
    p.add_argument("--midi-threshold", type=float, default=d["midi_threshold"], help="Roll2Midi output threshold")
    p.add_argument("--velocity", type=int, default=d["velocity"], help="note velocity (default: Midi_synth's)")
    p.add_argument("--soundfont", help="sf2/sf3 soundfont (default: the best one installed)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    add_device_arg(p)
    audeo(**vars(p.parse_args(argv)))


if __name__ == "__main__":
    run(main)
