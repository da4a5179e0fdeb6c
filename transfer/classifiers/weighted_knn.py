"""Weighted k-nearest-neighbour classification on frozen features (DINO's kNN protocol).

Each query takes its ``max(ks)`` most similar training features in one chunked pass (a matmul
and a ``topk`` per block, so memory stays bounded by the chunk sizes, never an n_query x n_train
matrix); every k is then read off that one sorted list. Neighbour i votes with weight
``exp(sim_i / T)`` for its label vector (one-hot, or multi-hot for multi-label sets), and the
class scores are the weighted average of those vectors: for single-label sets the predicted
class is their argmax (exact ties: the lowest class index, as ``numpy.argmax`` and
scikit-learn's weighted mode give), for multi-label sets they are the per-class scores that
11-point mAP ranks.

Similarity: ``cosine`` is the dot product of L2-normalised features (DINO's); ``l2`` is minus the
Euclidean distance, so ``T`` is on the scale of distances there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from transfer import console
from transfer.errors import TransferError

METRIC_SPACES = ("cosine", "l2")
DEFAULT_KS = (10, 20, 100, 200)
DEFAULT_TEMPERATURE = 0.07
QUERY_CHUNK = 1024
TRAIN_CHUNK = 65536


class KnnError(TransferError, ValueError):
    """An impossible kNN request: k or T out of range, an unknown metric space, a class too
    small for the low-shot sample asked for."""


def check_knn_options(ks: Sequence[int], temperature: float, metric_space: str) -> None:
    """Reject what no training set can satisfy (checked before any feature is computed)."""
    if not len(ks):
        raise KnnError("no k given: pass at least one --k")
    bad = [k for k in ks if int(k) != k or k < 1]
    if bad:
        raise KnnError(f"k must be a positive integer, got {bad[0]}")
    if not temperature > 0:  # also rejects NaN
        raise KnnError(f"the temperature must be > 0, got {temperature}")
    if metric_space not in METRIC_SPACES:
        raise KnnError(
            f"unknown metric space {metric_space!r}; expected one of {', '.join(METRIC_SPACES)}"
        )


def check_k_fits(ks: Sequence[int], n_train: int, what: str = "the training set") -> None:
    """Every k needs that many neighbours."""
    if max(ks) > n_train:
        raise KnnError(
            f"k={max(ks)} is larger than {what} ({n_train} images); pass --k values <= {n_train}"
        )


def _as_tensor(features, device: str | torch.device) -> torch.Tensor:
    """float64 stays float64 (exact comparisons in tests); anything else computes in float32."""
    tensor = torch.as_tensor(features)
    dtype = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    return tensor.to(device=device, dtype=dtype)


def _labels(labels, num_classes: int | None, device) -> tuple[torch.Tensor, int]:
    """``(labels, C)``: (n,) int64 class indices, or the (n, C) 0/1 rows of multi-label sets."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return torch.as_tensor(labels, device=device), labels.shape[1]
    if labels.ndim != 1:
        raise KnnError(f"labels must be (n,) class indices or (n, C) 0/1, got {labels.shape}")
    classes = int(labels.max()) + 1 if num_classes is None else num_classes
    if labels.min() < 0 or labels.max() >= classes:
        raise KnnError(
            f"class indices must lie in [0, {classes}), got {labels.min()}..{labels.max()}"
        )
    return torch.as_tensor(labels.astype(np.int64), device=device), classes


def nearest_neighbours(
    train: torch.Tensor,
    queries: torch.Tensor,
    k: int,
    metric_space: str = "cosine",
    *,
    train_chunk: int = TRAIN_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(similarities, indices)``, both (n_query, k), most similar first, of the ``k`` nearest
    rows of ``train`` (already normalised for ``cosine``). ``train`` is walked ``train_chunk``
    rows at a time and each block's top k merged into the running top k."""
    squared_norms = train.pow(2).sum(1) if metric_space == "l2" else None
    best_values = best_indices = None
    for start in range(0, len(train), train_chunk):
        block = train[start : start + train_chunk]
        if squared_norms is None:
            scores = queries @ block.T
        else:  # -||q - x||^2 + ||q||^2 = 2 q.x - ||x||^2 ranks like -||q - x||
            scores = torch.addmm(
                -squared_norms[start : start + train_chunk], queries, block.T, alpha=2
            )
        values, indices = scores.topk(min(k, len(block)), dim=1)
        indices += start
        if best_values is not None:
            values = torch.cat([best_values, values], dim=1)
            indices = torch.cat([best_indices, indices], dim=1)
            if values.shape[1] > k:
                values, order = values.topk(k, dim=1)
                indices = indices.gather(1, order)
        best_values, best_indices = values, indices
    if metric_space == "l2":
        distances = (queries.pow(2).sum(1, keepdim=True) - best_values).clamp_(min=0).sqrt_()
        best_values = -distances
    return best_values, best_indices


def _vote(
    similarities: torch.Tensor,
    indices: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    ks: Sequence[int],
    temperature: float,
    dtype: torch.dtype,
    block_elements: int = 1 << 22,
) -> dict[int, torch.Tensor]:
    """Class scores for every k from one sorted neighbour list: the weighted sum of the first k
    neighbours' label vectors over the sum of their weights.

    Weights are ``exp((sim - sim_max) / T)``, i.e. ``exp(sim / T)`` scaled per query, which
    changes neither the argmax nor the weighted average but cannot overflow. Class indices are
    added one neighbour rank at a time (a running sum read off at each k): no two additions of
    one step hit the same cell, so the sums come out the same on every device and run (no
    atomics racing), and exact ties stay exact. Multi-label rows are gathered and contracted,
    ``block_elements`` gathered entries at a time (bounded memory).
    """
    sims = similarities.to(dtype)
    weights = torch.exp((sims - sims[:, :1]) / temperature)
    out: dict[int, torch.Tensor] = {}
    if labels.ndim == 1:
        neighbour_classes = labels[indices]
        total = torch.zeros(len(sims), num_classes, dtype=dtype, device=sims.device)
        wanted = set(ks)
        for j in range(max(ks)):
            total.scatter_add_(1, neighbour_classes[:, j : j + 1], weights[:, j : j + 1])
            if j + 1 in wanted:
                out[j + 1] = total / weights[:, : j + 1].sum(1, keepdim=True)
        return out
    step = max(1, block_elements // (indices.shape[1] * num_classes))
    parts: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    for start in range(0, len(sims), step):
        w = weights[start : start + step]
        rows = labels[indices[start : start + step]].to(dtype)  # (q, max k, C)
        for k in ks:
            total = torch.einsum("qk,qkc->qc", w[:, :k], rows[:, :k])
            parts[k].append(total / w[:, :k].sum(1, keepdim=True))
    return {k: torch.cat(chunks) for k, chunks in parts.items()}


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def knn_class_scores(
    train_features,
    train_labels,
    query_features,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    metric_space: str = "cosine",
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    query_chunk: int = QUERY_CHUNK,
    train_chunk: int = TRAIN_CHUNK,
    progress: bool = False,
) -> dict[int, np.ndarray]:
    """``{k: (n_query, C) class scores}`` for every k of ``ks`` from one neighbour search.

    ``train_labels`` are (n,) class indices (``num_classes`` columns, default max + 1) or
    (n, C) 0/1 rows. Scores are the ``exp(sim / T)``-weighted average of the k neighbours'
    label vectors (rows sum to 1 for single-label sets), in float64. Queries go
    ``query_chunk`` at a time, the training bank ``train_chunk`` rows at a time: peak memory
    of the similarities is ``query_chunk x (train_chunk + max(ks))``.
    """

    ks = sorted(set(int(k) for k in ks))
    check_knn_options(ks, temperature, metric_space)
    if query_chunk < 1 or train_chunk < 1:
        raise KnnError(f"chunk sizes must be >= 1, got {query_chunk} and {train_chunk}")
    train = _as_tensor(train_features, device)
    queries_all = torch.as_tensor(query_features)
    if train.ndim != 2 or queries_all.ndim != 2 or train.shape[1] != queries_all.shape[1]:
        raise KnnError(
            f"features must be (n, d) with the same d, got {tuple(train.shape)} and "
            f"{tuple(queries_all.shape)}"
        )
    if len(train) != len(train_labels):
        raise KnnError(f"{len(train)} training features but {len(train_labels)} labels")
    check_k_fits(ks, len(train))
    if metric_space == "cosine":
        train = F.normalize(train, dim=1)
    # votes in float64 (MPS has none): weights spanning many orders of magnitude keep their sum
    vote_dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
    labels, num_classes = _labels(train_labels, num_classes, device)
    parts: dict[int, list[np.ndarray]] = {k: [] for k in ks}
    chunks = list(_chunks(len(queries_all), query_chunk))
    with torch.inference_mode():
        for rows in console.progress(chunks, desc="kNN", unit="chunk", enabled=progress):
            queries = _as_tensor(queries_all[rows], device).to(train.dtype)
            if metric_space == "cosine":
                queries = F.normalize(queries, dim=1)
            sims, indices = nearest_neighbours(
                train, queries, ks[-1], metric_space, train_chunk=train_chunk
            )
            votes = _vote(sims, indices, labels, num_classes, ks, temperature, vote_dtype)
            for k, scores in votes.items():
                parts[k].append(scores.cpu().numpy())
    empty = np.zeros((0, num_classes))
    return {k: np.concatenate(parts[k]) if parts[k] else empty for k in ks}


def sample_per_class(labels, n_per_class: int, tries: int, seed: int = 0) -> np.ndarray:
    """(tries, n_per_class x classes) sorted indices: each try ``n_per_class`` distinct images of
    every class, drawn without replacement. The generator is seeded with ``(seed, n_per_class)``,
    so adding a shot count to a run never changes the draws of the others."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise KnnError("low-shot sampling needs one class per image (not a multi-label set)")
    if n_per_class < 1 or tries < 1:
        raise KnnError(f"n_per_class and tries must be >= 1, got {n_per_class} and {tries}")
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < n_per_class:
        small = classes[counts < n_per_class]
        raise KnnError(
            f"--n-per-class {n_per_class} is more than class {small[0]} has "
            f"({counts.min()} images; {len(small)} classes have fewer than {n_per_class}); "
            f"pass --n-per-class <= {counts.min()}"
        )
    members = [np.flatnonzero(labels == c) for c in classes]
    rng = np.random.default_rng([seed, n_per_class])
    draws = np.empty((tries, n_per_class * len(classes)), dtype=np.int64)
    for t in range(tries):
        picked = [rng.choice(m, n_per_class, replace=False) for m in members]
        draws[t] = np.sort(np.concatenate(picked))
    return draws
