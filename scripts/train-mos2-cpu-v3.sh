#!/usr/bin/env bash
# Reproduces models/mos2-cpu-v3: models/mos2-cpu-v2's autoencoder and DAgger-taught GRU, with a new value map
# trained on the calibrated dark-field evidence (evidence version 2: physics/calibration.py,
# scanning/evidence.py) of 42 recordings of every specimen family (seeds 20000–20041, the specimens of v2)
# whose detector and dose are drawn per recording (`simulate --randomise-detector`: point-spread 0–2 px,
# descan 0–2 px, semi-angle and sampling ±5 %, gain spread ≤ 5 %, dark counts, hot and dead pixels, blanked
# frames, 10³–10⁶ e⁻ per pattern; physics/detector.py DetectorRanges), then exported.
# About 25 minutes on 2 CPU cores. Usage: scripts/train-mos2-cpu-v3.sh [WORK_DIR] (default runs/mos2-cpu-v3;
# resumes when re-run). The evaluation sets use seeds 50000+ and 70000+, the validation recordings 30000+.
set -euo pipefail
WORK=${1:-runs/mos2-cpu-v3}
BIN=${SCAN_SERVER:-.venv/bin/scan-server}
ITERATIONS=${VALUE_MAP_ITERATIONS:-400}
mkdir -p "$WORK/run"
[ -f "$WORK/run/model.safetensors" ] || cp models/mos2-cpu-v2/model.safetensors models/mos2-cpu-v2/model_card.json "$WORK/run/"
"$BIN" simulate --preset paper --specimen mixed --count 42 --seed 20000 --randomise-detector --out "$WORK/train"
"$BIN" train value-map --preset cpu --data "$WORK/train" --out "$WORK/run" --iterations "$ITERATIONS"
"$BIN" export "$WORK/run" --name mos2-cpu-v3 ${EVALUATION:+--evaluation "$EVALUATION"} --replace
