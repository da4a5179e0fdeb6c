"""The model zoo, split by role as timm splits its models:

- ``registry``: one record per pretrained model (source, format, normalisation, ImageNet top-1);
- ``resolve``: what a ``--model`` name refers to, and the label its results are filed under;
- ``backbone``: the ``Backbone`` every protocol sees (trunk, feature width, data config,
  identity) and the timm ``BackboneOptions``;
- ``loader``: ``load_backbone``, name -> Backbone; ``resnet50`` and ``timm_backbone`` build them;
- ``weights``: reading weights files safely; ``timm_hub``/``timm_names``: timm's pretrained files
  and names;
- ``download``, ``convert``, ``haiku_pickle``, ``prepare``: fetching a checkpoint and converting
  it to the common format; ``detectron2``: the common format in detectron2's key names.

Checkpoint files (``<name>.pth``, ``raw/``, ``detectron2/``) sit beside this code, git-ignored.
"""

from models.backbone import FEATURE_DIM, Backbone, BackboneOptions, DataConfig
from models.errors import ModelError
from models.loader import load_backbone
from models.registry import MODELS, PAPER_MODELS, ModelSpec, default_models_dir
from models.resnet50 import build_trunk
from models.resolve import ModelRef, model_label, resolve_model

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
