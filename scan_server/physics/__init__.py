"""Ptychography physics: probe, specimen, forward model, reconstruction, simulation."""
