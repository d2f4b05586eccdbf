"""Audio_identify / audeo_identify: the paper's identification test, offline, on a tiny library of real chorales."""
import json
import subprocess
import sys

import numpy as np
import pytest

import audeo_identify as I
import audeo_io as aio
import music_corpus as mc
from audeo_constants import IDENTIFY_MIN_MARGIN, SAMPLE_RATE
from audeo_synth import find_synthesizer
from conftest import REPO, shared_data, write_clip_midi

LIBRARY = ("chorale_bwv269", "chorale_bwv347", "chorale_bwv281", "chorale_bwv40_8")
OUTSIDE = "chorale_bwv377"          # a chorale too, so only the music tells it apart
SECONDS = 30.0                      # pieces are cut to this: fast, and still three 10 s excerpts apart
FAST = I.Settings(excerpts=3)


def played(name, seed=0, transpose=0, tempo=1.0, seconds=SECONDS):
    """A corpus piece's humanised performance's first `seconds` (before the tempo change), `transpose`
    semitones up, `tempo` times as fast."""
    piece = next(p for p in mc.chorale_pieces() if p.name == name)
    notes = [(p + transpose, s / tempo, e / tempo, v) for p, s, e, v in aio.midi_notes(mc.performance(piece, seed))
             if s < seconds]
    return aio.notes_to_pretty_midi(notes)


@pytest.fixture(scope="module")
def synth():
    return find_synthesizer()


@pytest.fixture(scope="module")
def library(synth):
    """(Library of the LIBRARY chorales' 30 s renderings, {name: audio})."""
    audio = {name: I.render(played(name), synth) for name in LIBRARY}
    return I.Library([I.Entry(n, I.features(a)) for n, a in audio.items()]), audio


def answers(records):
    return [r["answer"] for r in records]


def test_each_piece_is_found_from_its_own_excerpts(library):
    lib, audio = library
    for name in LIBRARY:
        records = I.identify(audio[name], name, lib, name, "reference rendering", FAST)
        assert [r["rank"] for r in records] == [1, 1, 1] and answers(records) == [name] * 3, records
        for r in records:       # found where it was cut from
            assert r["top"][0]["start"] == pytest.approx(r["start"], abs=1.0)


@pytest.mark.parametrize("change", [dict(transpose=2), dict(tempo=1.15), dict(transpose=-3, tempo=0.87)])
def test_another_performance_transposed_or_retempoed_still_wins(library, synth, change):
    """Another humanisation (seed 5: its own tempo, timing and dynamics), moved in key and/or tempo."""
    lib, _ = library
    name = LIBRARY[1]
    records = I.identify(I.render(played(name, seed=5, **change), synth), name, lib, name, "generated", FAST)
    assert answers(records) == [name] * 3, records
    assert [r["top"][0]["shift"] for r in records] == [change.get("transpose", 0)] * 3


def test_noise_and_music_outside_the_library_are_rejected(library, synth, tmp_path):
    lib, _ = library
    noise = I.identify(None, "noise", lib, None, "outside", FAST, cut=I.noise_excerpts(3))
    chorale = I.identify(I.render(played(OUTSIDE), synth), OUTSIDE, lib, None, "outside", FAST)
    clip = I.render(aio.load_midi(write_clip_midi(tmp_path / "clip.mid", seconds=25, seed=4)), synth)
    random_notes = I.identify(clip, "random notes", lib, None, "outside", FAST)
    for r in chorale + random_notes:
        assert r["answer"] is None and r["margin"] < IDENTIFY_MIN_MARGIN and r["rank"] is None, r
        assert r["chroma"] == 1.0
    assert all(r["answer"] is None and r["chroma"] == 0.0 for r in noise), noise    # no chroma in noise at all
    summary = I.summarise(noise + chorale)["outside"]
    assert summary["rejected"] == 1.0 and summary["excerpts"] == 6 and "top1" not in summary


def test_features_silence_and_noise_are_empty_music_is_unit_chroma(synth):
    silence = I.features(np.zeros(SAMPLE_RATE * 4, np.float32))
    noise = I.features(I.noise_excerpts(1, seconds=4)[0][1])
    chord = I.features(I.render(aio.notes_to_pretty_midi([(60, 0.2, 3.8, 90), (64, 0.2, 3.8, 90),
                                                          (67, 0.2, 3.8, 90)]), synth))
    assert silence.shape[0] == 12 and silence.shape[1] in (20, 21) and not silence.any() and not noise.any()
    middle = chord[:, 5:15]
    assert np.allclose(np.linalg.norm(middle, axis=0), 1, atol=1e-4)
    assert set(np.argsort(-middle.mean(axis=1))[:3]) == {0, 4, 7}        # C, E, G


def test_decide_by_hand():
    ranking = lambda *costs: [dict(name=f"p{i}", cost=c) for i, c in enumerate(costs)]
    assert I.decide(ranking(0.03, 0.10, 0.2)) == ("p0", pytest.approx(0.7))
    assert I.decide(ranking(0.06, 0.10)) == ("p0", pytest.approx(0.4))           # the margin is inclusive
    assert I.decide(ranking(0.07, 0.10)) == (None, pytest.approx(0.3))
    assert I.decide(ranking(1.0, 1.0)) == (None, 0.0)                           # nothing matches
    assert I.decide(ranking(0.05)) == ("p0", 1.0)                               # a library of one
    assert I.decide([]) == (None, 0.0)


def test_excerpts_are_centred_in_equal_parts():
    assert I.excerpt_starts(50.0, "q", seconds=10, count=4) == [5.0, 15.0, 25.0, 35.0]
    audio = np.arange(int(12.5 * SAMPLE_RATE), dtype=np.float32)
    cuts = I.excerpts(audio, "q", seconds=10, count=2)
    assert [s for s, _ in cuts] == [0.625, 1.875] and all(len(c) == 10 * SAMPLE_RATE for _, c in cuts)
    assert cuts[1][1][0] == int(1.875 * SAMPLE_RATE)
    with pytest.raises(aio.AudeoError, match="q: lasts 9.9 s, shorter than the 10 s excerpt"):
        I.excerpt_starts(9.9, "q", seconds=10)


def test_distractors_are_other_works_one_each():
    avoid = ["chorale_bwv269", "Bach_WTC1_Prelude1_BWV846_Shi05M", "chorale_bwv244_17"]
    names = [p.name for p in I.distractor_candidates(avoid)]
    assert "chorale_bwv347" in names and "mozart_k545_movement1_exposition" in names
    assert not [n for n in names if "bwv269" in n or "bwv846" in n or "bwv244" in n]
    everything = I.distractor_candidates([])
    assert len({p.group for p in everything}) == len(everything) and len(everything) > len(names)
    assert I.work_keys("Schubert_Moment_musical3_Tetzloff09M") >= {"schubert_moment_musical3"}


def test_a_distractor_with_a_references_music_is_found(library, synth):
    lib, audio = library
    twin = I.Entry("renamed_copy", I.features(I.render(played(LIBRARY[0], seed=3), synth)))
    both = I.Library(lib.entries + [twin])
    own = I.identify(audio[LIBRARY[0]], LIBRARY[0], both, LIBRARY[0], "reference rendering", FAST)
    assert I.duplicates(own, {"renamed_copy", *LIBRARY[1:]}) == {"renamed_copy": LIBRARY[0]}
    assert I.duplicates(own, set(LIBRARY[1:])) == {}
    third = I.render(played(LIBRARY[0], seed=5), synth)                 # a third take of that piece
    assert answers(I.identify(third, "third", both, LIBRARY[0], "generated", FAST)) == [None] * 3   # two alike ...
    grouped = I.Library(both.entries, I.piece_groups({"renamed_copy": LIBRARY[0]}))
    records = I.identify(third, "third", grouped, LIBRARY[0], "generated", FAST)
    assert answers(records) == [LIBRARY[0]] * 3                           # ... unless they are one piece
    assert all(r["margin"] > 0.5 and "renamed_copy" not in [m["name"] for m in r["top"]] for r in records), records


def test_piece_groups_join_every_take_of_one_piece():
    assert I.piece_groups({"a": "b", "c": "b", "d": "e"}) == dict(a="a", b="a", c="a", d="d", e="d")
    assert I.piece_groups({"c": "d", "a": "b", "b": "d"}) == dict(a="a", b="a", c="a", d="a")


def test_the_cache_is_reused_and_rebuilt(synth, tmp_path):
    path = tmp_path / "lib.npz"
    candidates = [p for p in mc.chorale_pieces() if p.name in LIBRARY[:3]]
    config = I.feature_config(synth)
    cache = I.LibraryCache(path, config).load()
    first, rest, rendered = I.distractor_entries(candidates, 2, synth, cache)
    assert rendered == 2 and [p.name for p in rest] == [candidates[2].name] and not path.exists()   # not saved yet
    cache.save()
    again, _, rendered = I.distractor_entries(candidates, 2, synth, I.LibraryCache(path, config).load())
    assert rendered == 0 and [e.name for e in again] == [e.name for e in first] == [p.name for p in candidates[:2]]
    assert all(np.array_equal(a.features, b.features) for a, b in zip(first, again))
    other = I.LibraryCache(path, config.replace("fluidsynth", "other")).load()
    assert not other.items and other.changed                              # another synthesizer: start afresh
    path.write_bytes(b"PK\x03\x04 not an npz")
    with pytest.raises(aio.AudeoError, match="not a readable library cache"):
        I.LibraryCache(path, config).load()


# ----------------------------------------------------------------------------- the script

def run_script(*args):
    return subprocess.run([sys.executable, str(REPO / "Audio_identify.py"), *map(str, args)],
                          capture_output=True, text=True)


def test_script_end_to_end(tmp_path, synth):
    refs, queries = tmp_path / "refs", tmp_path / "generated"
    for name in LIBRARY[:2]:
        aio.write_midi(played(name), refs / f"{name}.mid")
    from audeo_synth import write_wav
    write_wav(queries / f"{LIBRARY[0]}.wav", I.render(played(LIBRARY[0], seed=7, tempo=0.9), synth))
    out, cache = tmp_path / "out" / "result.json", tmp_path / "lib.npz"
    proc = run_script("--references", refs, "--queries", queries, "--distractors", 3, "--outside", 1,
                      "--noise-excerpts", 1, "--excerpts", 2, "--library-cache", cache, "--json", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    s = result["summary"]
    assert s["generated"]["top1"] == s["generated"]["identified"] == 1.0 and s["generated"]["excerpts"] == 2
    assert s["reference rendering"]["identified"] == 1.0 and s["reference rendering"]["queries"] == 2
    assert s["outside"]["rejected"] == 1.0 and s["outside"]["excerpts"] == 3
    assert len(result["library"]["distractors"]) == 3 and result["library"]["pieces"] == 5
    assert not set(result["library"]["distractors"]) & set(LIBRARY[:2])
    assert "generated" in proc.stdout and "reference rendering" in proc.stdout and cache.is_file()
    again = run_script("--references", refs, "--distractors", 3, "--outside", 0, "--noise-excerpts", 0,
                       "--excerpts", 1, "--library-cache", cache)
    assert again.returncode == 0 and "0 rendered now" in again.stdout, again.stderr


@pytest.mark.parametrize("case", ["missing wav", "garbage wav", "corrupt midi", "short query", "no reference",
                                  "bad pair"])
def test_bad_inputs_give_one_line_and_no_output(tmp_path, synth, case):
    ref = tmp_path / f"{LIBRARY[0]}.mid"
    aio.write_midi(played(LIBRARY[0], seconds=15), ref)
    wav = tmp_path / f"{LIBRARY[0]}.wav"
    from audeo_synth import write_wav
    write_wav(wav, I.render(played(LIBRARY[0], seconds=4 if case == "short query" else 15), synth))
    query = ["--queries", wav]
    if case == "missing wav":
        query = ["--pair", f"{tmp_path / 'missing.wav'}={ref}"]
    elif case == "garbage wav":
        wav.write_bytes(b"RIFF\x00garbage" * 100)
    elif case == "corrupt midi":
        ref.write_bytes(b"MThd garbage")
    elif case == "no reference":
        query = ["--queries", wav.rename(tmp_path / "other.wav")]
    elif case == "bad pair":
        query = ["--real-audio", str(wav)]
    out, cache = tmp_path / "o.json", tmp_path / "c.npz"
    proc = run_script("--references", ref, *query, "--distractors", 1, "--library-cache", cache, "--json", out)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert not out.exists() and not cache.exists() and not list(tmp_path.glob(".*tmp*"))


@pytest.mark.real_data
def test_real_recordings_are_identified(synth):
    """omaps_010 (125 s) and the ByteDance Bach and Liszt recordings, against their MIDI's renderings among
    a few chorales: every excerpt is found, and accepted (measured margins 0.51-0.74 with 50 distractors)."""
    pairs = [("omaps_010", "010"), ("bytedance_demo", "cut_bach"), ("bytedance_demo", "cut_liszt")]
    entries = [I.Entry(n, I.features(I.render(I.reference_midi(shared_data(f, f"{n}.mid")), synth))) for f, n in pairs]
    entries += [I.Entry(n, I.features(I.render(played(n, seconds=60), synth))) for n in LIBRARY]
    lib = I.Library(entries)
    for folder, name in pairs:
        records = I.identify(I.read_audio(shared_data(folder, f"{name}.mp3")), name, lib, name, "real audio")
        assert answers(records) == [name] * 4, records
