"""Any timm model as a ``Backbone``: ``timm:<architecture>[.<tag>]`` built with
``timm.create_model(..., num_classes=0)``, its weights from timm's hub cache, a state dict file
(``--weights``, loaded strictly) or a seeded random initialisation, and its feature read as
``--pool`` and ``--layers`` say.

Features (``TimmFeatures``):
- ``default``: timm's pre-logits feature, ``forward_head(forward_features(x), pre_logits=True)``:
  the CLS token or the pooled map, as the model was trained;
- ``avg``: the mean of the patch tokens (prefix tokens left out), for a CNN the global average
  of its last feature map;
- ``cls+avg``: the CLS token and the patch mean side by side (DINOv2's linear probe input).
``--layers N`` concatenates that feature over the last N blocks (stages for a CNN), read with
``forward_intermediates`` and the model's final norm applied to each, as DINOv2 does.
Pretrained files come from ``timm_hub``; weights files are read by ``weights``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.backbone import (
    POOLS,
    PREPROCESSES,
    RANDOM_SEED,
    Backbone,
    BackboneOptions,
    DataConfig,
)
from models.errors import ModelError
from models.resolve import ModelRef, model_label
from models.timm_hub import pretrained_file, weights_sha256
from models.weights import file_sha256, read_weights_file, state_dict_mismatch

logger = logging.getLogger(__name__)

class TimmFeatures(nn.Module):
    """A timm model (no classifier) whose forward returns the feature ``pool``/``layers`` ask."""

    def __init__(self, model: nn.Module, pool: str = "default", layers: int = 1) -> None:
        super().__init__()
        self.model = model
        self.pool = pool
        self.layers = layers
        self.tokens = hasattr(model, "num_prefix_tokens")  # ViT-like: (B, tokens, width)
        self._check()
        self.feature_dim = self._width()

    def _check(self) -> None:
        model, name = self.model, type(self.model).__name__
        if self.pool not in POOLS:
            raise ModelError(f"--pool {self.pool!r}: expected one of {', '.join(POOLS)}")
        if self.pool == "cls+avg" and getattr(model, "cls_token", None) is None:
            raise ModelError(f"--pool cls+avg needs a class token, and this {name} has none; "
                             "use --pool default or avg")
        if self.layers < 1:
            raise ModelError(f"--layers must be >= 1, got {self.layers}")
        if self.layers == 1:
            return
        if not hasattr(model, "forward_intermediates"):
            raise ModelError(f"timm's {name} has no forward_intermediates: only --layers 1")
        if not self.tokens and self.pool != "avg":
            raise ModelError(f"--layers {self.layers} on a CNN ({name}) reads stages of different "
                             "widths, where only the global average applies: add --pool avg")
        depth = len(model.blocks) if self.tokens else len(model.feature_info)
        if self.layers > depth:
            raise ModelError(f"--layers {self.layers}: this {name} has {depth} "
                             f"{'blocks' if self.tokens else 'stages'}")

    def _width(self) -> int:
        model = self.model
        width = model.num_features
        if self.tokens or self.layers == 1:
            per_layer = {"default": getattr(model, "head_hidden_size", width), "avg": width,
                         "cls+avg": 2 * width}[self.pool]
            return per_layer * self.layers
        return sum(info["num_chs"] for info in model.feature_info[-self.layers:])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        model = self.model
        if self.layers == 1:
            maps = [model.forward_features(images)]
        elif self.tokens:
            outputs = model.forward_intermediates(
                images, indices=self.layers, norm=True, output_fmt="NLC",
                intermediates_only=True, return_prefix_tokens=True)
            # (patch tokens, prefix tokens) pairs back into full token sequences
            maps = [torch.cat([o[1], o[0]], dim=1) if isinstance(o, tuple) else o
                    for o in outputs]
        else:
            maps = model.forward_intermediates(
                images, indices=self.layers, norm=True, intermediates_only=True)
        features = [self._pool_one(x, spatial_fmt="NCHW" if self.layers > 1 else None)
                    for x in maps]
        return features[0] if len(features) == 1 else torch.cat(features, dim=1)

    def _pool_one(self, x: torch.Tensor, spatial_fmt: str | None) -> torch.Tensor:
        model = self.model
        if self.pool == "default":
            return model.forward_head(x, pre_logits=True)
        if self.tokens:
            average = x[:, model.num_prefix_tokens:].mean(dim=1)
            return average if self.pool == "avg" else torch.cat([x[:, 0], average], dim=1)
        fmt = spatial_fmt or getattr(model, "output_fmt", "NCHW")
        return x.mean(dim=(1, 2) if fmt == "NHWC" else (2, 3))


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    names = model.pretrained_cfg.get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{name}." for name in names)


def load_weights_strictly(model: nn.Module, path: str | Path, label: str) -> list[str]:
    """Copy the file's tensors into ``model`` (built without classifier), listing every missing,
    unexpected and mis-shaped key; classifier keys are dropped and said so. Returns notes."""
    state_dict, notes = read_weights_file(path)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    heads = _classifier_prefixes(model)
    dropped = sorted(k for k in state_dict if k not in expected and k.startswith(heads))
    if dropped:
        state_dict = {k: v for k, v in state_dict.items() if k not in dropped}
        notes.append(f"dropped the classifier's keys {', '.join(dropped)} (features are read "
                     "before it)")
    problems = state_dict_mismatch(state_dict, expected)
    if problems:
        raise ModelError("\n  ".join([f"{path} does not fit {label} (timm state dict keys "
                                      "expected)", *problems]))
    model.load_state_dict(state_dict, strict=True)
    return notes


def _create(name: str, fixed_size: bool, **kwargs: Any) -> tuple[nn.Module, bool]:
    """``timm.create_model`` without classifier; a fixed-size model (a ViT) is asked for
    ``dynamic_img_size`` so any multiple of its patch size works. Returns (model, dynamic)."""
    import timm

    try:
        if fixed_size:
            try:
                return timm.create_model(name, num_classes=0, dynamic_img_size=True,
                                         **kwargs), True
            except TypeError:  # this architecture has no dynamic size
                pass
        return timm.create_model(name, num_classes=0, **kwargs), False
    except RuntimeError as error:  # e.g. pretrained weights that do not fit
        raise ModelError(f"timm could not build {name}: {error}") from error


def _data_config(model: nn.Module, dynamic: bool, preprocess: str) -> DataConfig:
    cfg = model.pretrained_cfg
    size = int(cfg["input_size"][-1])
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", (1,))
    return DataConfig(
        mean=tuple(map(float, cfg["mean"])),
        std=tuple(map(float, cfg["std"])),
        input_size=size,
        fixed_input_size=bool(cfg.get("fixed_input_size")) and not dynamic,
        size_multiple=int(patch[0]) if dynamic else 1,
        preprocess=preprocess,
        crop_pct=float(cfg.get("crop_pct", 0.875)),
        interpolation=str(cfg.get("interpolation", "bicubic")),
        crop_mode=str(cfg.get("crop_mode", "center")),
    )


def load_timm_backbone(ref: ModelRef, options: BackboneOptions, label: str | None = None
                       ) -> Backbone:
    """Build ``ref``'s timm model with ``options``; its identity names architecture, weights
    (sha256), pool and layers, so two settings never share a cache entry. ``label``: the name
    results are filed under (default: ``model_label`` of the name and options)."""
    import timm

    if options.weights and options.random_init:
        raise ModelError("--weights and --random-init exclude each other")
    if options.preprocess not in PREPROCESSES:
        raise ModelError(f"--preprocess {options.preprocess!r}: expected one of "
                         f"{', '.join(PREPROCESSES)}")
    name = ref.timm_name
    cfg = timm.models.get_pretrained_cfg(name)
    cfg = cfg.to_dict() if cfg is not None else {}
    fixed_size = bool(cfg.get("fixed_input_size"))
    notes: list[str] = []
    if options.weights or options.random_init:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(RANDOM_SEED)
        try:
            model, dynamic = _create(name, fixed_size, pretrained=False)
        finally:
            torch.random.set_rng_state(generator_state)
        if options.weights:
            notes = load_weights_strictly(model, options.weights, ref.text)
            sha = file_sha256(options.weights)
            weights, weights_id = str(options.weights), sha
        else:
            sha = None
            weights = f"random-init-seed{RANDOM_SEED}"
            weights_id = f"{weights}-timm{timm.__version__}"
    else:
        path = pretrained_file(cfg, ref.text)
        model, dynamic = _create(name, fixed_size, pretrained=True,
                                 pretrained_cfg_overlay={"file": str(path)})
        sha = weights_sha256(path)
        weights = f"timm-pretrained:{cfg.get('hf_hub_id') or cfg.get('url')}"
        weights_id = f"{weights}:{sha}"
    for note in notes:
        logger.info("note: %s: %s", options.weights, note)
    features = TimmFeatures(model.eval(), options.pool, options.layers)
    pretrained_cfg = model.pretrained_cfg
    architecture = f"{pretrained_cfg['architecture']}.{pretrained_cfg.get('tag') or ''}".rstrip(".")
    identity = (f"timm:{architecture}|weights:{weights_id}|pool:{options.pool}"
                f"|layers:{options.layers}")
    description = {"architecture": f"timm:{architecture}", "weights": weights,
                   "weights_sha256": sha, "pool": options.pool, "layers": options.layers,
                   "timm": timm.__version__}
    return Backbone(features.eval(), label or model_label(ref.text, options), identity=identity,
                    data=_data_config(model, dynamic, options.preprocess),
                    feature_dim=features.feature_dim, description=description)

