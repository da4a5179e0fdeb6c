"""The model zoo: registry, converters from each source format, the name resolver and the
backbone loader (the paper's ResNet-50s and any timm model).
Checkpoint files (``<name>.pth``, ``raw/``, ``detectron2/``) sit beside this code, git-ignored."""

from models.backbone import FEATURE_DIM, Backbone, DataConfig, build_trunk, load_backbone
from models.registry import MODELS, PAPER_MODELS, ModelError, ModelSpec, default_models_dir
from models.resolve import BackboneOptions, ModelRef, model_label, resolve_model

__all__ = [
    "FEATURE_DIM",
    "MODELS",
    "PAPER_MODELS",
    "Backbone",
    "BackboneOptions",
    "DataConfig",
    "ModelError",
    "ModelRef",
    "ModelSpec",
    "build_trunk",
    "default_models_dir",
    "load_backbone",
    "model_label",
    "resolve_model",
]
