#!/usr/bin/env python
"""Many-shot linear evaluation: L-BFGS logistic regression on cached features, C searched on val."""

from __future__ import annotations

import argparse
import sys

from datasets import DatasetError
from models import ModelError, load_backbone
from transfer.arguments import add_feature_arguments, backbone_options
from transfer.cache import FeatureCache, FeatureOptions
from transfer.device import DeviceError
from transfer.linear_probe import linear_probe
from transfer.logreg import LogregError
from transfer.results import result_path, write_result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "-m",
        "--model",
        default="deepcluster-v2",
        help="model name, .pth file or timm:<architecture>[.<tag>]",
    )
    parser.add_argument("-d", "--dataset", default="cifar10", help="dataset name")
    parser.add_argument(
        "-w",
        "--wd-values",
        type=int,
        default=45,
        help="number of weight decay values logspace(-6, 5, W) to validate",
    )
    parser.add_argument(
        "-c",
        "--C",
        type=float,
        default=None,
        help="C = 1 / weight decay to use without searching on val",
    )
    parser.add_argument(
        "--solver",
        choices=("sklearn", "torch"),
        default="sklearn",
        help="sklearn: the original's scikit-learn fits, on the CPU; torch: the same fits "
        "(scipy's L-BFGS-B repeated in PyTorch, float64) on --device, e.g. a GPU",
    )
    add_feature_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        backbone = load_backbone(
            args.model, args.models_dir, no_norm=args.no_norm, options=backbone_options(args)
        )
        record = linear_probe(
            backbone,
            args.dataset,
            data_root=args.data_root,
            cache=FeatureCache(args.cache_dir),
            features=FeatureOptions(
                args.image_size, args.batch_size, args.device, args.workers, args.precision
            ),
            C=args.C,
            num_wd=args.wd_values,
            solver=args.solver,
        )
    except (DatasetError, ModelError, LogregError, DeviceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    record["arguments"] = vars(args)
    path = write_result(
        result_path("linear", backbone.name, args.dataset, results_dir=args.results_dir), record
    )
    print(f"results written to {path}")
    print(
        f"Final accuracy for {backbone.name} on {args.dataset}: {record['score']:.2f}% "
        f"using hyperparameter C: {record['C']:.3f}"
    )
    if record["ece"] is None:  # multi-label, or too few test samples
        print("ECE: n/a, temperature scaled ECE: n/a")
    else:
        print(f"ECE: {record['ece']:.3f}, "
              f"temperature scaled ECE: {record['ece_temperature_scaled']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
