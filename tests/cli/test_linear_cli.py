"""linear.py end to end on fixtures in official layouts, against an independent scikit-learn
computation written the way the original did it."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix

import linear
from datasets import build_transform, load_split
from models.backbone import BackboneOptions
from models.loader import load_backbone
from models.registry import REPO_ROOT
from tests.fixtures.checkpoints import write_common_checkpoint
from tests.fixtures.dataset_layouts import write_layout, write_overlapping_images
from tests.fixtures.threads import single_threaded  # noqa: F401  (autouse)
from transfer.classifiers.logreg import default_C_grid, fit_logreg, fit_logreg_grid
from transfer.features.cache import FeatureCache
from transfer.features.many_shot import FeatureOptions, many_shot_features
from transfer.protocols import linear as linear_protocol
from transfer.records import provenance
from transfer.records.outputs import read_test_outputs
from transfer.stats import metrics
from transfer.stats.bootstrap import bootstrap_ci
from transfer.stats.calibration import expected_calibration_error, temperature_scaled_ece

IMAGE_SIZE = 32
# The protocols do not depend on the backbone: most tests run timm's 372k-parameter test ResNet
# (96-d features, seeded random weights, built in milliseconds, never downloaded), whose fits
# take a fraction of a 2048-d ResNet-50's. The ResNet-50 file path (a common-format .pth in
# --models-dir, its sha256 as the provenance) keeps its own run:
# test_a_resnet50_file_with_too_few_test_samples_gives_no_calibration; the random ResNet-50
# (-m random) is built in test_missing_dataset_is_a_clear_error.
TINY_ARGS = ("-m", "timm:test_resnet", "--random-init")
TINY = "timm-test_resnet+random-init"  # the backbone's name: the records' "model", file names


@functools.lru_cache(maxsize=1)
def tiny_backbone():
    """What ``TINY_ARGS`` load (the same seeded weights every time), for reference computations."""
    return load_backbone("timm:test_resnet", options=BackboneOptions(random_init=True))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    write_common_checkpoint(folder / "tiny-resnet.pth", seed=7)
    return folder


def linear_argv(dataset, data_root, tmp_path, *extra, models_dir=None):
    """linear.py's arguments on a fixture, caches under tmp_path: the tiny timm backbone, or
    with ``models_dir`` the synthesised ResNet-50 file ``tiny-resnet.pth`` in it."""
    model = ["-m", "tiny-resnet", "--models-dir", str(models_dir)] if models_dir else TINY_ARGS
    return [
        "-d", dataset, *model, "-i", str(IMAGE_SIZE), *extra, "--data-root", str(data_root),
        "--cache-dir", str(tmp_path / "f"), "--results-dir", str(tmp_path / "r"),
        "--device", "cpu", "--workers", "0",
    ]  # fmt: skip


def direct_features(backbone, split) -> np.ndarray:
    """One forward pass over ``split``: the paper's eval transform with the backbone's
    normalisation (ImageNet's for a ResNet-50 file, timm's config for a timm model)."""
    data = backbone.data
    transform = build_transform("eval", IMAGE_SIZE, True, data.mean, data.std)
    images = torch.stack([transform(split.load_image(i)) for i in range(len(split))])
    with torch.no_grad():
        return backbone.trunk.eval()(images).double().numpy()


def original_chain(train, val, trainval, test, metric, num_wd=45):
    """The original's linear procedure written out with scikit-learn: ONE warm-started
    LogisticRegression refit along C = 1 / logspace(-6, 5, num_wd) (float32, as torch.logspace
    gave it; the paper's 45 values unless -w says otherwise) from the largest C, each fit capped
    at 100 iterations and stopped by scikit-learn 0.22's rule (1e-4 on the summed loss, so
    1e-4 / n on today's mean loss); first best val score wins; then the same estimator, left at
    the grid's last fit, refit on trainval at that C.
    Returns (val scores, C, test score, test logits)."""
    clf = LogisticRegression(solver="lbfgs", warm_start=True, max_iter=100)

    def fit(x, y, C):
        clf.set_params(C=C, tol=1e-4 / len(x))
        clf.fit(x, y)

    def score(x, y):
        predictions = clf.predict(x)
        if metric == "accuracy":
            return 100.0 * np.mean(predictions == y)
        cm = confusion_matrix(y, predictions)
        return 100.0 * np.mean(cm.diagonal() / cm.sum(axis=1))

    val_scores, best, best_C = [], -1.0, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for wd in np.logspace(-6, 5, num_wd).astype(np.float32):
            C = 1.0 / float(wd)
            fit(*train, C)
            val_scores.append(score(*val))
            if val_scores[-1] > best:
                best, best_C = val_scores[-1], C
        fit(*trainval, best_C)
    return val_scores, best_C, score(*test), clf.decision_function(test[0])


@pytest.mark.parametrize(
    ("dataset", "per_class", "seed", "wd_values"),
    [
        ("dtd", 8, 1, None),  # the paper's 45 values of C
        ("pets", 20, 0, 12),  # val is a fifth of trainval; a shorter grid (-w 12)
    ],
    ids=["dtd", "pets"],
)
def test_chosen_C_and_score_equal_an_independent_sklearn_run(dataset, per_class, seed, wd_values,
                                                             tmp_path, capsys):
    data_root = tmp_path / "data"
    write_layout(dataset, data_root, per_class=per_class)
    write_overlapping_images(dataset, data_root, per_class=per_class, seed=seed)
    grid = ["-w", str(wd_values)] if wd_values else []
    argv = linear_argv(dataset, data_root, tmp_path, *grid)
    assert linear.main(argv) == 0
    out = capsys.readouterr().out
    # -i 32 (and -w) are not the paper's settings: the file name says so
    settings = f"w{wd_values}__i32" if wd_values else "i32"
    result = tmp_path / "r" / "linear" / f"{TINY}__{dataset}__{settings}.json"
    record = json.loads(result.read_text())

    backbone = tiny_backbone()
    # The features the run used (read back from its cache) agree with a direct forward pass.
    # The chain below runs on the cached ones: its capped fits are ill-conditioned, so float32
    # rounding alone (another batch layout) can move a val score by a sample.
    extracted = many_shot_features(
        backbone, dataset, data_root=data_root, cache=FeatureCache(tmp_path / "f"),
        options=FeatureOptions(IMAGE_SIZE, 64, "cpu", 0, "fp32", progress=False),
    )  # fmt: skip
    assert extracted.cached
    xy = {}
    for name, split in extracted.splits.items():
        direct = direct_features(backbone, split)
        np.testing.assert_allclose(extracted.features[name], direct, rtol=0, atol=1e-5 * 256)
        xy[name] = (extracted.features[name].astype(np.float64), split.targets)
    metric = "accuracy" if record["metric"] == "accuracy" else "mean_per_class"
    val_scores, C, score, logits = original_chain(
        xy["train"], xy["val"], xy["trainval"], xy["test"], metric, wd_values or 45
    )
    # The fixture must be able to fail: classes overlap, so the val curve varies, the chosen C is
    # not the grid's first, and the test predictions are not all confidently right.
    assert len(set(val_scores)) > 2 and C != 1.0 / float(np.float32(1e-6))
    assert record["ece"] > 0

    assert list(record["val_scores"].values()) == pytest.approx(val_scores, abs=1e-9)
    assert record["C"] == pytest.approx(C, rel=1e-6)
    assert record["score"] == pytest.approx(score, abs=1e-9)
    columns = np.searchsorted(np.unique(xy["test"][1]), xy["test"][1])
    assert record["ece"] == pytest.approx(expected_calibration_error(logits, columns), abs=1e-6)
    assert record["ece_temperature_scaled"] == pytest.approx(
        temperature_scaled_ece(logits, columns), abs=1e-6)
    assert "ece_scaled" not in record  # one key in every protocol (finetune's)
    assert (
        f"Final accuracy for {TINY} on {dataset}: {score:.2f}% using hyperparameter "
        f"C: {C:.3f}" in out
    )
    assert "ECE: " in out and "temperature scaled ECE: " in out
    assert len(record["val_scores"]) == (wd_values or 45)
    assert record["provenance"]["checkpoint"] == backbone.identity
    assert record["sizes"]["train"] + record["sizes"]["val"] == record["sizes"]["trainval"]

    if dataset == "dtd":
        return  # the rerun below once, on pets
    # a rerun reads every feature from the cache
    assert linear.main(argv) == 0
    capsys.readouterr()
    again = json.loads(result.read_text())
    assert again["features_cached"] and again["score"] == record["score"]



def test_torch_solver_runs_the_same_protocol(tmp_path, capsys):
    """--solver torch: the grid on train -> val and the warm-started refit on trainval, as the
    sklearn run. Its chain is compared fit for fit with scikit-learn in
    tests/transfer/classifiers/test_logreg.py; on these features of 18 images the capped
    fits are too ill-conditioned for two implementations to agree to the sample, so this checks the
    protocol's wiring against the library's torch fits."""
    data_root = tmp_path / "data"
    # a fixture whose chosen C is large: the capped refit's warm start changes its test score
    write_layout("dtd", data_root, per_class=6)
    write_overlapping_images("dtd", data_root, per_class=6, seed=1)
    argv = linear_argv("dtd", data_root, tmp_path, "-w", "5", "--solver", "torch")
    assert linear.main(argv) == 0
    capsys.readouterr()
    name = f"{TINY}__dtd__w5__i32__solver-torch.json"  # settings other than the paper's
    record = json.loads((tmp_path / "r" / "linear" / name).read_text())
    assert record["solver"] == "torch"
    extracted = many_shot_features(
        tiny_backbone(), "dtd", data_root=data_root, cache=FeatureCache(tmp_path / "f"),
        options=FeatureOptions(IMAGE_SIZE, 64, "cpu", 0, "fp32", progress=False),
    )  # fmt: skip
    x, y = extracted.features, {name: s.targets for name, s in extracted.splits.items()}
    grid = fit_logreg_grid(x["train"], y["train"], x["val"], y["val"], default_C_grid(5),
                           "accuracy", solver="torch", progress=False)  # fmt: skip
    final = fit_logreg(x["trainval"], y["trainval"], grid.best_C, solver="torch",
                       warm_start_from=grid.last_model)  # fmt: skip
    assert list(record["val_scores"].values()) == grid.val_scores
    assert record["C"] == grid.best_C
    accuracy = 100.0 * np.mean(final.predict(x["test"]) == y["test"])
    assert record["score"] == pytest.approx(accuracy, abs=1e-9)


def test_voc_map_with_given_C(tmp_path, capsys):
    data_root = tmp_path / "data"
    write_layout("voc2007", data_root, per_class=4)
    argv = linear_argv("voc2007", data_root, tmp_path, "--C", "0.1")
    assert linear.main(argv) == 0
    out = capsys.readouterr().out
    record = json.loads(
        (tmp_path / "r" / "linear" / f"{TINY}__voc2007__C0.1__i32.json").read_text()
    )
    assert record["metric"] == "voc11_map" and record["ece"] is None
    assert "ECE: n/a" in out
    backbone = tiny_backbone()
    trainval, test = (
        load_split("voc2007", "trainval", data_root),
        load_split("voc2007", "test", data_root),
    )
    x, xt = direct_features(backbone, trainval), direct_features(backbone, test)
    from sklearn.metrics import precision_recall_curve

    aps = []
    # 2C: see transfer/classifiers/logreg/
    clf = LogisticRegression(solver="lbfgs", warm_start=True, C=0.1 * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cls in range(trainval.targets.shape[1]):
            clf.fit(x, trainval.targets[:, cls])
            precision, recall, _ = precision_recall_curve(
                test.targets[:, cls], clf.decision_function(xt)
            )
            aps.append(
                np.mean(
                    [
                        precision[recall >= t].max() if (recall >= t).any() else 0
                        for t in np.linspace(0, 1, 11)
                    ]
                )
            )
    assert record["score"] == pytest.approx(100 * np.mean(aps), abs=1e-6)


def test_a_resnet50_file_with_too_few_test_samples_gives_no_calibration(models_dir, tmp_path,
                                                                         capsys):
    """3 test images cannot make 5 temperature-scaling folds: the record says None (as
    finetune's), the run still finishes. The model is a common-format ResNet-50 file in
    --models-dir: named after the file, its sha256 the provenance's checkpoint."""
    data_root = tmp_path / "data"
    write_layout("dtd", data_root, per_class=1)
    argv = linear_argv("dtd", data_root, tmp_path, "--C", "1", models_dir=models_dir)
    assert linear.main(argv) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "r" / "linear" / "tiny-resnet__dtd__C1__i32.json").read_text())
    assert record["sizes"]["test"] == 3
    assert record["ece"] is None and record["ece_temperature_scaled"] is None
    assert "ECE: n/a, temperature scaled ECE: n/a" in out
    assert "Final accuracy for tiny-resnet on dtd: " in out
    checkpoint = (models_dir / "tiny-resnet.pth").read_bytes()
    assert record["provenance"]["checkpoint"] == hashlib.sha256(checkpoint).hexdigest()
    assert record["backbone"]["feature_dim"] == 2048


def test_no_seed_option(capsys):
    """Nothing random runs in the linear protocol (the val split and the temperature folds use
    the fixed seed 0; the fits are deterministic), and the original had no --seed: an option
    that changed nothing would only suggest otherwise."""
    with pytest.raises(SystemExit) as exit_info:
        linear_protocol.parse_args(["--seed", "1"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --seed 1" in capsys.readouterr().err


def test_defaults_are_the_papers_protocol():
    """docs/protocols.md, "Linear": C searched on val over the 45 values of 1 / logspace(-6, 5,
    45)."""
    import inspect

    from transfer.protocols.linear import linear_probe

    args = linear_protocol.parse_args([])
    assert args.wd_values == 45 and args.C is None and args.solver == "sklearn"
    assert inspect.signature(linear_probe).parameters["num_wd"].default == 45
    assert inspect.signature(linear_probe).parameters["C"].default is None


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    """With the random ResNet-50 (``-m random``): it is built before the dataset is read."""
    code = linear.main(
        ["-d", "dtd", "-m", "random", "--data-root", str(tmp_path), "--device", "cpu"]
    )
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "DTD") in err


def _error_lines(err: str) -> list[str]:
    """stderr without progress bars; no traceback may hide in it."""
    assert "Traceback" not in err
    return [line for line in err.splitlines() if "%|" not in line and line.strip()]


def _truncate(image):
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])


def test_other_settings_are_filed_beside_the_paper_settings(tmp_path, capsys):
    data_root = tmp_path / "data"
    write_layout("dtd", data_root, per_class=6)
    argv = linear_argv("dtd", data_root, tmp_path, "-w", "3")
    assert linear.main(argv) == 0
    first = tmp_path / "r" / "linear" / f"{TINY}__dtd__w3__i32.json"
    written = first.read_text()
    assert linear.main([*argv, "--C", "1"]) == 0
    capsys.readouterr()
    second = tmp_path / "r" / "linear" / f"{TINY}__dtd__C1__w3__i32.json"
    assert json.loads(second.read_text())["C"] == 1.0
    assert first.read_text() == written  # not replaced


def test_converged_strategies_are_reachable_and_named(tmp_path, capsys):
    data_root = tmp_path / "data"
    write_layout("dtd", data_root, per_class=6)
    argv = linear_argv("dtd", data_root, tmp_path, "-w", "5", "--solver", "torch",
                       "--strategy", "path")
    assert linear.main(argv) == 0
    capsys.readouterr()
    name = f"{TINY}__dtd__w5__i32__solver-torch__strategy-path.json"
    record = json.loads((tmp_path / "r" / "linear" / name).read_text())
    assert record["strategy"] == "path" and len(record["val_scores"]) == 5
    with pytest.raises(SystemExit) as exit_info:
        linear.main(linear_argv("dtd", data_root, tmp_path, "--strategy", "batched"))
    assert exit_info.value.code == 2
    assert "--strategy batched needs --solver torch" in capsys.readouterr().err


def test_an_unwritable_results_folder_fails_before_any_work(tmp_path, capsys):
    write_layout("dtd", tmp_path / "data", per_class=6)
    (tmp_path / "file").write_text("")
    argv = linear_argv("dtd", tmp_path / "data", tmp_path)
    argv[argv.index("--results-dir") + 1] = str(tmp_path / "file" / "r")
    assert linear.main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: cannot write to the results folder {tmp_path}/file/r/linear")
    assert not (tmp_path / "f").exists()  # no feature was extracted


def test_an_unwritable_cache_folder_is_an_early_clear_error(tmp_path, capsys):
    write_layout("dtd", tmp_path / "data", per_class=6)
    (tmp_path / "file").write_text("")
    argv = linear_argv("dtd", tmp_path / "data", tmp_path)
    argv[argv.index("--cache-dir") + 1] = str(tmp_path / "file" / "f")
    assert linear.main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: cannot write to the feature cache ") and "--cache-dir" in line


def test_the_score_is_printed_before_a_result_that_cannot_be_written(tmp_path, capsys,
                                                                      monkeypatch):
    import errno

    from transfer.records import results

    def full_disk(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device")

    write_layout("dtd", tmp_path / "data", per_class=6)
    monkeypatch.setattr(results, "write_json_atomic", full_disk)
    assert linear.main(linear_argv("dtd", tmp_path / "data", tmp_path, "-w", "3")) == 2
    captured = capsys.readouterr()
    assert f"Final accuracy for {TINY} on dtd: " in captured.out
    (line,) = _error_lines(captured.err)
    assert line.startswith("error: cannot write the result ") and "No space left" in line


def test_a_truncated_image_is_one_line_naming_the_file(tmp_path, capsys):
    """Read by a DataLoader worker: its traceback ("Original Traceback") never reaches the user."""
    write_layout("dtd", tmp_path / "data", per_class=6)
    image = sorted((tmp_path / "data" / "DTD" / "images").rglob("*.jpg"))[4]
    _truncate(image)
    argv = linear_argv("dtd", tmp_path / "data", tmp_path)
    argv[argv.index("--workers") + 1] = "1"
    assert linear.main(argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: cannot read image {image}: ")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """linear.py once on digits (the tiny timm backbone, 16 px, a 7-value C grid, on which its val
    curve is flat near the top): (argv, stdout, record)."""
    tmp = tmp_path_factory.mktemp("digits")
    argv = [
        "-d", "digits", *TINY_ARGS, "-i", "16", "-w", "7", "-b", "256",
        "--cache-dir", str(tmp / "f"), "--results-dir", str(tmp / "r"),
        "--device", "cpu", "--workers", "0",
    ]  # fmt: skip
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert linear.main(argv) == 0
    record = json.loads(_result_file(argv).read_text())
    return argv, out.getvalue(), record


def _result_file(argv):
    return linear_protocol.result_files(linear_protocol.parse_args(argv), TINY)[0]


def test_digits_interval_and_plateau_are_printed_and_recorded(digits_run):
    _, out, record = digits_run
    lines = out.splitlines()
    final = next(i for i, line in enumerate(lines) if line.startswith("Final accuracy"))
    assert lines[final] == (
        f"Final accuracy for {TINY} on digits: {record['score']:.2f}% "
        f"using hyperparameter C: {record['C']:.3f}"
    )
    low, high = record["ci"]
    assert lines[final + 1] == (
        f"95% interval: [{low:.2f}, {high:.2f}] (bootstrap, 2000 resamples of 597 test images)"
    )
    assert low < record["score"] < high
    assert record["interval"] == {
        "method": "bootstrap", "level": 0.95, "resamples": 2000, "seed": 0, "test_images": 597,
    }  # fmt: skip

    # the plateau: every C within one val image (accuracy: 100 / n_val) of the best val score
    plateau = record["plateau"]
    tolerance = 100.0 / len(load_split("digits", "val"))
    assert plateau["tolerance"] == pytest.approx(tolerance)
    grid = [float(C) for C in record["val_scores"]]
    val = np.array(list(record["val_scores"].values()))
    inside = [i for i, v in enumerate(val) if v >= val.max() - tolerance]
    assert plateau["Cs"] == [grid[i] for i in inside]
    assert (plateau["low_C"], plateau["high_C"]) == (min(plateau["Cs"]), max(plateau["Cs"]))
    assert plateau["grid_steps"] == max(inside) - min(inside) + 1
    assert record["C"] in plateau["Cs"]
    assert plateau["grid_steps"] > 1  # this run's val curve is flat near the top
    assert val[inside].min() < val.max()  # ... and within the tolerance, not only tied
    test = plateau["test_scores"]
    assert lines[final + 2] == (
        f"C plateau: {plateau['low_C']:.0e}..{plateau['high_C']:.0e} "
        f"({plateau['grid_steps']} grid steps), test {test['low']:.1f}..{test['high']:.1f}%"
    )


def test_digits_plateau_ends_are_refits_as_the_final_fit_is_made(digits_run):
    """Each end's test score is the protocol's final step had it chosen that C: the grid's last
    fit (the original's single estimator) refit on train+val at that C. Random-init digits
    features are so ill-conditioned that rounding (scikit-learn's stopping rule, BLAS threads)
    moves these capped fits by a test image or more, so the reference is made with the same
    solver (transfer.logreg) rather than a separate scikit-learn script."""
    argv, _, record = digits_run
    cache = argv[argv.index("--cache-dir") + 1]
    extracted = many_shot_features(
        tiny_backbone(), "digits", cache=FeatureCache(cache), options=FeatureOptions(16)
    )
    assert extracted.cached
    x = extracted.features
    y = {name: extracted.targets(name) for name in x}
    grid = fit_logreg_grid(
        x["train"], y["train"], x["val"], y["val"], default_C_grid(7), "accuracy", progress=False
    )
    assert grid.val_scores == list(record["val_scores"].values())
    for end in ("low", "high"):
        C = record["plateau"][f"{end}_C"]
        model = fit_logreg(x["trainval"], y["trainval"], C, warm_start_from=grid.last_model)
        expected = 100.0 * np.mean(model.predict(x["test"]) == y["test"])
        assert record["plateau"]["test_scores"][end] == expected
        if C == record["C"]:
            assert expected == record["score"]


def test_digits_outputs_and_provenance(digits_run):
    argv, _, record = digits_run
    stored = read_test_outputs(_result_file(argv))
    test = load_split("digits", "test")
    np.testing.assert_array_equal(stored["targets"], test.targets)
    assert stored["scores"].shape == (597, 10) and stored["scores"].dtype == np.float16
    # the score and its interval, recomputed from the file alone
    assert metrics.score("accuracy", stored["targets"], stored["scores"], stored["classes"]) == (
        record["score"]
    )
    assert list(bootstrap_ci("accuracy", stored["targets"], stored["scores"])) == record["ci"]

    made = record["provenance"]
    assert made["checkpoint"] == tiny_backbone().identity
    assert made["splits"] == {
        name: load_split("digits", name).identity for name in ("trainval", "test", "train", "val")
    }
    assert made["transform"] == {"eval": "eval-16-norm-mean0.5_0.5_0.5-std0.5_0.5_0.5"}
    options = made["options"]
    assert (options["wd_values"], options["bootstrap"], options["image_size"]) == (7, 2000, 16)
    assert "cache_dir" not in options and "workers" not in options
    assert made["code"]["version"] == provenance.project_version()
    if shutil.which("git") and (REPO_ROOT / ".git").exists():
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        assert made["code"]["commit"] == head and isinstance(made["code"]["dirty"], bool)


def test_digits_given_C_without_bootstrap_has_no_interval_or_plateau(digits_run, capsys):
    argv, _, _ = digits_run
    argv = [*argv, "--C", "1.0", "--bootstrap", "0"]
    assert linear.main(argv) == 0
    out = capsys.readouterr().out
    assert _result_file(argv).name == f"{TINY}__digits__C1__w7__i16.json"
    record = json.loads(_result_file(argv).read_text())
    assert "ci" not in record and "interval" not in record and "plateau" not in record
    assert "interval" not in out and "C plateau" not in out
    assert record["provenance"]["options"]["C"] == 1.0


def test_negative_bootstrap_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        linear.main(["-d", "digits", "-m", "random", "--bootstrap", "-1"])
    assert exit_info.value.code == 2
    assert "--bootstrap: expected an integer >= 0, got -1" in capsys.readouterr().err
