#!/usr/bin/env python
"""Feature extraction: our pipeline (DataLoader workers, transform, inference_mode,
channels_last, cache write) against a bare channels_last ``model(x)`` loop over the same images
already transformed and held in memory, for any backbone (default: a ViT-S/16 and a ResNet-50
from timm, random init, 224 px) on any dataset. The ratio is pipeline time / bare time; the
target is <= 1.15.

    python benchmarks/extract_bench.py
    python benchmarks/extract_bench.py --models random timm:convnext_tiny --images 128
    python benchmarks/extract_bench.py --models timm:tf_efficientnet_lite0 \
        --weights models/efficientnet-lite0.pth --dataset fashion-mnist --images 640 -b 64
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets import load_split  # noqa: E402
from models import BackboneOptions, load_backbone  # noqa: E402
from transfer.features.cache import FeatureCache, cached_features  # noqa: E402

DEFAULT_MODELS = ("timm:vit_small_patch16_224", "timm:resnet50")


def bare_loop(backbone, images: torch.Tensor, batch_size: int, device: str) -> torch.Tensor:
    """The baseline: ``model(x)`` over preloaded channels_last tensors, nothing else."""
    backbone = backbone.to(memory_format=torch.channels_last)
    images = images.contiguous(memory_format=torch.channels_last)
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            outputs.append(backbone(images[start:start + batch_size].to(device)).float().cpu())
    return torch.cat(outputs)


def measure(name: str, n_images: int = 192, image_size: int = 224, batch_size: int = 32,
            workers: int = 2, device: str = "cpu", repeats: int = 1,
            dataset: str = "digits", weights: str | None = None,
            data_root: str | None = None) -> dict:
    """Best-of-``repeats`` seconds of both ways on the same images (the first ``n_images`` of
    trainval); features must agree. A timm model runs with ``weights``, else random init."""
    options = None
    if name.startswith("timm:"):
        options = BackboneOptions(weights=weights) if weights else BackboneOptions(random_init=True)
    backbone = load_backbone(name, options=options).to(device).eval()
    split = load_split(dataset, "trainval", data_root)
    split = split.subset(range(min(n_images, len(split))), "trainval")
    transform = backbone.transform("eval", image_size)
    images = torch.stack([transform(split.load_image(i)) for i in range(len(split))])
    bare_loop(backbone, images[:batch_size], batch_size, device)  # warm-up (allocator, kernels)
    bare_s, ours_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        expected = bare_loop(backbone, images, batch_size, device)
        bare_s.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as cache_dir:
            start = time.perf_counter()
            features, hit = cached_features(backbone, split, transform, FeatureCache(cache_dir),
                                            batch_size=batch_size, device=device,
                                            workers=workers, progress=False)
            ours_s.append(time.perf_counter() - start)
        assert not hit
    return {
        "model": name, "images": len(split), "image_size": image_size, "batch_size": batch_size,
        "workers": workers, "device": device, "threads": torch.get_num_threads(),
        "feature_dim": backbone.feature_dim,
        "bare_s": min(bare_s), "pipeline_s": min(ours_s),
        "bare_img_per_s": len(split) / min(bare_s), "pipeline_img_per_s": len(split) / min(ours_s),
        "ratio": min(ours_s) / min(bare_s),
        "max_abs_diff": float((features - expected).abs().max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("-b", "--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs of each way")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--weights", default=None, help="state dict of the timm model(s)")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    args = parser.parse_args(argv)
    for name in args.models:
        record = measure(name, args.images, args.image_size, args.batch_size, args.workers,
                         args.device, args.repeats, args.dataset, args.weights, args.data_root)
        if args.json:
            print(json.dumps(record))
            continue
        print(f"{name}: {record['images']} images at {args.image_size} px, batch "
              f"{args.batch_size}, {args.workers} workers, {record['threads']} threads, "
              f"{args.device}")
        print(f"  bare model(x) on preloaded tensors: {record['bare_s']:.2f} s "
              f"({record['bare_img_per_s']:.1f} img/s)")
        print(f"  our pipeline (loader, transform, cache write): {record['pipeline_s']:.2f} s "
              f"({record['pipeline_img_per_s']:.1f} img/s)")
        print(f"  ratio pipeline / bare: {record['ratio']:.3f} (target <= 1.15); features "
              f"agree to {record['max_abs_diff']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
