"""The full-scale Fashion-MNIST driver and its table: run order and commands, phase markers on
the scripts' real progress lines, per-phase durations and memory peaks, the Markdown table."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from benchmarks import fashion_mnist_full as full
from benchmarks import fashion_mnist_table as table


def test_runs_put_both_many_shot_pairs_before_few_shot(tmp_path):
    args = argparse.Namespace(model="timm:tf_efficientnet_lite0", weights="w.pth",
                              data_root="/data", out=tmp_path, image_size=224,
                              inits=["imagenet", "random"],
                              protocols=["linear", "knn", "few_shot"])
    runs = full.runs(args)
    assert [name for name, _ in runs] == ["imagenet-linear", "imagenet-knn", "random-linear",
                                         "random-knn", "imagenet-few_shot", "random-few_shot"]
    linear = dict(runs)["imagenet-linear"]
    assert linear[:5] == ["linear.py", "--model", "timm:tf_efficientnet_lite0", "--weights",
                          "w.pth"]
    assert " -i 224 " in " ".join(linear) and f"--cache-dir {tmp_path / 'features'}" in " ".join(
        linear)
    few = dict(runs)["random-few_shot"]
    assert few[:7] == ["few_shot.py", "--n-way", "5", "--n-support", "5", "20", "50"]
    assert "--random-init" in few and "--weights" not in few


def _first_phase(protocol: str, text: str) -> str | None:
    return next((phase for phase, regex in full.PHASES[protocol] if re.search(regex, text)), None)


def test_markers_match_the_scripts_progress_lines():
    grid = "logreg C grid (sklearn):  42%|####2     | 19/45 [04:10<05:40, 13.1s/it]"
    assert [p for p, r in full.PHASES["linear"] if re.search(r, grid)] == ["C search"]
    done = "logreg C grid (sklearn): 100%|##########| 45/45 [09:51<00:00, 13.1s/it]"
    assert [p for p, r in full.PHASES["linear"] if re.search(r, done)] == [
        "C search", "refit, plateau ends, bootstrap"]
    assert _first_phase("linear", "features fashion-mnist/test:   3%|") == "extract test"
    assert _first_phase("knn", "kNN:  50%|#####     | 5/10 [00:01<00:01, 4.9chunk/s]") == "kNN"
    assert _first_phase("few_shot", "computed features of 70000 images in 3600.0s") == "episodes"


def test_phase_table_times_and_peaks_each_phase(tmp_path):
    mem = tmp_path / "mem.tsv"
    mem.write_text("seconds\tmain_rss_kb\ttree_rss_kb\n"
                   "1.0\t1024\t2048\n5.0\t4096\t8192\n9.0\t2048\t3072\n12.0\t1024\t1024\n")
    rows = full.phase_table({"extract trainval": 0.5, "C search": 6.0}, 12.5, mem)
    assert [(r["phase"], r["seconds"]) for r in rows] == [("extract trainval", 5.5),
                                                          ("C search", 6.5)]
    assert (rows[0]["peak_main_rss_mb"], rows[0]["peak_tree_rss_mb"]) == (4.0, 8.0)
    assert (rows[1]["peak_main_rss_mb"], rows[1]["peak_tree_rss_mb"]) == (2.0, 3.0)


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_table_reads_scores_and_phases(tmp_path, capsys):
    results = tmp_path / "results"
    _write(results / "linear" / "timm-x+weights-w__fashion-mnist__i224.json",
           {"protocol": "linear", "model": "timm-x+weights-w", "score": 91.234, "C": 0.0316,
            "ci": [90.5, 91.9]})
    _write(results / "linear" / "timm-x+random-init__fashion-mnist__i224.json",
           {"protocol": "linear", "model": "timm-x+random-init", "score": 80.0, "C": 1.0,
            "ci": [79.0, 81.0]})
    for shots, accuracy in ((20, 85.0), (5, 70.0)):
        _write(results / "few_shot" / f"timm-x+weights-w__fashion-mnist__5way{shots}shot.json",
               {"protocol": "few_shot", "model": "timm-x+weights-w", "accuracy": accuracy,
                "ci95": 0.5, "n_way": 5, "n_support": shots, "episodes": 600})
    phases = [{"phase": "extract trainval", "seconds": 600.0, "peak_main_rss_mb": 2048.0,
               "peak_tree_rss_mb": 3072.0}]
    summary = {"imagenet-linear": {"exit": 0, "wall_s": 1200.0, "max_rss_kb_time": 2 * 1024**2,
                                   "phases": phases},
               "imagenet-few_shot": {"exit": 0, "wall_s": 60.0, "max_rss_kb_time": None,
                                     "phases": []},
               "random-knn": {"exit": 1, "wall_s": 3.0, "max_rss_kb_time": None, "phases": []}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert table.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| imagenet-linear | C 0.0316 | 91.23 [90.50, 91.90] |" in out
    assert "80.00" not in out  # the random-init record belongs to random-linear, not run here
    assert out.index("5-way 5-shot, 600 episodes | 70.00 ± 0.50") < out.index("5-way 20-shot")
    assert "| random-knn | exit 1 | no result |" in out
    assert "| imagenet-linear | extract trainval | 10.0 min | 2.00 / 3.00 GB |" in out
    assert "| imagenet-linear | **whole run** | **20.0 min** | 2.00 GB" in out
    assert table.main([str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: no summary.json in ")
