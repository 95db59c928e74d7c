#!/usr/bin/env bash
# The dose savings on data we did not make (issue "Dose savings that hold on data we did not simulate"): a model
# (default models/mos2-cpu-v3) evaluated, truth-scored and with every truth-free score held against the truth, on
#   own       our standard evaluation set (12 recordings, seeds 50000–50011, scripts/evaluation-set.sh's)
#   own-real  the same specimens through a real detector: 1 px point-spread, 0.05 dark counts per pixel, the
#             detector sampling in the metadata 3 % off (simulate --detector-psf-px 1 --dark-counts 0.05
#             --sampling-error 0.03; the sampling error changes the simulated box and so each specimen's cut)
#   abtem     the abTEM validation set (make abtem-validation-set; whatever of its 12 recordings exist)
#   abtem-real  the same recordings copied through that detector (scripts/degrade_recording.py)
# into OUT/{own,own-real,abtem,abtem-real}. Usage: scripts/evaluate-robust-savings.sh [OUT] [MODEL] [SETS…]
# About 25 minutes a set on 2 CPU cores once the full-data reconstructions are cached (runs/gt-cache).
set -euo pipefail
OUT=${1:-docs/results/robust-savings}
MODEL=${2:-models/mos2-cpu-v3}
shift $(( $# > 2 ? 2 : $# ))
SETS=${*:-own own-real abtem abtem-real}
BIN=${SCAN_SERVER:-.venv/bin/scan-server}
PY=${PYTHON:-.venv/bin/python}
CACHE=${GROUND_TRUTH_CACHE:-runs/gt-cache}
ABTEM=${ABTEM_VALIDATION_SET:-data/abtem-validation}
for set in $SETS; do
  case $set in
    own) "$BIN" simulate --preset paper --specimen mixed --count 12 --seed 50000 --out data/evaluation-set
         data=(data/evaluation-set/*.h5) ;;
    own-real) "$BIN" simulate --preset paper --specimen mixed --count 12 --seed 50000 --out data/evaluation-set-real \
                --detector-psf-px 1.0 --dark-counts 0.05 --sampling-error 0.03
              data=(data/evaluation-set-real/*.h5) ;;
    abtem) data=("$ABTEM"/*.h5) ;;
    abtem-real) "$PY" scripts/degrade_recording.py "$ABTEM"/*.h5 --out "$ABTEM-real" \
                  --psf-px 1.0 --dark-counts 0.05 --sampling-error 0.03
                data=("$ABTEM-real"/*.h5) ;;
    *) echo "unknown set $set (own, own-real, abtem, abtem-real)" >&2; exit 2 ;;
  esac
  "$BIN" evaluate --model "$MODEL" --data "${data[@]}" --positions 60 100 150 200 250 350 \
      --reference-positions 250 --ground-truth-cache "$CACHE" --out "$OUT/$set"
done
