"""Few-shot evaluation with prototypes (docs/protocols.md, "Few-shot") on cached features: episodes
are index arrays into the feature matrix, and all episodes are scored at once on the device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from transfer.errors import TransferError
from transfer.runtime.device import parse_device


class EpisodeError(TransferError, ValueError):
    """An impossible few-shot request, e.g. more ways than eligible classes."""


@dataclass(frozen=True)
class Episodes:
    """``support`` (E, n_way, n_support) and ``query`` (E, n_way, n_query) index the feature
    matrix; ``classes`` (E, n_way) are the dataset labels chosen for each episode."""

    classes: np.ndarray
    support: np.ndarray
    query: np.ndarray
    skipped_classes: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.classes)


def sample_episodes(
    labels: np.ndarray, n_way: int, n_support: int, n_query: int, n_episodes: int, seed: int = 0
) -> Episodes:
    """Pick ``n_way`` distinct classes per episode, then ``n_support + n_query`` distinct images
    of each. Classes with fewer images are left out (listed in ``skipped_classes``)."""
    labels = np.asarray(labels)
    per_class = n_support + n_query
    classes, counts = np.unique(labels, return_counts=True)
    eligible = classes[counts >= per_class]
    skipped = tuple(int(c) for c in classes[counts < per_class])
    if n_way > len(eligible):
        raise EpisodeError(
            f"{n_way}-way episodes with {n_support} support + {n_query} query images per class "
            f"need {n_way} classes with >= {per_class} images; only {len(eligible)} of "
            f"{len(classes)} classes have that many"
        )
    # Vectorised draw: classes are the first n_way of a random permutation per episode; the
    # images of a class are its members with the n smallest random keys (padding gets +inf).
    members = [np.flatnonzero(labels == c) for c in eligible]
    table = np.full((len(eligible), max(len(m) for m in members)), -1, dtype=np.int64)
    for row, indices in enumerate(members):
        table[row, : len(indices)] = indices
    rng = np.random.default_rng(seed)
    ways = np.argsort(rng.random((n_episodes, len(eligible))), axis=1)[:, :n_way]
    picks = np.empty((n_episodes, n_way, per_class), dtype=np.int64)
    for start in range(0, n_episodes, 50):  # bounded memory for classes with many images
        rows = table[ways[start : start + 50]]  # (e, way, max_count)
        keys = np.where(rows >= 0, rng.random(rows.shape), np.inf)
        order = np.argsort(keys, axis=2)[:, :, :per_class]
        picks[start : start + 50] = np.take_along_axis(rows, order, axis=2)
    chosen = eligible[ways].astype(np.int64)
    return Episodes(chosen, picks[:, :, :n_support], picks[:, :, n_support:], skipped)


def episode_accuracies(
    features: torch.Tensor, episodes: Episodes, device: str = "cpu", chunk: int = 100
) -> np.ndarray:
    """Accuracy (percent) on the queries of every episode: prototype = mean support feature,
    score = -squared Euclidean distance. Episodes are batched ``chunk`` at a time."""
    features = features.to(parse_device(device))
    n_way, n_query = episodes.query.shape[1:]
    truth = torch.arange(n_way, device=device).repeat_interleave(n_query)
    accuracies = []
    for start in range(0, len(episodes), chunk):
        support = torch.as_tensor(episodes.support[start : start + chunk], device=device)
        query = torch.as_tensor(episodes.query[start : start + chunk], device=device)
        prototypes = features[support].mean(dim=2)  # (e, way, d)
        queries = features[query].flatten(1, 2)  # (e, way * n_query, d)
        # ||q - p||^2 = ||q||^2 - 2 q.p + ||p||^2, as one batched matmul
        distances = (
            queries.pow(2).sum(-1, keepdim=True)
            - 2 * torch.bmm(queries, prototypes.transpose(1, 2))
            + prototypes.pow(2).sum(-1).unsqueeze(1)
        )
        predictions = distances.argmin(dim=-1)
        accuracies.append((predictions == truth).double().mean(dim=1) * 100)
    return torch.cat(accuracies).cpu().double().numpy()
