#!/usr/bin/env bash
# Rebuild the model shipped in src/mraa/assets/default from nothing, with mraa's own code: synthetic data,
# reconstruction training, AVD training, then export + held-out measurements + the README figure.
#
#   bash scripts/train_default.sh [DATA_DIR] [RUNS_DIR]      (defaults: data/synth64 runs)
#
# On 2 CPU cores this takes about 2 hours (reconstruction 26 epochs x 2,000 pairs at ~4 min an epoch, AVD about
# 15 min); a GPU is used when one is visible.
set -euo pipefail

DATA=${1:-data/synth64}
RUNS=${2:-runs}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
MRAA=${MRAA:-mraa}

$MRAA synth --out "$DATA" --num-train 400 --num-test 24 --size 64 --frames 32 --seed 0
$MRAA train --config configs/synth64.yaml --data "$DATA" --log-dir "$RUNS/synth64" --seed 0 --no-progress
$MRAA train-avd --checkpoint "$RUNS/synth64/00000025-cpk-reconstruction.pth" --data "$DATA" \
    --log-dir "$RUNS/synth64-avd" --seed 0 --no-progress
python scripts/make_default_assets.py --checkpoint "$RUNS/synth64-avd/00000004-cpk-avd.pth" --data "$DATA"
