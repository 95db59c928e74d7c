#!/usr/bin/env bash
# Fig. 3a at small scale: REINFORCE from the same Halton-pretrained model with the per-cell
# Voronoi reward (the paper's) and the shared reward (every position gets the total / P).
# Needs runs/fig3a-{voronoi,shared}/ holding the pretrained model (see docs/results/README.md).
set -euo pipefail
BIN=${SCAN_SERVER:-.venv/bin/scan-server}
ITERATIONS=${ITERATIONS:-60}
for reward in voronoi shared; do
  "$BIN" train rl --preset cpu --data runs/mos2-cpu-v1/train --out "runs/fig3a-$reward" --iterations "$ITERATIONS" \
      --batch 4 --reward "$reward" --seed 7
done
.venv/bin/python scripts/plot_fig3a.py runs/fig3a-voronoi/rl.csv runs/fig3a-shared/rl.csv docs/results/fig3a.png
