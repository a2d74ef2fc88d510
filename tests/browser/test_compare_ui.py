"""The sidebar's "Compare deployments…" in a real JupyterLab and Chromium, end to end: the dialog
(deployments A and B, the input), the REST call, and the comparison's tab, whose disagreement table
lists exactly the rows where the two scoring scripts differ (green shifts the label and the score of
x=4 and x=7), with its charts, readable in the light and the dark theme.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import Page, expect

from batchnb import BatchClient

from .visual import DARK, LIGHT, low_contrast_text, use_theme

EP = "ep-compare"
DIFFERING = {("f004.csv", "label"), ("f004.csv", "score"), ("f007.csv", "label"), ("f007.csv", "score")}

SCRIPT = """
import os
import pandas as pd
SHIFT = {int(x) for x in os.environ.get("LABEL_SHIFT", "").split(",") if x}
def init():
    pass
def run(mini_batch):
    rows = []
    for path in mini_batch:
        x = int(pd.read_csv(path)["x"][0])
        shifted = x in SHIFT
        rows.append({"x": x, "label": f"L{(x + shifted) % 3}", "score": x * 0.5 + 0.25 * shifted})
    return pd.DataFrame(rows)
"""


@pytest.fixture(scope="module")
def setup(lab) -> SimpleNamespace:
    """ep-compare with blue and green (green differs on x=4 and x=7), and 10 CSV files under the root."""
    base = lab.root / "compare-test"
    model, code, data = base / "model", base / "code", base / "data"
    for folder in (model, code, data):
        folder.mkdir(parents=True)
    (model / "w.txt").write_text("1")
    (code / "score.py").write_text(textwrap.dedent(SCRIPT))
    for i in range(10):
        (data / f"f{i:03d}.csv").write_text(f"x\n{i}\n")
    client = BatchClient(lab.workspace)
    client.models.create_or_update({"name": "compare-model", "path": str(model)})
    client.batch_endpoints.create_or_update({"name": EP})
    for name, shift in (("blue", ""), ("green", "4,7")):
        client.batch_deployments.create_or_update(
            {
                "name": name,
                "endpoint_name": EP,
                "model": "azureml:compare-model@latest",
                "code_configuration": {"code": str(code), "scoring_script": "score.py"},
                "settings": {
                    "mini_batch_size": 2,
                    "output_file_name": "out.parquet",
                    "environment_variables": {"LABEL_SHIFT": shift},
                },
            },
            set_default=name == "blue",
        )
    return SimpleNamespace(client=client, data=data)


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
