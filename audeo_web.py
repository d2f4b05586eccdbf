"""The local web page (Audeo_app.py is its command line; `create_app` its one call): upload a silent piano
video (optionally with a reference MIDI) or run the bundled example, watch the pipeline's stages, then play
the video with the generated sound beside a piano roll and an 88-key strip that follow playback, and
download every output. The page is plain files in web/ (index.html, app.js, style.css): no build step, no CDN.

Routes (JSON unless said otherwise; an error is {"error": one line naming the file and the problem}):
  GET  /                       web/index.html (and /app.js, /style.css)
  GET  /api/config             the pipeline's stages, the upload limit, the video suffixes accepted
  POST /api/jobs               multipart: video, optional reference (.mid), reference_offset (s),
                               reference_pitch_shift (semitones) -> 202 {job}; 400 a bad upload,
                               409 busy (one job at a time), 413 over the upload limit
  POST /api/demo               examples/demo_schumann.mp4 with examples/demo_schumann.mid as reference
  GET  /api/jobs/current       the running or last job (null before the first)
  GET  /api/jobs/{id}          state (running | done | failed), [done, total] per stage, error; when done
                               also player (the _keys.mp4 overlay when present, else the .mp4), files, metrics
  GET  /api/jobs/{id}/notes    the generated notes and the reference's, [pitch, start s, end s] (key presses)
  GET  /files/{id}/{name}      an output file (byte ranges served, so the player can seek)
Work folder: OUT/<id>/ holds one job's outputs (the pipeline's files and a hidden .notes.json); an upload
waits in a hidden OUT/.upload.* folder that goes when its job ends; a refused upload or a failed job
leaves nothing behind. Jobs run in a worker thread calling audeo_pipeline.audeo, as Audeo.py does.
"""
import json
import re
import shutil
import sys
import tempfile
import threading
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from audeo_constants import VIDEO_EXTENSIONS
from audeo_io import AudeoError, atomic_path, check_writable, load_midi, midi_notes, regrid, shift_pitch

REPO = Path(__file__).resolve().parent
WEB_DIR = REPO / "web"
MB = 1024 * 1024
DEFAULTS = dict(host="127.0.0.1", port=8000, max_upload_mb=500,          # video and MIDI together
                demo_video=REPO / "examples" / "demo_schumann.mp4",
                demo_reference=REPO / "examples" / "demo_schumann.mid")
MIDI_SUFFIXES = (".mid", ".midi")
NOTES_FILE = ".notes.json"
CONTENT_TYPES = {".mid": "audio/midi", ".wav": "audio/wav", ".mp4": "video/mp4", ".webm": "video/webm",
                 ".png": "image/png", ".svg": "image/svg+xml", ".json": "application/json",
                 ".musicxml": "application/vnd.recordare.musicxml+xml"}


class Refused(AudeoError):
    """A request the server turns down (bad upload, busy, too large): `status` is its HTTP code."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def pipeline_stages():
    from audeo_pipeline import STAGES
    return STAGES


# ----------------------------------------------------------------------------- jobs

@dataclass
class Job:
    id: str
    name: str
    folder: Path
    state: str = "running"
    error: str = ""
    stages: dict = field(default_factory=dict)

    def progress(self, stage, done, total):
        self.stages[stage] = [int(done), int(total)]

    def status(self):
        return dict(id=self.id, name=self.name, state=self.state, error=self.error, stages=dict(self.stages))


def job_id(name):
    return f"{name}-{uuid.uuid4().hex[:8]}"


def error_line(e, upload):
    """One line for the page: an AudeoError's message with the upload folder left out (it names the file
    by its uploaded name), or the type and message of anything unexpected."""
    text = str(e) if isinstance(e, AudeoError) else f"{type(e).__name__}: {e}"
    if upload is not None:
        text = text.replace(f"{upload}/", "")
    return text.splitlines()[0] if text else type(e).__name__


class Runner:
    """One pipeline job at a time, in a worker thread; every job's state stays readable by its id."""

    def __init__(self, work, device=None):
        self.work, self.device = Path(work), device
        self.jobs, self.current = {}, None
        self.lock = threading.Lock()

    def job(self, job_id):
        if job_id not in self.jobs:
            raise Refused(404, f"{job_id}: no such job")
        return self.jobs[job_id]

    def check_idle(self):
        job = self.current
        if job is not None and job.state == "running":
            raise Refused(409, f"busy: {job.name} is being transcribed; try again when it is done")

    def start(self, video, reference=None, offset=0.0, shift=0, upload=None):
        """Start a job on `video` (`upload`: the folder holding the uploaded files, removed when it ends)."""
        with self.lock:
            self.check_idle()
            name = Path(video).stem
            jid = job_id(name)
            job = Job(jid, name, self.work / jid)
            self.jobs[job.id], self.current = job, job
        args = (job, Path(video), reference, offset, shift, upload)
        threading.Thread(target=self.run, args=args, name=f"audeo-{job.id}", daemon=True).start()
        return job

    def run(self, job, video, reference, offset, shift, upload):
        from audeo_pipeline import audeo
        try:
            meta = audeo(video, job.folder, reference=reference, reference_offset=offset,
                         reference_pitch_shift=shift, device=self.device, overlay=True, progress=job.progress)
            write_notes(job.folder, meta, reference, offset, shift)
            job.state = "done"
        except Exception as e:              # the page shows every failure; the server goes on
            if not isinstance(e, AudeoError):
                traceback.print_exc()
            job.error, job.state = error_line(e, upload), "failed"
            shutil.rmtree(job.folder, ignore_errors=True)
        finally:
            if upload is not None:
                shutil.rmtree(upload, ignore_errors=True)


# ----------------------------------------------------------------------------- results

def spans(notes):
    return [[int(p), round(float(a), 4), round(float(b), 4)] for p, a, b, _ in notes]


def note_data(mid, reference=None, offset=0.0, shift=0):
    """{"notes": the generated key presses, "reference": the reference's on the video's time line (or None)}
    as [pitch, start s, end s] (no pedal extension: what the keys do)."""
    data = {"notes": spans(midi_notes(load_midi(mid), sustain=False)), "reference": None}
    if reference:
        pm = regrid(shift_pitch(load_midi(reference), shift, reference), shift=offset)
        data["reference"] = spans(midi_notes(pm, sustain=False))
    return data


def write_notes(folder, meta, reference, offset, shift):
    name = Path(meta["video"]).stem
    data = dict(note_data(folder / f"{name}.mid", reference, offset, shift), metrics=meta.get("metrics"))
    with atomic_path(folder / NOTES_FILE) as tmp:
        Path(tmp).write_text(json.dumps(data))


def output_files(job):
    """The job's output files (not the hidden ones), sorted, as {name, url, bytes, type}."""
    files = sorted(p for p in job.folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return [dict(name=p.name, url=f"/files/{job.id}/{p.name}", bytes=p.stat().st_size,
                 type=CONTENT_TYPES.get(p.suffix.lower(), "application/octet-stream")) for p in files]


def job_result(job):
    """A job's status; when done also the player's file, every output file and the metrics."""
    out = job.status()
    if job.state != "done":
        return out
    files = output_files(job)
    names = {f["name"]: f["url"] for f in files}
    meta = json.loads((job.folder / f"{job.name}.json").read_text())
    out.update(files=files, metrics=meta.get("metrics"), notes=f"/api/jobs/{job.id}/notes",
               player=names.get(f"{job.name}_keys.mp4") or names[f"{job.name}.mp4"])
    return out


# ----------------------------------------------------------------------------- uploads

def safe_name(filename, fallback):
    """An uploaded file's name reduced to letters, digits, '-', '_' and '.' (no folders)."""
    name = re.sub(r"[^\w.-]", "_", Path(filename or "").name).lstrip(".")
    return name or fallback


def check_suffix(name, suffixes, what):
    if Path(name).suffix.lower() not in suffixes:
        raise Refused(400, f"{name}: not a {what} file (expected {', '.join(suffixes)})")


def save_upload(part, folder, suffixes, what, fallback):
    """Copy an uploaded form part into `folder`; refuses a wrong suffix and an empty file."""
    name = safe_name(part.filename, fallback)
    check_suffix(name, suffixes, what)
    path = folder / name
    with open(path, "wb") as f:
        shutil.copyfileobj(part.file, f, MB)
    if path.stat().st_size == 0:
        raise Refused(400, f"{name}: the file is empty")
    return path


def number(form, key, kind, default):
    text = str(form.get(key) or "").strip()
    try:
        return kind(text) if text else default
    except ValueError:
        raise Refused(400, f"{key.replace('_', ' ')}: '{text}' is not a number") from None


def check_readable(path, read):
    """A one-line refusal (naming the file as uploaded) when `read(path)` finds it unreadable."""
    try:
        read(path)
    except AudeoError as e:
        raise Refused(400, error_line(e, path.parent)) from None


def read_upload(form, folder):
    """(video, reference or None, offset, pitch shift) saved from a parsed form into `folder`, checked."""
    from audeo_video import video_info
    video = form.get("video")
    if video is None or not getattr(video, "filename", ""):
        raise Refused(400, "choose a video file to upload")
    video = save_upload(video, folder, VIDEO_EXTENSIONS, "video", "video.mp4")
    reference = form.get("reference")
    if reference is not None and getattr(reference, "filename", ""):
        reference = save_upload(reference, folder, MIDI_SUFFIXES, "MIDI", "reference.mid")
        check_readable(reference, load_midi)
    else:
        reference = None
    check_readable(video, video_info)
    return video, reference, number(form, "reference_offset", float, 0.0), number(form, "reference_pitch_shift", int, 0)


class TooLarge(Exception):
    pass


def capped(receive, limit):
    """An ASGI `receive` that raises TooLarge once more than `limit` body bytes have come."""
    seen = 0

    async def inner():
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise TooLarge
        return message
    return inner


# ----------------------------------------------------------------------------- the app

async def receive_upload(request, runner, max_upload_mb):
    """Start a job on an uploaded video: its files wait in a hidden folder of the work folder, removed
    when the upload is refused (or, once started, when its job ends)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    runner.check_idle()                                      # before reading a byte of the body
    limit = int(max_upload_mb * MB)
    too_large = Refused(413, f"upload over the limit of {max_upload_mb:g} MB (video and MIDI together)")
    if int(request.headers.get("content-length") or 0) > limit:
        raise too_large
    folder = Path(tempfile.mkdtemp(prefix=".upload.", dir=runner.work))
    try:
        try:
            form = await Request(request.scope, capped(request.receive, limit)).form(max_files=2)
        except TooLarge:
            raise too_large from None
        try:
            video, reference, offset, shift = await run_in_threadpool(read_upload, form, folder)
        finally:
            await form.close()
        return runner.start(video, reference, offset, shift, upload=folder).status()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def add_job_routes(app, runner, max_upload_mb, demo_video, demo_reference):
    from fastapi import Request

    @app.get("/api/config")
    def config():
        return dict(stages=pipeline_stages(), max_upload_bytes=int(max_upload_mb * MB),
                    video_suffixes=VIDEO_EXTENSIONS, demo=Path(demo_video).is_file())

    @app.post("/api/jobs", status_code=202)
    async def upload(request: Request):
        return await receive_upload(request, runner, max_upload_mb)

    @app.post("/api/demo", status_code=202)
    def demo():
        if not Path(demo_video).is_file():
            raise Refused(404, f"{demo_video}: the example video is not there")
        return runner.start(demo_video, demo_reference).status()

    @app.get("/api/jobs/current")
    def current():
        return None if runner.current is None else job_result(runner.current)

    @app.get("/api/jobs/{job}")
    def job_status(job: str):
        return job_result(runner.job(job))


def add_file_routes(app, runner):
    from fastapi.responses import FileResponse

    @app.get("/api/jobs/{job}/notes")
    def notes(job: str):
        path = runner.job(job).folder / NOTES_FILE
        if not path.is_file():
            raise Refused(404, f"{job}: no notes yet")
        return FileResponse(path, media_type="application/json")

    @app.get("/files/{job}/{name}")
    def download(job: str, name: str):
        found = runner.job(job)
        files = {f["name"]: f for f in output_files(found)} if found.state == "done" else {}
        if name not in files:
            raise Refused(404, f"{name}: no such output of {job}")
        return FileResponse(found.folder / name, media_type=files[name]["type"])


def create_app(work, device=None, max_upload_mb=DEFAULTS["max_upload_mb"], demo_video=DEFAULTS["demo_video"],
               demo_reference=DEFAULTS["demo_reference"]):
    """The FastAPI app of the page, its jobs' outputs under the folder `work`."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from fastapi.staticfiles import StaticFiles
    work = Path(work)
    check_writable(work)
    for stale in work.glob(".upload.*"):           # left by a server stopped mid-job: the folder is its own
        shutil.rmtree(stale, ignore_errors=True)
    app = FastAPI(title="Audeo", docs_url=None, redoc_url=None)
    app.state.runner = runner = Runner(work, device)

    @app.exception_handler(Refused)
    async def refused(request, e):
        return JSONResponse({"error": str(e)}, status_code=e.status)

    add_job_routes(app, runner, max_upload_mb, demo_video, demo_reference)
    add_file_routes(app, runner)
    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


def check_address(host, port):
    """A one-line error when nothing can listen on host:port (in use, or not this machine's address)."""
    import socket
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        raise AudeoError(f"{host}:{port}: cannot serve there ({e.strerror or e})") from None


def serve(work, host=DEFAULTS["host"], port=DEFAULTS["port"], **kwargs):
    """Serve create_app(work, **kwargs) with uvicorn until Ctrl-C."""
    import uvicorn
    from audeo_cli import resolve_device
    check_address(host, port)
    resolve_device(kwargs.get("device"))               # a device that is not there fails now, not per job
    app = create_app(work, **kwargs)
    print(f"Audeo page: http://{host}:{port}/  (outputs in {work})", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning")
