"""the transforms rules' transforms, checked against direct PIL computations."""

import numpy as np
import pytest
import torch
from PIL import Image

from datasets import (
    build_transform,
    eval_transform,
    few_shot_transform,
    train_transform,
    transform_id,
)

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _image(width=50, height=30):
    rng = np.random.RandomState(0)
    return Image.fromarray(rng.randint(0, 256, (height, width, 3), dtype=np.uint8))


def _to_chw(image):
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def _normalised(chw):
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return ((chw - mean) / std).float()


def _center_crop(image, size):
    left = int(round((image.width - size) / 2.0))
    top = int(round((image.height - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


@pytest.mark.parametrize("normalize", [True, False])
def test_eval_is_bicubic_short_side_resize_then_centre_crop(normalize):
    image = _image(50, 30)  # short side 30 -> 24, long side int(24 * 50 / 30) = 40
    expected = _to_chw(_center_crop(image.resize((40, 24), Image.BICUBIC), 24))
    if normalize:
        expected = _normalised(expected)
    out = eval_transform(24, normalize)(image)
    assert out.shape == (3, 24, 24)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_few_shot_is_square_bilinear_resize_to_115_percent_then_crop():
    image = _image(50, 30)
    assert int(224 * 1.15) == 257
    size = 40
    resized = image.resize((int(size * 1.15),) * 2, Image.BILINEAR)  # 46 x 46, aspect not kept
    expected = _normalised(_to_chw(_center_crop(resized, size)))
    torch.testing.assert_close(few_shot_transform(size)(image), expected, atol=1e-5, rtol=0)


def test_train_augmentation_output_range_and_shape():
    torch.manual_seed(0)
    out = train_transform(32, normalize=False)(_image())
    assert out.shape == (3, 32, 32) and 0.0 <= out.min() and out.max() <= 1.0
    names = [type(t).__name__ for t in train_transform(32).transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    assert train_transform(32).transforms[0].interpolation.value == "bicubic"


def test_transform_ids_are_stable_and_distinct():
    assert eval_transform(224).transform_id == "eval-224-norm"
    assert few_shot_transform(224, False).transform_id == "fewshot-224-nonorm"
    assert train_transform(64).transform_id == transform_id("train", 64, True)
    kinds = ("eval", "train", "fewshot")
    ids = {
        build_transform(k, s, n).transform_id
        for k in kinds
        for s in (64, 224)
        for n in (True, False)
    }
    assert len(ids) == 12
    with pytest.raises(ValueError, match="unknown transform kind"):
        transform_id("weird", 224, True)
