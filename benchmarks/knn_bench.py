"""Time the weighted kNN of knn.py against its limit and against scikit-learn, in one run.

On the synthetic pooled-feature-like data of ``logreg_bench.py`` (ReLU of class means + low-rank
nuisance + noise, overlapping classes), three runs do the same work, every k of ``--k`` for every
test image with weights exp(cosine similarity / T):

- ours: ``transfer.knn.knn_class_scores``, one chunked matmul + ``topk(max k)`` pass;
- the limit: the float32 matmuls of the same similarities alone, in the same chunks (any kNN
  has to compute them), so ``ours / matmul`` says what the neighbour selection and votes add;
- scikit-learn: ``KNeighborsClassifier(algorithm="brute", metric="cosine", weights=exp(sim/T))``
  fitted once and asked to ``predict`` at each k, as one would use it; also timed, its
  neighbour search alone at the largest k (``kneighbors``), the least it must do.

Agreement is the fraction of test images where our argmax equals scikit-learn's prediction
(float32 rounding can swap neighbours with nearly equal similarities).

    python benchmarks/knn_bench.py                                    # 50,000 x 10,000 x 2,048
    python benchmarks/knn_bench.py --n-train 5000 --n-test 1000 --dim 512 --classes 20
    python benchmarks/knn_bench.py --device cuda --no-sklearn
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.logreg_bench import limit_threads, make_realistic_features  # noqa: E402
from transfer.classifiers.weighted_knn import (
    DEFAULT_KS,
    DEFAULT_TEMPERATURE,
    QUERY_CHUNK,
    TRAIN_CHUNK,
    knn_class_scores,
)
from transfer.stats import metrics  # noqa: E402


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def exp_weights(distances: np.ndarray, temperature: float) -> np.ndarray:
    """scikit-learn's cosine distance is 1 - similarity: weights exp(similarity / T)."""
    return np.exp((1.0 - distances) / temperature)


def matmul_seconds(
    train_x: np.ndarray, test_x: np.ndarray, device: str, query_chunk: int, train_chunk: int
) -> float:
    """The float32 similarities alone: normalise, then every (query chunk x train chunk)
    product, as ``knn_class_scores`` computes them, each result dropped."""
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        bank = F.normalize(torch.as_tensor(train_x).to(device), dim=1)
        queries_all = torch.as_tensor(test_x)
        for q in range(0, len(queries_all), query_chunk):
            queries = F.normalize(queries_all[q : q + query_chunk].to(device), dim=1)
            for t in range(0, len(bank), train_chunk):
                queries @ bank[t : t + train_chunk].T
        _sync(device)
    return time.perf_counter() - start


def benchmark_knn(
    n_train: int = 50_000,
    n_test: int = 10_000,
    dim: int = 2048,
    num_classes: int = 100,
    ks: tuple[int, ...] = DEFAULT_KS,
    temperature: float = DEFAULT_TEMPERATURE,
    separation: float = 0.2,
    device: str = "cpu",
    query_chunk: int = QUERY_CHUNK,
    train_chunk: int = TRAIN_CHUNK,
    include_sklearn: bool = True,
    seed: int = 0,
) -> dict:
    """Every figure of one run; ratios are the other's time / ours."""
    data = make_realistic_features(
        n_train=n_train, n_val=0, n_test=n_test, dim=dim, num_classes=num_classes,
        separation=separation, seed=seed,
    )  # fmt: skip
    (train_x, train_y), (test_x, test_y) = data["train"], data["test"]
    report: dict = {
        "shape": {"train": list(train_x.shape), "test": list(test_x.shape)},
        "classes": num_classes,
        "ks": list(ks),
        "temperature": temperature,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "query_chunk": query_chunk,
        "train_chunk": train_chunk,
    }
    matmul_seconds(train_x[:2048], test_x[:256], device, query_chunk, train_chunk)  # warm up
    report["matmul_s"] = matmul_seconds(train_x, test_x, device, query_chunk, train_chunk)

    _sync(device)
    start = time.perf_counter()
    ours = knn_class_scores(
        train_x, train_y, test_x, ks, temperature=temperature, num_classes=num_classes,
        device=device, query_chunk=query_chunk, train_chunk=train_chunk,
    )  # fmt: skip
    _sync(device)
    report["ours_s"] = time.perf_counter() - start
    report["ours_over_matmul"] = report["ours_s"] / report["matmul_s"]
    report["ours_accuracy"] = {
        k: metrics.score("accuracy", test_y, scores) for k, scores in ours.items()
    }
    if not include_sklearn:
        return report

    from sklearn.neighbors import KNeighborsClassifier

    weights = functools.partial(exp_weights, temperature=temperature)
    clf = KNeighborsClassifier(algorithm="brute", metric="cosine", weights=weights)
    start = time.perf_counter()
    clf.fit(train_x, train_y)
    predictions = {}
    for k in ks:
        predictions[k] = clf.set_params(n_neighbors=k).predict(test_x)
    report["sklearn_s"] = time.perf_counter() - start
    start = time.perf_counter()
    clf.kneighbors(test_x, n_neighbors=max(ks))
    report["sklearn_search_s"] = time.perf_counter() - start
    report["sklearn_over_ours"] = report["sklearn_s"] / report["ours_s"]
    report["sklearn_search_over_ours"] = report["sklearn_search_s"] / report["ours_s"]
    report["sklearn_accuracy"] = {k: metrics.accuracy(test_y, p) for k, p in predictions.items()}
    report["agreement"] = {k: float(np.mean(ours[k].argmax(1) == predictions[k])) for k in ks}
    return report


def _print(report: dict) -> None:
    print(
        f"train {report['shape']['train']}, test {report['shape']['test']}, "
        f"{report['classes']} classes, k {report['ks']}, T {report['temperature']}, "
        f"device {report['device']} ({report['torch_threads']} torch threads), chunks "
        f"{report['query_chunk']} x {report['train_chunk']}"
    )
    print(f"float32 matmul of the similarities (the limit): {report['matmul_s']:8.2f} s")
    print(
        f"ours, all k in one pass:                        {report['ours_s']:8.2f} s  "
        f"(x{report['ours_over_matmul']:.2f} the matmul)"
    )
    if "sklearn_s" in report:
        print(
            f"scikit-learn, predict at each k:                {report['sklearn_s']:8.2f} s  "
            f"(ours is x{report['sklearn_over_ours']:.2f} faster)"
        )
        print(
            f"scikit-learn, one kneighbors(max k) only:       {report['sklearn_search_s']:8.2f} s"
            f"  (x{report['sklearn_search_over_ours']:.2f})"
        )
    for k in report["ks"]:
        line = f"  k={k:<4} accuracy ours {report['ours_accuracy'][k]:6.2f}%"
        if "agreement" in report:
            line += (
                f"  sklearn {report['sklearn_accuracy'][k]:6.2f}%  "
                f"same prediction on {100 * report['agreement'][k]:.3f}% of test images"
            )
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--k", type=int, nargs="+", default=list(DEFAULT_KS))
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument(
        "--separation",
        type=float,
        default=0.2,
        help="class means' spread: lower is harder (0.2: 20-70 %% at 50/class)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--query-chunk", type=int, default=QUERY_CHUNK)
    parser.add_argument("--train-chunk", type=int, default=TRAIN_CHUNK)
    parser.add_argument("--no-sklearn", action="store_true", help="time ours and the matmul only")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for everything (BLAS, OpenMP, torch); default: all",
    )
    parser.add_argument("--json", help="also write the full report to this JSON file")
    args = parser.parse_args(argv)
    if args.threads is not None:
        limit_threads(args.threads)
    report = benchmark_knn(
        n_train=args.n_train, n_test=args.n_test, dim=args.dim, num_classes=args.classes,
        ks=tuple(args.k), temperature=args.temperature, separation=args.separation,
        device=args.device, query_chunk=args.query_chunk, train_chunk=args.train_chunk,
        include_sklearn=not args.no_sklearn,
    )  # fmt: skip
    _print(report)
    if args.json:
        from transfer.atomic import write_json_atomic

        write_json_atomic(args.json, report)


if __name__ == "__main__":
    main()
