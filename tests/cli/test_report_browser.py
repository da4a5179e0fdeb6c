"""report.py's page in a real browser: a tiny sweep (two random-init timm models on digits,
linear and kNN), report.py, then headless Chromium (Debian's, driven by playwright) loads
index.html. The page loads with no console error and no request leaving the file, the full-page
screenshot is not blank, nothing overflows the page, the tables' numbers in the DOM equal the
records', and a cell's provenance opens on a click, whole and on top.

Skipped, with the reason, where Debian's chromium or playwright is missing (CI installs both:
``apt-get install chromium``, ``pip install -r requirements-dev.txt``). Never ``playwright
install``: it downloads a browser of its own.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import report as report_script
from transfer.sweep import SweepOptions, plan_grid

CHROMIUM = Path("/usr/bin/chromium")
if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs playwright (pip install -r requirements-dev.txt)")

# Without the background-networking flags Chromium reaches for the network on its own.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MODELS = ["timm:test_vit", "timm:test_resnet"]  # the cheapest two of timm's test models
PROTOCOLS = ["linear", "knn"]


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """The sweep's cells (as sweep.py plans them: its argv, its file names), run in this
    process to spare each cell a Python start, then report.py over their records."""
    root = tmp_path_factory.mktemp("browser")
    options = SweepOptions(results_dir=root / "results", cache_dir=str(root / "cache"),
                           device="cpu", image_size=16, workers=0,
                           extra={"linear": ("--random-init", "-w", "3", "--bootstrap", "200"),
                                  "knn": ("--random-init", "--bootstrap", "200")})
    plan = plan_grid(MODELS, ["digits"], PROTOCOLS, options)
    assert len(plan.to_run) == len(MODELS) * len(PROTOCOLS)
    for cell in plan.to_run:
        script = importlib.import_module(Path(cell.argv[1]).stem)
        assert script.main(list(cell.argv[2:])) == 0
    assert not plan_grid(MODELS, ["digits"], PROTOCOLS, options).to_run  # all results written
    out = root / "report"
    assert report_script.main(["--results-dir", str(root / "results"), "--out", str(out),
                               "--bootstrap", "200"]) == 0
    records = {}
    for protocol in PROTOCOLS:
        for path in (root / "results" / protocol).glob("*.json"):
            record = json.loads(path.read_text())
            records[protocol, record["model"]] = record
    return out / "index.html", records, root


@pytest.fixture(scope="module")
def browser_page(reported):
    """The page loaded in Chromium (fresh profile), with what it asked for and logged."""
    page_path, _, root = reported
    seen = {"requests": [], "console": [], "errors": []}
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(root / "profile"), executable_path=str(CHROMIUM), args=FLAGS, headless=True,
            viewport={"width": 1280, "height": 800})
        try:
            def refuse_network(route):
                if not route.request.url.startswith(("file:", "data:")):
                    route.abort()
                else:
                    route.continue_()

            context.route("**/*", refuse_network)  # nothing may leave, even if asked
            page = context.new_page()
            page.on("request", lambda request: seen["requests"].append(request.url))
            page.on("console", lambda message: seen["console"].append(
                (message.type, message.text)))
            page.on("pageerror", lambda error: seen["errors"].append(str(error)))
            page.goto(page_path.as_uri(), wait_until="load")
            screenshot = root / "screenshot.png"
            page.screenshot(path=str(screenshot), full_page=True)
            yield page, seen, screenshot
        finally:
            context.close()


def test_the_page_loads_with_no_console_error_and_no_request_leaving_the_file(browser_page,
                                                                             reported):
    page, seen, _ = browser_page
    page_path = reported[0]
    assert seen["errors"] == []
    assert [m for m in seen["console"] if m[0] in ("error", "warning")] == []
    assert seen["requests"] == [page_path.as_uri()]  # the file itself, nothing else
    assert page.title() == "Transfer results"


def test_the_screenshot_is_not_blank_and_nothing_overflows(browser_page):
    page, _, screenshot = browser_page
    with Image.open(screenshot) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.shape[1] == 1280 and pixels.shape[0] > 800  # the full page, taller than one view
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.01  # text and plots, not a blank page
    sizes = page.evaluate("""() => ({
        page: document.documentElement.scrollWidth, view: window.innerWidth,
        tables: [...document.querySelectorAll('.scroll')].map(e => e.scrollWidth - e.clientWidth),
        figures: [...document.querySelectorAll('figure svg')].map(e => {
            const r = e.getBoundingClientRect(); return [r.width, r.height, r.right]; }),
    })""")
    assert sizes["page"] <= sizes["view"]  # no horizontal scrolling: nothing cut at the right
    assert sizes["tables"] and max(sizes["tables"]) <= 0
    assert len(sizes["figures"]) == 4  # a forest plot and a pair matrix per protocol
    for width, height, right in sizes["figures"]:
        assert width > 100 and height > 50 and right <= sizes["view"]


def test_the_tables_numbers_in_the_dom_equal_the_records(browser_page, reported):
    page, _, _ = browser_page
    _, records, _ = reported
    cells = page.evaluate("""() => [
        ...document.querySelectorAll('section[data-table] td[data-column]')].map(td => ({
                     table: td.closest('section').dataset.table,
                     model: td.closest('tr').dataset.model,
                     shown: td.closest('tr').querySelector('th').innerText,
                     column: td.dataset.column,
                     value: td.querySelector('.value')?.innerText,
                     interval: td.querySelector('.interval')?.innerText}))""")
    scored = [c for c in cells if c["table"] in PROTOCOLS]
    assert len(scored) == len(records)
    for cell in scored:
        record = records[cell["table"], cell["model"]]
        assert cell["column"] == record["dataset"] == "digits"
        assert cell["value"] == f"{record['score']:.2f}"
        low, high = record["ci"]
        assert cell["interval"] == f"± {(high - low) / 2:.2f}"
        assert cell["shown"] == record["provenance"]["options"]["model"]  # the --model name


def test_a_cells_provenance_opens_on_a_click(browser_page, reported):
    page, _, _ = browser_page
    _, records, _ = reported
    cell = page.locator("section[data-table=knn] td[data-column=digits]").first
    body = cell.locator(".prov-body")
    assert not body.is_visible()
    cell.locator("summary").click()
    assert body.is_visible()
    # wholly in the window and on top at its corners: no scroll box or table cuts it off
    inside = body.evaluate("""b => { const r = b.getBoundingClientRect();
        const corners = [[r.left + 2, r.top + 2], [r.right - 2, r.top + 2],
                         [r.left + 2, r.bottom - 2], [r.right - 2, r.bottom - 2]];
        return r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight
            && corners.every(([x, y]) => b.contains(document.elementFromPoint(x, y))); }""")
    assert inside
    model = cell.evaluate("td => td.closest('tr').dataset.model")
    record = records["knn", model]
    text = body.inner_text()
    assert f"{model}__digits__i16" in text  # the result file's stem
    assert record["provenance"]["code"]["commit"] in text
    assert record["provenance"]["splits"]["test"][:12] in text
