"""The pipeline as a stream: keyboard crops in, settled roll rows out, one frame at a time, in flat memory.

Whole-file runs (Audeo.py) and live runs (Audeo.py --live) go through the same chain, so they give the
same roll, MIDI and audio:
  crops -> Video2Roll (Video2Roll_net.iter_outputs: its own look-ahead, config.lookahead frames)
        -> Roll2Midi, optional (non-overlapping windows of its config.frames, as Roll2Midi_net.refine_probs)
        -> note decoding (OnsetFrameDecoder: exactly audeo_io.decode_roll, DECODER_LAG frames behind)
        -> roll rows (T, 88) -> notes and audio (RollSynth: the events of each frame, then its samples).
`background` runs a producer (the decoder, a camera) in its own thread so the network never waits on it.
"""
from __future__ import annotations

import queue
import threading
from collections import deque

import numpy as np

from audeo_constants import FPS, MIDI_LOW, N_KEYS, PROGRESS_EVERY, RELEASE_SECONDS, SAMPLE_RATE
from audeo_io import key_slice, sigmoid, to_88_keys

DECODER_LAG = 2          # decode_roll settles frame t once onsets t+1 (its peak) and t+2 (a re-strike gap) exist
_END = object()


class _Failed:
    def __init__(self, error):
        self.error = error


class background:
    """Iterate `iterable` in a daemon thread, `maxsize` items ahead; its exceptions re-raise here.
    `idle()` tells whether no item is waiting (a consumer that batches runs what it has then)."""

    def __init__(self, iterable, maxsize=64):
        self.queue = queue.Queue(maxsize)
        threading.Thread(target=self._produce, args=(iterable,), daemon=True).start()

    def _produce(self, iterable):
        try:
            for item in iterable:
                self.queue.put(item)
        except BaseException as e:                       # handed to the consumer
            self.queue.put(_Failed(e))
        self.queue.put(_END)

    def idle(self):
        return self.queue.empty()

    def __iter__(self):
        while (item := self.queue.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item


def counted(items, report=None, total=0):
    """Yield `items`, telling `report(done, total)` at the start, every PROGRESS_EVERY items and at the end
    (then total = done: a container's frame count is only an estimate, and never falls below done)."""
    if report is None:
        yield from items
        return
    done = 0
    report(0, total)
    for item in items:
        yield item
        done += 1
        if done % PROGRESS_EVERY == 0:
            report(done, max(total, done))
    report(done, done)


def _peaks(before, now, after, threshold):
    return (now >= threshold) & (now >= before) & (now > after)


class OnsetFrameDecoder:
    """audeo_io.decode_roll (without orphans) one frame at a time.

    push(frame probabilities (K,), onset probabilities (K,)) returns the rows it has settled (uint8
    (K,), DECODER_LAG frames behind); finish() returns the rest. Together they equal decode_roll on the
    whole sequence: a note starts at an onset peak and holds while the frame output stays on, and the
    frame before a re-strike of a held key is off."""

    def __init__(self, frame_threshold, onset_threshold):
        self.frame_threshold, self.onset_threshold = frame_threshold, onset_threshold
        self.pending = deque()                  # (frame on, onset) of frames not yet settled
        self.before = None                      # onset of the frame before pending[0]
        self.held = None                        # a note of this key is sounding

    def push(self, frame_probs, onset_probs):
        frame_on = np.asarray(frame_probs) >= self.frame_threshold
        if self.before is None:
            self.before = np.full(frame_on.shape, -1, np.float32)
            self.held = np.zeros(frame_on.shape, bool)
        self.pending.append((frame_on, np.asarray(onset_probs, np.float32)))
        return [self._settle() for _ in range(len(self.pending) - DECODER_LAG)]

    def finish(self):
        return [self._settle() for _ in range(len(self.pending))]

    def _settle(self):
        p, thr = self.pending, self.onset_threshold
        frame_on, onset = p[0]
        none = np.full(onset.shape, -1, np.float32)
        after = p[1][1] if len(p) > 1 else none
        peak = _peaks(self.before, onset, after, thr)
        peak_next = (_peaks(onset, after, p[2][1] if len(p) > 2 else none, thr) if len(p) > 1
                     else np.zeros_like(peak))
        row = peak | (self.held & frame_on & ~peak_next)
        self.held = peak | (self.held & frame_on)
        self.before = onset
        p.popleft()
        return row.astype(np.uint8)


def iter_refined(rows, generator, device, frames):
    """Roll2Midi over a stream of (T, K[, C]) input rows: the generator's output rows (K,), computed one
    non-overlapping `frames`-long window at a time (the last zero-padded), as refine_probs does."""
    from Roll2Midi_net import refine_probs
    window = []
    for row in rows:
        window.append(row)
        if len(window) == frames:
            yield from refine_probs(generator, np.stack(window), device, 1, frames)
            window = []
    if window:
        yield from refine_probs(generator, np.stack(window), device, 1, frames)


def iter_roll(crops, model, device, batch_size, threshold, onset_threshold, refiner=None, hands=None, chunk=200,
              idle=None, dtype=None):
    """Settled 88-key roll rows (uint8 (88,)) for a stream of keyboard crops.

    `model` is a loaded Video2Roll; `refiner` (generator, config) a loaded Roll2Midi or None: without it
    a sequence model's notes are decoded from its onset and frame outputs, a frame model's roll is its
    output >= threshold; with it, from the generator's output (and Video2Roll's onsets, for a generator
    that takes them) >= threshold. `hands`, a list, collects the per-frame hand flags. `batch_size` frames
    go through the encoder at once and the temporal layers run every `chunk` frames: 1 and 1 for the least
    latency, larger for speed; with `idle` (a callable: no input waiting, e.g. background.idle) both also run
    on what they have whenever the input is idle, so a live stream goes frame by frame while it keeps up and in
    batches of up to `batch_size` while it catches up (the rows are the same either way). `dtype`: Video2Roll's
    autocast (iter_outputs)."""
    from Video2Roll_net import iter_outputs
    config = model.config
    sequence = config.is_sequence

    def probabilities():
        for logits, hand in iter_outputs(model, crops, batch_size, device, dtype, chunk=chunk, idle=idle):
            if hands is not None:
                hands.append(bool(hand))
            yield to_88_keys(sigmoid(logits))                   # (n_heads, 88)

    probs = video = probabilities()
    if refiner is not None:
        generator, r2m = refiner
        cols = key_slice(r2m.n_keys)
        onsets = deque()

        def inputs():
            for p in video:
                onsets.append(p[1] if sequence else None)
                yield np.stack([p[0, cols], p[1, cols]], axis=1) if r2m.in_channels == 2 else p[0, cols]

        def outputs():
            for refined in iter_refined(inputs(), generator, device, r2m.frames):
                row = np.zeros((2, N_KEYS), np.float32)
                row[0, cols], onset = refined, onsets.popleft()
                if onset is not None:
                    row[1] = onset
                yield row
        probs, use_onsets = outputs(), r2m.in_channels == 2
    else:
        use_onsets = sequence
    if not use_onsets:
        for p in probs:
            yield (p[0] >= threshold).astype(np.uint8)
        return
    decoder = OnsetFrameDecoder(threshold, onset_threshold)
    for p in probs:
        yield from decoder.push(p[0], p[1])
    yield from decoder.finish()


def stream_lookahead(model_config, refiner_config=None):
    """Frames after frame t that the stream must see before it settles frame t's row (the worst case)."""
    decoder = DECODER_LAG if (refiner_config.in_channels == 2 if refiner_config else model_config.is_sequence) else 0
    window = refiner_config.frames - 1 if refiner_config else 0
    return model_config.lookahead + window + decoder


class RollSynth:
    """Roll rows in, audio and notes out, one 25 fps frame at a time: the note-offs and note-ons where a
    key changes (offs first, pitches ascending), then that frame's samples. The notes and the audio equal
    audeo_synth.render's for the whole roll (min_frames 1, no re-strike splitting)."""

    def __init__(self, synth, velocity, sample_rate=SAMPLE_RATE, player=None):
        from audeo_synth import SynthStream
        self.stream, self.velocity, self.player = SynthStream(synth, sample_rate), velocity, player
        self.frame_samples = sample_rate // FPS
        self.sample_rate = sample_rate
        self.down = np.zeros(N_KEYS, bool)
        self.started = np.zeros(N_KEYS, int)
        self.notes = []                       # finished (pitch, start s, end s, velocity)
        self.t = 0
        self.last_event = 0                   # sample of the last note event

    def _events(self, row):
        on = np.asarray(row) > 0
        offs, ons = np.flatnonzero(self.down & ~on), np.flatnonzero(on & ~self.down)
        for k in offs:
            self.stream.note_off(MIDI_LOW + k)
            self.notes.append((MIDI_LOW + k, self.started[k] / FPS, self.t / FPS, self.velocity))
        for k in ons:
            self.stream.note_on(MIDI_LOW + k, self.velocity)
            self.started[k] = self.t
        if self.player is not None:
            self.player.play(offs + MIDI_LOW, ons + MIDI_LOW, self.velocity)
        if len(offs) or len(ons):
            self.last_event = self.t * self.frame_samples
        self.down = on

    def frame(self, row):
        """The audio of one more frame (float32, sample_rate / FPS samples)."""
        self._events(row)
        self.t += 1
        return self.stream.samples(self.frame_samples)

    def current_notes(self):
        """Every note so far, the sounding ones ending now, sorted as audeo_synth.roll_notes sorts."""
        sounding = [(MIDI_LOW + k, self.started[k] / FPS, self.t / FPS, self.velocity) for k in np.flatnonzero(self.down)]
        return sorted(self.notes + sounding, key=lambda n: (n[1], n[0]))

    def finish(self):
        """The release tail after the last frame: every key up, then until RELEASE_SECONDS after the last
        event (as audeo_synth.iter_audio)."""
        self._events(np.zeros(N_KEYS, bool))
        tail = self.last_event + int(RELEASE_SECONDS * self.sample_rate) - self.t * self.frame_samples
        audio = self.stream.samples(max(tail, 0))
        self.stream.close()
        return audio
