"""The whole pipeline on one video: Video2Roll -> Roll2Midi -> notes -> audio, the video with that audio,
a roll picture, sheet music, optionally the key-overlay video, and the metrics against a reference
(Audeo.py is its command line; `audeo` its one call, which reports its STAGES to a `progress` callback).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from audeo_cli import resolve_device
from audeo_constants import FPS, MIDI_THRESHOLD, PICTURE_MAX_FRAMES, PRECISIONS, VIDEO2ROLL_MODEL
from audeo_io import AudeoError, check_writable, load_midi, midi_notes, notes_to_roll, reference_roll
from audeo_video import SIDES, resolve_box, run_ffmpeg, video_crops, video_info

# No Roll2Midi by default: the shipped one was trained on the fast net's estimates and lowers the sequence
# net's note-onset F1 (demo clip 0.987 -> 0.933; real take 13/0/1 0.666 -> 0.556 with the first seq model); `--roll2midi` opts in.
DEFAULTS = dict(video2roll=VIDEO2ROLL_MODEL, roll2midi="none", batch_size=32, precision=PRECISIONS[0],
                threshold=None, onset_threshold=None,            # None: the Video2Roll model's operating point
                midi_threshold=MIDI_THRESHOLD, velocity=None, reference_offset=0.0, reference_pitch_shift=0)

# What `audeo(..., progress=f)` reports, in this order: f(stage, done, total). video2roll and overlay count
# frames (total: the container's frame count, an estimate until the last call, where done == total); the
# others go (0, 1) then (1, 1); overlay only with overlay=True; "done" (1, 1) once every file is in place.
STAGES = ("detect", "video2roll", "synthesis", "mux", "overlay", "sheet", "done")


# ----------------------------------------------------------------------------- stages

def load_stages(video2roll, roll2midi, device, precision=DEFAULTS["precision"]):
    """(Video2Roll model, Roll2Midi (generator, config) or None) from their checkpoints ('none': no Roll2Midi);
    `precision` is Video2Roll's (load_model)."""
    from Video2Roll_net import load_model
    model, config = load_model(video2roll, device, precision=precision)
    if str(roll2midi) == "none":
        return model, None
    from Roll2Midi_net import load_generator
    generator, r2m = load_generator(roll2midi, device)
    if r2m.in_channels == 2 and not config.is_sequence:
        raise AudeoError(f"{roll2midi}: this Roll2Midi needs a Video2Roll with an onset output")
    return model, (generator, r2m)


def thresholds(model, refiner, threshold, onset_threshold, midi_threshold):
    """(threshold of the roll's last stage, onset threshold): Roll2Midi's output threshold with a
    Roll2Midi, else the Video2Roll frame threshold; None takes the Video2Roll model's operating point."""
    from Video2Roll_net import operating_point
    threshold, onset_threshold = operating_point(model.config, threshold, onset_threshold)
    return (midi_threshold if refiner else threshold), onset_threshold


def video_roll(crops, model, refiner, device, batch_size, threshold, onset_threshold, source="video", report=None,
               total=0, dtype=None):
    """(roll uint8 (T, 88), hand flags bool (T,)) of a stream of crops through audeo_stream.iter_roll;
    the crops are decoded in a thread of their own; `report(done, total)` follows the rows; `dtype`: Video2Roll's
    autocast (None or torch.bfloat16). A stream with
    no frames is an error naming `source`."""
    from audeo_stream import background, counted, iter_roll
    hands = []
    rows = iter_roll(background(crops), model, device, batch_size, threshold, onset_threshold, refiner, hands,
                     dtype=dtype)
    rows = list(counted(rows, report, total))
    if not rows:
        raise AudeoError(f"{source}: no frames could be decoded")
    return np.stack(rows), np.array(hands)


H264_FOURCCS = ("avc1", "h264", "H264", "x264", "X264")


def mux(video, wav, out_mp4, info):
    """The input video's picture with `wav` as its sound, cut to the video's length (`info`: its
    video_info): H.264 picture copied as it is (no re-encoding: most of the mux time otherwise), any
    other codec, or a copy ffmpeg refuses, re-encoded to H.264."""
    audio = ("-i", wav, "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "128k", "-t", f"{info.duration:.3f}")
    why = run_ffmpeg("-i", video, *audio, "-c:v", "copy", out_mp4) if info.codec in H264_FOURCCS else "not H.264"
    if why:
        why = run_ffmpeg("-i", video, *audio, "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                         "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", out_mp4)
    if why:
        raise AudeoError(f"{video}: writing it with the generated audio failed ({why})")


def audio_reference_roll(path, n_frames):
    """The notes basic-pitch hears in an audio recording of the performance (on the video's time line)
    as an 88-key roll: a reference for videos that have sound but no MIDI (about 0.75 onset F1 itself)."""
    from audeo_synth import transcribe
    return notes_to_roll(transcribe(path), n_frames=n_frames)


def pooled_columns(roll, most):
    """`roll` (T, K) with runs of frames max-pooled so that at most `most` are left: an hour-long roll
    drawn in the memory of a short one, every note still visible."""
    step = -(-len(roll) // most)
    if step <= 1:
        return roll
    padded = np.zeros((-(-len(roll) // step) * step, roll.shape[1]), roll.dtype)
    padded[:len(roll)] = roll
    return padded.reshape(-1, step, roll.shape[1]).max(axis=1)


def roll_picture(path, pred, reference=None, metrics=None, title=""):
    """Piano-roll PNG: prediction alone, or reference and prediction side by side with metrics."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("prediction", pred)] if reference is None else [("reference", reference), ("prediction", pred)]
    panels = [(name, pooled_columns(roll, PICTURE_MAX_FRAMES)) for name, roll in panels]
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

def output_names(name, overlay=False, preview=False):
    """A video's outputs, in the order they are moved into place: the json last, so it marks a complete set
    (`overlay`: the key-overlay video; `preview`: the sheet's SVG, written only where verovio is)."""
    suffixes = [".mid", ".wav", ".mp4", "_keys.mp4" * overlay, "_roll.png", ".musicxml", "_sheet.svg" * preview,
                ".json"]
    return [f"{name}{suffix}" for suffix in suffixes if suffix]


def is_complete(video, out, overlay=False):
    """Every output of `video` is in `out` (the sheet's optional preview aside)."""
    return all((Path(out) / f).is_file() for f in output_names(Path(video).stem, overlay))


@contextlib.contextmanager
def stage(progress, name):
    """A stage that reports (0, 1) as it starts and (1, 1) when it is done."""
    progress(name, 0, 1)
    yield
    progress(name, 1, 1)


def frames_of(progress, name):
    """A report(done, total) for a stage that counts frames."""
    return lambda done, total: progress(name, done, total)


def key_overlay(video, roll, box, far_side, wav, out_mp4, progress):
    """DIR/<name>_keys.mp4: the key-overlay video (audeo_overlay), then the generated sound muxed in."""
    from audeo_overlay import write_overlay
    silent = out_mp4.with_name(f".{out_mp4.stem}.silent.mp4")
    write_overlay(video, roll, box, far_side, silent, report=frames_of(progress, "overlay"))
    mux(silent, wav, out_mp4, video_info(silent))
    silent.unlink()


def sheet_music(mid, out_xml, out_svg, title):
    """DIR/<name>.musicxml from the generated MIDI's notes, and its first system as SVG where verovio is
    installed (else one line says why not); returns the sheet's tempo, metre, grid and key."""
    from audeo_sheet import preview, write_sheet
    sheet = write_sheet(midi_notes(load_midi(mid), sustain=False), out_xml, title=title)
    if sheet["cut_at"] is not None:
        print(f"sheet music: the notes of the first {sheet['cut_at']:g} s (the MIDI and audio have all of them)")
    skipped = preview(out_xml, out_svg)
    if skipped:
        print(f"sheet preview skipped: {skipped}")
    return sheet


def audeo_many(videos, out, **kwargs):
    """`audeo` on every video of audeo_cli.video_list(videos) (files and folders; under torchrun this
    rank's share), skipping those whose outputs are complete, so a killed batch resumes. A failure is one
    line and the batch goes on; it ends with an error naming the failures."""
    from audeo_cli import run_each, video_list
    todo = video_list(videos)
    stems = [v.stem for v in todo]
    if len(set(stems)) < len(stems):
        clash = sorted({s for s in stems if stems.count(s) > 1})
        raise AudeoError(f"{out}: several videos would write the same outputs ({', '.join(clash)})")
    done = [v for v in todo if is_complete(v, out, kwargs.get("overlay", False))]
    if done:
        print(f"skipping {len(done)} video(s) whose outputs are complete in {out}")
    todo = [v for v in todo if v not in done]
    run_each(todo, lambda v: audeo(v, out, **kwargs))
    return todo


def score_against(roll, meta, reference=None, reference_audio=None, offset=0.0, pitch_shift=0):
    """(reference roll, metrics) against a MIDI file or the notes heard in a recording, recorded in `meta`;
    (None, None) without either."""
    from audeo_metrics import all_metrics
    if reference:
        ref = reference_roll(reference, offset, len(roll), pitch_shift)
        meta.update(reference=str(reference), reference_offset=offset, reference_pitch_shift=pitch_shift)
    elif reference_audio:
        ref = audio_reference_roll(reference_audio, len(roll))
        meta.update(reference_audio=str(reference_audio), reference_transcriber="basic-pitch")
    else:
        return None, None
    meta["metrics"] = all_metrics(roll, ref)
    return ref, meta["metrics"]


def audeo(video, out, box=None, side="auto", reference=None, reference_audio=None,
          reference_offset=DEFAULTS["reference_offset"], reference_pitch_shift=DEFAULTS["reference_pitch_shift"],
          video2roll=DEFAULTS["video2roll"], roll2midi=DEFAULTS["roll2midi"], device=None,
          batch_size=DEFAULTS["batch_size"], velocity=DEFAULTS["velocity"], threshold=DEFAULTS["threshold"],
          onset_threshold=DEFAULTS["onset_threshold"], midi_threshold=DEFAULTS["midi_threshold"], soundfont=None,
          overlay=False, progress=None, precision=DEFAULTS["precision"]):
    """Run the whole pipeline on one video; returns the metadata written to DIR/<name>.json. `overlay` also
    writes DIR/<name>_keys.mp4; `progress(stage, done, total)` is told each of STAGES as it advances (an
    exception it raises stops the run, and nothing is left in DIR)."""
    from audeo_synth import find_synthesizer, render as synth_render
    progress = progress or (lambda stage, done, total: None)
    video, out = Path(video), Path(out)
    device = resolve_device(device)
    check_writable(out)
    synth = find_synthesizer(soundfont)                # fail early when no synthesizer exists
    name = video.stem
    with stage(progress, "detect"):
        box, far_side, how = resolve_box(video, box, SIDES[side])
    print(f"keyboard box {' '.join(map(str, box))} ({how}), {'far' if far_side else 'player'} side")
    info = video_info(video)
    total = int(info.duration * FPS)
    progress("video2roll", 0, total)                   # before the models load
    from Video2Roll_net import autocast_dtype
    model, refiner = load_stages(video2roll, roll2midi, device, precision)
    threshold, onset_threshold = thresholds(model, refiner, threshold, onset_threshold, midi_threshold)
    roll, hands = video_roll(video_crops(video, box, far_side, desc="video2roll"), model, refiner, device,
                             batch_size, threshold, onset_threshold, source=video,
                             report=frames_of(progress, "video2roll"), total=total, dtype=autocast_dtype(precision))
    meta = dict(video=str(video), box=list(box), corners=getattr(box, "corners", None), far_side=far_side,
                box_source=how, frames=len(roll), fps=FPS, hand_frames=int(hands.sum()),
                video2roll=str(video2roll), roll2midi=str(roll2midi), precision=precision)
    with tempfile.TemporaryDirectory(dir=out, prefix=".audeo.") as tmp:
        tmp = Path(tmp)
        kwargs = {} if velocity is None else {"velocity": velocity}
        with stage(progress, "synthesis"):
            mid, wav, meta["synthesizer"] = synth_render(roll, tmp / name, synth=synth, **kwargs)
        with stage(progress, "mux"):
            mux(video, wav, tmp / f"{name}.mp4", info)
        if overlay:
            key_overlay(video, roll, box, far_side, wav, tmp / f"{name}_keys.mp4", progress)
        ref, metrics = score_against(roll, meta, reference, reference_audio, reference_offset, reference_pitch_shift)
        roll_picture(tmp / f"{name}_roll.png", roll, ref, metrics, title=name)
        with stage(progress, "sheet"):
            meta["sheet"] = sheet_music(mid, tmp / f"{name}.musicxml", tmp / f"{name}_sheet.svg", name)
        (tmp / f"{name}.json").write_text(json.dumps(meta, indent=1))
        outputs = output_names(name, overlay, preview=(tmp / f"{name}_sheet.svg").is_file())
        for f in outputs:
            os.replace(tmp / f, out / f)
    progress("done", 1, 1)
    print(f"wrote {', '.join(str(out / f) for f in outputs[:-1])} (audio: {meta['synthesizer']})")
    if metrics:
        print(f"frame F1 {metrics['frame_pooled_f1']:.3f}  note onset F1 {metrics['note_onset_f1']:.3f}  "
              f"onset+offset F1 {metrics['note_onset_offset_f1']:.3f}")
    return meta
