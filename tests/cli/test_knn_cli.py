"""knn.py end to end on digits and on fixtures in official layouts, against scikit-learn's
KNeighborsClassifier on features computed directly by the backbone."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, precision_recall_curve
from sklearn.neighbors import KNeighborsClassifier

import knn
from datasets import load_split
from tests.cli.test_linear_cli import TINY, TINY_ARGS, direct_features, linear_argv, tiny_backbone
from tests.fixtures.dataset_layouts import write_layout
from tests.fixtures.threads import single_threaded  # noqa: F401  (autouse)
from transfer.classifiers.weighted_knn import sample_per_class
from transfer.features.cache import FeatureCache
from transfer.features.many_shot import FeatureOptions, many_shot_features
from transfer.records.outputs import read_test_outputs
from transfer.stats import metrics
from transfer.stats.bootstrap import bootstrap_ci

T = 0.07


def knn_argv(dataset, data_root, tmp_path, *extra):
    """knn.py's arguments for timm's tiny test ResNet on a fixture: linear.py's common ones (the
    weighted vote does not depend on the backbone; linear's tests run the ResNet-50 file path)."""
    return linear_argv(dataset, data_root, tmp_path, *extra)


def sklearn_knn(k):
    return KNeighborsClassifier(
        n_neighbors=k, algorithm="brute", metric="cosine",
        weights=lambda d: np.exp((1.0 - d) / T),
    )  # fmt: skip


def reference_score(metric, train, query, k):
    """scikit-learn's weighted kNN scored as the original scored its linear probe."""
    (x, y), (xq, yq) = train, query
    if metric == "voc11_map":  # multi-output: each column's P(1) is the weighted label average
        clf = sklearn_knn(k).fit(x, y)
        columns = []
        for classes, proba in zip(clf.classes_, clf.predict_proba(xq), strict=True):
            columns.append(proba[:, 1] if len(classes) == 2 else np.full(len(xq), classes[0]))
        scores = np.stack(columns, axis=1)
        aps = []
        for c in range(y.shape[1]):
            precision, recall, _ = precision_recall_curve(yq[:, c], scores[:, c])
            aps.append(
                np.mean(
                    [
                        precision[recall >= t].max() if (recall >= t).any() else 0
                        for t in np.linspace(0, 1, 11)
                    ]
                )
            )
        return 100.0 * np.mean(aps)
    predictions = sklearn_knn(k).fit(x, y).predict(xq)
    if metric == "accuracy":
        return 100.0 * np.mean(predictions == yq)
    with warnings.catch_warnings():  # a class predicted but absent from yq: left out, as ours
        warnings.simplefilter("ignore")
        return 100.0 * balanced_accuracy_score(yq, predictions)


def direct_splits(dataset, data_root):
    backbone = tiny_backbone()
    return {
        name: (direct_features(backbone, split), split.targets)
        for name in ("train", "val", "trainval", "test")
        for split in [load_split(dataset, name, data_root)]
    }


def read_record(tmp_path, dataset, model=TINY):
    """The run's one record (settings other than the defaults, e.g. -i 32, are named after
    ``<model>__<dataset>`` in the file name: transfer/records/results.py)."""
    (path,) = (tmp_path / "r" / "knn").glob(f"{model}__{dataset}__*.json")
    return json.loads(path.read_text())


def check_against_sklearn(record, out, xy, model, dataset, ks, tries, seed):
    """The record's val and test scores per k, its chosen k, the printed line and the low-shot
    results, all recomputed with scikit-learn on ``xy`` (direct features)."""
    metric = record["metric"]
    val = [reference_score(metric, xy["train"], xy["val"], k) for k in ks]
    best_k = ks[int(np.argmax(val))]  # numpy's argmax: the first best
    test = {k: reference_score(metric, xy["trainval"], xy["test"], k) for k in ks}
    assert record["ks"] == ks and record["k"] == best_k
    assert [record["val_scores"][str(k)] for k in ks] == pytest.approx(val, abs=1e-9)
    assert record["test_scores"] == pytest.approx({str(k): v for k, v in test.items()}, abs=1e-9)
    assert record["score"] == pytest.approx(test[best_k], abs=1e-9)
    assert record["temperature"] == T and record["metric_space"] == "cosine"
    name = {"accuracy": "accuracy", "mean_per_class_accuracy": "mean per-class accuracy"}[metric]
    lines = out.strip().splitlines()
    final = lines.index(f"kNN {name} for {model} on {dataset}: {test[best_k]:.2f}% (k={best_k})")
    low, high = record["ci"]
    n_test = len(xy["test"][1])
    assert lines[final + 1] == (
        f"95% interval: [{low:.2f}, {high:.2f}] (bootstrap, 2000 resamples of {n_test} test images)"
    )
    assert low <= record["score"] <= high
    # low-shot: the seeded draws, scored like the rest, mean and 1.96 * std / sqrt(tries)
    low = record["low_shot"]
    assert low["tries"] == tries and low["seed"] == seed
    x, y = xy["trainval"]
    classes = len(np.unique(y))
    for result in low["results"]:
        n, k = result["n_per_class"], result["k"]
        draws = sample_per_class(y, n, tries, seed=seed)
        expected = [reference_score(metric, (x[d], y[d]), xy["test"], k) for d in draws]
        assert result["scores"] == pytest.approx(expected, abs=1e-9)
        assert result["train_size"] == classes * n
        assert result["mean"] == pytest.approx(np.mean(expected))
        assert result["ci95"] == pytest.approx(1.96 * np.std(expected) / math.sqrt(tries))
        assert f"low-shot {n} per class, k={k}: {np.mean(expected):.2f}%" in out
    return test


def test_digits_equal_sklearn_and_rerun_from_cache(tmp_path, capsys):
    """The acceptance command (at 16 px, for speed): real, overlapping classes, so a wrong vote
    shows. The reference reads the same cached features (extraction is tested elsewhere)."""
    argv = [
        "--dataset", "digits", *TINY_ARGS, "-i", "16", "-b", "256", "--device", "cpu",
        "--workers", "0", "--cache-dir", str(tmp_path / "f"), "--results-dir", str(tmp_path / "r"),
        "--n-per-class", "1", "3", "--tries", "3", "--seed", "5",
    ]  # fmt: skip
    assert knn.main(argv) == 0
    out = capsys.readouterr().out
    record = read_record(tmp_path, "digits")
    assert not record["features_cached"]
    assert record["sizes"] == {"trainval": 1200, "test": 597, "train": 960, "val": 240}
    cached = many_shot_features(
        tiny_backbone(), "digits", cache=FeatureCache(tmp_path / "f"),
        options=FeatureOptions(image_size=16, workers=0, progress=False),
    )  # fmt: skip
    assert cached.cached
    xy = {name: (cached.features[name], cached.targets(name)) for name in cached.features}
    test = check_against_sklearn(record, out, xy, TINY, "digits", [10, 20, 100, 200], 3, 5)
    assert 50 < min(test.values()) and max(test.values()) < 99  # overlapping classes
    keys = [(r["n_per_class"], r["k"]) for r in record["low_shot"]["results"]]
    assert keys == [(1, 10), (3, 10), (3, 20)]  # k <= n x 10 classes
    # the chosen k's test class scores beside the record: score and interval recomputed from them
    (path,) = (tmp_path / "r" / "knn").glob(f"{TINY}__digits__*.json")
    stored = read_test_outputs(path)
    np.testing.assert_array_equal(stored["targets"], cached.targets("test"))
    assert metrics.score("accuracy", stored["targets"], stored["scores"]) == record["score"]
    assert list(bootstrap_ci("accuracy", stored["targets"], stored["scores"])) == record["ci"]
    made = record["provenance"]
    assert made["checkpoint"] == tiny_backbone().identity
    assert made["splits"] == {name: load_split("digits", name).identity for name in cached.splits}
    assert made["transform"] == {"eval": "eval-16-norm-mean0.5_0.5_0.5-std0.5_0.5_0.5"}
    assert made["options"]["k"] == [10, 20, 100, 200] and made["options"]["bootstrap"] == 2000

    assert knn.main(argv) == 0
    capsys.readouterr()
    again = read_record(tmp_path, "digits")
    assert again["features_cached"]
    assert again["test_scores"] == record["test_scores"] and again["k"] == record["k"]
    assert again["low_shot"] == record["low_shot"]


def test_fixture_layout_equals_sklearn(tmp_path, capsys):
    data_root = tmp_path / "data"
    write_layout("pets", data_root, per_class=6)
    ks = [5, 1, 3, 10]  # not sorted: the order given decides ties on val
    extra = ["--k", *map(str, ks), "--n-per-class", "1", "2", "--tries", "3", "--seed", "4"]
    assert knn.main(knn_argv("pets", data_root, tmp_path, *extra)) == 0
    out = capsys.readouterr().out
    record = read_record(tmp_path, "pets")
    assert record["metric"] == "mean_per_class_accuracy"
    check_against_sklearn(
        record, out, direct_splits("pets", data_root), TINY, "pets", ks, 3, 4
    )
    keys = [(r["n_per_class"], r["k"]) for r in record["low_shot"]["results"]]
    assert keys == [(1, 1), (1, 3), (2, 5), (2, 1), (2, 3)]  # k <= n x 3 classes, --k's order


def test_voc_map_equals_sklearn_multi_output_votes(tmp_path, capsys):
    data_root = tmp_path / "data"
    write_layout("voc2007", data_root, per_class=4)
    argv = knn_argv("voc2007", data_root, tmp_path, "--k", "1", "3", "5")
    assert knn.main(argv) == 0
    out = capsys.readouterr().out
    record = read_record(tmp_path, "voc2007")
    assert record["metric"] == "voc11_map"
    xy = direct_splits("voc2007", data_root)
    val = [reference_score("voc11_map", xy["train"], xy["val"], k) for k in (1, 3, 5)]
    best_k = (1, 3, 5)[int(np.argmax(val))]
    assert record["k"] == best_k
    test = reference_score("voc11_map", xy["trainval"], xy["test"], best_k)
    assert record["score"] == pytest.approx(test, abs=1e-9)
    assert f"kNN 11-point mAP for {TINY} on voc2007: {test:.2f}% (k={best_k})" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--k", "5", "19"], "k=19 is larger than the train split of dtd (18 images)"),
        (["--k", "1", "--n-per-class", "13"], "--n-per-class 13 is more than class 0 has"),
        (["--k", "10", "--n-per-class", "1"], "samples 3 images, fewer than the smallest k (10)"),
    ],
)
def test_impossible_requests_fail_before_any_work(extra, message, tmp_path, capsys):
    data_root = tmp_path / "data"
    write_layout("dtd", data_root, per_class=6)
    assert knn.main(knn_argv("dtd", data_root, tmp_path, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "f").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--temperature", "0"], "argument --temperature: expected a number > 0, got 0"),
        (["--temperature", "-0.1"], "argument --temperature: expected a number > 0"),
        (["--k", "10", "0"], "argument --k: expected an integer >= 1, got 0"),
        (["--k", "ten"], "argument --k: expected an integer >= 1, got 'ten'"),
        (["--n-per-class", "-1"], "argument --n-per-class: expected an integer >= 1"),
        (["--metric-space", "dot"], "argument --metric-space: invalid choice"),
    ],
)
def test_bad_options_are_usage_errors(extra, message, tmp_path, capsys):
    argv = ["-d", "digits", "-m", "random", "--results-dir", str(tmp_path / "r"),
            "--cache-dir", str(tmp_path / "f"), *extra]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        knn.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "f").exists()


def test_low_shot_on_a_multilabel_set_is_an_error(tmp_path, capsys):
    data_root = tmp_path / "data"
    write_layout("voc2007", data_root, per_class=4)
    argv = knn_argv("voc2007", data_root, tmp_path, "--k", "1", "--n-per-class", "1")
    assert knn.main(argv) == 2
    assert "multi-label" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
