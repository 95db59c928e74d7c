#!/usr/bin/env bash
# One model per row of the paper's Table I (other than 250 positions in 5 sub-sequences, which is
# models/mos2-cpu-v1): each starts from mos2-cpu-v1's trained autoencoder, gets a new policy proposing
# the row's positions per step (--subsequence), Halton pretraining and REINFORCE on the same 16 training
# recordings as mos2-cpu-v1 (seeds 1000–1015, made by scripts/train-mos2-cpu-v1.sh or here), and installs
# it as models/mos2-cpu-v1-ROW. The committed 420x5 and 500x5 had not fitted the Halton continuation after
# 100 pretraining iterations and were continued to 200 and 150: PRETRAIN_ITERATIONS=200 for 420x5, 150 for 500x5.
# Usage: scripts/train-table1.sh [WORK_DIR] [ROW...]   rows: 250x2 250x3 250x4 335x5 420x5 500x5
# A row whose total is not a multiple of its sub-sequences proposes ceil(total / count) positions
# per step; the last step is cut short (250 in 3: 84 + 84 + 82; in 4: 63 + 63 + 63 + 61).
set -euo pipefail
WORK=${1:-runs/table1}
shift || true
ROWS=${*:-250x2 250x3 250x4 335x5 420x5 500x5}
BIN=${SCAN_SERVER:-.venv/bin/scan-server}
BASE=${BASE_MODEL:-models/mos2-cpu-v1}
DATA=${TRAIN_DATA:-runs/mos2-cpu-v1/train}
PRETRAIN_ITERATIONS=${PRETRAIN_ITERATIONS:-100}
RL_ITERATIONS=${RL_ITERATIONS:-60}
[ -d "$DATA" ] || "$BIN" simulate --preset paper --count 16 --seed 1000 --out "$DATA"
for row in $ROWS; do
    total=${row%x*}; count=${row#*x}
    per_step=$(( (total + count - 1) / count ))
    run="$WORK/$row"
    mkdir -p "$run"
    # start from the shipped model's autoencoder (the pretrain stage replaces its policy)
    [ -f "$run/model.safetensors" ] || cp "$BASE/model.safetensors" "$BASE/model_card.json" "$run/"
    "$BIN" train pretrain --preset cpu --data "$DATA" --out "$run" --steps "$count" \
        --subsequence "$per_step" --iterations "$PRETRAIN_ITERATIONS"
    "$BIN" train rl --preset cpu --data "$DATA" --out "$run" --steps "$count" --iterations "$RL_ITERATIONS" \
        --reward error --baseline
    "$BIN" export "$run" --name "mos2-cpu-v1-$row" --replace
done
