"""Evaluation: metrics shared by every comparison, baseline scans, reports."""
