from __future__ import annotations

import torch

from datasets import build_transform, load_split
from models.backbone import load_backbone
from transfer.cache import FeatureCache, cached_features, features_of_subset
from transfer.features import extract_features


def _digits(n=24):
    split = load_split("digits", "trainval")
    return split.subset(range(n), "trainval")


def test_extracted_features_equal_a_direct_forward_pass():
    backbone = load_backbone("random")
    split = _digits(10)
    transform = build_transform("eval", 32, backbone.normalize)
    features = extract_features(backbone, split, transform, batch_size=4, workers=0, progress=False)
    images = torch.stack([transform(split.load_image(i)) for i in range(len(split))])
    with torch.no_grad():
        expected = backbone.trunk.eval()(images)
    assert features.shape == (10, 2048)
    assert torch.allclose(features, expected, atol=1e-4)


def test_cache_computes_once_and_keys_on_everything(tmp_path):
    cache = FeatureCache(tmp_path)
    split = _digits(6)
    calls = []

    def compute():
        calls.append(1)
        return torch.full((6, 2048), float(len(calls)))

    first, hit1 = cache.get_or_compute("m", split, "backbone-a", "eval-32-norm", "fp32", compute)
    again, hit2 = cache.get_or_compute("m", split, "backbone-a", "eval-32-norm", "fp32", compute)
    assert (hit1, hit2) == (False, True) and len(calls) == 1 and torch.equal(first, again)
    for variant in (
        ("backbone-b", "eval-32-norm", "fp32"),
        ("backbone-a", "eval-64-norm", "fp32"),
        ("backbone-a", "eval-32-norm", "bf16"),
    ):
        _, hit = cache.get_or_compute("m", split, *variant, compute)
        assert not hit
    other = _digits(7).subset(range(1, 7), "trainval")  # other content, same size and name
    _, hit = cache.get_or_compute("m", other, "backbone-a", "eval-32-norm", "fp32", compute)
    assert not hit
    assert not list(tmp_path.rglob("*.tmp"))


def test_corrupt_cache_entry_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    split = _digits(4)
    cache.get_or_compute("m", split, "b", "t", "fp32", lambda: torch.zeros(4, 2048))
    path = cache.path("m", split, "b", "t", "fp32")
    path.write_bytes(path.read_bytes()[:100])
    features, hit = cache.get_or_compute("m", split, "b", "t", "fp32", lambda: torch.ones(4, 2048))
    assert not hit and torch.equal(features, torch.ones(4, 2048))


def test_train_and_val_rows_come_from_the_trainval_pass(tmp_path):
    backbone = load_backbone("random")
    trainval = load_split("digits", "trainval")
    val = load_split("digits", "val")
    pool = trainval.subset(range(len(trainval)), "trainval")
    fake = torch.arange(len(pool), dtype=torch.float32)[:, None].repeat(1, 3)
    rows = features_of_subset(val, pool, fake)
    index = {key: i for i, key in enumerate(pool.keys)}
    assert [int(r[0]) for r in rows[:20]] == [index[k] for k in val.keys[:20]]
    transform = build_transform("eval", 32, True)
    small = _digits(8)
    _, hit = cached_features(
        backbone, small, transform, FeatureCache(tmp_path), workers=0, progress=False
    )
    _, hit_again = cached_features(
        backbone, small, transform, FeatureCache(tmp_path), workers=0, progress=False
    )
    assert (hit, hit_again) == (False, True)


def test_each_precision_is_its_own_cache_entry_and_records_the_device(tmp_path):
    from transfer.precision import PRECISIONS

    backbone = load_backbone("random")
    split = _digits(4)
    transform = build_transform("eval", 8, backbone.normalize)
    keys = {FeatureCache.key(backbone.identity, split.identity, transform.transform_id, name)
            for name in PRECISIONS}
    assert len(keys) == len(PRECISIONS) == 3
    cache = FeatureCache(tmp_path)
    for name in PRECISIONS:
        _, hit = cached_features(backbone, split, transform, cache, workers=0, precision=name,
                                 progress=False)
        assert not hit, name  # fp32 features never stand in for tf32 or bf16 ones
        stored = torch.load(cache.path(backbone.name, split, backbone.identity,
                                       transform.transform_id, name), weights_only=True)
        assert (stored["precision"], stored["device"]) == (name, "cpu")
    assert len(list(tmp_path.rglob("*.pt"))) == 3
