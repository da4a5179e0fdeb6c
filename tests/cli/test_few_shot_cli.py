"""few_shot.py end to end on fixtures in official layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import few_shot
from datasets import build_transform, load_split
from tests.cli.test_linear_cli import TINY, TINY_ARGS, tiny_backbone
from tests.fixtures.dataset_layouts import write_layout, write_overlapping_images
from tests.fixtures.threads import single_threaded  # noqa: F401  (autouse)
from transfer.classifiers.protonet import sample_episodes
from transfer.protocols import few_shot as few_shot_protocol


def run(dataset, tmp_path, *extra):
    """few_shot.py on a fixture with timm's tiny test ResNet (the episodes do not depend on the
    backbone; linear's tests run the ResNet-50 file path)."""
    return few_shot.main(
        [
            "-d",
            dataset,
            *TINY_ARGS,
            "-i",
            "32",
            "--n-way",
            "3",
            "--n-support",
            "1",
            "2",
            "--n-query",
            "3",
            "--iter-num",
            "40",
            "--data-root",
            str(tmp_path / "data"),
            "--cache-dir",
            str(tmp_path / "f"),
            "--results-dir",
            str(tmp_path / "r"),
            "--device",
            "cpu",
            "--workers",
            "0",
            *extra,
        ]
    )


@pytest.mark.parametrize("dataset", ["cropdiseases", "eurosat", "isic", "chestx", "dtd", "food"])
def test_every_shot_count_gets_a_result_from_one_feature_pass(
    dataset, tmp_path, capsys
):
    write_layout(dataset, tmp_path / "data", per_class=5)
    assert run(dataset, tmp_path) == 0
    out, err = capsys.readouterr()
    assert "computed features" in err  # logged; stdout holds the results
    assert out.count("Test Acc = ") == 2
    for shots in (1, 2):
        record = json.loads(
            (
                tmp_path / "r" / "few_shot"
                / f"{TINY}__{dataset}__3way{shots}shot__q3__episodes40__i32.json"
            ).read_text()
        )
        assert record["episodes"] == 40 and record["seed"] == 0 and record["n_support"] == shots
        assert 0 <= record["accuracy"] <= 100 and record["ci95"] >= 0
        made = record["provenance"]
        assert made["checkpoint"] == tiny_backbone().identity
        pool = load_split(dataset, "fewshot", tmp_path / "data")
        assert made["splits"] == {"fewshot": pool.identity}
        assert made["transform"] == {"fewshot": "fewshot-32-norm-mean0.5_0.5_0.5-std0.5_0.5_0.5"}
        assert made["options"]["n_support"] == shots and made["options"]["n_way"] == 3
        assert "cache_dir" not in made["options"] and "results_dir" not in made["options"]
    assert len(list((tmp_path / "f").rglob("*.pt"))) == 1


def test_rerun_uses_the_cache_and_reproduces_the_episodes(tmp_path, capsys):
    write_layout("eurosat", tmp_path / "data", per_class=5)
    run("eurosat", tmp_path)
    first = capsys.readouterr().out
    run("eurosat", tmp_path)
    second, log = capsys.readouterr()
    assert "loaded cached features" in log
    assert [line for line in first.splitlines() if "Test Acc" in line] == [
        line for line in second.splitlines() if "Test Acc" in line
    ]


def test_accuracy_equals_a_plain_loop_over_the_same_episodes(tmp_path, capsys):
    # overlapping classes: a wrong prototype or distance shows in the accuracy
    write_layout("eurosat", tmp_path / "data", per_class=5)
    write_overlapping_images("eurosat", tmp_path / "data", per_class=5)
    run("eurosat", tmp_path)
    capsys.readouterr()
    record = json.loads(
        (tmp_path / "r" / "few_shot" / f"{TINY}__eurosat__3way2shot__q3__episodes40__i32.json")
        .read_text()
    )
    backbone = tiny_backbone()
    pool = load_split("eurosat", "fewshot", tmp_path / "data")
    transform = build_transform("fewshot", 32, True, backbone.data.mean, backbone.data.std)
    with torch.no_grad():
        x = (
            backbone.trunk.eval()(
                torch.stack([transform(pool.load_image(i)) for i in range(len(pool))])
            )
            .double()
            .numpy()
        )
    episodes = sample_episodes(pool.targets, 3, 2, 3, 40, seed=0)
    accuracies = []
    for support, query in zip(episodes.support, episodes.query, strict=True):
        prototypes = x[support].mean(axis=1)
        hits = [
            np.argmin(((x[q] - prototypes) ** 2).sum(1)) == way
            for way, row in enumerate(query)
            for q in row
        ]
        accuracies.append(100 * np.mean(hits))
    assert 0 < np.mean(accuracies) < 100  # the fixture can fail
    assert record["accuracy"] == pytest.approx(np.mean(accuracies), abs=1e-6)
    assert record["ci95"] == pytest.approx(1.96 * np.std(accuracies) / np.sqrt(40), abs=1e-6)


def test_impossible_request_and_multilabel_are_clear_errors(tmp_path, capsys):
    write_layout("eurosat", tmp_path / "data", per_class=5)
    code = few_shot.main(
        [
            "-d",
            "eurosat",
            *TINY_ARGS,
            "-i",
            "32",
            "--n-way",
            "5",
            "--data-root",
            str(tmp_path / "data"),
            "--cache-dir",
            str(tmp_path / "f"),
            "--device",
            "cpu",
            "--workers",
            "0",
            "--results-dir",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2 and "5-way episodes" in capsys.readouterr().err


def test_defaults_are_the_papers_protocol():
    """docs/protocols.md, "Few-shot": 5-way, 15 queries a class, 600 episodes, seed 0 (5-shot by
    default)."""
    args = few_shot_protocol.parse_args([])
    assert (args.n_way, args.n_support, args.n_query, args.iter_num, args.seed) == (
        5, [5], 15, 600, 0)  # fmt: skip


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--n-support", "0", "argument --n-support: expected an integer >= 1, got 0"),
    ("--n-support", "-3", "argument --n-support: expected an integer >= 1, got -3"),
    ("--n-way", "0", "argument --n-way: expected an integer >= 2, got 0"),
    ("--n-way", "1", "argument --n-way: expected an integer >= 2, got 1"),
    ("--n-query", "0", "argument --n-query: expected an integer >= 1, got 0"),
    ("--iter-num", "0", "argument --iter-num: expected an integer >= 1, got 0"),
    ("--batch-size", "0", "argument -b/--batch-size: expected an integer >= 1, got 0"),
    ("-i", "0", "argument -i/--image-size: expected an integer >= 1, got 0"),
    ("--workers", "-1", "argument --workers: expected an integer >= 0, got -1"),
])
def test_impossible_sizes_are_argument_errors_and_nothing_is_written(tmp_path, capsys,
                                                                     option, value, message):
    write_layout("eurosat", tmp_path / "data", per_class=5)
    with pytest.raises(SystemExit) as exit_info:
        run("eurosat", tmp_path, option, value)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "f").exists()


def test_other_settings_get_their_own_files(tmp_path, capsys):
    """--n-query, --iter-num and --seed change the numbers: each is named in the file name."""
    write_layout("eurosat", tmp_path / "data", per_class=5)
    assert run("eurosat", tmp_path) == 0
    assert run("eurosat", tmp_path, "--seed", "3") == 0
    capsys.readouterr()
    names = sorted(path.name for path in (tmp_path / "r" / "few_shot").iterdir())
    assert names == [f"{TINY}__eurosat__3way{k}shot__q3__episodes40{seed}__i32.json"
                     for k in (1, 2) for seed in ("", "__seed3")]


def test_a_truncated_image_is_one_line_naming_the_file(tmp_path, capsys):
    write_layout("eurosat", tmp_path / "data", per_class=5)
    image = sorted((tmp_path / "data").rglob("*.jpg"))[3]
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    assert run("eurosat", tmp_path, "--workers", "1") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "%|" not in line and line.strip()]
    assert line.startswith(f"error: cannot read image {image}: ")
    assert not (tmp_path / "r" / "few_shot").exists() or not any(
        (tmp_path / "r" / "few_shot").iterdir())


def test_an_unwritable_results_folder_fails_before_any_work(tmp_path, capsys):
    write_layout("eurosat", tmp_path / "data", per_class=5)
    (tmp_path / "file").write_text("")
    assert run("eurosat", tmp_path, "--results-dir", str(tmp_path / "file")) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: cannot write to the results folder ")
    assert not (tmp_path / "f").exists()
