#!/usr/bin/env bash
# Reproduce the shipped models (models/*.pt) from scratch on this machine (CPU; CUDA is used when
# present). Every step resumes when re-run: the dataset build skips finished videos, training resumes
# from its last.pt. Roughly: 20-40 min rendering, ~1 h per 3 Video2Roll epochs, ~40 min fine-tuning,
# ~20 min estimates, ~40 min Roll2Midi on 2 CPU cores; the paper net for as long as it is given.
#   bash tools/train_models.sh            (DATA=data RUNS=runs SHARED=../shared/data by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DATA=${DATA:-data}
RUNS=${RUNS:-runs}
SHARED=${SHARED:-../shared/data}

# 1. data: rendered real music (2.2 h) and the real AI-Pianist videos (split by pianist)
$PY Render_dataset.py --out "$DATA/rendered" --midi "$SHARED"/asap/*.mid
$PY tools/prepare_ai_pianist.py --src "$SHARED/ai_pianist/TrainSet" --out "$DATA/ai_pianist"

# 2. Video2Roll (fast): rendered data, then fine-tuned on rendered + real (real listed 3x)
$PY Video2Roll_train.py --data "$DATA/rendered" --out "$RUNS/v2r_fast" --preset fast --epochs 3
$PY Video2Roll_train.py --data "$DATA/rendered" "$DATA/ai_pianist" --repeat 1 3 --val-data "$DATA/ai_pianist" \
    --init "$RUNS/v2r_fast/best.pt" --out "$RUNS/v2r_fast_ft" --preset fast --epochs 4
# (the shipped model had this fine-tune in two rounds of 2 epochs: the first on real crops cut axis-aligned,
#  the second, from the first's best, on rectified ones; today's prepare_ai_pianist always rectifies)

# 3. Video2Roll estimates for Roll2Midi's training data (every second rendered training video, to save
#    CPU time; all real takes)
CK="$RUNS/v2r_fast_ft/best.pt"
TRAIN_SUBSET=$(ls "$DATA/rendered/frames/training" | sed 's/\.npy$//' | awk 'NR % 2 == 1')
$PY Video2Roll_inference.py --checkpoint $CK --data "$DATA/rendered" --split training --videos $TRAIN_SUBSET \
    --out "$RUNS/estimates_rendered"
for split in validation testing; do
  $PY Video2Roll_inference.py --checkpoint $CK --data "$DATA/rendered" --split $split --out "$RUNS/estimates_rendered"
done
for split in training validation testing; do
  $PY Video2Roll_inference.py --checkpoint $CK --data "$DATA/ai_pianist" --split $split --out "$RUNS/estimates_ai_pianist"
done

# 4. Roll2Midi (base width 8: the original's 64 costs 440 GFLOPs per 4 s window on 88 keys) on
#    rendered + real estimates, joined by symlinks into one root
MIX="$RUNS/r2m_data"
for split in training validation testing; do
  mkdir -p "$MIX/midi/$split" "$MIX/estimate_Roll/$split"
  for root in rendered ai_pianist; do
    for v in "$RUNS/estimates_$root/estimate_Roll/$split"/*/; do
      ln -sfn "$v" "$MIX/estimate_Roll/$split/"
      ln -sfn "$DATA/$root/midi/$split/$(basename "$v")" "$MIX/midi/$split/"
    done
  done
done
$PY Roll2Midi_train.py --estimates "$MIX" --data "$MIX" --out "$RUNS/r2m" --net '{"base_channels": 8}' --epochs 8 \
    --stride 100 --batch-size 4 --lr 1e-3

# 5. ship fp16 copies (each well under 30 MB)
$PY tools/ship_model.py "$RUNS/v2r_fast_ft/best.pt" models/video2roll_fast.pt
$PY tools/ship_model.py "$RUNS/r2m/best.pt" models/roll2midi.pt

# 6. Video2Roll (seq, the default everywhere): reference keyboard + temporal head with frame/onset/offset
#    outputs, from the fast net's weights, on rendered + real takes (real listed 4x) with the offsets in
#    tools/ai_pianist_offsets.json (takes whose file is only rough stay out). The shipped model is best.pt of
#    epoch 7 (the run was stopped during epoch 8, ~25 min an epoch here); its thresholds are the ones
#    validation chose (frame 0.3, onset 0.2), kept in best.pt.
$PY tools/prepare_ai_pianist.py --src "$SHARED/ai_pianist/TrainSet" --out "$DATA/ai_pianist_v1" --offsets tools/ai_pianist_offsets.json
$PY Video2Roll_train.py --data "$DATA/rendered" "$DATA/ai_pianist_v1" --repeat 1 4 --val-data "$DATA/ai_pianist_v1" "$DATA/rendered" \
    --preset seq --init models/video2roll_fast.pt --out "$RUNS/v2r_seq" --epochs 7 --draws 2000 --batch-size 4 --length 64 \
    --val-max-frames 3000 --save-minutes 5
$PY tools/ship_model.py "$RUNS/v2r_seq/best.pt" models/video2roll_seq.pt
#    then continued from that (shipped) model at a third of the learning rate, 1,000 draws an epoch (~26 min
#    fp32 on 2 AVX-512 cores); the shipped model is best.pt of epoch 2 (validation onset F1 on pianist 11
#    0.853, was 0.81; thresholds frame 0.3, onset 0.15)
$PY Video2Roll_train.py --data "$DATA/rendered" "$DATA/ai_pianist_v1" --repeat 1 4 --val-data "$DATA/ai_pianist_v1" "$DATA/rendered" \
    --preset seq --init models/video2roll_seq.pt --out "$RUNS/v2r_seq2" --epochs 2 --draws 1000 --batch-size 4 --length 64 \
    --val-max-frames 3000 --save-minutes 5 --lr 3e-4
$PY tools/ship_model.py "$RUNS/v2r_seq2/best.pt" models/video2roll_seq.pt
#    then one more epoch from that at lr 2e-4 with the six rough takes whose offsets both halves confirmed
#    (--include-rough; ~45 min fp32 on 2 AVX2 cores); the shipped model is best.pt of epoch 1 (validation onset
#    F1 0.853 -> 0.862; thresholds frame 0.3, onset 0.2; the run was stopped during epoch 2)
$PY tools/prepare_ai_pianist.py --src "$SHARED/ai_pianist/TrainSet" --out "$DATA/ai_pianist_v2" --offsets tools/ai_pianist_offsets.json \
    --include-rough
$PY Video2Roll_train.py --data "$DATA/rendered" "$DATA/ai_pianist_v2" --repeat 1 4 --val-data "$DATA/ai_pianist_v2" "$DATA/rendered" \
    --preset seq --init models/video2roll_seq.pt --out "$RUNS/v2r_seq3" --epochs 1 --draws 1000 --batch-size 4 --length 64 \
    --val-max-frames 3000 --save-minutes 5 --lr 2e-4
$PY tools/ship_model.py "$RUNS/v2r_seq3/best.pt" models/video2roll_seq.pt
#    Roll2Midi for the seq net: its estimates of the real takes, onsets as the second input; 5 epochs (~6 min
#    each here), best.pt of epoch 5
for split in training validation testing; do
  $PY Video2Roll_inference.py --checkpoint models/video2roll_seq.pt --data "$DATA/ai_pianist_v2" --split $split \
      --out "$RUNS/estimates_seq"
done
$PY Roll2Midi_train.py --estimates "$RUNS/estimates_seq" --data "$DATA/ai_pianist_v2" --out "$RUNS/r2m_seq" \
    --net '{"base_channels": 8, "in_channels": 2}' --epochs 5 --stride 50 --batch-size 4 --lr 1e-3 --onset-threshold 0.2
$PY tools/ship_model.py "$RUNS/r2m_seq/best.pt" models/roll2midi_seq.pt

# 7. Video2Roll (paper): the original network at 88 keys on rendered data, small epochs so that
#    validation comes often. It costs 18x the fast net; bf16 autocast on this AMX CPU makes that
#    ~22 samples/s with data loading (fp32: ~7). The shipped model: 4 epochs x 4,000 draws at the
#    original batch 64 in fp32 (before bf16 training existed), then batch 16 in bf16 from that.
$PY Video2Roll_train.py --data "$DATA/rendered" --out "$RUNS/v2r_paper" --preset paper \
    --epochs 4 --draws 4000 --val-max-frames 500 --save-minutes 5 --no-amp
$PY Video2Roll_train.py --data "$DATA/rendered" --out "$RUNS/v2r_paper_bf16" --preset paper \
    --init "$RUNS/v2r_paper/last.pt" --epochs 40 --draws 8000 --batch-size 16 --val-max-frames 1000 --save-minutes 5
$PY tools/ship_model.py "$RUNS/v2r_paper_bf16/best.pt" models/video2roll_paper.pt

# 8. int8 calibrations of the fast and seq nets (--precision int8): every third real training take, first 400
#    frames (the rough takes included: data/ai_pianist_v2 of step 6)
for net in fast seq; do
  $PY tools/calibrate_int8.py models/video2roll_$net.pt --data "$DATA/ai_pianist_v2"
done
