"""Comparing two deployments in a real JupyterLab and Chromium, end to end.

- The sidebar's "Compare deployments…": the dialog (deployments A and B, the input), the REST call,
  and the comparison's tab, whose disagreement table lists exactly the rows where the two scoring
  scripts differ (green shifts the label and the score of x=4 and x=7), with its charts.
- ``%batch compare`` in a notebook: each job's line advances while the cell runs (the jobs wait at a
  gate until the test has looked), then the report takes the widget's place, once.

Both readable in the light and the dark theme.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from batchnb import BatchClient

from .visual import DARK, LIGHT, low_contrast_text, use_theme

EP = "ep-compare"
DIFFERING = {("f004.csv", "label"), ("f004.csv", "score"), ("f007.csv", "label"), ("f007.csv", "score")}

# Each mini-batch waits until the file GATE exists (no GATE: at once).
SCRIPT = """
import os, time
import pandas as pd
SHIFT = {int(x) for x in os.environ.get("LABEL_SHIFT", "").split(",") if x}
def init():
    pass
def run(mini_batch):
    gate, deadline = os.environ.get("GATE"), time.monotonic() + 300
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.1)
    rows = []
    for path in mini_batch:
        x = int(pd.read_csv(path)["x"][0])
        shifted = x in SHIFT
        rows.append({"x": x, "label": f"L{(x + shifted) % 3}", "score": x * 0.5 + 0.25 * shifted})
    return pd.DataFrame(rows)
"""


def _deploy(lab, endpoint: str, base: Path, gate: Path | None = None) -> Path:
    """``endpoint`` with blue and green (green differs on x=4 and x=7), and 10 CSV files under ``base``."""
    model, code, data = base / "model", base / "code", base / "data"
    for folder in (model, code, data):
        folder.mkdir(parents=True)
    (model / "w.txt").write_text("1")
    (code / "score.py").write_text(textwrap.dedent(SCRIPT))
    for i in range(10):
        (data / f"f{i:03d}.csv").write_text(f"x\n{i}\n")
    client = BatchClient(lab.workspace)
    client.models.create_or_update({"name": f"{endpoint}-model", "path": str(model)})
    client.batch_endpoints.create_or_update({"name": endpoint})
    for name, shift in (("blue", ""), ("green", "4,7")):
        env = {"LABEL_SHIFT": shift, **({"GATE": str(gate)} if gate else {})}
        client.batch_deployments.create_or_update(
            {
                "name": name,
                "endpoint_name": endpoint,
                "model": f"azureml:{endpoint}-model@latest",
                "code_configuration": {"code": str(code), "scoring_script": "score.py"},
                "settings": {"mini_batch_size": 2, "output_file_name": "out.parquet", "environment_variables": env},
            },
            set_default=name == "blue",
        )
    return data


@pytest.fixture(scope="module")
def setup(lab) -> SimpleNamespace:
    """ep-compare with blue and green, and the input compare-test/data under the server's root."""
    data = _deploy(lab, EP, lab.root / "compare-test")
    return SimpleNamespace(client=BatchClient(lab.workspace), data=data)


def _disagreeing(rows: Locator) -> set[tuple[str, str | None]]:
    return {(Path(r.get_attribute("data-source-file") or "").name, r.get_attribute("data-column")) for r in rows.all()}


def test_compare_deployments_from_the_sidebar_shows_exactly_the_disagreeing_rows(
    page: Page, lab, setup, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{lab.url}/lab?reset")
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    use_theme(page, LIGHT)
    page.locator('.jp-SideBar [data-id="batchnb-sidebar"]').click()
    endpoint = page.locator(f'#batchnb-sidebar section.batchnb-endpoint[data-endpoint="{EP}"]')
    expect(endpoint).to_be_visible(timeout=15_000)

    endpoint.locator('[data-action="compare"]').click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text(f"Compare deployments of {EP}")
    # A and B start as the default and another deployment; the same one twice is refused in the form.
    expect(dialog.locator('select[name="a"]')).to_have_value("blue")
    expect(dialog.locator('select[name="b"]')).to_have_value("green")
    dialog.locator('select[name="b"]').select_option("blue")
    dialog.locator('input[name="input"]').fill("compare-test/data")
    dialog.locator(".jp-Dialog-footer .jp-mod-accept").click()
    expect(page.locator(".jp-Dialog .jp-Dialog-body")).to_contain_text("Choose two different deployments")
    page.locator(".jp-Dialog .jp-Dialog-footer button").last.click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator('input[name="input"]')).to_have_value("compare-test/data")  # kept
    dialog.locator('select[name="b"]').select_option("green")
    dialog.locator(".jp-Dialog-footer .jp-mod-accept").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0, timeout=10_000)

    tab = page.locator(".jp-MainAreaWidget .batchnb-compare")
    expect(page.locator(".lm-TabBar-tab", has_text="Compare blue / green")).to_be_visible()
    report = tab.locator('.batchnb-compare-content[data-state="done"]')
    try:
        expect(report).to_be_visible(timeout=120_000)
    finally:
        page.screenshot(path=str(tmp_path / "compare-tab.png"))
    expect(report.locator("[data-agreement]")).to_have_attribute("data-agreement", "0.8")
    rows = report.locator(".batchnb-compare-disagreements tbody tr")
    found = {(Path(r.get_attribute("data-source-file") or "").name, r.get_attribute("data-column")) for r in rows.all()}
    assert found == DIFFERING
    score = rows.filter(has_text="f004.csv").filter(has_text="score").locator("td")
    expect(score).to_have_text([str(setup.data / "f004.csv"), "", "score", "2", "2.25"])  # a file: no row
    # The charts: |blue - green| of score (both rows 0.25 apart: the last bin), and the label pairs.
    histogram = report.locator('svg[data-chart="histogram"]')
    expect(histogram).to_be_visible()
    expect(histogram.locator("rect[data-rows]")).to_have_count(10)
    expect(histogram.locator('rect[data-rows="2"]')).to_have_count(1)
    expect(histogram).to_contain_text("|blue − green| of score (in score's units)")
    expect(report.locator('svg[data-chart="pairs"] rect[data-pair="L1 → L2"]')).to_have_class(
        "batchnb-compare-different"
    )
    expect(report.locator('.batchnb-compare-throughput tr[data-deployment="green"] td').nth(2)).to_have_text("10")
    # The two jobs are the workspace's, as any other.
    jobs = setup.client.jobs.list(endpoint_name=EP)
    assert sorted(j["deployment_name"] for j in jobs) == ["blue", "green"]

    for theme in (LIGHT, DARK):
        use_theme(page, theme)
        report.screenshot(path=str(tmp_path / f"compare-{theme.split()[-1].lower()}.png"))
        assert low_contrast_text(report) == [], f"text below WCAG AA contrast in {theme}"
    use_theme(page, LIGHT)


def test_percent_batch_compare_shows_both_jobs_then_the_report(page: Page, lab, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    data = _deploy(lab, "ep-compare-nb", tmp_path / "project", gate)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext batchnb"),
        nbformat.v4.new_code_cell(f"%batch compare -n ep-compare-nb --deployments blue green --input {data}"),
    ]
    nbformat.write(nb, lab.root / "compare.ipynb")
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{lab.url}/lab/tree/compare.ipynb?reset")
    idle = page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$"))
    expect(idle).to_be_visible(timeout=90_000)
    use_theme(page, LIGHT)
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    # While the cell runs: blue's job runs (held at the gate), green's waits its turn.
    live = page.locator(".jp-Cell").nth(1).locator(".batchnb-compare-live")
    expect(live).to_contain_text("Comparing blue and green", timeout=60_000)
    blue = live.locator(".widget-hbox").nth(0)
    expect(blue.locator(".batchnb-compare-live-status")).to_have_text("Running", timeout=60_000)
    expect(blue).to_contain_text("0/5 mini-batches")
    expect(live.locator(".widget-hbox").nth(1)).to_contain_text("waiting")
    expect(live).to_contain_text("scoring with blue")
    for theme in (DARK, LIGHT):
        use_theme(page, theme)
        assert low_contrast_text(live) == [], f"text below WCAG AA contrast in {theme}"

    gate.touch()
    output = page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")
    report = output.locator(".batchnb-comparison")
    try:
        expect(report).to_have_attribute("data-agreement", "0.8", timeout=120_000)
    finally:
        page.screenshot(path=str(tmp_path / "compare-notebook.png"))
    expect(report).to_have_count(1)  # the report took the widget's place; the cell's result adds no second one
    expect(output.locator(".batchnb-compare-live")).to_have_count(0)
    assert _disagreeing(report.locator("table.batchnb-comparison-disagreements tr[data-column]")) == DIFFERING
    expect(report.locator('svg[data-chart="histogram"]')).to_be_visible()
    expect(report.locator('svg[data-chart="pairs"]')).to_be_visible()
    for theme in (DARK, LIGHT):
        use_theme(page, theme)
        report.screenshot(path=str(tmp_path / f"compare-report-{theme.split()[-1].lower()}.png"))
        assert low_contrast_text(report) == [], f"text below WCAG AA contrast in {theme}"
