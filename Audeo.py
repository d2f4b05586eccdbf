"""Audeo end to end: a silent piano video -> MIDI, audio, the video with that audio, a roll picture and sheet music.

In:  VIDEO ... (any format and frame rate OpenCV reads; several, or folders of them: videos whose outputs
     are complete are skipped, so a killed batch resumes; under `torchrun --nproc_per_node N` rank k takes
     every N-th video), optionally --box X1 Y1 X2 Y2 (else the keyboard is
     found automatically and rectified) and --side player|far (else detected), --reference REF.mid to score
     against (with --reference-offset: the video time of MIDI time 0; --reference-pitch-shift N for a file
     stored N semitones low, e.g. 12 for AI-Pianist) or --reference-audio REC to score against the notes
     basic-pitch transcribes from a recording of the performance.
Out: DIR/<name>.mid        the generated performance (Video2Roll's onsets and frames -> notes; with
                           --roll2midi models/roll2midi.pt, Roll2Midi refines the roll first)
     DIR/<name>.wav        it, synthesised at 16 kHz (the log names the synthesizer)
     DIR/<name>.mp4        the input video with the generated sound (AAC; an H.264 picture is copied,
                           others re-encoded to H.264; the ffmpeg bundled in the imageio-ffmpeg wheel)
     DIR/<name>_keys.mp4   with --overlay: the input video with the keyboard's outline (magenta: the
                           detected corners, or the --box) and the keys the model holds down on each
                           frame in green (key shapes mapped back through the rectifying warp), with
                           the generated sound (H.264 + AAC, plays in browsers)
     DIR/<name>_roll.png   the predicted roll; with --reference, reference and prediction side by side
                           and the metrics in the title
     DIR/<name>.musicxml   sheet music of the generated notes of the first 5 minutes (audeo_constants
                           SHEET_MAX_SECONDS; music21; opens in MuseScore): one constant
                           tempo fitted to the note onsets, metre 3/4 or
                           4/4 from where the long notes fall, onsets and ends quantised to sixteenths
                           (a quarter of a beat), treble staff from middle C up, bass staff below
     DIR/<name>_sheet.svg  its first system, drawn by verovio (where it is installed; else the log says
                           the preview was skipped)
     DIR/<name>.json       box, side, frame counts, models, synthesizer, metrics and the sheet's tempo,
                           metre, key and grid
Runs with the checkpoints shipped in models/ by default. Every file appears only when all are done.
The pipeline itself: audeo_pipeline.audeo (also reachable as Audeo.audeo).

Live: --live VIDEO plays the file at its own rate, --camera INDEX reads a camera (OpenCV's device index;
     --seconds S, else until Ctrl-C); DIR/<name>.wav grows and DIR/<name>.mid is rewritten as frames
     arrive, --play also sends the notes to the sound card, DIR/<name>.json gives the look-ahead and the
     measured latency (audeo_live). The notes and audio equal a whole-file run's on the same frames.
"""
from __future__ import annotations

from pathlib import Path

from audeo_cli import add_device_arg, add_precision_arg, add_video_args, parser, run
from audeo_pipeline import DEFAULTS, audeo, audeo_many

LIVE_ONLY = ("live", "camera", "seconds", "play", "name")
WHOLE_FILE_ONLY = ("reference", "reference_audio", "reference_offset", "reference_pitch_shift", "batch_size",
                   "overlay")


def main(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    add_video_args(p, optional=True, many=True)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overlay", action="store_true",
                   help="also write DIR/<name>_keys.mp4: the video with the keyboard outline and the keys the "
                        "model presses highlighted on each frame, with the generated sound (whole-file runs)")
    live = p.add_argument_group("live")
    live.add_argument("--live", action="store_true", help="play VIDEO at its own rate and transcribe it as it plays")
    live.add_argument("--camera", type=int, metavar="INDEX", help="transcribe a camera (OpenCV device index) live")
    live.add_argument("--seconds", type=float, help="--camera: stop after this long (default: at Ctrl-C)")
    live.add_argument("--play", action="store_true", help="live: also play the notes on the sound card (FluidSynth)")
    live.add_argument("--name", help="live: output name (default: the video's stem, or camera<INDEX>)")
    ref = p.add_mutually_exclusive_group()
    ref.add_argument("--reference", help="reference MIDI to score against")
    ref.add_argument("--reference-audio", help="score against the notes basic-pitch hears in this recording "
                                               "(e.g. the video's own sound, on the video's time line)")
    p.add_argument("--reference-offset", type=float, default=d["reference_offset"],
                   help="video time (s) at which the reference MIDI's time 0 falls")
    p.add_argument("--reference-pitch-shift", type=int, default=d["reference_pitch_shift"],
                   help="semitones added to the reference's notes (e.g. 12 for AI-Pianist's octave-low files)")
    p.add_argument("--video2roll", default=str(d["video2roll"]), help="Video2Roll checkpoint")
    p.add_argument("--roll2midi", default=str(d["roll2midi"]), help="Roll2Midi checkpoint (e.g. models/roll2midi.pt), or 'none': notes decoded from Video2Roll")
    p.add_argument("--threshold", type=float, default=d["threshold"], help="Video2Roll frame threshold without Roll2Midi (default: the model's)")
    p.add_argument("--onset-threshold", type=float, default=d["onset_threshold"],
                   help="Video2Roll onset threshold (sequence models: notes start at onset peaks; default: the model's)")
    p.add_argument("--midi-threshold", type=float, default=d["midi_threshold"], help="Roll2Midi output threshold")
    p.add_argument("--velocity", type=int, default=d["velocity"], help="note velocity (default: Midi_synth's)")
    p.add_argument("--soundfont", help="sf2/sf3 soundfont (default: the best one installed)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    add_precision_arg(p, d["precision"])
    add_device_arg(p)
    args = vars(p.parse_args(argv))
    if args["camera"] is not None or args["live"]:
        if args["reference"] or args["reference_audio"]:
            p.error("--reference and --reference-audio score whole-file runs, not --live/--camera")
        if args["overlay"]:
            p.error("--overlay is drawn on whole-file runs, not --live/--camera")
        run_live(p, args)
        return
    if not args["video"]:
        p.error("give VIDEO (or --camera INDEX)")
    audeo_many(args.pop("video"), **{k: v for k, v in args.items() if k not in LIVE_ONLY})


def run_live(p, args):
    from audeo_live import camera_source, file_source, live
    camera, videos = args["camera"], args["video"]
    if (camera is not None) == bool(videos) or len(videos) > 1:
        p.error("--live takes one VIDEO; --camera takes none")
    source = camera_source(camera, args["seconds"]) if camera is not None else file_source(videos[0])
    name = args["name"] or (f"camera{camera}" if camera is not None else Path(videos[0]).stem)
    keep = {k: v for k, v in args.items() if k not in LIVE_ONLY + WHOLE_FILE_ONLY + ("video",)}
    live(source, name=name, play=args["play"], **keep)


if __name__ == "__main__":
    run(main)
