"""Audeo's local web page: upload a silent piano video (or run the bundled example) and watch and hear the result.

In:  nothing on the command line but where to serve (--host, default 127.0.0.1: this machine only; --port)
     and where to work (--out); the page takes a video (any format OpenCV reads), optionally a reference
     MIDI with its offset and pitch shift, or one click runs examples/demo_schumann.mp4 with its MIDI.
Out: a page at http://HOST:PORT/ with a bar per pipeline stage, then the video with the generated sound
     (with the pressed keys drawn on it when the pipeline writes DIR/<name>_keys.mp4), a piano roll and an
     88-key strip that follow playback (the reference's keys in another colour, and its scores), and a
     link to every output; OUT/<job>/ holds each job's outputs (Audeo.py's files). One job at a time;
     uploads over --max-upload-mb are refused. The server and page: audeo_web.
"""
from __future__ import annotations

from audeo_cli import add_device_arg, parser, run
from audeo_web import DEFAULTS, serve


def main(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    p.add_argument("--host", default=d["host"], help="address to serve on (0.0.0.0: every network interface)")
    p.add_argument("--port", type=int, default=d["port"], help="port to serve on")
    p.add_argument("--out", required=True, help="work folder: OUT/<job>/ holds each job's outputs")
    p.add_argument("--max-upload-mb", type=float, default=d["max_upload_mb"],
                   help="largest upload (video and MIDI together), MB")
    add_device_arg(p)
    args = p.parse_args(argv)
    serve(args.out, host=args.host, port=args.port, device=args.device, max_upload_mb=args.max_upload_mb)


if __name__ == "__main__":
    run(main)
