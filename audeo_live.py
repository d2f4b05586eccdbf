"""Live Audeo: frames from a video played at its own rate or from a camera -> notes and audio as they come.

The same stream as a whole-file run (audeo_stream.iter_roll, then audeo_stream.RollSynth), so the MIDI and
audio equal Audeo.py's on the same frames. The network takes each frame as soon as it comes while it keeps
up, and up to LIVE_MAX_BATCH frames at once while it catches up (a backlog: a slow net, a busy machine).
Frame t's notes and sound come out once the stream has seen its look-ahead (audeo_stream.stream_lookahead:
Video2Roll's frame stack and temporal layer, the onset decoder's peak and re-strike check; with Roll2Midi its
whole 4 s window) plus the compute time. Latency is measured per frame: wall time from the frame's arrival to its audio being written.
The keyboard is found on the first second of frames, and found again (in a thread of its own, the stream
going on with the old box meanwhile) when the camera moves: BoxTracker. The reference keyboard starts from
the first REFERENCE_INIT_FRAMES (2 s), which the stream holds once, at its start.

Out (DIR/<name>.*): .wav grows as frames arrive (its header is rewritten every second), .mid is rewritten
atomically every second with the notes so far, .json (box, its changes, look-ahead, latency) at the end. With `play`,
the notes also go to the sound card through FluidSynth's audio driver.
"""
from __future__ import annotations

import json
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import chain, islice
from pathlib import Path

import numpy as np

from audeo_constants import (DEFAULT_VELOCITY, FPS, LIVE_MAX_BATCH, LIVE_MOVE_FRACTION, LIVE_RECHECK_FRAMES,
                              LIVE_VIEW_WIDTH, LIVE_WARMUP_FRAMES, MIDI_THRESHOLD, PRECISIONS, SAMPLE_RATE,
                              VIDEO2ROLL_MODEL)
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


def view(frames):
    """The median of `frames`, grey and shrunk to LIVE_VIEW_WIDTH (float32): what the camera looks at."""
    import cv2
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if f.ndim == 3 else f for f in frames]
    h, w = grey[0].shape
    small = [cv2.resize(g, (LIVE_VIEW_WIDTH, max(1, round(h * LIVE_VIEW_WIDTH / w))), interpolation=cv2.INTER_AREA)
             for g in grey]
    return np.median(np.stack(small), axis=0).astype(np.float32)


def view_shift(before, after, width):
    """How far (px of a frame `width` wide) the picture moved from view `before` to view `after`."""
    import cv2
    window = cv2.createHanningWindow(before.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(before, after, window)
    return float(np.hypot(dx, dy)) * width / before.shape[1]


class BoxTracker:
    """The keyboard box of a live view. Every LIVE_RECHECK_FRAMES the frame is compared with the view the
    box was found on; moved by more than LIVE_MOVE_FRACTION of the box width, the keyboard is detected
    again on the last second of frames in a worker thread (the stream keeps the old box until it answers;
    a failed detection keeps it too). A given box is never changed. `changes` records each switch."""

    def __init__(self, frames, box, far_side, how, side, source):
        self.box, self.far_side, self.side, self.source = box, far_side, side, source
        self.follow = how == "detected"
        self.recent = deque(frames, maxlen=FPS)
        self.reference, self.width = view(frames), frames[0].shape[1]
        self.pending, self.changes, self.pool = None, [], None

    def update(self, t, frame):
        """The box for frame `t` (the stream's frame index)."""
        if not self.follow:
            return self.box
        self.recent.append(frame)
        if self.pending is not None and self.pending.done():
            self._switch(t, self.pending)
        elif self.pending is None and t % LIVE_RECHECK_FRAMES == 0:
            moved = view_shift(self.reference, view([frame]), self.width)
            if moved > LIVE_MOVE_FRACTION * (self.box[2] - self.box[0]):
                self.pool = self.pool or ThreadPoolExecutor(1)
                frames = list(self.recent)
                self.pending = self.pool.submit(find_box, frames, None, self.side, self.source)
                self.pending.frames, self.pending.moved = frames, moved
        return self.box

    def _switch(self, t, done):
        self.pending = None
        try:
            box, far_side, _ = done.result()
        except AudeoError as e:
            print(f"{self.source}: the view moved but no keyboard was found again; keeping the box ({e})")
            return
        self.reference = view(done.frames)
        if max(abs(a - b) for a, b in zip(box, self.box)) > 0:
            self.box, self.far_side = box, far_side
            self.changes.append(dict(frame=t, box=list(box), corners=box.corners, moved_px=round(done.moved, 1)))
            print(f"{self.source}: the view moved {done.moved:.0f} px; keyboard box {' '.join(map(str, box))} "
                  f"from frame {t}")

    def close(self):
        if self.pool:
            self.pool.shutdown(wait=False, cancel_futures=True)


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
         threshold=None, onset_threshold=None, midi_threshold=MIDI_THRESHOLD, velocity=None, soundfont=None, play=False,
         precision=PRECISIONS[0]):
    """Run Audeo on a live `source` of (frame, arrival time) pairs (file_source, camera_source); returns the
    metadata written to DIR/<name>.json. Ends when the source does, or on Ctrl-C."""
    from audeo_cli import resolve_device
    from audeo_pipeline import load_stages, thresholds
    from audeo_stream import RollSynth, background, iter_roll, stream_lookahead
    from audeo_synth import find_synthesizer
    out, device = Path(out), resolve_device(device)
    check_writable(out)
    synth = find_synthesizer(soundfont)
    from Video2Roll_net import autocast_dtype
    model, refiner = load_stages(video2roll, roll2midi, device, precision)
    threshold, onset_threshold = thresholds(model, refiner, threshold, onset_threshold, midi_threshold)
    frames = background(source)
    first = list(islice(frames, FPS))
    if not first:
        raise AudeoError(f"{name}: no frames")
    box, far_side, how = find_box([f for f, _ in first], box, side, name)
    print(f"keyboard box {' '.join(map(str, box))} ({how}), {'far' if far_side else 'player'} side; live")
    tracker, arrivals = BoxTracker([f for f, _ in first], box, far_side, how, side, name), deque()

    def crops():
        for t, (frame, arrival) in enumerate(chain(first, frames)):
            arrivals.append(arrival)
            yield crop_keyboard(frame, tracker.update(t, frame), tracker.far_side)

    lookahead = stream_lookahead(model.config, refiner[1] if refiner else None)
    roll_synth = RollSynth(synth, velocity or DEFAULT_VELOCITY, player=FluidPlayer(synth) if play else None)
    outputs, latencies, started = GrowingOutputs(out, name), [], time.monotonic()
    try:
        rows = iter_roll(crops(), model, device, LIVE_MAX_BATCH, threshold, onset_threshold, refiner,
                         chunk=LIVE_MAX_BATCH, idle=frames.idle, dtype=autocast_dtype(precision))
        for t, row in enumerate(rows):
            outputs.write(roll_synth.frame(row), roll_synth, t + 1)
            latencies.append(time.monotonic() - arrivals.popleft())
    except KeyboardInterrupt:                          # the way to stop a camera: keep what was heard
        print("stopped")
    finally:
        tracker.close()
    outputs.close(roll_synth, roll_synth.finish())
    meta = dict(source=name, box=list(box), corners=getattr(box, "corners", None), far_side=far_side,
                box_source=how, box_changes=tracker.changes, frames=len(latencies), fps=FPS, video2roll=str(video2roll), roll2midi=str(roll2midi),
                precision=precision, synthesizer=synth.description, lookahead_frames=lookahead, lookahead_ms=lookahead * 1000 / FPS,
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
