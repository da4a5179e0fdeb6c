"""The grid, planned: models x datasets x protocols expanded into cells, each one protocol-script
command plus the result files that mean it is done. Pure planning: nothing runs here.

A cell whose results exist is skipped only when their provenance matches what would run now
(``transfer.records.freshness``); otherwise it runs again and its ``reason`` says why.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from datasets.registry import CROSS_DOMAIN, DATASETS, MANY_SHOT, PAPER_DATASETS
from models.errors import ModelError
from models.registry import MODELS, PAPER_MODELS, REPO_ROOT, default_models_dir
from models.resolve import CUSTOM, FILE, model_label, resolve_model
from transfer.errors import TransferError
from transfer.protocols import few_shot, finetune, knn, linear
from transfer.protocols.arguments import backbone_options
from transfer.records.freshness import Present, rerun_reason

PROTOCOLS: tuple[str, ...] = ("linear", "few_shot", "finetune", "knn")
PROTOCOL_MODULES: dict[str, ModuleType] = {"linear": linear, "few_shot": few_shot,
                                           "finetune": finetune, "knn": knn}
SCRIPTS = {"linear": "linear.py", "few_shot": "few_shot.py", "finetune": "finetune.py",
           "knn": "knn.py"}
#: Only the feature-based protocols keep a feature cache.
CACHED_PROTOCOLS = frozenset({"linear", "few_shot", "knn"})


PAPER_N_SUPPORT: tuple[int, ...] = (5, 20, 50)


DATASET_SETS: dict[str, list[str]] = {
    "all": list(PAPER_DATASETS),
    "many-shot": list(MANY_SHOT),
    "cross-domain": list(CROSS_DOMAIN),
    "few-shot": [n for n in PAPER_DATASETS if not DATASETS[n].multilabel],
}


# "all": the paper's models and the random lower bound; the zoo's extra models (efficientnet-lite*,
# not in the paper) are swept when named
MODEL_SETS: dict[str, list[str]] = {"all": [*PAPER_MODELS, "random"],
                                    "paper": list(PAPER_MODELS)}


# The sweep sets these itself; an --extra that sets them too would make the skip check lie.
_OWNED_OPTIONS = {"-m", "--model", "-d", "--dataset", "--results-dir"}


_OWNED_BY_PROTOCOL = {"few_shot": {"--n-support"}}


class SweepError(TransferError, ValueError):
    """A sweep option names an unknown model, dataset or protocol, or cannot be honoured."""


def _expand(names: Iterable[str], shortcuts: dict[str, list[str]], kind: str,
            is_known: Callable[[str], bool], known_hint: str) -> list[str]:
    """Replace shortcuts by their members, keep order, drop repeats, reject unknown names."""
    out: list[str] = []
    for name in names:
        members = shortcuts.get(name, [name])
        for member in members:
            if not is_known(member):
                raise SweepError(f"unknown {kind} {member!r}; expected one of: {known_hint}")
            if member not in out:
                out.append(member)
    return out


def expand_models(names: Iterable[str], models_dir: str | os.PathLike | None = None) -> list[str]:
    """Model names with ``all`` / ``paper`` expanded; a custom name needs a checkpoint
    ``<models_dir>/<name>.pth``, a ``.pth`` path must exist, and a ``timm:`` name must be a timm
    architecture (its error, naming the closest ones, is raised as is)."""
    folder = Path(models_dir) if models_dir else default_models_dir()

    def known(name: str) -> bool:
        try:
            ref = resolve_model(name, folder)
        except ModelError as error:
            raise SweepError(str(error)) from error
        return ref.kind not in (CUSTOM, FILE) or ref.path.is_file()

    hint = (f"{', '.join(MODEL_SETS)} (shortcuts), {', '.join(MODELS)}, a common-format .pth "
            f"file, a name with a checkpoint <name>.pth in {folder}, or timm:<architecture>")
    return _expand(names, MODEL_SETS, "model", known, hint)


def expand_datasets(names: Iterable[str]) -> list[str]:
    """Dataset names with ``all``, ``many-shot``, ``cross-domain`` and ``few-shot`` expanded."""
    hint = f"{', '.join(DATASET_SETS)} (shortcuts), {', '.join(DATASETS)}"
    return _expand(names, DATASET_SETS, "dataset", lambda n: n in DATASETS, hint)


def expand_protocols(names: Iterable[str]) -> list[str]:
    """Protocol names with ``all`` expanded."""
    hint = f"all, {', '.join(PROTOCOLS)}"
    return _expand(names, {"all": list(PROTOCOLS)}, "protocol", lambda n: n in PROTOCOLS, hint)


def not_applicable(protocol: str, dataset: str) -> str | None:
    """Why ``protocol`` does not run on ``dataset`` (docs/protocols.md), or None if it does."""
    spec = DATASETS[dataset]
    if protocol in ("linear", "finetune", "knn") and spec.few_shot_only:
        return "a cross-domain set is few-shot only"
    if protocol == "few_shot" and spec.multilabel:
        return "multi-label, so no few-shot classes"
    return None


def parse_extra(values: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``["few_shot=--iter-num 100", ...]`` -> ``{"few_shot": ("--iter-num", "100")}``."""
    extra: dict[str, list[str]] = {}
    for value in values:
        protocol, sep, args = value.partition("=")
        if not sep or protocol not in PROTOCOLS:
            raise SweepError(f"--extra {value!r}: expected PROTOCOL=ARGS with PROTOCOL one of "
                             f"{', '.join(PROTOCOLS)}, e.g. finetune='--steps 500'")
        tokens = shlex.split(args)
        owned = _OWNED_OPTIONS | _OWNED_BY_PROTOCOL.get(protocol, set())
        for token in tokens:
            if token.split("=", 1)[0] in owned:
                raise SweepError(f"--extra {protocol}: {token.split('=', 1)[0]} is set by the "
                                 "sweep itself (use --models/--datasets/--results-dir/--n-support)")
        extra.setdefault(protocol, []).extend(tokens)
    return {protocol: tuple(tokens) for protocol, tokens in extra.items()}


@dataclass(frozen=True)
class SweepOptions:
    """What every cell's command shares; ``None`` leaves a script's own default."""

    results_dir: Path
    models_dir: str | None = None
    data_root: str | None = None
    cache_dir: str | None = None
    device: str | None = None
    image_size: int | None = None
    workers: int | None = None
    n_support: tuple[int, ...] = PAPER_N_SUPPORT
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)
    python: str = sys.executable


@dataclass(frozen=True)
class Cell:
    """One protocol run: its command and the result files it must leave behind."""

    protocol: str
    model: str
    dataset: str
    argv: tuple[str, ...]
    outputs: tuple[Path, ...]
    reason: str = ""  # why a cell with results runs again (their provenance is not current)
    pending: bool = True  # some result is missing or not current

    @property
    def name(self) -> str:
        return f"{self.protocol}/{model_label(self.model)}__{self.dataset}"

    def missing(self) -> list[Path]:
        return [path for path in self.outputs if not path.is_file()]


def protocol_module(protocol: str) -> ModuleType:
    """The protocol's module, whose ``parse_args`` and ``result_files`` its script uses: a cell's
    arguments are parsed, and its result files named, exactly as the script will."""
    return PROTOCOL_MODULES[protocol]


def _script_arguments(protocol: str, model: str, dataset: str, options: SweepOptions,
                      shots: Sequence[int] | None = None) -> list[str]:
    """A cell's command-line arguments after the script (few-shot: ``shots``, default all)."""
    argv = ["--model", model, "--dataset", dataset, "--results-dir", str(options.results_dir)]
    for flag, value in (("--models-dir", options.models_dir), ("--data-root", options.data_root),
                        ("--device", options.device), ("--image-size", options.image_size),
                        ("--workers", options.workers)):
        if value is not None:
            argv += [flag, str(value)]
    if options.cache_dir is not None and protocol in CACHED_PROTOCOLS:
        argv += ["--cache-dir", str(options.cache_dir)]
    if protocol == "few_shot":
        argv += ["--n-support", *map(str, shots or options.n_support)]
    return argv + list(options.extra.get(protocol, ()))


def _cell_arguments(protocol: str, model: str, dataset: str,
                    options: SweepOptions) -> argparse.Namespace:
    """The arguments the script parses from a cell's command (all few-shot shot counts)."""
    try:
        argv = _script_arguments(protocol, model, dataset, options)
        return protocol_module(protocol).parse_args(argv)
    except SystemExit as error:
        raise SweepError(f"{SCRIPTS[protocol]} rejects the arguments of its cells (its message "
                         f"is above); check --extra {protocol}=...") from error


def expected_outputs(protocol: str, model: str, dataset: str,
                     options: SweepOptions) -> tuple[Path, ...]:
    """The result files a finished cell has written: the script's own ``result_files`` of the
    cell's arguments, so options that change the numbers (named in the file) are followed."""
    args = _cell_arguments(protocol, model, dataset, options)
    # the name the script files results under: a timm model's carries its options
    label = model_label(model, backbone_options(args))
    return tuple(protocol_module(protocol).result_files(args, label))


def build_cell(protocol: str, model: str, dataset: str, options: SweepOptions,
               force: bool = False, present: Present | None = None) -> Cell:
    """The command of one cell. Its existing results are checked against what would run now
    (``transfer.freshness``; a ``Present`` from the options unless given): a result whose
    provenance differs is redone, and the cell's ``reason`` says why. A few-shot cell asks only
    for its missing or outdated shot counts."""
    outputs = expected_outputs(protocol, model, dataset, options)
    args = _cell_arguments(protocol, model, dataset, options)
    present = present or Present(options.models_dir, options.data_root)
    redo: list[bool] = []  # per output: missing, outdated or forced
    reason = ""  # the first outdated result's
    for path in outputs:
        if force or not path.is_file():
            redo.append(True)
            continue
        why = rerun_reason(path, protocol, model, dataset, vars(args), present,
                           backbone_options(args))
        redo.append(why is not None)
        reason = reason or why or ""
    shots = None
    if protocol == "few_shot":
        shots = [k for k, again in zip(options.n_support, redo, strict=True) if again]
    argv = [options.python, str(REPO_ROOT / SCRIPTS[protocol]),
            *_script_arguments(protocol, model, dataset, options, shots)]
    return Cell(protocol, model, dataset, tuple(argv), outputs, reason, pending=any(redo))


@dataclass
class Plan:
    """The grid after expansion: cells to run, cells already done, pairs that do not apply."""

    to_run: list[Cell]
    done: list[Cell]
    not_applicable: list[tuple[str, str, str]]  # (protocol, dataset, reason)

    @property
    def cells(self) -> list[Cell]:
        return self.to_run + self.done


def plan_grid(models: Sequence[str], datasets: Sequence[str], protocols: Sequence[str],
              options: SweepOptions, force: bool = False) -> Plan:
    """Every applicable (model, dataset, protocol) cell, ordered model, dataset, protocol."""
    plan = Plan([], [], [])
    present = Present(options.models_dir, options.data_root)  # shared: each hash computed once
    for protocol in protocols:
        for dataset in datasets:
            if (reason := not_applicable(protocol, dataset)) is not None:
                plan.not_applicable.append((protocol, dataset, reason))
    for model in models:
        for dataset in datasets:
            for protocol in protocols:
                if not_applicable(protocol, dataset) is not None:
                    continue
                cell = build_cell(protocol, model, dataset, options, force, present)
                (plan.to_run if cell.pending else plan.done).append(cell)
    return plan

