"""The model zoo: registry, converters from each source format, and the backbone loader.
Checkpoint files (``<name>.pth``, ``raw/``, ``detectron2/``) sit beside this code, git-ignored."""

from models.backbone import FEATURE_DIM, Backbone, build_trunk, load_backbone
from models.registry import MODELS, PAPER_MODELS, ModelError, ModelSpec, default_models_dir

__all__ = [
    "FEATURE_DIM",
    "MODELS",
    "PAPER_MODELS",
    "Backbone",
    "ModelError",
    "ModelSpec",
    "build_trunk",
    "default_models_dir",
    "load_backbone",
]
