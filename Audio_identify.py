"""Audio_identify: the paper's identification test, offline - is each 10 s excerpt's piece found in a library of 50+?

In:  --references REF.mid|DIR ...  reference MIDI files (a folder: its *.mid); each one's rendering (audeo_synth)
                                  is a library piece, and is queried itself (the "reference rendering" row)
     --queries WAV|DIR ...         generated audio (a folder: its *.wav, e.g. Midi_synth's or Audeo.py's --out),
                                  each identified against the reference of the same stem
     --pair AUDIO=REF.mid ...      generated audio whose reference has another name
     --real-audio AUDIO=REF.mid .. real recordings of a reference (the paper's real-audio baseline)
     --distractors N               other pieces in the library: --distractor-midi performances (e.g. ASAP's)
                                  first, then music21's solo pieces, then Bach chorales (humanised by
                                  music_corpus, seed --seed); none the same work as a reference
     --library-cache FILE.npz      the distractors' features, computed once and reused (rebuilt when the
                                  synthesizer or the feature settings change)
Out: a table on stdout, one row per condition (generated, reference rendering, real audio; outside: --outside
     corpus pieces left out of the library and white noise), over --excerpts excerpts of --excerpt-seconds per
     query: top-1 and top-5 identification rates, `identified` (top-1 and accepted: what an app that answers
     scores) and the rejected fraction (for `outside`, the right answer). --json FILE: every excerpt's top-5
     matches (cost, transposition, where in the piece), the margins, the summary and the timings.

Method (audeo_identify): CENS chroma (librosa) at 5 frames/s, subsequence DTW (librosa.sequence.dtw) of
each excerpt inside every library piece over --shifts chroma shifts (none, then the best by OTI; 12: any
transposition), cost = accumulated cosine cost / path length. Rejection rule: the best piece is the answer only when
1 - best / second-best piece's cost >= --min-margin and half the excerpt's frames carry chroma; else "no
match". A distractor that matches a reference's own rendering (cost <= 0.04 on half its excerpts) is the
same music under another name and is replaced; references that match each other so (one take filmed from
several angles) count as one piece. Both are listed in the JSON (library.left_out, library.same_piece).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from audeo_cli import parser, run
from audeo_identify import Settings, evaluate, table
from audeo_io import AudeoError, atomic_path, check_writable

DEFAULTS = dataclasses.asdict(Settings())


def files(paths, suffix):
    """Files from files and folders (a folder: its *suffix files, sorted)."""
    out = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() == suffix and p.is_file())
            if not found:
                raise AudeoError(f"{path}: no *{suffix} files in the folder")
            out += found
        else:
            out.append(path)
    return list(dict.fromkeys(out))


def pair(text, option):
    """'AUDIO=REF.mid' -> (audio path, reference path)."""
    audio, sep, ref = text.rpartition("=")
    if not sep or not audio or not ref:
        raise AudeoError(f"{option} {text}: expected AUDIO=REF.mid")
    return Path(audio), Path(ref)


def gather(args):
    """({reference name: MIDI path}, generated [(audio, name)], real [(audio, name)]): names are MIDI stems."""
    refs = {}

    def add(ref):
        if refs.setdefault(ref.stem, ref) != ref:
            raise AudeoError(f"{ref}: another reference is also named {ref.stem} ({refs[ref.stem]})")
        return ref.stem

    for ref in files(args.references, ".mid"):
        add(ref)
    generated, real = [], []
    for wav in files(args.queries, ".wav"):
        if wav.stem not in refs:
            raise AudeoError(f"{wav}: no reference {wav.stem}.mid among --references")
        generated.append((wav, wav.stem))
    generated += [(audio, add(ref)) for audio, ref in (pair(t, "--pair") for t in args.pair)]
    real = [(audio, add(ref)) for audio, ref in (pair(t, "--real-audio") for t in args.real_audio)]
    if not refs:
        raise AudeoError("no reference MIDI: give --references, --pair or --real-audio")
    return refs, generated, real


def main(argv=None):
    d = DEFAULTS
    p = parser(__doc__)
    p.add_argument("--references", nargs="*", default=[], help="reference MIDI files or folders of them")
    p.add_argument("--queries", nargs="*", default=[], help="generated audio files (wav) or folders of them")
    p.add_argument("--pair", action="append", default=[], metavar="AUDIO=REF.mid",
                   help="generated audio and its reference (repeatable)")
    p.add_argument("--real-audio", action="append", default=[], metavar="AUDIO=REF.mid",
                   help="a real recording and its reference (repeatable)")
    p.add_argument("--distractors", type=int, default=d["distractors"], help="distractor pieces in the library")
    p.add_argument("--distractor-midi", nargs="*", default=[],
                   help="performance MIDI files to use first as distractors (e.g. ../shared/data/asap/*.mid)")
    p.add_argument("--library-cache",
                   help="npz of the distractors' features, made once and reused (None: computed every run)")
    p.add_argument("--outside", type=int, default=d["outside"], help="corpus pieces kept out of the library, queried")
    p.add_argument("--noise-excerpts", type=int, default=d["noise_excerpts"], help="white-noise queries")
    p.add_argument("--excerpts", type=int, default=d["excerpts"], help="excerpts per query")
    p.add_argument("--excerpt-seconds", type=float, default=d["excerpt_seconds"], help="length of an excerpt")
    p.add_argument("--shifts", type=int, default=d["shifts"], choices=range(1, 13), metavar="1..12",
                   help="chroma shifts tried per piece: none, then the best by OTI (12: every transposition)")
    p.add_argument("--min-margin", type=float, default=d["min_margin"],
                   help="accept the best piece only if 1 - best/second-best cost >= this")
    p.add_argument("--seed", type=int, default=d["seed"], help="humanisation seed of the corpus pieces")
    p.add_argument("--soundfont", help="soundfont for the renderings (None: the best one installed)")
    p.add_argument("--json", help="write every excerpt's result and the summary to this file")
    args = p.parse_args(argv)
    for name in ("distractors", "outside", "noise_excerpts"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be at least 0")
    if args.excerpts < 1 or args.excerpt_seconds <= 0:
        p.error("--excerpts must be at least 1 and --excerpt-seconds positive")
    from audeo_synth import find_synthesizer
    synth = find_synthesizer(args.soundfont)
    refs, generated, real = gather(args)
    for out in filter(None, (args.json, args.library_cache)):       # fail now, not after the work
        check_writable(Path(out).parent)
    settings = Settings(**{k: getattr(args, k) for k in DEFAULTS})
    result = evaluate(refs, generated, real, settings, args.distractor_midi, args.library_cache, synth, progress=True)
    lib = result["library"]
    print(f"library: {len(refs)} references + {len(lib['distractors'])} distractors ({lib['hours']:.2f} h; "
          f"{lib['rendered_now']} rendered now, synthesizer {result['synthesizer']}); "
          f"{args.excerpts} x {args.excerpt_seconds:g} s excerpts a query; accepted when margin >= {args.min_margin}")
    for name, ref in lib["left_out"].items():
        print(f"left out distractor {name}: the same music as reference {ref}")
    for name, piece in lib["same_piece"].items():
        if name != piece:
            print(f"one piece: {name} = {piece}")
    print(table(result["summary"]))
    t = result["timing"]
    print(f"library {t['library_seconds']:.0f} s, identification {t['identify_seconds']:.0f} s "
          f"({len(result['excerpts'])} excerpts)")
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    run(main)
