#!/usr/bin/env bash
# Reproduces models/mos2-cpu-v2: models/mos2-cpu-v1 (autoencoder + GRU policy) plus a value map trained
# on 42 simulated recordings of every specimen family (seeds 20000–20041: film, holes, edge, island,
# particles, contamination in turn), then the GRU taught by the value map (DAgger, `train imitate`, 200
# iterations on the same recordings), then exported. About 40 minutes on 2 CPU cores.
# Usage: scripts/train-mos2-cpu-v2.sh [WORK_DIR]   (default: runs/mos2-cpu-v2; resumes when re-run)
# The evaluation set uses seeds 50000+ and the validation recordings 30000+ (never used here).
set -euo pipefail
WORK=${1:-runs/mos2-cpu-v2}
BIN=${SCAN_SERVER:-.venv/bin/scan-server}
ITERATIONS=${VALUE_MAP_ITERATIONS:-400}
mkdir -p "$WORK/run"
[ -f "$WORK/run/model.safetensors" ] || cp models/mos2-cpu-v1/model.safetensors models/mos2-cpu-v1/model_card.json "$WORK/run/"
"$BIN" simulate --preset paper --specimen mixed --count 42 --seed 20000 --out "$WORK/train"
"$BIN" train value-map --preset cpu --data "$WORK/train" --out "$WORK/run" --iterations "$ITERATIONS"
"$BIN" train imitate --preset cpu --data "$WORK/train" --out "$WORK/run" --iterations "${IMITATE_ITERATIONS:-200}"
"$BIN" export "$WORK/run" --name mos2-cpu-v2 ${EVALUATION:+--evaluation "$EVALUATION"} --replace
