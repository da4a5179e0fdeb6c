"""What a ``--model`` name refers to: the one place that turns a name into a model reference.

A name is one of: a registered model (``byol``), ``random``, a custom common-format file in the
models folder (``my-resnet`` for ``models/my-resnet.pth``), a path to such a ``.pth`` file, or a
timm model ``timm:<architecture>[.<pretrained tag>]``. Every script (the feature protocols,
finetuning, the sweep, detection and dense conversion) resolves names here, so they agree on what
a name means and on the label its results are filed under.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.backbone import BackboneOptions
from models.errors import ModelError
from models.registry import MODELS, ModelSpec, default_models_dir
from models.timm_names import check_timm_name

TIMM_PREFIX = "timm:"
CHECKPOINT_SUFFIX = ".pth"
RANDOM, REGISTERED, CUSTOM, FILE, TIMM = "random", "registered", "custom", "file", "timm"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model name: its kind, its registry record and common-format file, if any."""

    text: str  # the name as given
    kind: str  # random, registered, custom, file or timm
    spec: ModelSpec | None = None  # registry record (also of a file named like a registered model)
    path: Path | None = None  # the common-format checkpoint of a ResNet-50
    timm_name: str | None = None  # <architecture>[.<tag>] of a timm model

    @property
    def is_timm(self) -> bool:
        return self.kind == TIMM

    def require_resnet50(self, protocol: str) -> None:
        """Refuse a timm model where only the paper's ResNet-50 trunk fits."""
        if self.is_timm:
            raise ModelError(
                f"{protocol} is a ResNet-50 protocol (its heads and configs are built for a "
                f"torchvision ResNet-50 trunk); {self.text} is a timm model, which the feature "
                "protocols (linear.py, few_shot.py, finetune.py) take"
            )


def checkpoint_path(name: str, models_dir: str | Path | None = None) -> Path:
    """``<models_dir>/<name>.pth``: where a registered or custom model's common-format file is."""
    return Path(models_dir or default_models_dir()) / f"{name}{CHECKPOINT_SUFFIX}"


def resolve_model(name: str, models_dir: str | Path | None = None) -> ModelRef:
    """The reference ``name`` stands for; a timm architecture is checked against timm's list.

    A ``.pth`` path keeps the registry's knowledge (e.g. SimCLR's inputs in [0, 1]) when its file
    name is a registered model's, as ``download_and_prepare_models.py`` writes them.
    """
    if name.startswith(TIMM_PREFIX):
        timm_name = name[len(TIMM_PREFIX) :]
        check_timm_name(timm_name)
        return ModelRef(name, TIMM, timm_name=timm_name)
    if name == RANDOM:
        return ModelRef(name, RANDOM, spec=MODELS[RANDOM])
    if name.endswith(CHECKPOINT_SUFFIX):
        path = Path(name)
        return ModelRef(name, FILE, spec=MODELS.get(path.stem), path=path)
    spec = MODELS.get(name)
    return ModelRef(name, REGISTERED if spec else CUSTOM, spec=spec,
                    path=checkpoint_path(name, models_dir))


def model_label(name: str, options: BackboneOptions | None = None) -> str:
    """The name results and cache entries are filed under (safe in a file name).

    A registered or custom model keeps its name, a ``.pth`` path its file's stem. A timm model is
    ``timm-<architecture>[.<tag>]`` (``:`` is not allowed in Windows file names), followed by each
    non-default option, e.g. ``timm-vit_small_patch16_224+weights-mine+pool-avg+layers4``, so two
    settings never overwrite each other's results; so is a registered timm architecture
    (``efficientnet-lite0+random-init``), the only other kind of model that takes options.
    """
    options = options or BackboneOptions()
    if not name.startswith(TIMM_PREFIX):
        base = Path(name).stem if name.endswith(CHECKPOINT_SUFFIX) else name
        return "+".join([base, *option_parts(options)])
    return "+".join(["timm-" + name[len(TIMM_PREFIX) :], *option_parts(options)])


def option_parts(options: BackboneOptions) -> list[str]:
    """The label parts of the options that differ from the defaults, in a fixed order."""
    parts = []
    if options.weights:
        parts.append("weights-" + Path(options.weights).stem)
    if options.random_init:
        parts.append("random-init")
    if options.pool != "default":
        parts.append(f"pool-{options.pool}")
    if options.layers != 1:
        parts.append(f"layers{options.layers}")
    if options.preprocess != "paper":
        parts.append(f"preprocess-{options.preprocess}")
    return parts
