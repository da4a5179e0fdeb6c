"""The sweep's command line: the grid, the executor, what every cell's command gets, and the
Slurm resources of a cell's job."""

from __future__ import annotations

import argparse
from pathlib import Path

from transfer.records.results import default_results_dir
from transfer.sweep.plan import PAPER_N_SUPPORT, PROTOCOLS, SweepOptions, parse_extra
from transfer.sweep.slurm import SlurmOptions

DESCRIPTION = """Run the benchmark grid (models x datasets x protocols); cells with results are
skipped.

    python sweep.py --models random --datasets digits --protocols linear few_shot
    python sweep.py --models paper --datasets all --protocols all --jobs 2
    python sweep.py --models paper --datasets all --protocols all --executor slurm \\
        --slurm-partition gpu --slurm-time 1440 --slurm-array-parallelism 32
    python sweep.py ... --extra finetune='--steps 500 --grid-size 2' --dry-run
    python sweep.py --models timm:convnext_tiny.fb_in22k --datasets many-shot --protocols linear

Shortcuts: models all | paper; datasets all | many-shot | cross-domain | few-shot;
protocols all. Pairs a protocol does not apply to (linear/finetune/knn on a cross-domain set,
few-shot on VOC2007) are left out."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The sweep's options (``sweep.py --help``)."""
    parser = argparse.ArgumentParser(description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True,
                        help="model names, .pth files, timm:<architecture>[.<tag>], or "
                             "all / paper")
    parser.add_argument("--datasets", nargs="+", required=True,
                        help="dataset names or all / many-shot / cross-domain / few-shot")
    parser.add_argument("--protocols", nargs="+", required=True,
                        help=f"{', '.join(PROTOCOLS)} or all")
    parser.add_argument("--n-support", type=int, nargs="+", default=list(PAPER_N_SUPPORT),
                        help="few-shot support sizes, all in one run per cell (default: 5 20 50)")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local",
                        help="local: cells run here, --jobs at a time; slurm: one job per cell")
    parser.add_argument("--jobs", type=int, default=1,
                        help="local cells running at once (cells of one model and dataset "
                             "always run in order, in one worker)")
    parser.add_argument("--force", action="store_true", help="rerun cells whose results exist")
    parser.add_argument("--dry-run", action="store_true", help="list the cells, run nothing")
    parser.add_argument("--extra", action="append", default=[], metavar="PROTOCOL=ARGS",
                        help="more arguments for one protocol's script, e.g. "
                             "finetune='--steps 500' or few_shot='--iter-num 100' (repeatable)")
    parser.add_argument("--results-dir", default=None,
                        help="results root (default: $SSL_TRANSFER_RESULTS, else results/)")
    parser.add_argument("--log-dir", default=None,
                        help="cell logs and submitit folders (default: <results-dir>/sweep_logs)")
    passed = parser.add_argument_group("passed to every protocol script")
    passed.add_argument("--models-dir", default=None, help="common-format checkpoints")
    passed.add_argument("--data-root", default=None, help="folder of the dataset folders")
    passed.add_argument("--cache-dir", default=None, help="feature cache (linear, few_shot, knn)")
    passed.add_argument("--device", default=None, help="cuda or cpu (default: the script's)")
    passed.add_argument("--image-size", type=int, default=None,
                        help="input size (default: the dataset's)")
    passed.add_argument("--workers", type=int, default=None, help="DataLoader workers")
    slurm = parser.add_argument_group(
        "slurm executor (one job per cell, as a job array; see docs/cluster.md)")
    slurm.add_argument("--slurm-partition", default=None, help="partition")
    slurm.add_argument("--slurm-time", type=int, default=1440, help="minutes per cell")
    slurm.add_argument("--slurm-gpus", type=int, default=1, help="GPUs per cell")
    slurm.add_argument("--slurm-cpus", type=int, default=10, help="CPUs per cell")
    slurm.add_argument("--slurm-mem-gb", type=int, default=None, help="memory per cell")
    slurm.add_argument("--slurm-array-parallelism", type=int, default=64,
                       help="cells running at once")
    slurm.add_argument("--slurm-account", default=None, help="account")
    slurm.add_argument("--slurm-qos", default=None, help="quality of service")
    slurm.add_argument("--slurm-constraint", default=None, help="node constraint")
    slurm.add_argument("--wait", action="store_true",
                       help="wait for the jobs and report done / failed (default: submit, exit; "
                            "a rerun with --wait collects jobs still queued)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)



def results_dir_of(args: argparse.Namespace) -> Path:
    return Path(args.results_dir) if args.results_dir else default_results_dir()


def log_dir_of(args: argparse.Namespace) -> Path:
    return Path(args.log_dir) if args.log_dir else results_dir_of(args) / "sweep_logs"


def sweep_options(args: argparse.Namespace) -> SweepOptions:
    """What every cell's command shares (raises SweepError for a bad ``--extra``)."""
    return SweepOptions(
        results_dir=results_dir_of(args).resolve(), models_dir=args.models_dir,
        data_root=args.data_root, cache_dir=args.cache_dir, device=args.device,
        image_size=args.image_size, workers=args.workers, n_support=tuple(args.n_support),
        extra=parse_extra(args.extra))


def slurm_options(args: argparse.Namespace) -> SlurmOptions:
    """The resources of one cell's Slurm job."""
    return SlurmOptions(
        partition=args.slurm_partition, time_min=args.slurm_time, gpus=args.slurm_gpus,
        cpus=args.slurm_cpus, mem_gb=args.slurm_mem_gb,
        array_parallelism=args.slurm_array_parallelism, account=args.slurm_account,
        qos=args.slurm_qos, constraint=args.slurm_constraint)
