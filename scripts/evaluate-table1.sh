#!/usr/bin/env bash
# The paper's Table I on the held-out recordings (paper protocol: 5 final ROP iterations), one
# evaluate per row, then the table (OUT_DIR/table.md). 250/5 is the shipped models/mos2-cpu-v1, whose
# report is docs/results/250-5-paper-protocol; the other rows use the models of
# scripts/train-table1.sh, installed as models/mos2-cpu-v1-ROW, and report into OUT_DIR/ROW.
# Usage: scripts/evaluate-table1.sh [OUT_DIR] [ROW...]   (default docs/results/table-1, every row)
set -euo pipefail
OUT=${1:-docs/results/table-1}
shift || true
ROWS=${*:-250x2 250x3 250x4 250x5 335x5 420x5 500x5}
BIN=${SCAN_SERVER:-.venv/bin/scan-server}
PYTHON=${PYTHON:-.venv/bin/python}
CACHE=${GROUND_TRUTH_CACHE:-runs/gt-cache}
SHIPPED_REPORT=docs/results/250-5-paper-protocol
[ -d data/heldout ] || "$BIN" simulate --preset paper --count 8 --seed 9000 --out data/heldout
[ -d data/heldout-carbon ] || "$BIN" simulate --preset paper --count 2 --seed 9100 --carbon-thickness 5 \
    --out data/heldout-carbon
for row in $ROWS; do
    model=models/mos2-cpu-v1-$row out=$OUT/$row
    [ "$row" = 250x5 ] && model=models/mos2-cpu-v1 out=$SHIPPED_REPORT
    "$BIN" evaluate --model "$model" --data data/heldout/*.h5 data/heldout-carbon/*.h5 \
        --positions "${row%x*}" --subsequences "${row#*x}" --final-iterations 5 \
        --ground-truth-cache "$CACHE" --out "$out"
done
"$PYTHON" scripts/table1.py "$SHIPPED_REPORT" "$OUT"/*x*/ --out "$OUT/table.md"
