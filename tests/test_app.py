"""Audeo_app.py's page driven by headless Chromium through Playwright: the example clip run through the upload
control (one run, shared by every check), the player, the roll and keys that follow playback, the downloads, a
refused second job while busy, and bad uploads that leave a message, a running server and no files behind."""
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# without the background-networking flags this closed network refuses Chromium's own connections
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]
DEMO_VIDEO, DEMO_MIDI = REPO / "examples" / "demo_schumann.mp4", REPO / "examples" / "demo_schumann.mid"
LIMIT_MB = 2                    # a second server's upload limit: 3 MB is over it
RUN_TIMEOUT_S = 900             # the demo pipeline run (about 80 s on a busy 2-core CPU)
VIEWPORT = {"width": 1360, "height": 1130}
SCREENSHOT = REPO / "docs" / "app.png"
CONTENT = {".mid": ("audio/midi", lambda b: b[:4] == b"MThd"), ".wav": ("audio/wav", lambda b: b[:4] == b"RIFF"),
           ".mp4": ("video/mp4", lambda b: b[4:8] == b"ftyp"), ".png": ("image/png", lambda b: b[:4] == b"\x89PNG"),
           ".json": ("application/json", lambda b: isinstance(json.loads(b), dict)),
           ".musicxml": ("application/vnd.recordare.musicxml+xml", lambda b: b"<score-partwise" in b),
           ".svg": ("image/svg+xml", lambda b: b"<svg" in b)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url):
    try:
        with urllib.request.urlopen(f"{url}/api/config", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_server(folder, *options):
    """Audeo_app.py on a free port with its work folder in `folder`, stopped at the end: its url, work folder, log."""
    port, work, log = free_port(), folder / "work", folder / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "Audeo_app.py"), "--out", str(work), "--port", str(port),
                                 "--device", "cpu", *options], stdout=out, stderr=subprocess.STDOUT)
        try:
            url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
            while not answers(url):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            yield dict(url=url, work=work, log=log)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Audeo_app.py with its default upload limit."""
    with running_server(tmp_path_factory.mktemp("app")) as found:
        yield found


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """Audeo_app.py with an upload limit of LIMIT_MB."""
    with running_server(tmp_path_factory.mktemp("small"), "--max-upload-mb", str(LIMIT_MB)) as found:
        yield found


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium context (fresh user-data folder), or a skip saying what is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM}: Chromium is not installed (tools/setup.sh installs Debian's as root)")
    with sync_api.sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                       headless=True, viewport=VIEWPORT)
        yield context
        context.close()


def open_page(browser, server):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server["url"])
    page.wait_for_selector("#stages .stage", state="attached")
    page.errors = errors
    return page


def stage_fills(page):
    return page.evaluate("() => Object.fromEntries([...document.querySelectorAll('#stages .stage')].map("
                         "r => [r.dataset.stage, parseFloat(r.querySelector('.fill').style.width) || 0]))")


@pytest.fixture(scope="module")
def demo(browser, server):
    """The example clip and its MIDI through the upload control; the page once the result is shown, the
    stage bars seen on the way, the message a second job got meanwhile and the job's outputs."""
    page = open_page(browser, server)
    page.set_input_files("#video", str(DEMO_VIDEO))
    page.set_input_files("#reference", str(DEMO_MIDI))
    page.click("#run")
    page.wait_for_selector("#progress:not([hidden])")
    page.click("#demo")                                  # a second job while the first runs
    page.wait_for_function("document.getElementById('message').textContent !== ''")
    busy, seen, deadline = page.inner_text("#message"), [], time.monotonic() + RUN_TIMEOUT_S
    while page.evaluate("document.body.dataset.ready") != "1":
        assert time.monotonic() < deadline and not page.errors, (page.errors, server["log"].read_text()[-3000:])
        seen.append(stage_fills(page))
        time.sleep(0.5)
    job = page.evaluate("document.body.dataset.job")
    return dict(page=page, busy=busy, seen=seen, job=job, folder=server["work"] / job)


def lit(page, colour):
    return page.evaluate(f"() => [...document.querySelectorAll('#keys .key.{colour}')].map(k => +k.dataset.midi)")


def sounding(midi, t):
    """The keys of `midi` down at `t` s (read with pretty_midi, not through the app)."""
    import pretty_midi
    return sorted({n.pitch for i in pretty_midi.PrettyMIDI(str(midi)).instruments for n in i.notes
                   if n.start <= t < n.end})


def seek(page, t):
    """Pause at `t` and wait for the roll and keys to show it; the time they show."""
    page.evaluate(f"() => {{ const v = document.getElementById('player'); v.pause(); v.currentTime = {t}; }}")
    page.wait_for_function("() => { const v = document.getElementById('player'); return !v.seeking && "
                           "document.getElementById('keys').dataset.time === v.currentTime.toFixed(3); }")
    return float(page.evaluate("document.getElementById('keys').dataset.time"))


def canvas(page):
    return page.evaluate("document.getElementById('roll').toDataURL()")


def test_the_stages_advance_and_a_second_job_is_refused_while_busy(demo):
    assert demo["busy"].startswith("busy: demo_schumann is being transcribed")
    assert any(0 < f["video2roll"] < 100 for f in demo["seen"])          # a bar part way along
    assert all(v == 100 for v in stage_fills(demo["page"]).values())      # then every stage complete
    assert demo["page"].inner_text("#message") == ""                     # the refusal is gone with its job


def test_the_player_has_the_video_length_and_the_generated_sound(demo):
    from audeo_video import video_info
    page = demo["page"]
    assert page.evaluate("document.getElementById('player').src").endswith(f"/{demo['job']}/demo_schumann_keys.mp4")
    duration = page.evaluate("document.getElementById('player').duration")
    assert duration == pytest.approx(video_info(DEMO_VIDEO).duration, abs=0.1)
    page.evaluate("() => { const v = document.getElementById('player'); v.currentTime = 0; return v.play(); }")
    page.wait_for_function("document.getElementById('player').currentTime > 1", timeout=20000)
    played = page.evaluate("() => { const v = document.getElementById('player'); v.pause(); "
                           "return [v.webkitAudioDecodedByteCount, v.webkitVideoDecodedByteCount, v.muted]; }")
    assert played[0] > 0 and played[1] > 0 and not played[2]


def test_the_roll_and_keys_follow_playback(demo):
    page = demo["page"]
    page.evaluate("() => { const v = document.getElementById('player'); v.currentTime = 2; return v.play(); }")
    before = (canvas(page), page.evaluate("document.getElementById('keys').dataset.time"))
    page.wait_for_function(f"document.getElementById('player').currentTime > {float(before[1]) + 1}", timeout=20000)
    after = (canvas(page), page.evaluate("document.getElementById('keys').dataset.time"))
    assert after[0] != before[0] and float(after[1]) > float(before[1])   # redrawn as it plays
    shots, keys = [], []
    for t in (4.3, 9.1):                                 # paused: the keys are exactly the notes down then
        shown = seek(page, t)
        shots.append(canvas(page))
        keys.append(lit(page, "pred"))
        assert keys[-1] == sounding(demo["folder"] / "demo_schumann.mid", shown)
        assert lit(page, "ref") == sounding(DEMO_MIDI, shown)
    assert keys[0] and keys[0] != keys[1] and shots[0] != shots[1]


def test_the_scores_against_the_reference_are_shown(demo):
    metrics = json.loads((demo["folder"] / "demo_schumann.json").read_text())["metrics"]
    text = demo["page"].inner_text("#metrics")
    assert f"note onset F1\n{metrics['note_onset_f1']:.3f}" in text.replace("\t", "\n")
    assert metrics["note_onset_f1"] >= 0.9


def test_every_download_link_returns_its_file(demo):
    page = demo["page"]
    links = page.evaluate("() => [...document.querySelectorAll('#downloads a')].map(a => [a.download, a.href])")
    outputs = sorted(p.name for p in demo["folder"].iterdir() if not p.name.startswith("."))
    assert sorted(name for name, _ in links) == outputs
    assert {"demo_schumann.mid", "demo_schumann.wav", "demo_schumann.mp4", "demo_schumann_keys.mp4",
            "demo_schumann_roll.png", "demo_schumann.json", "demo_schumann.musicxml"} <= set(outputs)
    for name, href in links:
        response = page.request.get(href)
        body, (kind, looks_right) = response.body(), CONTENT[Path(name).suffix]
        assert response.status == 200 and response.headers["content-type"] == kind, name
        assert body == (demo["folder"] / name).read_bytes() and len(body) > 0 and looks_right(body), name


def test_a_screenshot_of_the_page(demo):
    page = demo["page"]
    seek(page, 6.1)
    page.wait_for_timeout(300)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.read_bytes()[:4] == b"\x89PNG"


def noise_video(path):
    """A second of coloured noise: a video with no keyboard in it."""
    from audeo_video import video_writer
    rng = np.random.default_rng(0)
    with video_writer(path, 320, 180, 25) as write:
        for _ in range(25):
            write(rng.integers(0, 256, (180, 320, 3), dtype=np.uint8))
    return path


BAD_UPLOADS = {"text.mp4": (lambda p: p.write_text("not a video\n"), "text.mp4: cannot be decoded as a video"),
               "empty.mp4": (lambda p: p.write_bytes(b""), "empty.mp4: the file is empty"),
               "notes.txt": (lambda p: p.write_text("C D E\n"), "notes.txt: not a video file"),
               "noise.mp4": (noise_video, "noise.mp4: no keyboard found")}


def upload_shows(browser, server, path, message):
    """Upload `path` through the page; once `message` shows, check the server still answers and is idle."""
    page = open_page(browser, server)
    page.set_input_files("#video", str(path))
    page.click("#run")
    page.wait_for_function(f"document.getElementById('message').textContent.startsWith({json.dumps(message)})",
                           timeout=60000)
    assert not page.errors and answers(server["url"])
    page.wait_for_function("fetch('/api/jobs/current').then(r => r.json()).then(j => !j || j.state !== 'running')")
    page.close()


@pytest.mark.parametrize("name", BAD_UPLOADS)
def test_a_bad_upload_shows_a_message_and_leaves_nothing(demo, browser, server, tmp_path, name):
    make, message = BAD_UPLOADS[name]
    make(tmp_path / name)
    upload_shows(browser, server, tmp_path / name, message)
    assert sorted(p.name for p in server["work"].iterdir()) == [demo["job"]]      # the demo's outputs alone


def test_an_upload_over_the_limit_is_refused_by_the_page_and_by_the_server(browser, small_server, tmp_path):
    """The page checks the size before sending; what it would not send, the server refuses before any job."""
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (LIMIT_MB + 1) * 2 ** 20)
    upload_shows(browser, small_server, big, f"big.mp4: over the upload limit of {LIMIT_MB} MB")
    part = {"name": "big.mp4", "mimeType": "video/mp4", "buffer": big.read_bytes()}
    response = browser.request.post(f"{small_server['url']}/api/jobs", multipart={"video": part})
    assert response.status == 413 and response.json()["error"] == \
        f"upload over the limit of {LIMIT_MB} MB (video and MIDI together)"
    assert not any(small_server["work"].iterdir()) and answers(small_server["url"])
