"""Live Audeo: frames from a video played at its own rate or from a camera -> notes and audio as they come.

The same stream as a whole-file run (audeo_stream.iter_roll with batch 1 and chunk 1, then audeo_stream.RollSynth),
so the MIDI and audio equal Audeo.py's on the same frames; frame t's notes and sound come out once the
stream has seen its look-ahead (audeo_stream.stream_lookahead: Video2Roll's frame stack and temporal
layer, the onset decoder's peak and re-strike check; with Roll2Midi its whole 4 s window) plus the compute
time. Latency is measured per frame: wall time from the frame's arrival to its audio being written.
The keyboard is found on the first second of frames; the reference keyboard starts from the first
REFERENCE_INIT_FRAMES (2 s), which the stream holds once, at its start.

Out (DIR/<name>.*): .wav grows as frames arrive (its header is rewritten every second), .mid is rewritten
atomically every second with the notes so far, .json (box, look-ahead, latency) at the end. With `play`,
the notes also go to the sound card through FluidSynth's audio driver.
"""
from __future__ import annotations

import json
import math
import time
from collections import deque
from itertools import chain, islice
from pathlib import Path

import numpy as np

from audeo_constants import DEFAULT_VELOCITY, FPS, LIVE_WARMUP_FRAMES, MIDI_THRESHOLD, SAMPLE_RATE, VIDEO2ROLL_MODEL
from audeo_io import AudeoError, atomic_path, check_writable, notes_to_pretty_midi, write_midi
from audeo_video import SIDES, KeyboardBox, check_box, crop_keyboard, iter_resampled, video_info

_SFC_UPDATE_HEADER_NOW = 0x1060      # libsndfile command: rewrite the header so a growing wav stays readable


# ----------------------------------------------------------------------------- frame sources: (frame, arrival)

def file_source(path, realtime=True):
    """A video's frames at 25 fps with the wall time each is due when played at its own rate (realtime),
    or as fast as they decode."""
    video_info(path)                                  # a bad file fails here, before anything starts
    start = time.monotonic()
    for t, frame in enumerate(iter_resampled(path)):
        due = start + t / FPS
        if realtime:
            time.sleep(max(0.0, due - time.monotonic()))
        yield frame, (due if realtime else time.monotonic())


def camera_source(index, seconds=None, open_capture=None):
    """Frames of an OpenCV capture device at 25 fps (the latest frame at each 40 ms tick of its own
    clock), until `seconds` have passed or the device stops. `open_capture` (default cv2.VideoCapture)
    lets tests hand in a fake device."""
    import cv2
    cap = (open_capture or cv2.VideoCapture)(index)
    if not cap.isOpened():
        raise AudeoError(f"camera {index}: cannot be opened")
    limit = math.inf if seconds is None else int(seconds * FPS)      # whole frames within `seconds`
    start, tick = time.monotonic(), 0
    try:
        while tick < limit:
            ok, frame = cap.read()
            now = time.monotonic()
            if not ok:
                if tick == 0:
                    raise AudeoError(f"camera {index}: gives no frames")
                return
            while tick <= (now - start) * FPS and tick < limit:
                yield frame, now
                tick += 1
    finally:
        cap.release()


# ----------------------------------------------------------------------------- outputs

class FluidPlayer:
    """The notes to the sound card, through FluidSynth's own audio driver."""

    def __init__(self, synth):
        from audeo_constants import FLUID_GAIN
        from audeo_io import quiet_import
        fluidsynth = quiet_import("fluidsynth")
        self.fs = fluidsynth.Synth(gain=FLUID_GAIN, samplerate=float(SAMPLE_RATE))
        try:
            self.fs.start()
        except Exception as e:                        # no driver, no device
            raise AudeoError(f"--play: FluidSynth cannot open the sound card ({e})") from None
        self.fs.program_select(0, self.fs.sfload(str(synth.soundfont)), 0, 0)

    def play(self, offs, ons, velocity):
        for p in offs:
            self.fs.noteoff(0, int(p))
        for p in ons:
            self.fs.noteon(0, int(p), int(velocity))


class GrowingOutputs:
    """DIR/<name>.wav written frame by frame and DIR/<name>.mid rewritten every second."""

    def __init__(self, out, name):
        import soundfile
        self.mid, self.wav_path = out / f"{name}.mid", out / f"{name}.wav"
        self.wav = soundfile.SoundFile(self.wav_path, "w", SAMPLE_RATE, 1, "PCM_16", format="WAV")

    def write(self, audio, synth, t):
        self.wav.write(np.clip(audio, -1, 1))
        if t % FPS == 0:
            self.flush(synth)

    def flush(self, synth):
        import soundfile
        soundfile._snd.sf_command(self.wav._file, _SFC_UPDATE_HEADER_NOW, soundfile._ffi.NULL, 0)
        write_midi(notes_to_pretty_midi(synth.current_notes()), self.mid)

    def close(self, synth, tail):
        self.wav.write(np.clip(tail, -1, 1))
        self.wav.close()
        write_midi(notes_to_pretty_midi(synth.current_notes()), self.mid)


# ----------------------------------------------------------------------------- the live run

def find_box(frames, box, side, source):
    """(box, far_side, how) from the first frames: the given box (checked), else audeo_keyboard's."""
    far = SIDES[side]
    if box is not None:
        h, w = frames[0].shape[:2]
        return check_box(box, w, h, source), bool(far), "given"
    from audeo_keyboard import detect_keyboard
    found = detect_keyboard(np.stack(frames), source=source)
    return KeyboardBox(found.box, found.corners), found.far_side if far is None else bool(far), "detected"


def latency_summary(latencies):
    """Per-frame latencies (s) in ms: median, 95th percentile and max of the steady state, the frames after
    LIVE_WARMUP_FRAMES (the reference keyboard's 2 s wait and the backlog it leaves), whose max is given
    apart; a run shorter than that has only a start-up (steady False, figures over all its frames)."""
    ms = np.asarray(latencies) * 1000
    if not len(ms):
        return None
    steady = len(ms) > LIVE_WARMUP_FRAMES
    kept = ms[LIVE_WARMUP_FRAMES:] if steady else ms
    return dict(median_ms=float(np.median(kept)), p95_ms=float(np.percentile(kept, 95)), max_ms=float(kept.max()),
                frames=int(len(kept)), steady=steady, warmup_frames=LIVE_WARMUP_FRAMES,
                warmup_max_ms=float(ms[:LIVE_WARMUP_FRAMES].max()))


def live(source, out, name, box=None, side="auto", video2roll=VIDEO2ROLL_MODEL, roll2midi="none", device=None,
         threshold=None, onset_threshold=None, midi_threshold=MIDI_THRESHOLD, velocity=None, soundfont=None, play=False):
    """Run Audeo on a live `source` of (frame, arrival time) pairs (file_source, camera_source); returns the
    metadata written to DIR/<name>.json. Ends when the source does, or on Ctrl-C."""
    from audeo_cli import resolve_device
    from audeo_pipeline import load_stages, thresholds
    from audeo_stream import RollSynth, background, iter_roll, stream_lookahead
    from audeo_synth import find_synthesizer
    out, device = Path(out), resolve_device(device)
    check_writable(out)
    synth = find_synthesizer(soundfont)
    model, refiner = load_stages(video2roll, roll2midi, device)
    threshold, onset_threshold = thresholds(model, refiner, threshold, onset_threshold, midi_threshold)
    frames = background(source)
    first = list(islice(frames, FPS))
    if not first:
        raise AudeoError(f"{name}: no frames")
    box, far_side, how = find_box([f for f, _ in first], box, side, name)
    print(f"keyboard box {' '.join(map(str, box))} ({how}), {'far' if far_side else 'player'} side; live")
    arrivals = deque()

    def crops():
        for frame, arrival in chain(first, frames):
            arrivals.append(arrival)
            yield crop_keyboard(frame, box, far_side)

    lookahead = stream_lookahead(model.config, refiner[1] if refiner else None)
    roll_synth = RollSynth(synth, velocity or DEFAULT_VELOCITY, player=FluidPlayer(synth) if play else None)
    outputs, latencies, started = GrowingOutputs(out, name), [], time.monotonic()
    try:
        for t, row in enumerate(iter_roll(crops(), model, device, 1, threshold, onset_threshold, refiner, chunk=1)):
            outputs.write(roll_synth.frame(row), roll_synth, t + 1)
            latencies.append(time.monotonic() - arrivals.popleft())
    except KeyboardInterrupt:                          # the way to stop a camera: keep what was heard
        print("stopped")
    outputs.close(roll_synth, roll_synth.finish())
    meta = dict(source=name, box=list(box), corners=getattr(box, "corners", None), far_side=far_side,
                box_source=how, frames=len(latencies), fps=FPS, video2roll=str(video2roll), roll2midi=str(roll2midi),
                synthesizer=synth.description, lookahead_frames=lookahead, lookahead_ms=lookahead * 1000 / FPS,
                latency=latency_summary(latencies), seconds=time.monotonic() - started)
    with atomic_path(out / f"{name}.json") as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=1))
    print(f"wrote {outputs.mid} and {outputs.wav_path}: {len(latencies)} frames, look-ahead {lookahead} frames "
          f"({meta['lookahead_ms']:.0f} ms){latency_text(meta['latency'])}")
    return meta


def latency_text(lat):
    if lat is None:
        return ""
    return (f", latency{'' if lat['steady'] else ' (start-up only)'} median {lat['median_ms']:.0f} ms, "
            f"p95 {lat['p95_ms']:.0f} ms, max {lat['max_ms']:.0f} ms")
