"""Shared test fixtures and helpers. Tests run from the repo root's modules; real data comes from ../shared/data."""
import csv
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts):
    """Path inside ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test material not present: {path} (../shared/data is not in a user's clone)")
    return path


# ----------------------------------------------------------------------------- music

def write_clip_midi(path, seconds=3.0, seed=0):
    """A short two-hand performance with chords, a re-strike and pedal."""
    import audeo_io as aio
    rng = np.random.default_rng(seed)
    notes, t = [], 0.0
    while t < seconds:
        for p in (rng.integers(40, 55), rng.integers(60, 80), rng.integers(60, 80)):
            notes.append((int(p), t, t + rng.uniform(0.1, 0.5), int(rng.integers(40, 110))))
        t += rng.uniform(0.15, 0.4)
    notes.append((60, t, t + 0.3, 80))
    notes.append((60, t + 0.3, t + 0.6, 80))
    aio.write_midi(aio.notes_to_pretty_midi(notes, pedal=[(1.0, 2.0)]), path)
    return path


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    """A 3 s rendered clip at 30 fps (player side): video.mp4, performance.mid, box.txt, render.json."""
    import audeo_render
    d = tmp_path_factory.mktemp("audeo")
    audeo_render.render(write_clip_midi(d / "in.mid", seconds=3.0, seed=3), d / "clip", seed=24, fps=30, progress=False)
    return d / "clip"


def streams(path):
    """(has video, has audio, duration s) of a media file, from the bundled ffmpeg's report."""
    import imageio_ffmpeg
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                          text=True).stderr
    h, m, s = info.split("Duration: ")[1].split(",")[0].split(":")
    return "Video:" in info, "Audio:" in info, 3600 * int(h) + 60 * int(m) + float(s)


def audeo_outputs(stem, *extra):
    """The names a whole-file Audeo.py run leaves (sorted), with `extra` suffixes (e.g. "_keys.mp4"); the
    sheet's SVG preview only where verovio is installed."""
    import importlib.util
    suffixes = [".json", ".mid", ".mp4", ".musicxml", ".wav", "_roll.png", *extra]
    if importlib.util.find_spec("verovio"):
        suffixes.append("_sheet.svg")
    return sorted(stem + s for s in suffixes)


def assert_roll_follows_notes(roll, pm, fps):
    """Check a key-down roll against `pm`'s notes by hand (not with notes_to_roll): frame t stands for
    time t/fps, so a note is down in the frame nearest its start, no key is down outside the frames
    nearest a note of it, and a key struck again before (or as) its previous note ends is up for the
    one frame before the re-strike. Returns how many re-strikes were checked."""
    nearest = lambda seconds: int(np.floor(seconds * fps + 0.5 + 1e-6))
    notes = sorted((n.pitch - 21, nearest(n.start), nearest(n.end)) for inst in pm.instruments for n in inst.notes)
    touched = np.zeros(roll.shape, bool)
    for key, first, end in notes:
        assert roll[first, key], (key, first)
        touched[first:max(end, first + 1), key] = True
    assert not (roll.astype(bool) & ~touched).any()
    restrikes = [(key, nxt[1]) for (key, first, end), nxt in zip(notes, notes[1:])
                 if nxt[0] == key and first + 1 < nxt[1] <= end]
    for key, again in restrikes:
        assert not roll[again - 1, key] and roll[again, key], (key, again)
    return len(restrikes)


def melody_roll():
    """A 5.6 s hand-made piece on the paper's 51 keys: a detached scale, two triads, a held note re-struck once.

    Returns (roll (140, 51), probabilities (140, 51) with a dip where the last note is re-struck).
    Detached notes and no octaves keep it transcribable with every installed synthesizer and soundfont
    (measured onset F1 0.93-0.97 with FluidSynth and tinysoundfont, FluidR3_GM and TimGM6mb).
    """
    from audeo_constants import PAPER_MIDI_LOW, PAPER_N_KEYS
    roll = np.zeros((140, PAPER_N_KEYS), np.uint8)
    for pitch, a, b in [(60, 0, 5), (62, 8, 13), (64, 16, 21), (65, 24, 33), (67, 36, 41), (69, 44, 49), (71, 52, 66),
                        (55, 70, 88), (60, 70, 88), (64, 70, 88), (57, 90, 108), (62, 90, 108), (65, 90, 108),
                        (60, 110, 140)]:
        roll[a:b, pitch - PAPER_MIDI_LOW] = 1
    probs = roll * 0.95
    probs[124, 60 - PAPER_MIDI_LOW] = 0.45          # the key rose and was struck again: new note at frame 125
    return roll, probs.astype(np.float32)


def hand_made_rolls():
    """(target (4, 88) uint8, logit (4, 88) float32) of a video whose figures are checked by hand: note A
    (key 40, frames 0-1) is found exactly, note B (key 50, frame 2) is missed, and a false note (key 60,
    frame 3) makes a silent frame non-silent."""
    from audeo_constants import N_KEYS
    target = np.zeros((4, N_KEYS), np.uint8)
    target[0, 40] = target[1, 40] = target[2, 50] = 1
    logit = np.full((4, N_KEYS), -5.0, np.float32)
    logit[0, 40] = logit[1, 40] = 5.0
    logit[3, 60] = 5.0
    return target, logit


TINY_CLIPS = 3


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Three short rendered clips in the original layout (one per split), built once per session."""
    import Render_dataset
    d = tmp_path_factory.mktemp("tiny")
    midis = [str(write_clip_midi(d / f"clip{i}.mid", seconds=2.5, seed=10 + i)) for i in range(TINY_CLIPS)]
    Render_dataset.main(["--out", str(d / "data"), "--no-corpus", "--midi", *midis, "--workers", "2",
                         "--far-side-fraction", "0.34", "--box-jitter", "0"])
    return d / "data"


# ----------------------------------------------------------------------------- training runs

@pytest.fixture
def one_thread():
    """On a shared 2-core CPU, OpenMP threads spin against each other: 1 thread is ~5x faster."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def read_log(out):
    """The rows of a training run's log.csv."""
    with open(out / "log.csv") as f:
        return list(csv.DictReader(f))


def torchrun(script, *args, processes=2):
    """The command that runs a training script under torchrun with `processes` CPU ranks on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
            str(port), str(REPO / script), *map(str, args)]


def kill_after_mid_epoch_save(cmd, last, env=None):
    """Start a training command and SIGKILL it once its last.pt holds mid-epoch progress; the killed last.pt."""
    import torch
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if last.exists() and torch.load(last, weights_only=True)["step"] > 0:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return torch.load(last, weights_only=True)


# A training script run under a patch that SIGKILLs it at the n-th checkpoint write (leaving that write's
# temporary file half written, as a kill during torch.save does) or inside the n-th validation (after its
# metrics, before fit records them): argv = point, n, script, script's arguments.
_KILL_INSIDE = f"""
import os, runpy, signal, sys
sys.path.insert(0, {str(REPO)!r})
import torch
import audeo_train
from audeo_io import atomic_path
point, nth, script = sys.argv[1], int(sys.argv[2]), sys.argv[3]
calls = []

def due():
    calls.append(1)
    return len(calls) == nth

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "checkpoint_write":
    real_save = audeo_train.save_checkpoint

    def save_checkpoint(path, **state):
        if not due():
            return real_save(path, **state)
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
            os.truncate(tmp, os.path.getsize(tmp) // 2)
            die()
    audeo_train.save_checkpoint = save_checkpoint
else:
    real_fit = audeo_train.fit

    def fit(args, start):
        def start_with_a_deadly_validation(*a):
            stage = start(*a)
            validate = stage.validate

            def validate_then_die():
                metrics = validate()
                if due():
                    die()
                return metrics
            stage.validate = validate_then_die
            return stage
        return real_fit(args, start_with_a_deadly_validation)
    audeo_train.fit = fit
sys.argv = [script, *sys.argv[4:]]
runpy.run_path(script, run_name="__main__")
"""


def kill_inside(point, nth, script, args):
    """Run `script args` until it SIGKILLs itself at `point` ("checkpoint_write" or "validation"), the nth time."""
    proc = subprocess.run([sys.executable, "-c", _KILL_INSIDE, point, str(nth), str(script), *map(str, args)],
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def pytest_configure(config):
    config.addinivalue_line("markers", "real_data: reads ../shared/data (real videos, MIDI, recordings); skipped "
                                       "with the reason when it is absent; `-m 'not real_data'` leaves them out")
