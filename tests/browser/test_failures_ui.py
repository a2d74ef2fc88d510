"""A job's failed items and worker timeline in the sidebar's detail view, in a real JupyterLab and
Chromium (issues 20 and 25).

A job whose scoring script fails on two chosen files: its detail view lists exactly those two, a
row's traceback opens in place and shows the script's own traceback, and the worker timeline is
drawn at a real size with a row per worker process and a bar per attempt, readable in both themes.
"Rerun failed" offers the job's own snapshot or the deployment's current revision: after the fix
(a new revision), "Current revision" scores them again and the table empties.

In a notebook, the job's static summary card (what the widget and nbconvert reports show) has the
same table, whose tracebacks open with a click (``<details>``, no JavaScript), and the timeline;
both readable in both themes.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from types import SimpleNamespace

import nbformat
from playwright.sync_api import Page, expect

from batchnb import BatchClient

from .visual import DARK, LIGHT, low_contrast_text, use_theme

# Files named in BAD (comma-separated) fail, with a message that names them.
SCRIPT = """
import os, time
def init():
    pass
def run(mini_batch):
    time.sleep(0.1)
    bad = [f for f in mini_batch if os.path.basename(f) in os.environ.get("BAD", "").split(",")]
    if bad:
        raise ValueError("cannot score " + os.path.basename(bad[0]))
    return [os.path.basename(f) for f in mini_batch]
"""


def _deployment(client: BatchClient, endpoint: str, code: Path, bad: str) -> None:
    client.batch_deployments.create_or_update(
        {
            "name": "blue",
            "endpoint_name": endpoint,
            "model": f"azureml:{endpoint}-model@latest",
            "code_configuration": {"code": str(code), "scoring_script": "score.py"},
            "settings": {
                "mini_batch_size": 1,
                "max_concurrency_per_instance": 2,
                "error_threshold": -1,
                "retry_settings": {"max_retries": 2, "timeout": 60},
                "environment_variables": {"BAD": bad},
            },
        },
        set_default=True,
    )


def _failing_job(lab, endpoint: str) -> SimpleNamespace:
    """``endpoint``'s deployment blue, failing on f02.txt and f05.txt of 8 files, and its ended job."""
    base = lab.root / f"{endpoint}-test"
    model, code, data = base / "model", base / "code", base / "data"
    for folder in (model, code, data):
        folder.mkdir(parents=True, exist_ok=True)
    (model / "w.txt").write_text("1")
    (code / "score.py").write_text(textwrap.dedent(SCRIPT))
    for i in range(8):
        (data / f"f{i:02d}.txt").write_text(str(i))
    client = BatchClient(lab.workspace)
    client.models.create_or_update({"name": f"{endpoint}-model", "path": str(model)})
    client.batch_endpoints.create_or_update({"name": endpoint})
    _deployment(client, endpoint, code, bad="f02.txt,f05.txt")
    job = client.batch_endpoints.invoke(endpoint, input=str(data)).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    return SimpleNamespace(client=client, code=code, name=job["name"])


def _dismiss_news(page: Page) -> None:
    news = page.get_by_role("alert").get_by_role("button", name="No")  # JupyterLab's news question
    if news.count():
        news.click()


def test_the_detail_view_lists_failed_items_opens_tracebacks_draws_workers_and_reruns(
    page: Page, lab, tmp_path: Path
) -> None:
    setup = _failing_job(lab, "ep-failures")
    client, code, name = setup.client, setup.code, setup.name
    attempts = client.jobs.worker_timeline(name)
    workers = list(dict.fromkeys(a["worker"] for a in attempts))

    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{lab.url}/lab?reset")
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    page.locator('.jp-SideBar [data-id="batchnb-sidebar"]').click()
    row = page.locator(f'#batchnb-sidebar .batchnb-job[data-job="{name}"]')
    expect(row).to_be_visible(timeout=30_000)
    row.locator('[data-action="details"]').click()
    detail = page.locator(f'.batchnb-detail[data-job="{name}"]')
    expect(detail).to_have_attribute("data-status", "Completed", timeout=15_000)

    # The failed items: exactly the two files, in input order, each with its error.
    failures = detail.locator('[data-section="failures"] .batchnb-failures')
    expect(failures).to_have_attribute("data-total", "2", timeout=15_000)
    rows = failures.locator("tbody tr[data-item]")
    expect(rows).to_have_count(2)
    assert [Path(r.get_attribute("data-item") or "").name for r in rows.all()] == ["f02.txt", "f05.txt"]
    expect(rows.nth(0).locator("td").nth(3)).to_have_text("raised")
    toggle = rows.nth(1).locator('[data-action="traceback"]')
    expect(toggle).to_contain_text("ValueError: cannot score f05.txt")
    expect(failures.locator(".batchnb-failure-trace")).to_have_count(0)

    # Its traceback opens in place: the script's own, down to the error it raised.
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    trace = failures.locator(".batchnb-failure-trace pre")
    expect(trace).to_have_count(1)
    expect(trace).to_contain_text("Traceback (most recent call last):")
    expect(trace).to_contain_text('raise ValueError("cannot score " + os.path.basename(bad[0]))')
    expect(trace).to_contain_text("ValueError: cannot score f05.txt")
    box = trace.bounding_box()
    assert box is not None and box["height"] >= 40 and box["width"] >= 300, box

    # The worker timeline: of a real size, a row per worker, a bar per attempt, its axes labelled.
    chart = detail.locator('[data-section="workers"] svg.batchnb-timeline')
    expect(chart).to_be_visible()
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    assert box is not None and box["width"] >= 400 and box["height"] >= 60, box
    expect(chart.locator("g.batchnb-timeline-worker")).to_have_count(len(workers))
    assert [g.get_attribute("data-worker") for g in chart.locator("g.batchnb-timeline-worker").all()] == workers
    bars = chart.locator("rect.batchnb-timeline-bar")
    expect(bars).to_have_count(len(attempts))
    expect(chart.locator('rect.batchnb-timeline-bar[data-outcome="failed"]')).to_have_count(2)
    expect(chart.locator('rect.batchnb-timeline-bar[data-outcome="retried"]')).to_have_count(2)
    for bar in bars.all():
        drawn = bar.bounding_box()
        assert drawn is not None and drawn["width"] >= 1 and drawn["height"] >= 8, drawn
    expect(chart.locator(".batchnb-axis-label")).to_have_text(["time since start (s)", "worker"])

    _dismiss_news(page)
    try:
        for theme in (DARK, LIGHT):
            use_theme(page, theme)
            for section in ("failures", "workers"):
                found = low_contrast_text(detail.locator(f'[data-section="{section}"]'))
                assert found == [], f"{section} text below WCAG AA contrast in {theme}: {found}"
            # The bars keep their outcome's colour in the theme (never the default black fill).
            fill = bars.first.evaluate("el => getComputedStyle(el).fill")
            assert fill not in ("rgb(0, 0, 0)", "none"), fill
            detail.locator('[data-section="workers"]').scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / f"job-failures-{theme.split()[-1].lower()}.png"))
    finally:
        use_theme(page, LIGHT)

    # Rerun failed: the fix is a new revision, and "Current revision" scores them on it.
    (code / "score.py").write_text(textwrap.dedent(SCRIPT))
    _deployment(client, "ep-failures", code, bad="")
    failures.locator('[data-action="rerun-failed"]').click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.get_by_role("button", name="Same snapshot")).to_be_visible()
    dialog.get_by_role("button", name="Current revision").click()
    expect(detail.locator('[data-section="failures"]')).to_contain_text("No item failed.", timeout=90_000)
    expect(detail).to_have_attribute("data-status", "Completed", timeout=30_000)
    done = client.jobs.get(name)
    assert done["progress"]["items"]["failed"] == 0 and done["progress"]["scored_by_revision"] == {"1": 6, "2": 2}
    # The rerun's attempts join the timeline: two more bars, both ok.
    expect(bars).to_have_count(len(attempts) + 2, timeout=15_000)


def test_the_summary_card_in_a_notebook_opens_tracebacks_and_reads_in_both_themes(
    page: Page, lab, tmp_path: Path
) -> None:
    setup = _failing_job(lab, "ep-failures-nb")
    attempts = setup.client.jobs.worker_timeline(setup.name)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(f"from batchnb import BatchClient\nBatchClient().jobs.get({setup.name!r})")]
    nbformat.write(nb, lab.root / "failures-card.ipynb")
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{lab.url}/lab/tree/failures-card.ipynb?reset")
    idle = page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$"))
    expect(idle).to_be_visible(timeout=90_000)
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    card = page.locator(f".jp-OutputArea-output .batchnb-card[data-job='{setup.name}']")
    expect(card).to_be_visible(timeout=60_000)

    failures = card.locator(".batchnb-card-failures")
    expect(failures).to_have_attribute("data-failed-items", "2")
    rows = failures.locator("tr[data-item]")
    assert [Path(r.get_attribute("data-item") or "").name for r in rows.all()] == ["f02.txt", "f05.txt"]
    trace = rows.nth(0).locator("details pre")
    expect(trace).to_be_hidden()
    rows.nth(0).locator("details summary").click()
    expect(trace).to_be_visible()
    expect(trace).to_contain_text("ValueError: cannot score f02.txt")

    chart = card.locator("svg.batchnb-timeline")
    box = chart.bounding_box()
    assert box is not None and box["width"] >= 400 and box["height"] >= 60, box
    expect(chart.locator("g.batchnb-timeline-worker")).to_have_count(len({a["worker"] for a in attempts}))
    expect(chart.locator("rect.batchnb-timeline-bar")).to_have_count(len(attempts))

    _dismiss_news(page)
    try:
        for theme in (DARK, LIGHT):
            use_theme(page, theme)
            assert low_contrast_text(card) == [], f"summary card text below WCAG AA contrast in {theme}"
            card.locator("svg.batchnb-timeline").scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / f"card-failures-{theme.split()[-1].lower()}.png"))
    finally:
        use_theme(page, LIGHT)
