"""finetune.py end to end: the original's flags, a grid search written to results/, and clear
errors (exit status 2, one line naming the problem) for bad input."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from datasets import load_split
from tests.fixtures.dataset_layouts import write_layout
from tests.fixtures.threads import one_torch_thread  # noqa: F401 (autouse)
from transfer.stats import metrics
from transfer.stats.bootstrap import resample_indices

REPO = Path(__file__).resolve().parents[2]
# timm's 372k-parameter test ResNet, seeded: the finetuning runs here are not about the model
TINY = ["-m", "timm:test_resnet", "--random-init"]
TINY_NAME = "timm-test_resnet+random-init"


def load_cli():
    spec = importlib.util.spec_from_file_location("finetune_cli", REPO / "finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grid_search_run_writes_its_records(tmp_path, capsys):
    """In-process (the script's own process boundary is test_torchrun_finetune_cli's), on timm's
    tiny test ResNet: the CLI's records, its printed summary and its logged progress."""
    write_layout("flowers", tmp_path / "data", per_class=4)
    status = load_cli().main([*TINY, "-d", "flowers", "-b", "4", "-i", "16", "-w", "0", "-g", "1",
                              "--steps", "2", "--no-da", "--device", "cpu",
                              "--data-root", str(tmp_path / "data"),
                              "--results-dir", str(tmp_path / "results"), "--no-progress"])
    done = capsys.readouterr()
    assert status == 0, done.err[-3000:]
    assert "grid: 2 points, 0 done, 2 to train" in done.err  # logged, not printed
    assert "grid: 2 points" not in done.out
    last, interval = done.out.strip().splitlines()[-2:]
    assert last.startswith(f"{TINY_NAME} on flowers: test mean_per_class_accuracy ")
    folder = tmp_path / "results" / "finetune"
    final = json.loads((folder / f"{TINY_NAME}__flowers.json").read_text())
    assert f"{final['score']:.2f}" in last and "ECE" in last
    assert interval == (f"95% interval: [{final['ci'][0]:.2f}, {final['ci'][1]:.2f}] "
                        "(bootstrap, 2000 resamples of 12 test images)")
    assert final["recipe"] == {"steps": 2, "batch_size": 4, "image_size": 16,
                               "data_augmentation": False, "normalize": True, "seed": 0,
                               "precision": "fp32", "selection": "grid", "grid_size": 1}
    assert sorted(p.name for p in (folder / f"{TINY_NAME}__flowers").iterdir()) == [
        "lr0.0001_wd0.json", "lr0.0001_wd1e-06.json"]


@pytest.mark.parametrize(("argv", "message"), [
    (["-d", "nosuchset", "-m", "random"], "nosuchset"),
    (["-d", "digits", "-m", "random", "--lr", "0.1"], "give both --lr and --wd"),
    (["-d", "digits", "-m", "random", "-g", "0"], "grid-size must be >= 1"),
    (["-d", "digits", "-m", "random", "--seeds", "0"], "seeds must be >= 1"),
    (["-d", "digits", "-m", "moco-v2", "--models-dir", "{tmp}"], "no checkpoint at {tmp}"),
])
def test_bad_input_is_one_clear_error(argv, message, tmp_path, capsys):
    cli = load_cli()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    status = cli.main([*argv, "--results-dir", str(tmp_path), "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("finetune.py: error: ")
    assert message.replace("{tmp}", str(tmp_path)) in err
    assert "Traceback" not in err


def test_defaults_are_the_papers_protocol():
    """docs/protocols.md, "Finetuning": 5000 steps at batch 64, the 4 x 5 grid searched (no --lr
    or --wd), with augmentation, seed 0; the library's defaults are the same."""
    from transfer.protocols import finetune as finetune_protocol
    from transfer.protocols.finetune_runs import FinetuneSettings, finetune_grid

    args = finetune_protocol.parse_args([])
    assert (args.steps, args.batch_size, args.grid_size, args.lr, args.wd, args.no_da,
            args.seed) == (5000, 64, 4, None, None, False, 0)  # fmt: skip
    library = FinetuneSettings(model="m", dataset="d")
    assert (library.steps, library.batch_size, library.grid_size, library.lr, library.wd,
            library.data_augmentation, library.seed) == (5000, 64, 4, None, None, True, 0)
    assert len(finetune_grid(args.grid_size)) == 20


def test_a_truncated_image_is_one_line_naming_the_file(tmp_path, capsys):
    """Read by a DataLoader worker: the worker's traceback never reaches the user."""
    write_layout("flowers", tmp_path / "data", per_class=4)
    images = sorted((tmp_path / "data").rglob("*.jpg"))
    for image in images:  # every image: the first batch meets one, whatever the sampler's order
        data = image.read_bytes()
        image.write_bytes(data[: len(data) // 2])
    status = load_cli().main(["-m", "random", "-d", "flowers", "-b", "4", "-i", "16", "-w", "1",
                              "--lr", "0.01", "--wd", "0", "--steps", "1", "--no-da",
                              "--device", "cpu", "--data-root", str(tmp_path / "data"),
                              "--results-dir", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("finetune.py: error: cannot read image ")
    assert any(str(image) in line for image in images)


def test_an_unwritable_results_folder_fails_before_any_training(tmp_path, capsys):
    write_layout("flowers", tmp_path / "data", per_class=4)
    (tmp_path / "file").write_text("")
    status = load_cli().main(["-m", "random", "-d", "flowers", "-b", "4", "-i", "16", "-w", "0",
                              "--lr", "0.01", "--wd", "0", "--steps", "1", "--device", "cpu",
                              "--data-root", str(tmp_path / "data"),
                              "--results-dir", str(tmp_path / "file" / "r"), "--no-progress"])
    assert status == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("finetune.py: error: cannot write to the results folder ")


def test_seeds_repeat_the_final_run_once_the_grid_is_searched(tmp_path, capsys, caplog):
    """--seeds 2 on digits: the grid is searched once, the final run is repeated with seeds 0 and
    1 (each a resumable record with its outputs), and the record holds their mean, a t-interval
    and a bootstrap interval of the mean; seed 0's run is the plain run."""
    cli = load_cli()
    stem = f"{TINY_NAME}__digits"
    common = [*TINY, "-d", "digits", "-b", "16", "-i", "16", "-w", "0", "-g", "1",
              "--steps", "2", "--no-da", "--device", "cpu", "--no-progress",
              "--bootstrap", "300"]
    assert cli.main([*common, "--results-dir", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "finetune" / f"{stem}.json").read_text())
    assert "seed_interval" not in plain
    capsys.readouterr()
    caplog.clear()

    # the same grid records in another results folder: the seeds run must not train them again
    folder = tmp_path / "seeds" / "finetune"
    shutil.copytree(tmp_path / "plain" / "finetune" / stem, folder / stem)
    assert cli.main([*common, "--results-dir", str(tmp_path / "seeds"), "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "grid: 2 points, 2 done, 0 to train" in caplog.text  # the library logs its progress
    record = json.loads((folder / f"{stem}.json").read_text())
    point = f"final_lr{record['lr']:.4g}_wd{record['wd']:.4g}"
    runs = [json.loads((folder / stem / f"{point}_seed{s}.json").read_text())
            for s in (0, 1)]
    assert [r["seed"] for r in runs] == [0, 1] and all(r["stage"] == "seed" for r in runs)
    assert runs[0]["score"] == plain["score"]  # seed 0 is the plain run
    scores = np.array([r["score"] for r in runs])
    assert record["score"] == pytest.approx(scores.mean())
    assert record["seed_scores"] == [{"seed": r["seed"], "score": r["score"], "ci": r["ci"]}
                                     for r in runs]
    half = stats.t.ppf(0.975, df=1) * scores.std(ddof=1) / np.sqrt(2)
    interval = record["seed_interval"]
    assert (interval["low"], interval["high"]) == pytest.approx(
        (scores.mean() - half, scores.mean() + half))
    assert interval["method"] == "t" and interval["seeds"] == 2

    # the interval over test images is that of the mean of the two runs, on shared resamples
    targets = load_split("digits", "test").targets
    outputs = [np.load(folder / stem / f"{point}_seed{s}.npz") for s in (0, 1)]
    indices = resample_indices(targets, "accuracy", 300, seed=0)
    means = [np.mean([metrics.score("accuracy", targets[row], o["scores"][row]) for o in outputs])
             for row in indices]
    assert record["ci"] == pytest.approx(list(np.percentile(means, [2.5, 97.5])))
    final_outputs = np.load(folder / f"{stem}.npz")
    np.testing.assert_array_equal(final_outputs["seeds"], [0, 1])
    np.testing.assert_array_equal(final_outputs["seed_scores"][1], outputs[1]["scores"])

    lines = out.strip().splitlines()
    assert lines[-3].startswith(f"{TINY_NAME} on digits: test accuracy ")
    assert lines[-2] == (f"95% interval: [{record['ci'][0]:.2f}, {record['ci'][1]:.2f}] "
                         "(bootstrap, 300 resamples of 597 test images)")
    assert lines[-1] == (f"2 seeds: 0: {runs[0]['score']:.2f}, 1: {runs[1]['score']:.2f}; "
                         f"mean {scores.mean():.2f}, 95% t-interval "
                         f"[{interval['low']:.2f}, {interval['high']:.2f}]")

    # resumable: a finished seed is read back, a missing one is trained again, to the same number
    (folder / f"{stem}.json").unlink()
    (folder / stem / f"{point}_seed1.json").unlink()
    caplog.clear()
    assert cli.main([*common, "--results-dir", str(tmp_path / "seeds"), "--seeds", "2"]) == 0
    logged = caplog.text
    assert "[seed 1/2] 0: done" in logged and "[seed 2/2] 1: test accuracy" in logged
    again = json.loads((folder / f"{stem}.json").read_text())
    assert again["score"] == record["score"] and again["ci"] == record["ci"]
