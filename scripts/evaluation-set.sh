#!/usr/bin/env bash
# The standard evaluation set (docs/evaluation.md): 12 recordings in the paper's geometry, two of
# each specimen family (film, holes, edge, island, particles, contamination: `--specimen mixed`
# cycles through them by seed), seeds 50000–50011, which no training script uses. Then the
# dose–quality evaluation of a model on it (default: the shipped models/mos2-cpu-v1) into OUT.
# Usage: scripts/evaluation-set.sh [OUT] [MODEL]   (default docs/results/yardstick models/mos2-cpu-v1)
# About 25 minutes on 2 CPU cores (2 of them simulating, the rest reconstructing).
set -euo pipefail
OUT=${1:-docs/results/yardstick}
MODEL=${2:-models/mos2-cpu-v1}
BIN=${SCAN_SERVER:-.venv/bin/scan-server}
DATA=${EVALUATION_SET:-data/evaluation-set}
CACHE=${GROUND_TRUTH_CACHE:-runs/gt-cache}
"$BIN" simulate --preset paper --specimen mixed --count 12 --seed 50000 --out "$DATA"
"$BIN" evaluate --model "$MODEL" --data "$DATA"/*.h5 --positions 60 100 150 200 250 350 \
    --reference-positions 250 --ground-truth-cache "$CACHE" --out "$OUT"
