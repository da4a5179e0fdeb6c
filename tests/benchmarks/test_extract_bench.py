"""benchmarks/extract_bench.py on a tiny model: both ways run on the same images and agree."""

from benchmarks.extract_bench import measure


def test_pipeline_and_bare_loop_give_the_same_features_and_a_ratio():
    record = measure("timm:resnet18", n_images=6, image_size=32, batch_size=4, workers=0)
    assert record["images"] == 6 and record["feature_dim"] == 512
    assert record["max_abs_diff"] < 1e-4
    assert record["ratio"] == record["pipeline_s"] / record["bare_s"] > 0
