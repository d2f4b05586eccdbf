#!/usr/bin/env bash
# Reproduce the shipped models (models/*.pt) from scratch on this machine (CPU; CUDA is used when
# present). Every step resumes when re-run: the dataset build skips finished videos, training resumes
# from its last.pt. Roughly: 40 min rendering, ~1 h per 3 Video2Roll epochs, ~1 h fine-tuning,
# ~30 min estimates, ~1 h Roll2Midi on 2 CPU cores.
#   DATA=/work/data RUNS=/work/runs bash tools/train_models.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DATA=${DATA:-/work/data}
RUNS=${RUNS:-/work/runs}
SHARED=${SHARED:-../shared/data}

# 1. data: rendered real music (2.2 h) and the real AI-Pianist videos (split by pianist)
$PY Render_dataset.py --out "$DATA/rendered" --midi "$SHARED"/asap/*.mid
$PY tools/prepare_ai_pianist.py --src "$SHARED/ai_pianist/TrainSet" --out "$DATA/ai_pianist"

# 2. Video2Roll (fast): rendered data, then fine-tuned on rendered + real (real listed 3x)
$PY Video2Roll_train.py --data "$DATA/rendered" --out "$RUNS/v2r_fast" --preset fast --labels labels_keydown --epochs 3
$PY Video2Roll_train.py --data "$DATA/rendered" "$DATA/ai_pianist" --repeat 1 3 --val-data "$DATA/ai_pianist" \
    --init "$RUNS/v2r_fast/best.pt" --out "$RUNS/v2r_fast_ft" --preset fast --labels labels_keydown --epochs 6

# 3. Video2Roll estimates for Roll2Midi's training data
for root in rendered ai_pianist; do
  for split in training validation testing; do
    $PY Video2Roll_inference.py --checkpoint "$RUNS/v2r_fast_ft/best.pt" --data "$DATA/$root" --split $split \
        --out "$RUNS/estimates_$root"
  done
done

# 4. Roll2Midi (base width 8: the original's 64 costs 440 GFLOPs per 4 s window on 88 keys) on
#    rendered + real estimates, joined by symlinks into one root
MIX="$RUNS/r2m_data"
for split in training validation testing; do
  mkdir -p "$MIX/midi/$split" "$MIX/estimate_Roll/$split"
  for root in rendered ai_pianist; do
    for v in "$DATA/$root/midi/$split"/*/; do ln -sfn "$v" "$MIX/midi/$split/"; done
    for v in "$RUNS/estimates_$root/estimate_Roll/$split"/*/; do ln -sfn "$v" "$MIX/estimate_Roll/$split/"; done
  done
done
$PY Roll2Midi_train.py --estimates "$MIX" --data "$MIX" --out "$RUNS/r2m" --net '{"base_channels": 8}' --epochs 4

# 5. ship fp16 copies (each well under 30 MB)
$PY tools/ship_model.py "$RUNS/v2r_fast_ft/best.pt" models/video2roll_fast.pt
$PY tools/ship_model.py "$RUNS/r2m/best.pt" models/roll2midi.pt
