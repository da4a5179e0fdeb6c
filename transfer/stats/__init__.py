"""Numbers about numbers: the protocols' metrics (``metrics``), bootstrap intervals
(``bootstrap``), paired comparisons and rank intervals (``comparisons``), calibration
(``calibration``) and how flat the linear probe's C search was (``plateau``). Pure numpy/scipy."""
