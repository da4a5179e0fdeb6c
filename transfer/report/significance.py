"""Which models of a many-shot table differ for real: paired bootstraps over the same test images.

Each many-shot record has its test outputs beside it (``<same stem>.npz``: ``targets``,
``scores``, ``classes``). For every dataset of a table, the models whose test targets are equal
are scored on the same bootstrap resamples (``transfer.stats.bootstrap``);
``transfer.stats.comparisons`` turns those into Holm-corrected paired p-values, the models tied with
the best, and rank intervals. Records without outputs (older runs) or with other test targets are
named in a note, never compared. """

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.registry import DATASETS
from transfer.report.tables import Table
from transfer.stats import comparisons
from transfer.stats.bootstrap import metric_over_resamples, resample_indices
from transfer.stats.comparisons import ALPHA, LEVEL, Pair

#: Protocols whose records have per-image test outputs (few-shot scores episodes, not images).
PAIRED_PROTOCOLS = ("linear", "finetune", "knn")


def load_outputs(record_path: str | Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(targets, [scores, ...])`` of a record's ``.npz``: one (n, C) array per run (the seeds of
    a finetune record, ``seed_scores``, else its ``scores``), with column ``j`` for class ``j``
    (the file's ``classes`` map its columns; a class the model never saw gets -inf). Raises
    ``OSError`` naming the file when it is missing or unreadable."""
    path = Path(record_path).with_suffix(".npz")
    if not path.is_file():
        raise OSError(f"no per-image outputs ({path.name})")
    try:
        with np.load(path) as data:
            targets, classes = data["targets"], data["classes"]
            runs = list(data["seed_scores"]) if "seed_scores" in data else [data["scores"]]
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise OSError(f"{path.name} is not readable ({error})") from error
    if any(s.ndim != 2 or len(s) != len(targets) or len(classes) != s.shape[1] for s in runs):
        raise OSError(f"{path.name}: scores {runs[0].shape}, targets {targets.shape} and "
                      f"classes {classes.shape} do not fit together")
    width = targets.shape[1] if targets.ndim == 2 else int(max(classes.max(), targets.max())) + 1
    aligned = []
    for scores in runs:
        full = np.full((len(targets), width), -np.inf, dtype=np.float32)
        full[:, classes.astype(np.int64)] = scores
        aligned.append(full)
    return targets, aligned


@dataclass
class DatasetComparison:
    """The paired comparison of the models of one dataset column."""

    dataset: str
    metric: str
    resampled: dict[str, np.ndarray]  # model -> its score on each resample (B,)
    pairs: list[Pair]
    tied: set[str]
    left_out: dict[str, str] = field(default_factory=dict)  # model -> why it is not compared


def compare_dataset(dataset: str, files: Mapping[str, str], metrics: Mapping[str, str],
                    point: Mapping[str, float], n_resamples: int, seed: int = 0
                    ) -> DatasetComparison:
    """Pair the models of ``files`` (model -> record path) that share the test targets of the
    largest such group (ties: the group of the best model), on ``n_resamples`` resamples."""
    left_out: dict[str, str] = {}
    groups: list[tuple[np.ndarray, dict[str, list[np.ndarray]]]] = []
    for model, file in files.items():
        try:
            targets, runs = load_outputs(file)
        except OSError as error:
            left_out[model] = str(error)
            continue
        for group_targets, members in groups:
            if np.array_equal(group_targets, targets):
                members[model] = runs
                break
        else:
            groups.append((targets, {model: runs}))
    best = max(point, key=lambda m: point[m]) if point else None
    metric = next(iter(metrics.values()), None) or DATASETS[dataset].metric
    if not groups:
        return DatasetComparison(dataset, metric, {}, [], set(), left_out)
    targets, members = max(groups, key=lambda g: (len(g[1]), best in g[1]))
    for _, others in groups:
        if others is not members:
            first = next(iter(members))
            left_out.update({m: f"its test targets differ from {first}'s" for m in others})
    indices = resample_indices(targets, metric, n_resamples, seed)
    # a model of several runs (finetune seeds) scores their mean on each resample
    resampled = {model: np.mean([metric_over_resamples(metric, targets, s, indices)
                                 for s in runs], axis=0)
                 for model, runs in members.items()}
    paired_point = {m: point[m] for m in resampled}
    pairs = comparisons.pairwise_comparisons(resampled, paired_point)
    tied = comparisons.tied_with_best(paired_point, pairs) if len(resampled) > 1 else set()
    return DatasetComparison(dataset, metric, resampled, pairs, tied, left_out)


def _dataset_columns(table: Table) -> list[str]:
    return [c for c in table.values.columns if c not in table.averaged]


def add_significance(table: Table, rows: pd.DataFrame, n_resamples: int,
                     seed: int = 0) -> Table | None:
    """Mark, in ``table``, the models tied with each dataset's best; fill intervals the records
    lack from the resamples; add the rank column; return the table of every pair's test (or
    None when nothing could be paired). ``rows`` are the gathered records of the table."""
    if n_resamples < 1:
        return None
    results: dict[str, DatasetComparison] = {}
    for dataset in _dataset_columns(table):
        cell_rows = rows[rows["dataset"] == dataset].set_index("model")
        models = [m for m in table.values.index
                  if m in cell_rows.index and pd.notna(table.values.at[m, dataset])]
        if len(models) < 2:
            continue
        results[dataset] = compare_dataset(
            dataset, {m: cell_rows.at[m, "file"] for m in models},
            {m: cell_rows.at[m, "metric"] for m in models if isinstance(
                cell_rows.at[m, "metric"], str)},
            {m: float(table.values.at[m, dataset]) for m in models}, n_resamples, seed)
    compared = {d: r for d, r in results.items() if len(r.resampled) > 1}
    for result in results.values():
        for model, why in result.left_out.items():
            table.notes.append(f"{result.dataset}: {model} not compared ({why})")
    if not compared:
        return None
    _fill_intervals(table, compared)
    table.tied = pd.DataFrame(
        {d: [m in r.tied for m in table.values.index] for d, r in compared.items()},
        index=table.values.index)
    n_pairs = sorted({len(r.pairs) for r in compared.values()})
    table.notes.append(
        f"bold: the best of the models compared on the dataset, or not significantly worse "
        f"(paired bootstrap over the same test images, {n_resamples} resamples, "
        f"Holm-corrected over the {'/'.join(map(str, n_pairs))} pairs of models, "
        f"alpha {ALPHA}); ± is half the 95% interval")
    _add_ranks(table, compared, n_resamples)
    return pairs_table(table, compared)


def _fill_intervals(table: Table, compared: Mapping[str, DatasetComparison]) -> None:
    """Percentile intervals from the resamples, for cells whose record has none."""
    if table.low is None or table.high is None:
        table.low = pd.DataFrame(index=table.values.index, dtype=float)
        table.high = pd.DataFrame(index=table.values.index, dtype=float)
    tail = 100.0 * (1.0 - LEVEL) / 2.0
    for dataset, result in compared.items():
        for frame in (table.low, table.high):
            if dataset not in frame.columns:
                frame[dataset] = math.nan
        for model, values in result.resampled.items():
            if pd.isna(table.low.at[model, dataset]) or pd.isna(table.high.at[model, dataset]):
                low, high = np.percentile(values, [tail, 100.0 - tail])
                table.low.at[model, dataset], table.high.at[model, dataset] = low, high


def _add_ranks(table: Table, compared: Mapping[str, DatasetComparison],
               n_resamples: int) -> None:
    """Rank by the mean score over the compared datasets, on the same resamples; only models
    compared on every one of them are ranked."""
    datasets = list(compared)
    models = [m for m in table.values.index
              if all(m in compared[d].resampled for d in datasets)]
    if len(models) < 2:
        return
    point = np.array([np.mean([table.values.at[m, d] for d in datasets]) for m in models])
    resampled = np.array([np.mean([compared[d].resampled[m] for d in datasets], axis=0)
                          for m in models])
    rank, low, high = comparisons.rank_intervals(point, resampled)
    table.rank = pd.DataFrame({"rank": rank, "low": low, "high": high},
                              index=pd.Index(models, name=table.values.index.name))
    over = datasets[0] if len(datasets) == 1 else f"the mean over {', '.join(datasets)}"
    table.notes.append(f"rank [95%]: rank by {over}, with its 2.5-97.5% range over the "
                       f"{n_resamples} resamples (1 = best)")


def pairs_table(table: Table, compared: Mapping[str, DatasetComparison]) -> Table:
    """Every paired test of ``table``: the difference, its p-value and Holm's."""
    rows = [{"dataset": d, "model_a": p.a, "model_b": p.b, "difference": p.difference,
             "p": p.p, "p_holm": p.p_holm, "significant": "yes" if p.significant() else "no"}
            for d, r in compared.items() for p in r.pairs]
    values = pd.DataFrame(rows)
    values.index = [f"{r['dataset']}: {r['model_a']} vs {r['model_b']}" for r in rows]
    values.index.name = "pair"
    return Table(f"{table.name}_pairs", f"{table.title}: paired comparisons",
                 values[["difference", "p", "p_holm", "significant"]],
                 decimals={"p": 4, "p_holm": 4}, keys=values[["dataset", "model_a", "model_b"]],
                 notes=[f"paired bootstrap over the same test images; p_holm corrected over "
                        f"the pairs of each dataset; significant: p_holm < {ALPHA}; p = 0: no "
                        "resample crossed a zero difference (p < 1 / resamples)"])


def significance_for(tables: Sequence[Table], scores: pd.DataFrame, n_resamples: int,
                     seed: int = 0) -> list[Table]:
    """``add_significance`` for every many-shot table; returns the pairs tables."""
    out = []
    for table in tables:
        if table.name in PAIRED_PROTOCOLS:
            rows = scores[scores["protocol"] == table.name]
            if (pairs := add_significance(table, rows, n_resamples, seed)) is not None:
                out.append(pairs)
    return out
