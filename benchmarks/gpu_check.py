#!/usr/bin/env python
"""The GPU check: one command that measures every GPU path and prints a table to paste.

Needs no dataset and no checkpoint (synthetic images, scikit-learn's bundled digits, a random
ResNet-50), and runs in a few minutes on one GPU:

    python benchmarks/gpu_check.py            # on a CUDA machine (under 8 minutes)
    python benchmarks/gpu_check.py --quick    # small sizes, a smoke run (CI runs it on the CPU)

Every figure is a ratio against a baseline measured in the same run, by the benchmark scripts'
own functions:

- feature extraction, ResNet-50 at 224 px: the original's loop (autograd, NCHW, a blocking copy
  per batch, torch's default flags; ``linear_bench.original_loop``) against ours
  (``transfer.features.backbone_features``) in fp32 (TF32 off), tf32 and bf16, on the same
  pinned batches; and how far fp32 and tf32 features are from the CPU's;
- the linear probe's C search + refit on 10,000 x 2,048 features, 100 classes, 45 C:
  scikit-learn on the CPU against the torch chain on the GPU (``logreg_bench``);
- few-shot, 600 episodes of 5-way 5-shot on digits at 224 px: the original way (the backbone
  on every episode) against ours (``few_shot_bench``);
- finetuning, ResNet-50 at 224 px, batch 64: steps/s of the loop's own step in fp32 NCHW
  against bf16 + channels_last, and the original's step (``finetune_bench``);
- with two GPUs or more: the multi-GPU dense training and its checkpoints (NCCL);
- ``pytest -m gpu``: the tests that need a GPU.

Without CUDA it runs the parts a CPU can run, at --quick sizes, and says what it skipped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import few_shot_bench, finetune_bench  # noqa: E402
from benchmarks.linear_bench import original_loop  # noqa: E402
from benchmarks.logreg_bench import benchmark_solvers  # noqa: E402
from models import load_backbone  # noqa: E402
from transfer.classifiers.logreg import default_C_grid  # noqa: E402
from transfer.features.extract import backbone_features  # noqa: E402
from transfer.runtime.precision import PRECISIONS, bf16_supported  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MULTI_GPU_TEST = "tests/cli/test_normals_cli.py::test_two_gpus_train_checkpoint_and_resume"
PARTS = ("extraction", "solvers", "few_shot", "finetune", "dense", "tests")


@dataclass(frozen=True)
class Sizes:
    image: int = 224
    batch: int = 64
    batches: int = 40
    n_train: int = 10_000
    n_val: int = 2_000
    n_test: int = 2_000
    dim: int = 2048
    classes: int = 100
    grid: int = 45
    few_shot_image: int = 224
    few_shot_pool: int | None = None  # all of digits' 1,797
    episodes: int = 600
    original_episodes: int = 20
    finetune_steps: int = 30
    finetune_warmup: int = 10


QUICK = Sizes(image=16, batch=4, batches=2, n_train=200, n_val=100, n_test=100, dim=16,
              classes=4, grid=3, few_shot_image=16, few_shot_pool=300, episodes=20,
              original_episodes=1, finetune_steps=1, finetune_warmup=1)


@dataclass(frozen=True)
class Row:
    check: str
    setting: str
    baseline: str
    ours: str
    ratio: str


def _timed(function: Callable[[], object], device: str) -> float:
    """Seconds of one call, the device drained before and after."""
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    synchronize()
    start = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - start


def extraction_rows(device: str, sizes: Sizes) -> list[Row]:
    """The original's feature loop against ours in each precision, same pinned batches."""
    backbone = load_backbone("random")
    images = torch.randn(sizes.batch, 3, sizes.image, sizes.image)
    labels = torch.zeros(sizes.batch, dtype=torch.long)
    if device.startswith("cuda"):
        images, labels = images.pin_memory(), labels.pin_memory()
    batches = [(images, labels)] * sizes.batches
    n = sizes.batch * sizes.batches
    setting = f"ResNet-50, {sizes.image} px, batch {sizes.batch}, {n} images"
    model = backbone.to(device).eval()
    original_loop(model, batches[:2], device)  # warm-up (cuDNN picks its algorithms)
    original = n / _timed(lambda: original_loop(model, batches, device), device)
    rows = []
    for precision in PRECISIONS:
        if precision == "bf16" and not bf16_supported(device):
            rows.append(Row("feature extraction img/s", setting, f"original {original:.1f}",
                            "bf16: no native bf16 on this GPU (skipped)", "-"))
            continue
        backbone_features(backbone, batches[:2], 2 * sizes.batch, device, precision,
                          progress=False)
        ours = n / _timed(lambda p=precision: backbone_features(
            backbone, batches, n, device, p, progress=False), device)
        rows.append(Row("feature extraction img/s", setting,
                        f"original loop {original:.1f}", f"ours {precision} {ours:.1f}",
                        f"{ours / original:.2f}x"))
    if device.startswith("cuda"):  # fidelity: fp32 (TF32 off) and tf32 against the CPU
        sample = images[:8]
        expected = backbone_features(backbone, [(sample, None)], len(sample), "cpu",
                                     progress=False)
        error = {}
        for precision in ("fp32", "tf32"):
            got = backbone_features(backbone, [(sample, None)], len(sample), device, precision,
                                    progress=False)
            error[precision] = float((got - expected).abs().max() / expected.abs().max())
        rows.append(Row("features vs the CPU's (max rel. diff)",
                        f"ResNet-50, {sizes.image} px, {len(sample)} images",
                        f"tf32 {error['tf32']:.1e}", f"fp32 (TF32 off) {error['fp32']:.1e}",
                        f"{error['tf32'] / max(error['fp32'], 1e-12):.0f}x closer"))
    return rows


def solver_rows(device: str, sizes: Sizes) -> list[Row]:
    """scikit-learn's C search (the original's, on the CPU) against the torch chain."""
    report = benchmark_solvers(
        Cs=default_C_grid(sizes.grid), device=device, strategies=("chain",),
        n_train=sizes.n_train, n_val=sizes.n_val, n_test=sizes.n_test, dim=sizes.dim,
        num_classes=sizes.classes,
    )  # fmt: skip
    sk, chain = report["sklearn"], report["torch_chain"]
    sk_s = sk["grid_seconds"] + sk["refit_seconds"]
    chain_s = chain["grid_seconds"] + chain["refit_seconds"]
    setting = (f"{sizes.n_train:,} x {sizes.dim:,}, {sizes.classes} classes, {sizes.grid} C; "
               f"C #{sk['best_index']} vs #{chain['best_index']} "
               f"({chain['grid_steps_from_sklearn_C']} apart), test "
               f"{sk['test_score']:.2f} vs {chain['test_score']:.2f}")
    return [Row("linear C search + refit", setting,
                f"sklearn (CPU, {torch.get_num_threads()} threads) {sk_s:.1f} s",
                f"torch chain ({device}) {chain_s:.1f} s", f"{sk_s / chain_s:.2f}x")]


def few_shot_rows(device: str, sizes: Sizes, workers: int) -> list[Row]:
    result = few_shot_bench.measure(image_size=sizes.few_shot_image, episodes=sizes.episodes,
                                    original_episodes=sizes.original_episodes, device=device,
                                    workers=workers, pool_size=sizes.few_shot_pool)
    setting = (f"digits ({result['pool']} images) at {result['image_size']} px, 5-way 5-shot, "
               f"{sizes.episodes} episodes; accuracy {result['original_accuracy']:.2f} vs "
               f"{result['ours_shared_accuracy']:.2f} on the shared episodes")
    original = f"backbone per episode {result['original_s']:.1f} s (scaled)"
    return [
        Row("few-shot", setting, original, f"first run {result['first_run_s']:.1f} s",
            f"{result['original_s'] / result['first_run_s']:.1f}x"),
        Row("few-shot", "the same, features from the cache", original,
            f"rerun {result['rerun_s']:.2f} s", f"{result['original_s'] / result['rerun_s']:.0f}x"),
    ]


def finetune_rows(device: str, sizes: Sizes, compile_model: bool) -> list[Row]:
    result = finetune_bench.measure(device, sizes.image, sizes.batch, sizes.finetune_steps,
                                    sizes.finetune_warmup, compile_model)
    per_step = {key: value / sizes.batch for key, value in result.items()}  # steps/s
    setting = (f"ResNet-50, {sizes.image} px, batch {sizes.batch}"
               + (", compiled" if compile_model else ""))
    fp32 = f"ours fp32 (TF32 off) NCHW {per_step['fp32']:.2f}"
    return [
        Row("finetune steps/s", setting, fp32,
            f"bf16 + channels_last {per_step['bf16_channels_last']:.2f}",
            f"{result['bf16_channels_last'] / result['fp32']:.2f}x"),
        Row("finetune steps/s", setting,
            f"original step (sync per step) {per_step['original']:.2f}", fp32,
            f"{result['fp32'] / result['original']:.2f}x"),
    ]


def _pytest(arguments: list[str]) -> tuple[str, float]:
    """pytest's summary line and the seconds it took."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *arguments], cwd=REPO, capture_output=True, text=True)
    lines = [line.strip("= ") for line in done.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else f"pytest exited {done.returncode}: {done.stderr[-200:]}"
    if done.returncode not in (0, 5):  # 5: nothing collected
        print(done.stdout[-5000:], file=sys.stderr)
    return summary, time.perf_counter() - start


def dense_rows() -> list[Row]:
    summary, seconds = _pytest(["-m", "gpu", MULTI_GPU_TEST])
    return [Row("multi-GPU dense training + checkpoints (NCCL)",
                f"{torch.cuda.device_count()} GPUs, normals CLI --gpus 0,1, resume", "-",
                f"{summary} ({seconds:.0f} s)", "-")]


def test_rows() -> list[Row]:
    summary, seconds = _pytest(["-m", "gpu", "--deselect", MULTI_GPU_TEST])
    return [Row("pytest -m gpu", "the tests that need a GPU", "-", f"{summary} ({seconds:.0f} s)",
                "-")]


def markdown(rows: list[Row]) -> str:
    lines = ["| check | setting | baseline | ours | ratio |", "|---|---|---|---|---|"]
    lines += [f"| {r.check} | {r.setting} | {r.baseline} | {r.ours} | {r.ratio} |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--skip", nargs="+", choices=PARTS, default=[], help="parts to leave out")
    parser.add_argument("--compile", action="store_true", help="torch.compile the finetune step")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers (few-shot)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    sizes = QUICK if args.quick or not cuda else Sizes()
    if not cuda:
        note = ("note: no CUDA GPU here: the CPU-safe parts ran at --quick sizes; the GPU parts "
                "were skipped (GPU timings, bf16 on CUDA, the features-vs-CPU fidelity row, the "
                "multi-GPU dense checkpoint path, pytest -m gpu)")
    elif torch.cuda.device_count() < 2:
        note = "note: one GPU: the multi-GPU dense checkpoint path was skipped (needs 2)"
    else:
        note = ""
    parts: list[tuple[str, Callable[[], list[Row]]]] = [
        ("extraction", lambda: extraction_rows(args.device, sizes)),
        ("solvers", lambda: solver_rows(args.device, sizes)),
        ("few_shot", lambda: few_shot_rows(args.device, sizes, args.workers)),
        ("finetune", lambda: finetune_rows(args.device, sizes, args.compile)),
    ]
    if cuda and torch.cuda.device_count() >= 2:
        parts.append(("dense", dense_rows))
    if cuda:
        parts.append(("tests", test_rows))
    name = torch.cuda.get_device_name(args.device) if cuda else "CPU"
    print(f"GPU check on {args.device} ({name}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads{', quick sizes' if sizes == QUICK else ''}")
    rows: list[Row] = []
    began = time.perf_counter()
    for part, run in parts:
        if part in args.skip:
            continue
        start = time.perf_counter()
        print(f"[{part}] ...", file=sys.stderr, flush=True)
        rows += run()
        print(f"[{part}] {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(markdown(rows))
    print(f"total {time.perf_counter() - began:.0f} s")
    if note:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
