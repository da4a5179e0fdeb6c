from __future__ import annotations

import pytest
import torch

from datasets import build_transform, load_split
from models.loader import load_backbone
from transfer.console import setup_console
from transfer.features.cache import FeatureCache, cached_features
from transfer.features.extract import extract_features
from transfer.features.many_shot import features_of_subset


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


def test_unusable_cache_entry_is_said_in_one_line_with_path_and_reason(tmp_path, capsys):
    setup_console()  # as every script does: the library's warnings reach stderr
    cache = FeatureCache(tmp_path)
    split = _digits(4)
    cache.get_or_compute("m", split, "b", "t", "fp32", lambda: torch.zeros(4, 2048))
    path = cache.path("m", split, "b", "t", "fp32")
    capsys.readouterr()
    path.write_bytes(b"\x80\x02not a checkpoint")
    cache.get_or_compute("m", split, "b", "t", "fp32", lambda: torch.ones(4, 2048))
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"warning: cache entry {path} unusable (")
    assert line.endswith("); recomputing it") and "Unsupported operand" in line
    assert "weights_only" not in line  # never torch's advice to load untrusted pickles
    torch.save({"features": torch.zeros(3, 2048), "split_identity": split.identity}, path)
    cache.get_or_compute("m", split, "b", "t", "fp32", lambda: torch.ones(4, 2048))
    assert "(3 rows for 4 images); recomputing it" in capsys.readouterr().err


def test_a_second_run_waits_for_the_entry_being_computed_and_reuses_it(tmp_path):
    import threading

    split = _digits(4)
    started, release = threading.Event(), threading.Event()
    calls, results = [], {}

    def slow():
        calls.append("first")
        started.set()
        release.wait(10)
        return torch.ones(4, 2048)

    def second():
        calls.append("second")
        return torch.zeros(4, 2048)

    def run(name, compute):  # each run with its own FeatureCache, as two processes would
        results[name] = FeatureCache(tmp_path).get_or_compute("m", split, "b", "t", "fp32", compute)

    first = threading.Thread(target=run, args=("first", slow))
    first.start()
    assert started.wait(10)
    waiting = threading.Thread(target=run, args=("second", second))
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive()  # blocked on the entry's lock, not computing
    release.set()
    first.join(10)
    waiting.join(10)
    assert calls == ["first"]
    assert results["first"][1] is False and results["second"][1] is True
    assert torch.equal(results["second"][0], torch.ones(4, 2048))


def test_an_unwritable_cache_folder_fails_before_any_work(tmp_path):
    from transfer.atomic import WriteError

    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(WriteError, match=r"cannot write to the feature cache .*file/cache.*"
                                         r"--cache-dir"):
        FeatureCache(tmp_path / "file" / "cache")


def test_each_precision_is_its_own_cache_entry_and_records_the_device(tmp_path):
    from transfer.runtime.device import device_name
    from transfer.runtime.precision import PRECISIONS

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
        # one name for the device in cache entries and in provenance
        assert (stored["precision"], stored["device"]) == (name, device_name("cpu"))
        assert stored["device"].startswith("cpu: ")
    assert len(list(tmp_path.rglob("*.pt"))) == 3
