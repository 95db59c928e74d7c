"""Adaptive scan control for low-dose electron ptychography.

Layout (see docs/architecture in the README):
``units`` (Å, eV, mrad), ``device`` (the one place that picks cpu/cuda),
``physics`` (probe, specimen, forward model, ROP reconstruction, simulation),
``io`` (recording formats), ``evaluation`` (metrics, baseline scans), ``cli``.
"""

__version__ = "0.1.0"
