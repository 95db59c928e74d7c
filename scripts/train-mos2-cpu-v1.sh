#!/usr/bin/env bash
# Reproduces models/mos2-cpu-v1: simulated training data, the three stages, export.
# Usage: scripts/train-mos2-cpu-v1.sh [WORK_DIR]   (default: runs/mos2-cpu-v1; resumes when re-run)
# Held-out evaluation data use seeds 9000+ (never used here); see docs/results/README.md.
set -euo pipefail
WORK=${1:-runs/mos2-cpu-v1}
BIN=${SCAN_SERVER:-.venv/bin/scan-server}
CAE_ITERATIONS=${CAE_ITERATIONS:-150}
PRETRAIN_ITERATIONS=${PRETRAIN_ITERATIONS:-150}
RL_ITERATIONS=${RL_ITERATIONS:-300}
mkdir -p "$WORK"
# 16 randomised MoS2 recordings (100×100 positions, 2.1e5 e/pattern, C10 within ±20 Å), seeds 1000–1015
"$BIN" simulate --preset paper --count 16 --seed 1000 --out "$WORK/train"
"$BIN" train cae      --preset cpu --data "$WORK/train" --out "$WORK/run" --iterations "$CAE_ITERATIONS"
"$BIN" train pretrain --preset cpu --data "$WORK/train" --out "$WORK/run" --iterations "$PRETRAIN_ITERATIONS"
"$BIN" train rl       --preset cpu --data "$WORK/train" --out "$WORK/run" --iterations "$RL_ITERATIONS" \
    --reward error --baseline
