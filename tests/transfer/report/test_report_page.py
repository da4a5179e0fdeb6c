"""index.html from records written here: self-contained (no script, no external resource), the
cells' numbers and intervals equal the records', the provenance of each cell, the warning banner,
the names shown (``--label``, the ``--model`` name), the paper's numbers coloured by our
interval, one forest plot and one pair matrix per dataset, unique ids, escaped names; and the
display-name rules. The page is parsed with the standard library's HTML parser."""

from __future__ import annotations

import csv
import json
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from transfer import report
from transfer.report import ReportError
from transfer.report.names import display_names, parse_labels

pytestmark = pytest.mark.filterwarnings("error")

COMMIT = "c" * 40
VIT = "timm-test_vit+random-init"
MODELS = {"byol": 0.9, "pirl": 0.6, VIT: 0.75}  # model -> share of right answers
DATASETS = ("dtd", "pets")


class Page(HTMLParser):
    """Elements as (tag, attributes, text inside, path of enclosing tags' attributes)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[dict] = []
        self.open: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "parents": list(self.open)}
        self.elements.append(element)
        if tag not in ("meta", "br", "path", "use", "rect", "stop", "circle"):
            self.open.append(element)

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": "",
                              "parents": list(self.open)})

    def handle_endtag(self, tag):
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i]["tag"] == tag:
                del self.open[i:]
                break

    def handle_data(self, data):
        for element in self.open:
            element["text"] += data

    def find(self, tag=None, cls=None, **attrs):
        return [e for e in self.elements if (tag is None or e["tag"] == tag)
                and (cls is None or cls in e["attrs"].get("class", "").split())
                and all(e["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def cell(self, table: str, model: str, column: str) -> dict:
        (found,) = [e for e in self.find("td", data_column=column)
                    if any(p["attrs"].get("data-model") == model for p in e["parents"])
                    and any(p["attrs"].get("data-table") == table for p in e["parents"])]
        return found

    def inside(self, element: dict, tag: str, cls: str) -> list[dict]:
        return [e for e in self.find(tag, cls) if element in e["parents"]]


def _provenance(commit: str, test_split: str) -> dict:
    return {"checkpoint": "sha256:feedbeef", "splits": {"trainval": "tv" * 20,
                                                       "test": test_split},
            "transform": {"eval": "eval-224-norm"}, "options": {"C": 0.1, "pool": "default"},
            "device": "cpu: x86_64", "versions": {},
            "code": {"version": "0.1.0", "commit": commit, "dirty": False}}


def write_records(root: Path) -> dict:
    """Linear records with per-image outputs of three models on two datasets; pirl/pets from
    another commit. Returns (model, dataset) -> record."""
    rng = np.random.default_rng(7)
    written = {}
    for dataset in DATASETS:
        targets = rng.integers(0, 5, 400)
        for model, right in MODELS.items():
            scores = rng.normal(size=(400, 5))
            hit = rng.random(400) < right
            scores[np.arange(400), np.where(hit, targets, (targets + 1) % 5)] += 10.0
            score = 100 * float(np.mean(scores.argmax(1) == targets))
            commit = "d" * 40 if (model, dataset) == ("pirl", "pets") else COMMIT
            record = {"protocol": "linear", "model": model, "dataset": dataset,
                      "metric": "accuracy", "score": score, "ci": [score - 2.5, score + 1.5],
                      "provenance": _provenance(commit, f"{dataset}-test-identity-0123456789"),
                      "created": "2026-01-01T00:00:00"}
            if model == VIT:
                record["provenance"]["options"]["model"] = "timm:test_vit"
            path = root / "linear" / f"{model}__{dataset}__i32.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
            np.savez_compressed(path.with_suffix(".npz"), targets=targets,
                                scores=scores.astype(np.float16), classes=np.arange(5))
            written[model, dataset] = record
    return written


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    records = write_records(root / "results")
    result = report.write_report(root / "results", root / "out", paper=True, n_resamples=300,
                                 labels={"pirl": "PIRL <i>v1</i>"})
    text = (root / "out" / "index.html").read_text()
    return Page(text), text, records, result


def test_the_page_is_self_contained(page):
    parsed, text, _, result = page
    assert result.page.name == "index.html" and result.page in result.files
    tags = {e["tag"] for e in parsed.elements}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert "style" in tags
    for element in parsed.elements:
        for key, value in element["attrs"].items():
            assert key != "src", element
            if key in ("href", "xlink:href"):  # in-page anchors, the CSV files beside it,
                # and the PNG matplotlib embeds in an SVG for an image (a heatmap's pixels)
                assert value.startswith(("#", "tables/", "data:image/png;base64,")), value
    assert "@import" not in text and "url(http" not in text
    ids = [e["attrs"]["id"] for e in parsed.elements if "id" in e["attrs"]]
    assert [i for i, n in Counter(ids).items() if n > 1] == []


def test_cells_show_the_records_scores_intervals_and_provenance(page):
    parsed, _, records, _ = page
    for (model, dataset), record in records.items():
        cell = parsed.cell("linear", model, dataset)
        assert float(cell["attrs"]["data-score"]) == record["score"]
        (value,) = parsed.inside(cell, "span", "value")
        (interval,) = parsed.inside(cell, "span", "interval")
        assert value["text"] == f"{record['score']:.2f}"
        low, high = record["ci"]
        assert interval["text"] == f"± {(high - low) / 2:.2f}"
        (body,) = parsed.inside(cell, "div", "prov-body")
        lines = dict(zip([e["text"] for e in parsed.inside(body, "dt", None)],
                         [e["text"] for e in parsed.inside(body, "dd", None)], strict=True))
        provenance = record["provenance"]
        assert lines["result file"] == f"{model}__{dataset}__i32"
        assert lines["filed as"] == model
        assert lines["checkpoint"] == provenance["checkpoint"]
        assert lines["code"] == provenance["code"]["commit"]
        assert lines["device"] == provenance["device"]
        short = {"dtd": "dtd-test-ide", "pets": "pets-test-id"}[dataset]  # 12 characters
        assert lines["splits"] == f"trainval tvtvtvtvtvtv, test {short}"
        assert "C=0.1" in lines["options"]
    # the best of each column is marked; its row is ranked
    for dataset in DATASETS:
        best = max(MODELS, key=lambda m: records[m, dataset]["score"])
        assert "tied" in parsed.cell("linear", best, dataset)["attrs"].get("class", "")
    assert len(parsed.find("td", "rank")) == len(MODELS)


def test_names_shown_are_the_model_names_and_labels_escaped(page):
    parsed, text, _, result = page
    rows = {e["attrs"]["data-model"]: e for e in parsed.find("tr") if "data-model" in e["attrs"]}
    heads = {m: [c for c in parsed.find("th") if c["parents"][-1] is rows[m]][0] for m in MODELS}
    assert heads["pirl"]["text"] == "PIRL <i>v1</i>"  # shown as text, not markup
    assert heads[VIT]["text"] == "timm:test_vit"  # the --model name, not the file label
    assert heads[VIT]["attrs"]["title"] == VIT
    assert not parsed.find("i") and "PIRL &lt;i&gt;v1&lt;/i&gt;" in text
    assert result.names == {"byol": "byol", "pirl": "PIRL <i>v1</i>", VIT: "timm:test_vit"}


def test_a_table_mixing_code_versions_carries_a_warning_banner(page):
    parsed, _, _, result = page
    banners = [e for e in parsed.find("div", "warning")
               if any(p["attrs"].get("data-table") == "linear" for p in e["parents"])]
    assert len(banners) == 1 and banners[0]["attrs"]["role"] == "alert"
    assert result.warnings[0] in " ".join(banners[0]["text"].split())
    assert "2 code versions" in result.warnings[0]


def test_the_papers_numbers_are_coloured_by_our_interval(page):
    parsed, _, records, _ = page
    with open(report.PAPER_DIR / "linear.csv") as handle:
        published = {row["model"]: row for row in csv.DictReader(handle)}
    for model in ("byol", "pirl"):
        for dataset in DATASETS:
            ours = records[model, dataset]
            theirs = float(published[model][dataset])
            (line,) = parsed.inside(parsed.cell("linear", model, dataset), "div", "paper")
            low, high = ours["ci"]
            expected = "in" if low <= theirs <= high else "out"
            assert expected in line["attrs"]["class"].split()
            difference = f"{ours['score'] - theirs:+.2f}".replace("-", "−")
            assert line["text"] == f"paper {theirs:.2f} ({difference})"
    assert not parsed.inside(parsed.cell("linear", VIT, "dtd"), "div", "paper")


def test_a_forest_plot_and_a_pair_matrix_per_dataset(page):
    parsed, _, _, _ = page
    section = parsed.find("section", data_table="linear")[0]
    figures = [e for e in parsed.find("figure") if section in e["parents"]]
    kinds = Counter(e["attrs"]["class"] for e in figures)
    assert kinds == {"forest": 2, "pairs": 2, "correlation": 1}  # byol and pirl have a top-1
    for figure in figures:
        assert [e for e in parsed.find("svg") if figure in e["parents"]]


def test_nothing_to_correlate_leaves_a_note_not_an_empty_plot(tmp_path):
    root = tmp_path / "results" / "linear"
    root.mkdir(parents=True)
    for model, score in ((VIT, 70.0), ("timm-test_resnet", 60.0)):
        (root / f"{model}__digits.json").write_text(json.dumps(
            {"protocol": "linear", "model": model, "dataset": "digits", "score": score}))
    stale = tmp_path / "out" / "plots" / "linear_vs_imagenet.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an old plot")
    result = report.write_report(tmp_path / "results", tmp_path / "out", n_resamples=0)
    assert not stale.exists()
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "No plot of linear against ImageNet top-1: no model of this table has one" in markdown
    parsed = Page(result.page.read_text())
    notes = [e["text"] for e in parsed.find("p", "figure-note")]
    assert notes == ["no plot against ImageNet top-1: no model of this table has one (give it "
                     "with --imagenet-top1 NAME=VALUE)"]
    assert not parsed.find("figure", "correlation")
    assert len(result.correlation.values) == 0
    assert result.correlation.notes[0].startswith("left out, no model with an ImageNet top-1: "
                                                  "linear / digits")


def test_display_names():
    given = {"timm-vit+random-init": "timm:vit", "timm-vit+weights-mine": "timm:vit",
             "timm-vit": "timm:vit", "byol": "byol"}
    assert display_names(given) == {"timm-vit+random-init": "timm:vit (random-init)",
                                    "timm-vit+weights-mine": "timm:vit (weights-mine)",
                                    "timm-vit": "timm:vit", "byol": "byol"}
    # by the label, by what a --model name is filed under, by the --model name (all alike)
    assert display_names(given, {"timm-vit+random-init": "R"})["timm-vit+random-init"] == "R"
    assert display_names(given, {"byol": "BYOL"})["byol"] == "BYOL"
    assert set(display_names({"timm-a+random-init": "timm:a"}, {"timm:a": "A"}).values()) == {"A"}
    with pytest.raises(ReportError, match=r"--label nope=X: no model 'nope' in the results"):
        display_names(given, {"nope": "X"})
    with pytest.raises(ReportError, match=r"models timm-vit and byol would both be shown as "
                                          r"'timm:vit'"):
        display_names(given, {"byol": "timm:vit"})
    assert parse_labels(["timm:vit=ViT = S/16"]) == {"timm:vit": "ViT = S/16"}
    for bad in ("novalue", "=x", "name="):
        with pytest.raises(ReportError, match=r"expected NAME=TEXT"):
            parse_labels([bad])
