"""What a run leaves behind: one JSON record per run (``results``), its per-image test outputs
(``outputs``), what produced it (``provenance``), and whether it is still current
(``freshness``, used by the sweep to skip cells)."""
