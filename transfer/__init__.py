"""Mechanics shared by the protocol scripts: features and their cache, solvers, metrics,
calibration and results files."""
