"""The three image transforms of docs/protocols.md, "Transforms", each carrying a stable id for the
feature cache, plus timm's own evaluation transform for models evaluated with their native
preprocessing."""

from __future__ import annotations

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINDS = ("eval", "train", "fewshot")
FEW_SHOT_RESIZE_FACTOR = 1.15


class NamedCompose(T.Compose):
    """A Compose that knows its ``transform_id`` (so caches can key on it)."""

    def __init__(self, steps: list, transform_id: str) -> None:
        super().__init__(steps)
        self.transform_id = transform_id


Stats = tuple[float, float, float]


def normalization_id(
    normalize: bool, mean: Stats = IMAGENET_MEAN, std: Stats = IMAGENET_STD
) -> str:
    """``norm`` (ImageNet mean/std), ``nonorm``, or ``norm-mean<m>-std<s>`` for other statistics
    (e.g. CLIP's), each value written exactly (``repr``) so two statistics never share an id."""
    if not normalize:
        return "nonorm"
    mean, std = tuple(map(float, mean)), tuple(map(float, std))
    if (mean, std) == (IMAGENET_MEAN, IMAGENET_STD):
        return "norm"
    return f"norm-mean{'_'.join(map(repr, mean))}-std{'_'.join(map(repr, std))}"


def transform_id(
    kind: str,
    image_size: int,
    normalize: bool,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
) -> str:
    """Stable id such as ``"eval-224-norm"`` or ``"fewshot-224-nonorm"``."""
    if kind not in KINDS:
        raise ValueError(f"unknown transform kind {kind!r}; expected one of {KINDS}")
    return f"{kind}-{int(image_size)}-{normalization_id(normalize, mean, std)}"


def _tail(normalize: bool, mean: Stats, std: Stats) -> list:
    steps: list = [T.ToTensor()]
    if normalize:
        steps.append(T.Normalize(mean, std))
    return steps


def eval_transform(
    image_size: int = 224,
    normalize: bool = True,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
) -> NamedCompose:
    """Linear / finetune evaluation: bicubic short-side resize, centre crop, tensor, normalise."""
    steps = [
        T.Resize(image_size, interpolation=InterpolationMode.BICUBIC),
        T.CenterCrop(image_size),
        *_tail(normalize, mean, std),
    ]
    return NamedCompose(steps, transform_id("eval", image_size, normalize, mean, std))


def train_transform(
    image_size: int = 224,
    normalize: bool = True,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
) -> NamedCompose:
    """Finetune augmentation: bicubic RandomResizedCrop, horizontal flip, tensor, normalise."""
    steps = [
        T.RandomResizedCrop(image_size, interpolation=InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(),
        *_tail(normalize, mean, std),
    ]
    return NamedCompose(steps, transform_id("train", image_size, normalize, mean, std))


def few_shot_transform(
    image_size: int = 224,
    normalize: bool = True,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
) -> NamedCompose:
    """Few-shot: square bilinear resize to int(1.15 * size) (aspect not kept), centre crop."""
    resized = int(image_size * FEW_SHOT_RESIZE_FACTOR)
    steps = [
        T.Resize((resized, resized), interpolation=InterpolationMode.BILINEAR),
        T.CenterCrop(image_size),
        *_tail(normalize, mean, std),
    ]
    return NamedCompose(steps, transform_id("fewshot", image_size, normalize, mean, std))


def build_transform(
    kind: str,
    image_size: int = 224,
    normalize: bool = True,
    mean: Stats = IMAGENET_MEAN,
    std: Stats = IMAGENET_STD,
) -> NamedCompose:
    """The transform of ``kind`` ("eval", "train" or "fewshot"), normalised with ``mean``/``std``
    (ImageNet's unless a model brings its own)."""
    transform_id(kind, image_size, normalize)  # validates kind
    builder = {"eval": eval_transform, "train": train_transform, "fewshot": few_shot_transform}
    return builder[kind](image_size, normalize, mean, std)


def timm_eval_transform(
    image_size: int,
    crop_pct: float,
    interpolation: str,
    crop_mode: str,
    mean: Stats,
    std: Stats,
) -> NamedCompose:
    """timm's own evaluation transform (``--preprocess model``): resize to size / crop_pct with
    the model's interpolation, crop as the model's ``crop_mode`` says, tensor, normalise."""
    from timm.data import create_transform

    timm_steps = create_transform(
        input_size=(3, image_size, image_size),
        is_training=False,
        interpolation=interpolation,
        mean=mean,
        std=std,
        crop_pct=crop_pct,
        crop_mode=crop_mode,
    )
    tid = (
        f"timm-{int(image_size)}-crop{float(crop_pct)!r}-{crop_mode}-{interpolation}-"
        f"{normalization_id(True, mean, std)}"
    )
    return NamedCompose(list(timm_steps.transforms), tid)
