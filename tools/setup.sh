#!/usr/bin/env bash
# Set-up from a bare machine: system synthesizer (when root), then .venv/ with everything pinned.
# Idempotent: a second run reuses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
# apt_install WITHOUT PACKAGE...: Debian's packages with apt-get when root (never fatal); WITHOUT says what
# happens when they cannot be installed
apt_install() {
  local without=$1; shift
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing $* with apt-get"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
       --no-install-recommends "$@" >/dev/null) || echo "setup: apt-get failed; $without"
  else
    echo "setup: not root, so no $*: $without"
  fi
}
if ! have_lib libfluidsynth.so.3 || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then
  apt_install "synthesis will use tinysoundfont + pretty_midi's TimGM6mb.sf2" libfluidsynth3 fluid-soundfont-gm
fi
if ! command -v chromium >/dev/null; then     # the browser tests/test_app.py drives through Playwright
  apt_install "tests/test_app.py will be skipped (no Chromium)" chromium fonts-dejavu-core
fi

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
.venv/bin/python -c "import torch, cv2, pretty_midi, mir_eval, music21, soundfile, basic_pitch, fastapi, uvicorn" \
  2>/dev/null || { echo "setup: import check failed"; exit 1; }
touch .venv/.installed
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
