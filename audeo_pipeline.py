"""The whole pipeline on one video: Video2Roll -> Roll2Midi -> notes -> audio, the video with that audio,
a roll picture and the metrics against a reference (Audeo.py is its command line; `audeo` its one call).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from audeo_cli import resolve_device
from audeo_constants import FPS, MIDI_THRESHOLD, VIDEO2ROLL_MODEL
from audeo_io import AudeoError, check_writable, decode_roll, key_slice, notes_to_roll, reference_roll, sigmoid, to_88_keys
from audeo_video import SIDES, resolve_box, run_ffmpeg, video_crops, video_info

# No Roll2Midi by default: the shipped one was trained on the fast net's estimates and lowers the sequence
# net's note-onset F1 (demo clip 0.987 -> 0.933; real take 13/0/1 0.666 -> 0.556 with the first seq model); `--roll2midi` opts in.
DEFAULTS = dict(video2roll=VIDEO2ROLL_MODEL, roll2midi="none", batch_size=32,
                threshold=None, onset_threshold=None,            # None: the Video2Roll model's operating point
                midi_threshold=MIDI_THRESHOLD, velocity=None, reference_offset=0.0, reference_pitch_shift=0)


# ----------------------------------------------------------------------------- stages

def video_to_outputs(video, box, far_side, checkpoint, device, batch_size):
    """Video2Roll read as a stream: (probabilities (T, n_heads, 88) at 25 fps, hand flags (T,), config)."""
    from Video2Roll_net import load_model, video_outputs
    model, config = load_model(checkpoint, device)
    logits, hands = video_outputs(model, video_crops(video, box, far_side, desc="video2roll"), batch_size, device,
                                  source=video)
    return to_88_keys(sigmoid(logits)), hands, config


def video2roll_roll(outputs, config, threshold, onset_threshold):
    """Video2Roll's own binary roll (T, 88) from its probabilities (T, n_heads, 88): notes decoded from the
    onset and frame outputs for a sequence model, frames >= threshold otherwise."""
    if config.is_sequence:
        return decode_roll(outputs[:, 0], outputs[:, 1], threshold, onset_threshold) > 0
    return outputs[:, 0] >= threshold


def refine(probs, onsets, checkpoint, device, batch_size, threshold, onset_threshold):
    """Roll2Midi's binary roll (T, 88) from Video2Roll probabilities (T, 88) (and onsets, for a generator
    that takes them)."""
    from Roll2Midi_net import load_generator, refine as refine_roll
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
    why = run_ffmpeg("-i", video, "-i", wav, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "libx264", "-preset", "veryfast",
                     "-crf", "20", "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:a", "aac",
                     "-b:a", "128k", "-t", f"{duration:.3f}", out_mp4)
    if why:
        raise AudeoError(f"{video}: writing it with the generated audio failed ({why})")


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
    from audeo_metrics import all_metrics
    from audeo_synth import find_synthesizer, render as synth_render
    from Video2Roll_net import operating_point
    video, out = Path(video), Path(out)
    device = resolve_device(device)
    check_writable(out)
    synth = find_synthesizer(soundfont)                # fail early when no synthesizer exists
    name = video.stem
    box, far_side, how = resolve_box(video, box, SIDES[side])
    print(f"keyboard box {' '.join(map(str, box))} ({how}), {'far' if far_side else 'player'} side")
    outputs, hands, v2r_config = video_to_outputs(video, box, far_side, video2roll, device, batch_size)
    threshold, onset_threshold = operating_point(v2r_config, threshold, onset_threshold)
    probs = outputs[:, 0]
    onsets = outputs[:, 1] if v2r_config.is_sequence else None
    if str(roll2midi) != "none":
        roll = refine(probs, onsets, roll2midi, device, batch_size, midi_threshold, onset_threshold) > 0
    else:
        roll = video2roll_roll(outputs, v2r_config, threshold, onset_threshold)
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
