#!/usr/bin/env bash
# Set-up from a bare machine: system synthesizer (when root), then .venv/ with everything pinned.
# Idempotent: a second run reuses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
if ! have_lib libfluidsynth.so.3 || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing libfluidsynth3 and fluid-soundfont-gm with apt-get"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
       --no-install-recommends libfluidsynth3 fluid-soundfont-gm >/dev/null) \
      || echo "setup: apt-get failed; falling back to tinysoundfont + pretty_midi's TimGM6mb.sf2"
  else
    echo "setup: not root; FluidSynth missing, synthesis will use tinysoundfont + TimGM6mb.sf2"
  fi
fi

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
.venv/bin/python -c "import torch, cv2, pretty_midi, mir_eval, music21, soundfile, basic_pitch" \
  2>/dev/null || { echo "setup: import check failed"; exit 1; }
touch .venv/.installed
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
