#!/usr/bin/env bash
# Rebuild the model shipped in src/mraa/assets/default from nothing, with mraa's own code: synthetic data,
# reconstruction training in five stages, AVD training, then export + held-out measurements + README figure.
#
#   bash scripts/train_default.sh [DATA_DIR] [RUNS_DIR]      (defaults: data/synth64 runs)
#
# This is the exact sequence that made the shipped model (each stage starts from the previous one's weights with
# a fresh optimizer and another data order):
#   1. configs/synth64.yaml as written: 26 epochs, learning-rate drops at 19 and 24;
#   2. 6 more epochs at the full learning rate (the loss was still falling);
#   3. 12 epochs with the region separation loss (loss_weights.separation=1, an mraa extension), drops at 8
#      and 11: without it all 10 regions had settled on one blob on the figure's body;
#   4. and 5. two more cycles with the separation loss, each a few epochs at the full learning rate and then low
#      ones (14 epochs with drops at 10 and 13, then 9 with drops at 6 and 8): each drop bought about 0.03 of
#      the held-out ratio, each cycle about 0.015.
# On 2 CPU cores this takes about 5 h (about 4.3 min an epoch, AVD about 15 min); a GPU is used when one is
# visible.
set -euo pipefail

DATA=${1:-data/synth64}
RUNS=${2:-runs}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
MRAA=${MRAA:-mraa}

$MRAA synth --out "$DATA" --num-train 400 --num-test 24 --size 64 --frames 32 --seed 0
$MRAA train --config configs/synth64.yaml --data "$DATA" --log-dir "$RUNS/synth64" --seed 0 --no-progress
$MRAA train --config configs/synth64.yaml --data "$DATA" --log-dir "$RUNS/synth64-stage2" --seed 1 --no-progress \
    --checkpoint "$RUNS/synth64/00000025-cpk-reconstruction.pth" \
    --set train_params.num_epochs=6 --set 'train_params.epoch_milestones=[]'
$MRAA train --config configs/synth64.yaml --data "$DATA" --log-dir "$RUNS/synth64-stage3" --seed 2 --no-progress \
    --checkpoint "$RUNS/synth64-stage2/00000005-cpk-reconstruction.pth" \
    --set train_params.num_epochs=12 --set 'train_params.epoch_milestones=[8, 11]' \
    --set train_params.loss_weights.separation=1
$MRAA train --config configs/synth64.yaml --data "$DATA" --log-dir "$RUNS/synth64-stage4" --seed 3 --no-progress \
    --checkpoint "$RUNS/synth64-stage3/00000011-cpk-reconstruction.pth" \
    --set train_params.num_epochs=14 --set 'train_params.epoch_milestones=[10, 13]' \
    --set train_params.loss_weights.separation=1
$MRAA train --config configs/synth64.yaml --data "$DATA" --log-dir "$RUNS/synth64-stage5" --seed 4 --no-progress \
    --checkpoint "$RUNS/synth64-stage4/00000013-cpk-reconstruction.pth" \
    --set train_params.num_epochs=9 --set 'train_params.epoch_milestones=[6, 8]' \
    --set train_params.loss_weights.separation=1
$MRAA train-avd --checkpoint "$RUNS/synth64-stage5/00000008-cpk-reconstruction.pth" --data "$DATA" \
    --log-dir "$RUNS/synth64-avd" --seed 0 --no-progress
python scripts/make_default_assets.py --checkpoint "$RUNS/synth64-avd/00000004-cpk-avd.pth" --data "$DATA" \
    --earlier-epochs 26 6 12 14
