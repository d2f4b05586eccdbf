"""bench/bench_pipeline.py runs every stage on a 2 s clip and reports each one (no speed is asserted here:
timings belong in bench/)."""
import json
import subprocess
import sys

import pytest

from conftest import REPO

STAGES = ("startup", "decode", "detect", "crop", "video2roll", "roll2midi", "synthesis", "mux", "end_to_end", "live")
OLD = "".join(f"### 2000-01-0{i}\n\nold run {i}\n\n" for i in range(1, 6))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    import imageio_ffmpeg
    d = tmp_path_factory.mktemp("bench")
    clip = d / "clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i",
                    str(REPO / "examples" / "demo_schumann.mp4"), "-t", "2", "-an", "-c:v", "libx264", "-preset",
                    "ultrafast", str(clip)], check=True)
    md = d / "README.md"
    md.write_text(f"# intro\n\n<!-- bench_pipeline:start -->\n{OLD}<!-- bench_pipeline:end -->\ntail\n")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_pipeline.py"), "--video", str(clip), "--models",
                           "fast", "--json", str(d / "out.json"), "--markdown", str(md), "--keep", "5"],
                          capture_output=True, text=True, cwd=d)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((d / "out.json").read_text()), md.read_text()


def test_every_stage_is_measured(report):
    rows = report[0]["rows"]
    assert [r["stage"] for r in rows] == list(STAGES)
    for r in rows:
        assert r["seconds"] > 0 and r["peak_rss_mb"] > 0, r
        if r["stage"] == "live":                       # the 2 s clip played at its own rate, then its latency
            assert r["seconds"] >= 2 and r["lookahead_ms"] == 80, r
            assert r["latency_median_ms"] >= r["lookahead_ms"] and not r["latency_steady"], r
        elif r["stage"] != "startup":
            assert r["frames_per_s"] > 0 and r["real_time"] > 0, r
    net = rows[STAGES.index("video2roll")]
    assert net["model"] == "fast" and 0 < net["gflops_per_frame"] < 1 and net["peak_fraction"] > 0
    machine = report[0]["machine"]
    assert machine["matmul_gflops"] > 0 and machine["cores"] >= 1 and machine["video_seconds"] == pytest.approx(2, abs=0.1)


def test_markdown_gets_one_row_per_stage_in_a_new_dated_section(report):
    text = report[1]
    assert text.startswith("# intro\n") and text.endswith("<!-- bench_pipeline:end -->\ntail\n")
    sections = text.split("### ")[1:]
    assert len(sections) == 5 and "old run 1" not in text and "old run 2" in text   # the oldest one dropped
    headers = ("| stage", "| live (file")
    rows = [line for line in sections[-1].splitlines() if line.startswith("| ") and not line.startswith(headers)]
    assert len(rows) == len(STAGES) + 1                    # and the live latency table's one row
    assert rows[-2].startswith("| live, Audeo.py --live fast")
    assert rows[-1].startswith("| fast | 80 | ")           # the latency table's row
