#!/usr/bin/env bash
# The paper preset trained on one GPU, every stage of models/mos2-cpu-v2's recipe: autoencoder, Halton
# pretraining, value map, the GRU taught by the value map (DAgger), then REINFORCE with the headline
# reward against the Halton scan on the same specimen. Iteration counts default to the paper preset's
# (STAGE_DEFAULTS in scan_server/training/settings.py: days of GPU time); set them lower to measure the
# throughput of each stage, e.g. CAE=20 PRETRAIN=5 VALUE_MAP=5 IMITATE=5 RL=5 (the device check of
# issue 13). Prints the seconds per iteration of each stage at the end.
# Usage: scripts/train-paper-gpu.sh [WORK_DIR]   (default: runs/paper-gpu; resumes when re-run)
# Environment: COUNT (simulated recordings, default 42), DEVICE (default cuda), SCAN_SERVER (the command,
# default .venv/bin/scan-server).
set -euo pipefail
WORK=${1:-runs/paper-gpu}
BIN=${SCAN_SERVER:-.venv/bin/scan-server}
DEVICE=${DEVICE:-cuda}
mkdir -p "$WORK"
$BIN simulate --preset paper --specimen mixed --count "${COUNT:-42}" --seed 20000 --out "$WORK/train" --device "$DEVICE"
stage() {  # stage NAME ITERATIONS [options…]
  local name=$1 iterations=$2; shift 2
  local started=$SECONDS
  $BIN train "$name" --preset paper --data "$WORK/train" --out "$WORK/run" --device "$DEVICE" \
    ${iterations:+--iterations "$iterations"} "$@"
  echo "stage $name: $((SECONDS - started)) s for ${iterations:-the preset default} iterations" | tee -a "$WORK/timings.txt"
}
: > "$WORK/timings.txt"
stage cae "${CAE:-}"
stage pretrain "${PRETRAIN:-}"
stage value-map "${VALUE_MAP:-}"
stage imitate "${IMITATE:-}"
stage rl "${RL:-}" --reward quality --baseline halton --normalise
cat "$WORK/timings.txt"
