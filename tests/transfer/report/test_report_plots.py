"""The report's figures stay legible at 1, 3 and 15 models with names of 60+ characters: no
matplotlib warning (turned into errors here), no ink at the PNG's edges (nothing cut off), the
saved image as large as every text of the figure together, tick labels that never overlap,
every full name drawn; the fitted band checked against a loop of numpy fits; empty plots left
out."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Annotation, Text
from PIL import Image

from transfer import report
from transfer.report.forest import forest_figure, forest_order, pairs_figure, pairs_matrix
from transfer.report.plots import (
    FONT,
    PAD,
    correlation_figure,
    fit_band,
    heatmap_figure,
    save_png,
    svg_markup,
)
from transfer.stats import comparisons

pytestmark = pytest.mark.filterwarnings("error")  # any matplotlib warning fails the test

DATASETS = ["aircraft", "dtd", "pets"]


def long_name(i: int) -> str:
    name = f"timm-vit_base_patch16_clip_224.laion2b_ft_in12k_in1k+weights-run{i:02d}+pool-avg"
    assert len(name) >= 60
    return name


def make_table(n_models: int) -> tuple[report.Table, report.Table, dict[str, float]]:
    """A scored table of ``n_models`` long-named models on three datasets with intervals and
    tie marks, its pairs table, and an ImageNet top-1 for each model."""
    rng = np.random.default_rng(n_models)
    models = [long_name(i) for i in range(n_models)]
    index = pd.Index(models, name="model")
    values = pd.DataFrame(rng.uniform(40, 90, (n_models, len(DATASETS))), index=index,
                          columns=DATASETS)
    half = pd.DataFrame(rng.uniform(0.5, 3, values.shape), index=index, columns=DATASETS)
    tied = values >= values.max() - 3
    table = report.Table("linear", "Many-shot linear evaluation of backbones with long names",
                         values, values - half, values + half,
                         percent_columns={c: 1.0 for c in DATASETS}, heatmap=True, tied=tied)
    rows = [{"dataset": d, "model_a": a, "model_b": b, "difference": 1.0,
             "p": p, "p_holm": p, "significant": "yes" if p < 0.05 else "no"}
            for d in DATASETS for i, a in enumerate(models) for b in models[i + 1:]
            for p in [float(rng.choice([0.0, 0.004, 0.03, 0.2, 1.0]))]]
    frame = pd.DataFrame(rows, columns=["dataset", "model_a", "model_b", "difference", "p",
                                        "p_holm", "significant"])
    frame.index = [f"{r['dataset']}: {r['model_a']} vs {r['model_b']}" for r in rows]
    pairs = report.Table("linear_pairs", "pairs", frame[["difference", "p", "p_holm",
                                                        "significant"]],
                         keys=frame[["dataset", "model_a", "model_b"]])
    top1 = {m: float(v) for m, v in zip(models, rng.uniform(60, 80, n_models), strict=True)}
    return table, pairs, top1


def figures(n_models: int) -> dict:
    table, pairs, top1 = make_table(n_models)
    made = {"heatmap": heatmap_figure(table), "forest": forest_figure(table, "dtd"),
            "correlation": correlation_figure(table, top1, n_resamples=50)}
    made["pairs"] = pairs_figure(pairs, "dtd", forest_order(table, "dtd"))
    return made


def drawn_texts(figure) -> list[Text]:
    """Every text the figure draws: tick labels outside their axis's view are not drawn."""
    figure.canvas.draw()  # lays the ticks out
    hidden = set()
    for axes in figure.axes:
        for axis in (axes.xaxis, axes.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * max(1.0, abs(high - low))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - slack <= tick.get_loc() <= high + slack:
                    hidden |= {id(tick.label1), id(tick.label2)}
    return [t for t in figure.findobj(Text)
            if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


@pytest.mark.parametrize("n_models", [1, 3, 15])
def test_figures_keep_every_label_whole_at_any_model_count(n_models, tmp_path):
    made = figures(n_models)
    if n_models == 1:
        assert made["pairs"] is None  # one model: nothing to pair, no empty matrix
        made.pop("pairs")
    for kind, figure in made.items():
        assert figure is not None, kind
        texts = drawn_texts(figure)
        renderer = figure.canvas.get_renderer()
        shown = " ".join(t.get_text() for t in texts)
        models = [long_name(i) for i in range(n_models)]
        if kind != "correlation":  # the correlation plot numbers its points, named in a key
            for model in models:
                assert any(t.get_text() == model for t in texts), (kind, model)
        else:
            for i, model in enumerate(models):
                assert f"{i + 1} {model}" in shown.replace("\n", " ")
        assert min(t.get_fontsize() for t in texts) >= FONT - 1, kind
        # no two texts overlap (titles, labels, ticks, cells, key); a scatter's point numbers
        # sit where the data put them, and rotated labels are checked by their spacing below
        level = [t for t in texts if not isinstance(t, Annotation) and not t.get_rotation() % 90]
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in level]
        for i, (text_a, a) in enumerate(boxes):
            for text_b, b in boxes[i + 1:]:
                assert not a.overlaps(b), (kind, n_models, text_a, text_b)
        for axes in figure.axes:
            rotated = [t for t in axes.get_xticklabels() if t.get_text() and t.get_rotation()]
            if len(rotated) > 1:
                step = abs(axes.transData.transform((1, 0))[0] - axes.transData.transform(
                    (0, 0))[0])
                height = rotated[0].get_fontsize() * figure.dpi / 72
                angle = np.radians(rotated[0].get_rotation())
                assert step * np.sin(angle) >= height, (kind, n_models)
        # every text's extent, as measured here, fits in the saved image
        boxes = [t.get_window_extent(renderer) for t in texts]
        width = max(b.x1 for b in boxes) - min(b.x0 for b in boxes)
        height = max(b.y1 for b in boxes) - min(b.y0 for b in boxes)
        path = save_png(figure, tmp_path / f"{kind}.png")
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"))
        assert pixels.shape[1] >= width and pixels.shape[0] >= height, kind
        # no ink within half the padding of an edge: nothing runs off the image
        edge = int(PAD * figure.dpi / 2)
        for border in (pixels[:edge], pixels[-edge:], pixels[:, :edge], pixels[:, -edge:]):
            assert border.min() == 255, (kind, n_models)


def test_the_old_layout_would_fail_the_edge_check(tmp_path):
    """The check above catches the issue's clipping: the same heatmap saved at its own size
    (no tight box) has ink at its edges."""
    figure = heatmap_figure(make_table(15)[0])
    figure.savefig(tmp_path / "plain.png", format="png")
    with Image.open(tmp_path / "plain.png") as image:
        pixels = np.asarray(image.convert("L"))
    assert min(pixels[:2].min(), pixels[:, :2].min()) < 255


def test_empty_plots_are_left_out(tmp_path):
    table, _, _ = make_table(3)
    assert correlation_figure(table, {}) is None
    path = tmp_path / "none.png"
    assert report.plot_correlations(table, {}, path) is None and not path.exists()
    empty = report.Table("knn", "t", table.values * np.nan, heatmap=True)
    assert heatmap_figure(empty) is None and forest_figure(empty, "dtd") is None
    assert report.plot_heatmap(empty, path) is None and not path.exists()


def test_fit_band_matches_a_loop_of_numpy_fits():
    rng = np.random.default_rng(3)
    top1, scores = rng.uniform(55, 80, 6), rng.uniform(30, 90, 6)
    grid = np.linspace(top1.min(), top1.max(), 7)

    def logit(p):
        p = np.asarray(p) / 100
        return np.log(p / (1 - p))

    fitted, low, high = fit_band(top1, scores, grid, 400, seed=5)
    slope, intercept = np.polyfit(logit(top1), logit(scores), 1)
    assert fitted == pytest.approx(100 / (1 + np.exp(-(slope * logit(grid) + intercept))))
    lines = []
    for row in comparisons.model_resamples(6, 400, seed=5):
        if np.ptp(top1[row]) == 0:
            continue
        s, i = np.polyfit(logit(top1[row]), logit(scores[row]), 1)
        lines.append(100 / (1 + np.exp(-(s * logit(grid) + i))))
    assert low == pytest.approx(np.percentile(lines, 2.5, axis=0))
    assert high == pytest.approx(np.percentile(lines, 97.5, axis=0))
    assert (low <= fitted + 1e-9).all() and (fitted <= high + 1e-9).all()


def test_pairs_matrix_is_the_symmetric_holm_p_of_each_pair():
    table, pairs, _ = make_table(3)
    order = forest_order(table, "pets")
    matrix = pairs_matrix(pairs, "pets", order)
    for key, row in pairs.keys[pairs.keys["dataset"] == "pets"].iterrows():
        p = pairs.values.at[key, "p_holm"]
        assert matrix.at[row["model_a"], row["model_b"]] == matrix.at[row["model_b"],
                                                                      row["model_a"]] == p
    assert np.isnan(np.diag(matrix.to_numpy())).all()
    assert order == list(table.values["pets"].sort_values(ascending=False).index)


def test_svg_markup_is_one_svg_element_with_its_own_ids():
    made = figures(3)
    first = svg_markup(made["forest"], "a-forest")
    second = svg_markup(made["pairs"], "b-pairs")
    for markup, prefix in ((first, "a-forest-"), (second, "b-pairs-")):
        assert markup.startswith("<svg") and "<?xml" not in markup
        root = ElementTree.fromstring(markup)
        ids = [e.get("id") for e in root.iter() if e.get("id")]
        assert ids and all(i.startswith(prefix) for i in ids)
        assert len(ids) == len(set(ids))
        refs = [v for e in root.iter() for k, v in e.attrib.items()
                if k.endswith("href") and v.startswith("#")]
        assert refs and all(r[1:] in ids for r in refs)  # every reference still resolves
    assert not set(ElementTree.fromstring(first).itertext()) & {"2026"}  # no date
