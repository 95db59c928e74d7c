"""Evaluation: metrics shared by every comparison, baseline scans, scores, curves, reports.

``DEFAULT_FINAL_ITERATIONS``: the ROP iterations of every scored reconstruction unless a
command is told otherwise (converged, as the full-data reference: ``physics.reconstruct.
GROUND_TRUTH_ITERATIONS``; 5 is the paper's protocol). ``scan-server evaluate``,
``scan-client replay`` and ``make demo`` share it. Kept here, free of torch, so that the
command lines can show it in ``--help`` without importing the physics.
"""

DEFAULT_FINAL_ITERATIONS = 30
