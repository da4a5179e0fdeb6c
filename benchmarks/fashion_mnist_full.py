#!/usr/bin/env python
"""The full-scale measurement on Fashion-MNIST (60,000 train / 10,000 test real photos): linear
(45-value C grid), kNN and few-shot (5-way 5/20/50-shot, 600 episodes) at 224 px with
EfficientNet-Lite0's ImageNet weights, then with its random initialisation, one run after
another under ``nice -n 10`` and ``/usr/bin/time -v``.

Each run's output goes to ``<out>/logs/<run>.log``; the driver stamps the first time each phase
marker appears in it (``<run>.phases.tsv``: the feature bar of each split, the C grid, the
refit, the kNN pass, the episodes) and samples the memory of the run's processes every second
(``<run>.mem.tsv``: the main process's RSS and the sum over it and its DataLoader workers).
``<out>/summary.json`` gets, per run, its wall time, exit status, ``/usr/bin/time``'s peak RSS
and each phase's duration and peak memory; ``benchmarks/fashion_mnist_table.py`` turns it and
the result files into the table of docs/benchmarks-fashion-mnist.md.

    nohup python benchmarks/fashion_mnist_full.py --weights W.pth > /work/fmnist-full/driver.log &
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transfer.atomic import write_json_atomic  # noqa: E402

SAMPLE_S = 1.0
# protocol -> [(phase, regex of its first output)], in the order the phases run
PHASES = {
    "linear": [
        ("extract trainval", r"features fashion-mnist/trainval"),
        ("extract test", r"features fashion-mnist/test"),
        ("C search", r"logreg C grid"),
        ("refit, plateau ends, bootstrap", r"logreg C grid[^\r\n]*\b(\d+)/\1\b"),
        ("write", r"Final accuracy"),
    ],
    "knn": [
        ("extract trainval", r"features fashion-mnist/trainval"),
        ("extract test", r"features fashion-mnist/test"),
        ("kNN", r"kNN:"),
        ("write", r"kNN accuracy for"),
    ],
    "few_shot": [
        ("extract fewshot pool", r"features fashion-mnist/fewshot"),
        ("episodes", r"(computed|loaded cached) features of"),
        ("write", r"50-shot, \d+ episodes"),
    ],
}


def runs(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(name, argv) of every run: the many-shot runs of both inits first (linear, then kNN from
    its cache), then few-shot, so a run cut short still has the paired linear results."""
    common = ["--dataset", "fashion-mnist", "-i", str(args.image_size),
              "--data-root", args.data_root, "--results-dir", str(args.out / "results"),
              "--cache-dir", str(args.out / "features"), "--device", "cpu"]
    weights = {"imagenet": ["--model", args.model, "--weights", args.weights],
               "random": ["--model", args.model, "--random-init"]}
    scripts = {"linear": ["linear.py"], "knn": ["knn.py"],
               "few_shot": ["few_shot.py", "--n-way", "5", "--n-support", "5", "20", "50"]}
    order = [(init, p) for init in args.inits for p in ("linear", "knn")]
    order += [(init, "few_shot") for init in args.inits]
    return [(f"{init}-{protocol}", [*scripts[protocol], *weights[init], *common])
            for init, protocol in order if protocol in args.protocols]


def _children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc (Linux; psutil is no dependency of this project)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int, tree: dict[int, list[int]]) -> list[int]:
    pending, found = [root], []
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(tree.get(pid, []))
    return found


def sample_memory(root: int, stop: threading.Event, start: float, out) -> None:
    """Every SAMPLE_S: seconds, RSS of the main Python process (the first Python below ``root``:
    ``nice`` -> ``time`` -> python) and of it plus its DataLoader workers, in kB."""
    while not stop.wait(SAMPLE_S):
        tree = _children()
        main = next((pid for pid in _descendants(root, tree)[1:] if _is_python(pid)), None)
        if main is None:
            continue
        total = sum(_rss_kb(pid) for pid in _descendants(main, tree))
        out.write(f"{time.perf_counter() - start:.1f}\t{_rss_kb(main)}\t{total}\n")
        out.flush()


def _is_python(pid: int) -> bool:
    try:
        return "python" in Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return False


def run_one(name: str, argv: list[str], logs: Path) -> dict:
    """Run ``argv`` with its phases stamped and its memory sampled; the run's summary."""
    protocol = name.split("-", 1)[1]
    markers = [(phase, re.compile(regex)) for phase, regex in PHASES[protocol]]
    command = ["nice", "-n", "10", "/usr/bin/time", "-v", sys.executable, *argv]
    seen: dict[str, float] = {}
    start = time.perf_counter()
    with (open(logs / f"{name}.log", "w") as log, open(logs / f"{name}.mem.tsv", "w") as mem,
          open(logs / f"{name}.phases.tsv", "w") as phases):
        log.write(" ".join(command) + "\n")
        mem.write("seconds\tmain_rss_kb\ttree_rss_kb\n")
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        stop = threading.Event()
        sampler = threading.Thread(target=sample_memory,
                                   args=(process.pid, stop, start, mem), daemon=True)
        sampler.start()
        tail = ""
        assert process.stdout is not None
        while chunk := process.stdout.read1(65536):
            text = chunk.decode(errors="replace")
            log.write(text)
            log.flush()
            tail = (tail + text)[-4096:]
            for phase, regex in markers:
                if phase not in seen and regex.search(tail):
                    seen[phase] = time.perf_counter() - start
                    phases.write(f"{seen[phase]:.1f}\t{phase}\n")
                    phases.flush()
        code = process.wait()
        stop.set()
        sampler.join()
    wall = time.perf_counter() - start
    return {"run": name, "argv": argv, "exit": code, "wall_s": wall,
            "max_rss_kb_time": _time_max_rss(logs / f"{name}.log"),
            "phases": phase_table(seen, wall, logs / f"{name}.mem.tsv")}


def _time_max_rss(log: Path) -> int | None:
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", log.read_text(
        errors="replace"))
    return int(match.group(1)) if match else None


def phase_table(seen: dict[str, float], wall: float, mem_file: Path) -> list[dict]:
    """Each phase that ran: start, duration and peak memory over its samples."""
    samples = [tuple(map(float, line.split("\t")))
               for line in mem_file.read_text().splitlines()[1:] if line.strip()]
    ordered = sorted(seen.items(), key=lambda item: item[1])
    table = []
    for index, (phase, begin) in enumerate(ordered):
        end = ordered[index + 1][1] if index + 1 < len(ordered) else wall
        inside = [s for s in samples if begin <= s[0] <= end]
        table.append({
            "phase": phase, "start_s": begin, "seconds": end - begin,
            "peak_main_rss_mb": max((s[1] for s in inside), default=0) / 1024,
            "peak_tree_rss_mb": max((s[2] for s in inside), default=0) / 1024,
        })
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="converted EfficientNet-Lite0 file")
    parser.add_argument("--model", default="timm:tf_efficientnet_lite0")
    parser.add_argument("--data-root", default=str(Path.home() / "data"))
    parser.add_argument("--out", type=Path, default=Path("/work/fmnist-full"))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--inits", nargs="+", default=["imagenet", "random"])
    parser.add_argument("--protocols", nargs="+", default=["linear", "knn", "few_shot"])
    args = parser.parse_args(argv)
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    summary_path = args.out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name, run_argv in runs(args):
        print(f"{time.strftime('%H:%M:%S')} start {name}", flush=True)
        summary[name] = run_one(name, run_argv, logs)
        write_json_atomic(summary_path, summary)
        print(f"{time.strftime('%H:%M:%S')} done {name}: exit {summary[name]['exit']}, "
              f"{summary[name]['wall_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
