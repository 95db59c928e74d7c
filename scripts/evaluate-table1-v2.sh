#!/usr/bin/env bash
# The paper's Table I with a v2 model's value map (issue 13): the held-out recordings of
# scripts/evaluate-table1.sh, paper protocol (5 final ROP iterations), one evaluate per row. One
# model serves every row: the value map takes each row's positions in its number of equal steps
# (`--subsequences` without adaptive). Reports in OUT_DIR/ROW, the table in OUT_DIR/table.md.
# Usage: scripts/evaluate-table1-v2.sh [OUT_DIR] [MODEL] [ROW...]
#        (default docs/results/table-1-v2 models/mos2-cpu-v2, every row; ~3 min a row on 2 cores once
#        the 10 ground truths are cached, ~10 min more before)
set -euo pipefail
OUT=${1:-docs/results/table-1-v2}
MODEL=${2:-models/mos2-cpu-v2}
shift 2 || true
ROWS=${*:-250x2 250x3 250x4 250x5 335x5 420x5 500x5}
BIN=${SCAN_SERVER:-.venv/bin/scan-server}
PYTHON=${PYTHON:-.venv/bin/python}
CACHE=${GROUND_TRUTH_CACHE:-runs/gt-cache}
[ -d data/heldout ] || "$BIN" simulate --preset paper --count 8 --seed 9000 --out data/heldout
[ -d data/heldout-carbon ] || "$BIN" simulate --preset paper --count 2 --seed 9100 --carbon-thickness 5 \
    --out data/heldout-carbon
for row in $ROWS; do
    "$BIN" evaluate --model "$MODEL" --data data/heldout/*.h5 data/heldout-carbon/*.h5 \
        --positions "${row%x*}" --subsequences "${row#*x}" --final-iterations 5 \
        --strategies value-map random halton raster --ground-truth-cache "$CACHE" --out "$OUT/$row"
done
"$PYTHON" scripts/table1.py "$OUT"/*x*/ --strategy value-map --out "$OUT/table.md"
