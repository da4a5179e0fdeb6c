"""The benchmark grid, launched: models x datasets x protocols, each cell one protocol-script run.

``plan`` expands the grid into cells (a command plus the result files that mean it is done) and
skips cells whose results are current; ``local`` runs cells on this machine (``guard`` keeps each
in its own process group); ``slurm`` submits them as a job array through submitit, with
``slurm_queue`` asking the controller for job states and ``slurm_jobs`` keeping which job runs
which cell; ``summary`` says what happened. A crash in one cell never touches another: every
cell runs in its own process.
"""

from transfer.sweep.local import cell_environment, cell_log_path, group_cells, run_cell, run_local
from transfer.sweep.plan import (
    PAPER_N_SUPPORT,
    PROTOCOLS,
    Cell,
    Plan,
    SweepError,
    SweepOptions,
    build_cell,
    expand_datasets,
    expand_models,
    expand_protocols,
    expected_outputs,
    not_applicable,
    parse_extra,
    plan_grid,
)
from transfer.sweep.slurm import SlurmOptions, make_executor, run_on_slurm, submit_cells
from transfer.sweep.summary import Outcome, summary_table

__all__ = [
    "PAPER_N_SUPPORT", "PROTOCOLS", "Cell", "Outcome", "Plan", "SlurmOptions", "SweepError",
    "SweepOptions", "build_cell", "cell_environment", "cell_log_path", "expand_datasets",
    "expand_models", "expand_protocols", "expected_outputs", "group_cells", "make_executor",
    "not_applicable", "parse_extra", "plan_grid", "run_cell", "run_local", "run_on_slurm",
    "submit_cells", "summary_table",
]
