"""``load_backbone``: the one function that turns a ``--model`` name (and the timm options) into
the ``Backbone`` every protocol evaluates."""

from __future__ import annotations

from pathlib import Path

from models.backbone import Backbone, BackboneOptions
from models.errors import ModelError
from models.resnet50 import load_resnet50_file, random_backbone
from models.resolve import RANDOM, resolve_model
from models.timm_backbone import load_timm_backbone
from models.zoo_timm import load_zoo_timm_backbone


def load_backbone(
    name: str,
    models_dir: str | Path | None = None,
    no_norm: bool = False,
    options: BackboneOptions | None = None,
) -> Backbone:
    """The backbone ``name`` stands for (see ``models.resolve``), in eval mode.

    A ResNet-50 file is loaded strictly into the torchvision trunk; registered models take their
    normalisation from the registry, any other file ImageNet's unless ``no_norm``. A ``timm:``
    name is built by ``models.timm_backbone`` with ``options``, and so is a registered timm
    architecture (``models.zoo_timm``); ResNet-50s refuse the options.
    """
    options = options or BackboneOptions()
    ref = resolve_model(name, models_dir)
    if ref.is_timm:
        if no_norm:
            raise ModelError(
                f"--no-norm applies to ResNet-50 files; {name} is normalised with its own "
                "pretrained config's mean and std"
            )
        return load_timm_backbone(ref, options)
    if ref.spec is not None and ref.spec.timm is not None and ref.path is not None:
        if no_norm:
            raise ModelError(f"--no-norm applies to ResNet-50 files; {name} is normalised with "
                             "its registry's mean and std")
        return load_zoo_timm_backbone(ref, options)
    if changed := options.changed():
        raise ModelError(
            f"{', '.join(changed)} apply to timm: models only; {name} is a ResNet-50 "
            "(evaluated as in the paper: pooled layer4 feature, the paper's preprocessing)"
        )
    if ref.kind == RANDOM:
        return random_backbone(normalize=not no_norm)
    return load_resnet50_file(ref, no_norm)

