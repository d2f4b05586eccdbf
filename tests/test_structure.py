"""The layout rule: runnable scripts are thin commands over a small library, and never import each other.

Library modules: the top-level `audeo_*.py`, the stages' `*_net.py` and `*_dataset.py`, `piano_coords.py` and
`music_corpus.py`. Every other top-level .py, and every .py in tools/ and bench/, is a runnable script. The
imports are read from the source (every `import` and `from ... import`, also inside functions).
"""
import ast

import pytest

from conftest import REPO

LIBRARY_NAMES = ("piano_coords", "music_corpus")


def is_library(path):
    name = path.stem
    return path.parent == REPO and (name.startswith("audeo_") or name.endswith(("_net", "_dataset"))
                                    or name in LIBRARY_NAMES)


def project_files():
    return sorted([*REPO.glob("*.py"), *(REPO / "tools").glob("*.py"), *(REPO / "bench").glob("*.py")])


def module_path(name):
    """The project file a module name refers to (`Audeo`, `tools.score_ai_pianist`), or None."""
    path = REPO.joinpath(*name.split(".")).with_suffix(".py")
    return path if path.is_file() else None


def imported_files(path):
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {p for p in map(module_path, names) if p is not None and p != path}
    return found


def test_the_rule_sees_scripts_and_library():
    files = project_files()
    scripts = {p.relative_to(REPO).as_posix() for p in files if not is_library(p)}
    assert {"Audeo.py", "Video2Roll_train.py", "Keyboard_detect.py", "tools/score_ai_pianist.py",
            "bench/bench_video2roll.py"} <= scripts
    assert not {"audeo_io.py", "Video2Roll_net.py", "Roll2Midi_dataset.py", "music_corpus.py"} & scripts
    assert module_path("tools.score_ai_pianist") == REPO / "tools" / "score_ai_pianist.py"


@pytest.mark.parametrize("path", project_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_runnable_script_is_imported(path):
    scripts = sorted(p.relative_to(REPO).as_posix() for p in imported_files(path) if not is_library(p))
    assert not scripts, f"{path.relative_to(REPO)} imports the runnable script(s) {scripts}: move what they share " \
                        "into a library module"
