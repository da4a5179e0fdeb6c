"""Semantic segmentation on ADE20K (docs/protocols.md, "Dense prediction"): the MIT CSAIL toolkit's
``resnet50-upernet`` recipe with the encoder loaded strictly from ``models/<name>.pth``; the
steps behind ``semantic-segmentation/train.py`` and ``eval_multipro.py``.

Configs keep the toolkit's YAML keys (``DATASET``, ``MODEL``, ``TRAIN``, ``VAL``, ``DIR``) so the
original ``selfsupconfig/<name>.yaml`` files read the same; paths may start with
``{data_root}``, ``{models_dir}`` or ``{repo}`` and relative paths are taken from the repository
root. Overrides follow the toolkit: ``KEY VALUE`` pairs after the options
(``TRAIN.epoch_iters 2``).
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Subset

from datasets.registry import default_data_root
from models.backbone import Backbone
from models.registry import REPO_ROOT, default_models_dir
from transfer.console import progress
from transfer.errors import TransferError
from transfer.protocols.dense.ade20k import read_odgt
from transfer.protocols.dense.decoders import DenseModel, UPerNet, class_probabilities
from transfer.protocols.dense.encoder import ResNetStages, load_encoder
from transfer.protocols.dense.provenance import dense_provenance
from transfer.protocols.dense.samples import DenseDataError, EvalImages, Geometry, TrainBatches
from transfer.protocols.dense.segmentation_metrics import confusion_matrix, segmentation_scores
from transfer.protocols.dense.train_loop import Schedule, train_dense
from transfer.runtime.checkpoint import read_checkpoint
from transfer.runtime.distributed import (
    SINGLE_PROCESS,
    Distributed,
    all_reduce_sum,
    shard_bounds,
)

DEFAULTS: dict[str, dict[str, Any] | str] = {
    "DATASET": {"root_dataset": "{data_root}/ADE20K",
                "list_train": "{data_root}/ADE20K/training.odgt",
                "list_val": "{data_root}/ADE20K/validation.odgt", "num_class": 150,
                "imgSizes": (300, 375, 450, 525, 600), "imgMaxSize": 1000,
                "padding_constant": 32, "segm_downsampling_rate": 4, "random_flip": True},
    "MODEL": {"arch_encoder": "resnet50", "arch_decoder": "upernet", "weights_encoder": "",
              "fc_dim": 2048},
    "TRAIN": {"batch_size_per_gpu": 2, "num_epoch": 30, "start_epoch": 0, "epoch_iters": 5000,
              "optim": "SGD", "lr_encoder": 0.02, "lr_decoder": 0.02, "lr_pow": 0.9,
              "beta1": 0.9, "weight_decay": 1e-4, "fix_bn": False,
              "workers": 16, "disp_iter": 20, "seed": 304},
    "VAL": {"visualize": False, "checkpoint": "epoch_30.pth"},
    "DIR": "ckpt/ade20k-resnet50-upernet",
}
# Toolkit keys that would mean nothing here: an error says why rather than ignoring them.
REJECTED_KEYS = {
    "TRAIN.deep_sup_scale": "it weights the deep-supervision loss of the toolkit's *_deepsup "
                            "decoders, and UPerNet has none (the toolkit ignores it too): "
                            "delete the key",
    "TEST": "it configures the toolkit's test.py (inference on your own images), which this "
            "project does not have; evaluation reads DIR/<VAL.checkpoint>: delete the section",
}
PATH_KEYS = (("DATASET", "root_dataset"), ("DATASET", "list_train"), ("DATASET", "list_val"),
             ("MODEL", "weights_encoder"), (None, "DIR"))


class ConfigError(TransferError):
    """A config file or override that does not fit the recipe."""


def _parse_value(value: Any, from_command_line: bool) -> Any:
    """Command-line values are YAML scalars (``2``, ``True``); ``(a, b)`` strings are tuples, as
    yacs reads them."""
    if isinstance(value, str) and from_command_line and value.strip():
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
    if isinstance(value, str) and value.strip().startswith("("):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _merge(config: dict, updates: dict, source: str, prefix: str = "") -> None:
    for key, value in updates.items():
        if f"{prefix}{key}" in REJECTED_KEYS:
            raise ConfigError(f"{source}: {prefix}{key} is not supported: "
                              f"{REJECTED_KEYS[prefix + key]}")
        if key not in config:
            raise ConfigError(f"{source}: unknown key {prefix}{key} (known: {', '.join(config)})")
        if isinstance(config[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {prefix}{key} must be a section")
            _merge(config[key], value, source, f"{prefix}{key}.")
        else:
            config[key] = _parse_value(value, source == "command line")


def expand_path(text: str, data_root: str | Path | None = None,
                models_dir: str | Path | None = None) -> Path:
    expanded = str(text).format(data_root=data_root or default_data_root(),
                                models_dir=models_dir or default_models_dir(), repo=REPO_ROOT)
    path = Path(expanded).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def load_config(path: str | Path, overrides: list[str] | None = None,
                data_root: str | Path | None = None,
                models_dir: str | Path | None = None) -> dict[str, Any]:
    """The toolkit defaults, updated by the YAML file and ``KEY VALUE`` overrides, checked
    against the recipe this project implements, with paths expanded."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    config = copy.deepcopy(DEFAULTS)
    _merge(config, loaded, str(path))
    overrides = list(overrides or [])
    if len(overrides) % 2:
        raise ConfigError(f"overrides come in KEY VALUE pairs, got {overrides}")
    for key, value in zip(overrides[::2], overrides[1::2], strict=True):
        *sections, leaf = key.split(".")
        update: dict[str, Any] = {leaf: value}
        for section in reversed(sections):
            update = {section: update}
        _merge(config, update, "command line")
    check_recipe(config, str(path))
    for section, key in PATH_KEYS:
        holder = config if section is None else config[section]
        if holder[key]:
            holder[key] = str(expand_path(holder[key], data_root, models_dir))
    if not config["MODEL"]["weights_encoder"]:
        raise ConfigError(f"{path}: MODEL.weights_encoder names no checkpoint")
    return config


def check_recipe(config: dict[str, Any], source: str) -> None:
    m, t, d = config["MODEL"], config["TRAIN"], config["DATASET"]
    wanted = {"MODEL.arch_encoder": (m["arch_encoder"], "resnet50"),
              "MODEL.arch_decoder": (m["arch_decoder"], "upernet"),
              "MODEL.fc_dim": (m["fc_dim"], 2048), "TRAIN.optim": (t["optim"], "SGD"),
              "TRAIN.fix_bn": (t["fix_bn"], False)}
    for key, (value, expected) in wanted.items():
        if value != expected:
            raise ConfigError(f"{source}: {key} is {value!r}; this implementation runs the "
                              f"resnet50-upernet recipe ({key} = {expected!r})")
    # Values that only the toolkit's own machinery would act on.
    if t["start_epoch"] != 0:
        raise ConfigError(f"{source}: TRAIN.start_epoch is {t['start_epoch']!r}; training here "
                          "resumes by itself from the newest DIR/epoch_<n>.pth, so leave it 0")
    if config["VAL"]["visualize"] is not False:
        raise ConfigError(f"{source}: VAL.visualize is {config['VAL']['visualize']!r}; saving "
                          "coloured predictions is not implemented, so leave it False")
    if not isinstance(t["disp_iter"], int) or t["disp_iter"] < 1:
        raise ConfigError(f"{source}: TRAIN.disp_iter is {t['disp_iter']!r}; it is the number "
                          "of iterations between progress updates, an integer >= 1")
    sizes = d["imgSizes"]
    d["imgSizes"] = tuple(sizes) if isinstance(sizes, (list, tuple)) else (int(sizes),)
    if d["padding_constant"] % 32:
        raise ConfigError(f"{source}: DATASET.padding_constant must be a multiple of 32 "
                          "(the encoder's output stride)")


def build_model(encoder: ResNetStages, num_class: int) -> DenseModel:
    return DenseModel(encoder, UPerNet(num_class=num_class, fpn_dim=512))


def schedule_of(config: dict[str, Any]) -> Schedule:
    t = config["TRAIN"]
    return Schedule(epoch_iters=int(t["epoch_iters"]), num_epoch=int(t["num_epoch"]),
                    lr=float(t["lr_decoder"]), lr_pow=float(t["lr_pow"]),
                    momentum=float(t["beta1"]), weight_decay=float(t["weight_decay"]))


def pretrained_model(config: dict[str, Any]) -> tuple[DenseModel, Backbone]:
    """UPerNet over the torchvision-layout encoder holding ``MODEL.weights_encoder`` (strict)."""
    encoder, backbone = load_encoder(config["MODEL"]["weights_encoder"])
    return build_model(encoder, int(config["DATASET"]["num_class"])), backbone


def train_segmentation(config: dict[str, Any], device: str,
                       context: Distributed = SINGLE_PROCESS) -> Path:
    """Train encoder + UPerNet on the training list; checkpoints go to ``DIR``."""
    t, d = config["TRAIN"], config["DATASET"]
    torch.manual_seed(int(t["seed"]))
    model, backbone = pretrained_model(config)
    dataset = TrainBatches(
        read_odgt(d["list_train"], d["root_dataset"]),
        Geometry(d["imgSizes"], int(d["imgMaxSize"]), int(d["padding_constant"]),
                 int(d["segm_downsampling_rate"])),
        batch_per_gpu=int(t["batch_size_per_gpu"]), encoding="ade20k",
        normalize=backbone.normalize, random_flip=bool(d["random_flip"]), seed=int(t["seed"]))
    meta = {"task": "segmentation", "model": backbone.name, "normalize": backbone.normalize,
            "weights_identity": backbone.identity, "num_class": int(d["num_class"]),
            "world_size": context.world_size}
    return train_dense(model, dataset, schedule_of(config), config["DIR"], meta, device, context,
                       int(t["workers"]), {"encoder": float(t["lr_encoder"]),
                                           "decoder": float(t["lr_decoder"])},
                       seed=int(t["seed"]), display_every=int(t["disp_iter"]))


def load_trained(config: dict[str, Any]) -> tuple[DenseModel, dict[str, Any]]:
    path = Path(config["DIR"]) / config["VAL"]["checkpoint"]
    if not path.is_file():
        raise DenseDataError(f"no checkpoint {path} (DIR + VAL.checkpoint); train first with "
                             "train.py, or set VAL.checkpoint to the epoch_<n>.pth present")
    state = read_checkpoint(path)
    meta = state.get("meta", {})
    if meta.get("task") != "segmentation":
        raise DenseDataError(f"{path} is not a segmentation checkpoint")
    model = build_model(ResNetStages(), int(meta["num_class"]))
    model.load_state_dict(state["model"], strict=True)
    state["path"] = str(path)
    return model.eval(), state


@torch.no_grad()
def evaluate_segmentation(model: DenseModel, config: dict[str, Any], normalize: bool,
                          device: str, context: Distributed = SINGLE_PROCESS,
                          workers: int = 2) -> dict[str, Any]:
    """Multi-scale evaluation over the validation list; each rank takes a contiguous shard and
    the confusion matrices are summed."""
    d = config["DATASET"]
    num_class = int(d["num_class"])
    records = read_odgt(d["list_val"], d["root_dataset"])
    dataset = EvalImages(records, Geometry(d["imgSizes"], int(d["imgMaxSize"]),
                                           int(d["padding_constant"])),
                         encoding="ade20k", normalize=normalize)
    start, stop = shard_bounds(len(dataset), context)
    loader = DataLoader(Subset(dataset, range(start, stop)), batch_size=None, num_workers=workers)
    model.to(device).eval()
    matrix = np.zeros((num_class, num_class), dtype=np.int64)
    for item in progress(loader, desc="evaluate segmentation", enabled=context.is_main):
        label = item["label"].numpy()
        images = [image.to(device) for image in item["images"]]
        predicted = class_probabilities(model, images, label.shape)[0].argmax(0).cpu().numpy()
        matrix += confusion_matrix(predicted, label, num_class)
    total = all_reduce_sum(torch.from_numpy(matrix), context)
    scores = segmentation_scores(total.numpy())
    scores["images"] = len(dataset)
    return scores


def segmentation_record(config: dict[str, Any], state: dict[str, Any], scores: dict[str, Any],
                        options: dict[str, Any], device: str) -> dict[str, Any]:
    """The result record of an evaluation (``results/segmentation/<model>.json``)."""
    meta, data = state["meta"], config["DATASET"]
    transform_id = "segmentation-scales{}-max{}-pad{}-{}".format(
        "_".join(map(str, data["imgSizes"])), data["imgMaxSize"], data["padding_constant"],
        "norm" if meta["normalize"] else "nonorm")
    return {
        "protocol": "segmentation", "model": meta["model"], "dataset": "ade20k",
        "metric": "miou", "score": 100.0 * scores["miou"], "miou": scores["miou"],
        "pixel_accuracy": scores["pixel_accuracy"], "images": scores["images"],
        "test_scales": list(data["imgSizes"]), "checkpoint": state["path"],
        "iterations": state["iteration"], "weights_identity": meta["weights_identity"],
        "per_class_iou": scores["per_class_iou"],
        "provenance": dense_provenance(
            state, {"train": data["list_train"], "val": data["list_val"]}, transform_id,
            {**options, "config": config}, device),
    }
