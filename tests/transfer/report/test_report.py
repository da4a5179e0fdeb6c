"""Tables, averages, paper comparison and correlations from result files written here; checked
against direct loops, the paper CSVs read with the csv module, and scipy."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from transfer import report
from transfer.report import ReportError
from transfer.stats import bootstrap, comparisons

PAPER_CSV = report.PAPER_DIR
MODELS = ["insdis", "pirl", "moco-v2", "byol", "swav"]  # all with a published ImageNet top-1
LINEAR_SETS = ["aircraft", "dtd", "voc2007"]  # 3 of the paper's 11: no average
# docs/protocols.md, "Datasets and splits", written out here rather than taken from the registry
# under test.
MANY_SHOT = ["aircraft", "caltech101", "cars", "cifar10", "cifar100", "dtd", "flowers", "food",
             "pets", "sun397", "voc2007"]
FINETUNE_SETS = MANY_SHOT  # all 11: the paper's average
FEW_SHOT_SETS = ["dtd", "cropdiseases", "eurosat", "isic", "chestx"]  # all 4 cross-domain sets


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def write_results(root: Path, finetune_sets: list[str] = FINETUNE_SETS,
                  few_shot_sets: list[str] = FEW_SHOT_SETS) -> dict:
    """A seeded set of result files in every protocol's layout; returns what was written.
    (Linear's datasets are those of LINEAR_SETS among ``finetune_sets``.)"""
    rng = random.Random(3)
    truth: dict = {"linear": {}, "finetune": {}, "few_shot": {}, "ece": {}, "detection": {},
                   "dense": {}}
    for model in [*MODELS, "random"]:
        for dataset in finetune_sets:
            if model == "random" and dataset == "dtd":
                continue  # an incomplete row: its average must stay empty
            if dataset in LINEAR_SETS:
                score = rng.uniform(20, 95)
                ece = None if dataset == "voc2007" else (rng.uniform(2, 15), rng.uniform(1, 4))
                truth["linear"][model, dataset] = score
                truth["ece"]["linear", model, dataset] = ece
                _write(root / "linear" / f"{model}__{dataset}.json",
                       {"protocol": "linear", "model": model, "dataset": dataset,
                        "metric": "accuracy", "score": score, "C": 0.1,
                        "ece": ece and ece[0], "ece_temperature_scaled": ece and ece[1]})
            score = rng.uniform(20, 95)
            ece = None if dataset == "voc2007" else (rng.uniform(2, 15), rng.uniform(1, 4))
            truth["finetune"][model, dataset] = score
            truth["ece"]["finetune", model, dataset] = ece
            _write(root / "finetune" / f"{model}__{dataset}.json",
                   {"protocol": "finetune", "model": model, "dataset": dataset,
                    "metric": "accuracy", "score": score, "stage": "final", "lr": 0.01,
                    "wd": 0.0, "ece": ece and ece[0], "ece_temperature_scaled": ece and ece[1]})
            # a grid point in the per-run folder is not a result
            _write(root / "finetune" / f"{model}__{dataset}" / "lr0.01_wd0.json",
                   {"protocol": "finetune", "model": model, "dataset": dataset,
                    "stage": "search", "score": 1.0})
        for dataset in few_shot_sets:
            for shots in (5, 20):
                accuracy, ci95 = rng.uniform(30, 95), rng.uniform(0.2, 0.9)
                truth["few_shot"][model, dataset, shots] = (accuracy, ci95)
                _write(root / "few_shot" / f"{model}__{dataset}__5way{shots}shot.json",
                       {"protocol": "few_shot", "model": model, "dataset": dataset,
                        "metric": "accuracy", "score": accuracy, "accuracy": accuracy,
                        "ci95": ci95, "n_way": 5, "n_support": shots, "episodes": 600})
        if model == "random":
            continue
        for mode in ("frozen", "finetune"):
            aps = {key: rng.uniform(40, 85) for key in ("AP", "AP50", "AP75")}
            truth["detection"][model, mode] = aps
            _write(root / "detection" / f"{model}__{mode}.json",
                   {"model": model, "mode": mode, **aps, "iteration": 144000})
        normals = {"mean_angle_error": rng.uniform(28, 40), "median_angle_error": 25.0,
                   "within_11.25": rng.uniform(14, 31), "within_22.5": 45.0, "within_30": 55.0}
        segmentation = {"miou": rng.uniform(0.25, 0.30), "pixel_accuracy": rng.uniform(60, 75)}
        truth["dense"][model] = {**normals, **segmentation}
        _write(root / "normals" / f"{model}.json", {"model": model, **normals})
        _write(root / "segmentation" / f"{model}.json", {"model": model, "metrics": segmentation})
    # a duplicate of a linear cell under another name loses to the canonical file
    _write(root / "linear" / "byol__dtd__rerun.json",
           {"protocol": "linear", "model": "byol", "dataset": "dtd", "score": 1.0,
            "created": "2999-01-01"})
    return truth


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    return root, write_results(root)


@pytest.fixture(scope="module")
def built(written):
    root, _ = written
    return report.build_tables(report.gather_results(root))


def _by_name(tables):
    return {table.name: table for table in tables}


def _paper_top1() -> dict[str, float]:
    with open(PAPER_CSV / "imagenet_top1.csv") as handle:
        return {row["model"]: float(row["imagenet_top1"]) for row in csv.DictReader(handle)}


def test_gathering_keeps_one_final_record_per_cell(written):
    root, truth = written
    results = report.gather_results(root)
    linear = results.scores[results.scores["protocol"] == "linear"]
    assert len(linear) == len(truth["linear"])
    byol_dtd = linear[(linear["model"] == "byol") & (linear["dataset"] == "dtd")]
    assert byol_dtd["score"].tolist() == [truth["linear"]["byol", "dtd"]]
    finetune = results.scores[results.scores["protocol"] == "finetune"]
    assert len(finetune) == len(truth["finetune"])  # grid points in subfolders left out
    assert results.problems == []


def test_many_shot_averages_cover_the_papers_full_dataset_list(built, written):
    _, truth = written
    tables = _by_name(built)
    finetune = tables["finetune"]
    assert list(finetune.values.columns) == [*MANY_SHOT, "average"]
    assert list(finetune.values.index) == [*MODELS, "random"]  # paper order, then the rest
    for (model, dataset), score in truth["finetune"].items():
        assert finetune.values.at[model, dataset] == pytest.approx(score)
    for model in MODELS:
        expected = sum(truth["finetune"][model, d] for d in MANY_SHOT) / len(MANY_SHOT)
        assert finetune.values.at[model, "average"] == pytest.approx(expected)
    assert math.isnan(finetune.values.at["random", "average"])  # random has no dtd result
    assert math.isnan(finetune.values.at["random", "dtd"])
    assert finetune.averaged == {"average": tuple(MANY_SHOT)}
    assert finetune.notes == ["average: no value for random (not every one of the 11 datasets)"]
    # 3 of the 11: a mean over them is not the paper's average, so there is none
    linear = tables["linear"]
    assert list(linear.values.columns) == LINEAR_SETS
    assert linear.averaged == {}
    assert linear.notes == ["average left out: 3 of the paper's 11 datasets (missing "
                            "caltech101, cars, cifar10, cifar100, flowers, food, pets, sun397); "
                            "a mean over part of them is not the paper's average"]


def test_few_shot_tables_per_shot_count_with_ci(built, written):
    _, truth = written
    tables = _by_name(built)
    assert [n for n in tables if n.startswith("few_shot")] == ["few_shot_5way5shot",
                                                               "few_shot_5way20shot"]
    table = tables["few_shot_5way20shot"]
    # the four cross-domain sets are all there; one of the ten single-label many-shot sets is not
    assert list(table.values.columns) == [*FEW_SHOT_SETS, "average_cross_domain"]
    assert any(n.startswith("average_many_shot left out: 1 of the paper's 10") for n in table.notes)
    accuracy, ci95 = truth["few_shot"]["swav", "isic", 20]
    assert table.values.at["swav", "isic"] == pytest.approx(accuracy)
    assert table.cell("swav", "isic") == f"{accuracy:.2f} ± {ci95:.2f}"
    cross = [truth["few_shot"]["swav", d, 20][0] for d in FEW_SHOT_SETS[1:]]
    assert table.values.at["swav", "average_cross_domain"] == pytest.approx(sum(cross) / 4)
    frame = table.csv_frame()
    assert list(frame.columns[:3]) == ["dtd", "dtd_low", "dtd_high"]
    assert frame.at["swav", "isic_low"] == pytest.approx(accuracy - ci95)
    assert frame.at["swav", "isic_high"] == pytest.approx(accuracy + ci95)


def test_detection_dense_and_calibration_tables(built, written):
    _, truth = written
    tables = _by_name(built)
    detection = tables["detection"].values
    assert list(detection.columns) == ["frozen_ap", "frozen_ap50", "frozen_ap75", "finetune_ap",
                                       "finetune_ap50", "finetune_ap75"]
    assert detection.at["byol", "finetune_ap75"] == pytest.approx(
        truth["detection"]["byol", "finetune"]["AP75"])
    dense = tables["dense"].values
    assert dense.at["pirl", "normals_mean_err"] == pytest.approx(
        truth["dense"]["pirl"]["mean_angle_error"])
    assert dense.at["pirl", "normals_within_11.25"] == pytest.approx(
        truth["dense"]["pirl"]["within_11.25"])
    assert dense.at["pirl", "seg_miou"] == pytest.approx(truth["dense"]["pirl"]["miou"])
    assert tables["dense"].cell("pirl", "seg_miou") == f"{truth['dense']['pirl']['miou']:.4f}"
    calibration = tables["calibration"]
    values = calibration.values
    # linear has 2 of the paper's 10 single-label sets: per dataset, no mean; finetune all 10
    assert list(values.columns) == ["linear_ece_aircraft", "linear_ece_dtd",
                                    "linear_ece_scaled_aircraft", "linear_ece_scaled_dtd",
                                    "finetune_ece", "finetune_ece_scaled"]
    single_label = [d for d in MANY_SHOT if d != "voc2007"]
    for i, key in enumerate(("ece", "ece_scaled")):
        expected = [truth["ece"]["finetune", "moco-v2", d][i] for d in single_label]
        assert values.at["moco-v2", f"finetune_{key}"] == pytest.approx(sum(expected) / 10)
        assert values.at["moco-v2", f"linear_{key}_dtd"] == pytest.approx(
            truth["ece"]["linear", "moco-v2", "dtd"][i])
    assert math.isnan(values.at["random", "finetune_ece"])
    assert calibration.averaged == {"finetune_ece": tuple(single_label),
                                    "finetune_ece_scaled": tuple(single_label)}
    assert any(n.startswith("linear_ece left out: 2 of the paper's 10 datasets")
               for n in calibration.notes)


def test_correlations_match_scipy_on_logits(built, written):
    _, truth = written
    top1 = _paper_top1()
    correlation = report.correlation_table(built, report.imagenet_top1()).values
    for protocol, dataset in (("linear", "aircraft"), ("finetune", "dtd")):
        x = [math.log(top1[m] / (100 - top1[m])) for m in MODELS]
        y = [math.log(truth[protocol][m, dataset] / (100 - truth[protocol][m, dataset]))
             for m in MODELS]
        row = correlation.loc[f"{protocol} / {dataset}"]
        assert row["n_models"] == len(MODELS)  # random has no ImageNet top-1
        assert row["pearson_r"] == pytest.approx(stats.pearsonr(x, y).statistic)
        assert row["pearson_p"] == pytest.approx(stats.pearsonr(x, y).pvalue)
        assert row["spearman_rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    averages = [sum(truth["finetune"][m, d] for d in MANY_SHOT) / 11 for m in MODELS]
    x = [math.log(top1[m] / (100 - top1[m])) for m in MODELS]
    y = [math.log(a / (100 - a)) for a in averages]
    assert correlation.loc["finetune / average", "pearson_r"] == pytest.approx(
        stats.pearsonr(x, y).statistic)
    assert "linear / average" not in correlation.index
    miou = [100 * truth["dense"][m]["miou"] for m in MODELS]  # a fraction, as a percentage
    y = [math.log(v / (100 - v)) for v in miou]
    assert correlation.loc["dense / seg_miou", "pearson_r"] == pytest.approx(
        stats.pearsonr(x, y).statistic)
    assert "dense / normals_mean_err" not in correlation.index  # degrees have no logit


def test_correlation_needs_three_models():
    result = report.correlate({"a": 60.0, "b": 70.0}, {"a": 50.0, "b": 55.0})
    assert result.n_models == 2 and math.isnan(result.pearson_r)


def test_logit_transform_and_clipping():
    assert report.logit_percent([50.0, 75.0]) == pytest.approx([0.0, math.log(3)])
    assert np.isfinite(report.logit_percent([0.0, 100.0])).all()


def test_paper_comparison_is_ours_minus_the_papers(built):
    paper = report.load_paper_tables()
    tables = _by_name(built)
    comparison = report.compare_with_paper(tables["linear"], paper["linear"]).values
    with open(PAPER_CSV / "linear.csv") as handle:
        published = {row["model"]: row for row in csv.DictReader(handle)}
    ours = tables["linear"].values.at["byol", "aircraft"]
    row = comparison.loc["byol / aircraft"]
    assert row["paper"] == float(published["byol"]["aircraft"])
    assert row["difference"] == pytest.approx(ours - float(published["byol"]["aircraft"]))
    # ours averages 3 of the paper's 11 datasets: never set against the paper's average
    assert not any(name.endswith("/ average") for name in comparison.index)
    assert report.compare_with_paper(tables["linear"], paper["linear"]).notes == [
        "average not compared: ours covers 3 of the paper's 11 datasets"]
    assert not any(name.startswith("random") for name in comparison.index)  # not in the paper
    finetune = report.compare_with_paper(tables["finetune"], paper["finetune"]).values
    with open(PAPER_CSV / "finetune.csv") as handle:
        published = {row["model"]: row for row in csv.DictReader(handle)}
    assert finetune.loc["byol / average", "paper"] == float(published["byol"]["average"])
    assert finetune.loc["byol / average", "ours"] == pytest.approx(
        tables["finetune"].values.at["byol", "average"])
    few = report.compare_with_paper(tables["few_shot_5way20shot"],
                                    paper["few_shot_5way20shot"]).values
    with open(PAPER_CSV / "few_shot_20shot_cdfsl.csv") as handle:
        cdfsl = {(r["model"], r["dataset"]): float(r["accuracy"]) for r in csv.DictReader(handle)}
    assert few.loc["swav / isic", "paper"] == cdfsl["swav", "isic"]
    dense = report.compare_with_paper(tables["dense"], paper["dense"]).values
    assert dense.loc["pirl / seg_miou", "paper"] == pytest.approx(0.2697)


def test_write_report_files(tmp_path):
    # every protocol, on fewer datasets than the shared fixture: each dataset is a forest plot
    # and a panel of a correlation figure, drawn as SVG and PNG (seconds at the paper's 11)
    root = tmp_path / "results"
    truth = write_results(root, LINEAR_SETS, FEW_SHOT_SETS[:2])
    result = report.write_report(root, tmp_path / "report", paper=True, n_resamples=200)
    tables = tmp_path / "report" / "tables"
    for name in ("linear", "finetune", "few_shot_5way5shot", "few_shot_5way20shot", "detection",
                 "dense", "calibration", "correlation", "linear_vs_paper", "dense_vs_paper"):
        assert (tables / f"{name}.csv").is_file() and (tables / f"{name}.md").is_file()
    linear = pd.read_csv(tables / "linear.csv", index_col="model")
    assert linear.at["insdis", "dtd"] == pytest.approx(truth["linear"]["insdis", "dtd"])
    markdown = (tables / "linear.md").read_text().splitlines()
    assert markdown[2] == "| model | aircraft | dtd | voc2007 |"
    assert "- average left out: 3 of the paper's 11 datasets" in "\n".join(markdown)
    insdis = [line for line in markdown if line.startswith("| insdis |")][0]
    assert f"| {truth['linear']['insdis', 'dtd']:.2f} |" in insdis
    pngs = [path for path in result.files if path.suffix == ".png"]
    assert {p.name for p in pngs} >= {"linear_vs_imagenet.png", "linear_heatmap.png",
                                      "few_shot_5way20shot_heatmap.png",
                                      "detection_vs_imagenet.png"}
    for png in pngs:
        with Image.open(png) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 100
    page = (tmp_path / "report" / "report.md").read_text()
    assert "](plots/linear_heatmap.png)" in page and "## Correlation with ImageNet top-1" in page


def test_unreadable_files_are_listed_not_fatal(tmp_path):
    _write(tmp_path / "linear" / "ok__dtd.json",
           {"protocol": "linear", "model": "ok", "dataset": "dtd", "score": 50.0})
    (tmp_path / "linear" / "cut__dtd.json").write_text('{"model": "cut", ')
    _write(tmp_path / "linear" / "noscore__dtd.json", {"model": "noscore", "dataset": "dtd"})
    _write(tmp_path / "detection" / "ok__half.json", {"model": "ok", "mode": "half"})
    results = report.gather_results(tmp_path)
    assert results.scores["model"].tolist() == ["ok"]
    assert len(results.problems) == 3
    assert any("cut__dtd.json: not readable JSON" in p for p in results.problems)
    assert any("noscore__dtd.json: expected 'dataset' and a numeric 'score'" in p
               for p in results.problems)
    assert any("'mode' should be one of frozen, finetune" in p for p in results.problems)


def test_missing_or_empty_results_folder(tmp_path):
    with pytest.raises(ReportError, match=r"no such results folder"):
        report.gather_results(tmp_path / "nope")
    with pytest.raises(ReportError, match=r"no result files \(expected <protocol>/\*\.json"):
        report.gather_results(tmp_path)


def test_knn_table_beside_linear_without_paper_column_and_in_the_correlation(tmp_path):
    rng = random.Random(5)
    knn = {}
    for model in [*MODELS, "random"]:
        for dataset in ("dtd", "voc2007"):
            knn[model, dataset] = rng.uniform(20, 90)
            metric = "voc11_map" if dataset == "voc2007" else "accuracy"
            _write(tmp_path / "knn" / f"{model}__{dataset}.json",
                   {"protocol": "knn", "model": model, "dataset": dataset, "metric": metric,
                    "score": knn[model, dataset], "k": 20, "test_scores": {"20": 1.0}})
        _write(tmp_path / "linear" / f"{model}__dtd.json",
               {"protocol": "linear", "model": model, "dataset": "dtd", "score": 50.0})
    result = report.write_report(tmp_path, tmp_path / "out", paper=True, n_resamples=200)
    tables = _by_name(result.tables)
    assert [name for name in tables][:2] == ["linear", "knn"]
    values = tables["knn"].values
    assert list(values.columns) == ["dtd", "voc2007"]  # 2 of the 11: no average
    for (model, dataset), score in knn.items():
        assert values.at[model, dataset] == pytest.approx(score)
    assert tables["knn"].notes[0].startswith("average left out: 2 of the paper's 11 datasets")
    assert "linear_vs_paper" in _by_name(result.comparisons)
    assert not any(c.name.startswith("knn") for c in result.comparisons)  # the paper has none
    top1 = _paper_top1()
    x = [math.log(top1[m] / (100 - top1[m])) for m in MODELS]
    y = [math.log(knn[m, "dtd"] / (100 - knn[m, "dtd"])) for m in MODELS]
    row = result.correlation.values.loc["knn / dtd"]
    assert row["n_models"] == len(MODELS)
    assert row["pearson_r"] == pytest.approx(stats.pearsonr(x, y).statistic)
    assert row["spearman_rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    page = (tmp_path / "out" / "report.md").read_text()
    assert "## Many-shot weighted kNN (k chosen on val)" in page
    assert (tmp_path / "out" / "tables" / "knn.csv").is_file()
    assert (tmp_path / "out" / "plots" / "knn_vs_imagenet.png").is_file()


def test_a_partial_average_is_never_compared_with_the_papers():
    values = pd.DataFrame({"dtd": [70.0], "pets": [80.0], "average": [75.0]},
                          index=pd.Index(["byol"], name="model"))
    table = report.Table("linear", "hand-made", values)  # its "average" covers 2 of the 11
    comparison = report.compare_with_paper(table, report.load_paper_tables()["linear"])
    assert list(comparison.values.index) == ["byol / dtd", "byol / pets"]
    assert comparison.notes == ["average not compared: ours covers 2 of the paper's 11 datasets"]


def _provenance(commit: str, dirty: bool, test_split: str) -> dict:
    return {"checkpoint": "sha", "splits": {"trainval": "tv-1", "test": test_split},
            "transform": "t", "options": {}, "device": "cpu", "versions": {},
            "code": {"version": "0.1.0", "commit": commit, "dirty": dirty}}


def test_tables_that_mix_code_versions_or_split_identities_are_flagged(tmp_path):
    cells = {("byol", "dtd"): _provenance("a" * 40, False, "dtd-1"),
             ("pirl", "dtd"): _provenance("a" * 40, True, "dtd-1"),
             ("byol", "pets"): _provenance("a" * 40, False, "pets-1"),
             ("pirl", "pets"): _provenance("a" * 40, False, "pets-2")}
    for (model, dataset), provenance in cells.items():
        for protocol in ("linear", "finetune"):
            record = {"protocol": protocol, "model": model, "dataset": dataset, "score": 50.0}
            if protocol == "linear" or model == "byol":  # finetune: pirl's records are old
                record["provenance"] = provenance
            _write(tmp_path / "results" / protocol / f"{model}__{dataset}.json", record)
    result = report.write_report(tmp_path / "results", tmp_path / "out", n_resamples=200)
    tables = _by_name(result.tables)
    commit = "a" * 40
    assert tables["linear"].warnings == [
        f"linear mixes records of 2 code versions: {commit} (3: byol/dtd, byol/pets, pirl/pets); "
        f"{commit}+dirty (1: pirl/dtd)",
        "linear mixes 2 identities of pets's test split: pets-1 (1: byol); pets-2 (1: pirl)"]
    assert tables["finetune"].warnings == [
        f"finetune mixes records of 2 code versions: {commit} (2: byol/dtd, byol/pets); "
        "no provenance (2: pirl/dtd, pirl/pets)"]
    assert result.warnings == tables["linear"].warnings + tables["finetune"].warnings
    page = (tmp_path / "out" / "report.md").read_text()
    assert "## Warnings" in page
    for warning in result.warnings:
        assert f"- {warning}" in page and f"> **Warning:** {warning}" in page
    # one code version and one identity per split: nothing to say
    for dataset in ("dtd", "pets"):
        for model in ("byol", "pirl"):
            _write(tmp_path / "results" / "linear" / f"{model}__{dataset}.json",
                   {"protocol": "linear", "model": model, "dataset": dataset, "score": 50.0,
                    "provenance": _provenance(commit, False, f"{dataset}-1")})
    tables = _by_name(report.build_tables(report.gather_results(tmp_path / "results")))
    assert tables["linear"].warnings == []


def _write_outputs(path: Path, targets: np.ndarray, scores: np.ndarray,
                   classes: np.ndarray | None = None) -> None:
    """The per-image outputs beside a many-shot record, in the documented layout."""
    classes = np.arange(scores.shape[1]) if classes is None else classes
    np.savez_compressed(path.with_suffix(".npz"), targets=targets.astype(np.int64),
                        scores=scores.astype(np.float16), classes=classes.astype(np.int64))


def _predictions(rng, targets: np.ndarray, num_classes: int, right: float) -> np.ndarray:
    scores = rng.normal(size=(len(targets), num_classes))
    hit = rng.random(len(targets)) < right
    wrong = (targets + 1) % num_classes
    scores[np.arange(len(targets)), np.where(hit, targets, wrong)] += 10.0
    return scores


def test_paired_comparisons_marks_ranks_and_intervals(tmp_path):
    """Three models on dtd (one clearly best, two alike), a fourth with other test targets and a
    fifth without outputs; the marks, p-values and ranks follow from the same resamples."""
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, 300)
    skill = {"byol": 0.9, "pirl": 0.6, "insdis": 0.6}
    scores = {m: _predictions(rng, targets, 4, r) for m, r in skill.items()}
    scores["insdis"] = scores["pirl"].copy()
    scores["insdis"][:3] = scores["insdis"][:3, ::-1]  # three images of difference
    points = {}
    for model, s in scores.items():
        points[model] = 100 * float(np.mean(s.argmax(1) == targets))
        path = tmp_path / "linear" / f"{model}__dtd.json"
        _write(path, {"protocol": "linear", "model": model, "dataset": "dtd",
                      "metric": "accuracy", "score": points[model]})
        _write_outputs(path, targets, s)
    other = tmp_path / "linear" / "swav__dtd.json"
    _write(other, {"protocol": "linear", "model": "swav", "dataset": "dtd", "metric": "accuracy",
                   "score": 95.0, "ci": [94.0, 96.5]})
    _write_outputs(other, np.roll(targets, 1), scores["byol"])
    _write(tmp_path / "linear" / "moco-v2__dtd.json",
           {"protocol": "linear", "model": "moco-v2", "dataset": "dtd", "metric": "accuracy",
            "score": 50.0})
    results = report.gather_results(tmp_path)
    (table,) = [t for t in report.build_tables(results) if t.name == "linear"]
    pairs = report.add_significance(table, results.scores, 500, seed=4)

    # the same resamples, computed here from the arrays written above
    indices = bootstrap.resample_indices(targets, "accuracy", 500, seed=4)
    resampled = {m: bootstrap.metric_over_resamples("accuracy", targets, s, indices)
                 for m, s in scores.items()}
    expected = comparisons.pairwise_comparisons(
        {m: resampled[m] for m in ("insdis", "pirl", "byol")}, points)  # the table's order
    assert list(pairs.values.index) == [f"dtd: {p.a} vs {p.b}" for p in expected]
    for pair in expected:
        row = pairs.values.loc[f"dtd: {pair.a} vs {pair.b}"]
        assert row["p"] == pair.p and row["p_holm"] == pytest.approx(pair.p_holm)
        assert row["difference"] == pytest.approx(points[pair.a] - points[pair.b])
    assert pairs.values.loc["dtd: insdis vs pirl", "significant"] == "no"
    assert pairs.values.loc["dtd: pirl vs byol", "significant"] == "yes"
    # byol is best among the paired; swav (higher score) was never paired
    assert table.tied["dtd"].to_dict() == {"insdis": False, "moco-v2": False, "pirl": False,
                                           "byol": True, "swav": False}
    assert table.cell("byol", "dtd").startswith("**") and "±" in table.cell("byol", "dtd")
    low, high = np.percentile(resampled["pirl"], [2.5, 97.5])
    assert table.interval("pirl", "dtd") == pytest.approx((low, high))
    assert table.interval("swav", "dtd") == (94.0, 96.5)  # the record's own interval
    assert table.cell("swav", "dtd") == "95.00 ± 1.25"
    assert "dtd: swav not compared (its test targets differ from insdis's)" in table.notes
    assert any(n.startswith("dtd: moco-v2 not compared (no per-image outputs") for n in table.notes)
    # ranks: byol first on every resample; insdis and pirl share ranks 2-3
    assert table.rank.loc["byol"].tolist() == [1.0, 1.0, 1.0]
    assert table.rank.loc["pirl", "low"] >= 2 and table.rank.loc["insdis", "high"] <= 3
    assert table.rank_cell("byol") == "1 [1–1]" and table.rank_cell("swav") == "-"
    frame = table.csv_frame()
    assert list(frame.columns) == ["dtd", "dtd_low", "dtd_high", "rank", "rank_low", "rank_high"]


def test_correlation_intervals_resample_models(built, written):
    _, truth = written
    top1 = _paper_top1()
    table = report.correlation_table(built, report.imagenet_top1(), n_resamples=300, seed=2)
    x = np.array([math.log(top1[m] / (100 - top1[m])) for m in MODELS])
    y = np.array([math.log(truth["linear"][m, "aircraft"] / (100 - truth["linear"][m, "aircraft"]))
                  for m in MODELS])
    pearson = [stats.pearsonr(x[row], y[row]).statistic
               for row in comparisons.model_resamples(len(MODELS), 300, seed=2)
               if np.ptp(x[row]) > 0 and np.ptp(y[row]) > 0]
    assert table.interval("linear / aircraft", "pearson_r") == pytest.approx(
        tuple(np.percentile(pearson, [2.5, 97.5])))
    cell = table.cell("linear / aircraft", "pearson_r")
    assert cell.startswith(f"{stats.pearsonr(x, y).statistic:.3f} [")
    assert "pearson_r_low" in table.csv_frame().columns


def test_paper_comparison_says_whether_the_papers_number_lies_in_our_interval():
    paper = report.load_paper_tables()["linear"]
    published = paper.at["byol", "dtd"], paper.at["byol", "pets"]
    index = pd.Index(["byol", "swav"], name="model")
    values = pd.DataFrame({"dtd": [published[0] + 0.5, 60.0], "pets": [published[1] + 2, 70.0]},
                          index=index)
    low = pd.DataFrame({"dtd": [published[0] - 0.5, np.nan], "pets": [published[1] + 1, 69.0]},
                       index=index)
    high = values + 1.0
    table = report.Table("linear", "hand-made", values, low, high)
    comparison = report.compare_with_paper(table, paper).values
    assert comparison.loc["byol / dtd", "paper_in_our_interval"] == "yes"
    assert comparison.loc["byol / pets", "paper_in_our_interval"] == "no"  # above the paper's
    assert comparison.loc["swav / dtd", "paper_in_our_interval"] == "-"  # no interval


def test_outputs_of_several_seeds_and_partial_classes(tmp_path):
    """A finetune record of two seeds is compared by the mean of its seeds' scores on each
    resample; a model whose outputs cover classes 0 and 2 only never predicts class 1."""
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 3, 200)
    seeds = np.stack([_predictions(rng, targets, 3, 0.8), _predictions(rng, targets, 3, 0.7)])
    seeded = tmp_path / "finetune" / "byol__dtd.json"
    seeded.parent.mkdir(parents=True)
    np.savez_compressed(seeded.with_suffix(".npz"), targets=targets, scores=seeds[0],
                        classes=np.arange(3), seeds=np.array([0, 1]), seed_scores=seeds)
    partial = _predictions(rng, targets, 3, 0.9)[:, [0, 2]]
    _write_outputs(tmp_path / "finetune" / "pirl__dtd.json", targets, partial, np.array([0, 2]))
    loaded_targets, runs = report.load_outputs(tmp_path / "finetune" / "pirl__dtd.json")
    assert np.array_equal(loaded_targets, targets) and len(runs) == 1
    assert np.isneginf(runs[0][:, 1]).all()
    assert np.array_equal(runs[0][:, [0, 2]], partial.astype(np.float16).astype(np.float32))
    result = report.compare_dataset(
        "dtd", {"byol": str(seeded), "pirl": str(tmp_path / "finetune" / "pirl__dtd.json")},
        {}, {"byol": 75.0, "pirl": 60.0}, 100, seed=3)
    indices = bootstrap.resample_indices(targets, "accuracy", 100, seed=3)
    expected = np.mean([bootstrap.metric_over_resamples("accuracy", targets, s, indices)
                        for s in seeds], axis=0)
    assert result.resampled["byol"] == pytest.approx(expected)
    never_one = np.where(partial.argmax(1) == 0, 0, 2)
    assert result.resampled["pirl"] == pytest.approx(
        100 * (never_one == targets)[indices].mean(axis=1))


def test_detection_and_dense_tables_flag_mixed_code_versions(tmp_path):
    for model, commit in (("byol", "1" * 40), ("pirl", "2" * 40)):
        provenance = _provenance(commit, False, "voc-test")
        for mode in ("frozen", "finetune"):
            _write(tmp_path / "detection" / f"{model}__{mode}.json",
                   {"model": model, "mode": mode, "AP": 50.0, "AP50": 80.0, "AP75": 55.0,
                    "provenance": provenance})
        _write(tmp_path / "normals" / f"{model}.json",
               {"model": model, "mean_angle_error": 30.0, "provenance": provenance})
    tables = _by_name(report.build_tables(report.gather_results(tmp_path)))
    assert tables["detection"].warnings == [
        f"detection mixes records of 2 code versions: {'1' * 40} (2: byol/voc2007 finetune, "
        f"byol/voc2007 frozen); {'2' * 40} (2: pirl/voc2007 finetune, pirl/voc2007 frozen)"]
    assert tables["dense"].warnings == [
        f"dense mixes records of 2 code versions: {'1' * 40} (1: byol/normals); "
        f"{'2' * 40} (1: pirl/normals)"]
