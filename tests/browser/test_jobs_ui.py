"""Finding jobs and looking into them in a real JupyterLab and Chromium.

- A 500-job workspace (one real job, 499 copies of it): each endpoint in the sidebar says how many
  jobs it has and links to all of them, the oldest endpoint shows its jobs (never "No jobs yet"),
  and the job list pages through them, filters and archives, with readable text.
- A job that ends while the sidebar watches raises a notification whose Details button opens the
  detail tab: facts, a throughput chart of real size with both axes labelled in units, the output
  as a table with its download, and job_result.txt opened from the hidden ``.batchnb/`` folder.
- In a notebook: a kernel restart turns a live widget into its job's summary (no frozen widget),
  "Show in notebook" re-attaches a live widget without typing the job's name, and that widget
  turns into the summary card when the job ends.

Saves docs/images/job-detail.png and docs/images/job-list.png when BATCHNB_UPDATE_SCREENSHOTS=1
(or when missing).
"""

from __future__ import annotations

import re
import shutil
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from playwright.sync_api import Page, expect
from seeding import seed_jobs

from batchnb import BatchClient

from .visual import DARK, LIGHT, low_contrast_text, updating, use_theme

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
JOB_TIMEOUT_MS = 90_000

SCRIPT = """
import os, time
def init():
    pass
def run(mini_batch):
    gate = os.environ.get("GATE")
    deadline = time.monotonic() + 300
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(float(os.environ.get("SLEEP", "0.2")))
    return [os.path.basename(f) for f in mini_batch]
"""


def _deploy(lab, name: str, files: int, **env: str) -> SimpleNamespace:
    base = lab.root / f"{name}-test"
    model, code, data = base / "model", base / "code", base / "data"
    for folder in (model, code, data):
        folder.mkdir(parents=True, exist_ok=True)
    (model / "w.txt").write_text("1")
    (code / "score.py").write_text(textwrap.dedent(SCRIPT))
    for i in range(files):
        (data / f"f{i:02d}.txt").write_text(str(i))
    client = BatchClient(lab.workspace)
    client.models.create_or_update({"name": f"{name}-model", "path": str(model)})
    client.batch_endpoints.create_or_update({"name": name})
    client.batch_deployments.create_or_update(
        {
            "name": "blue",
            "endpoint_name": name,
            "model": f"azureml:{name}-model@latest",
            "code_configuration": {"code": str(code), "scoring_script": "score.py"},
            "settings": {
                "mini_batch_size": 1,
                "max_concurrency_per_instance": 2,
                "retry_settings": {"timeout": 600},
                "environment_variables": env,
            },
        },
        set_default=True,
    )
    return SimpleNamespace(client=client, data=data, base=base)


def _open_sidebar(page: Page, lab, endpoint: str) -> None:
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{lab.url}/lab?reset")
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    page.locator('.jp-SideBar [data-id="batchnb-sidebar"]').click()
    expect(page.locator(f'#batchnb-sidebar section[data-endpoint="{endpoint}"]')).to_be_visible(timeout=30_000)


def _box(locator) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not rendered"
    return box


def _dismiss_news(page: Page) -> None:
    news = page.get_by_role("alert").get_by_role("button", name="No")
    if news.count():
        news.click()


def test_a_500_job_workspace_in_the_sidebar_and_the_job_list(page: Page, empty_lab, tmp_path: Path) -> None:
    lab = empty_lab
    old = _deploy(lab, "ep-old", 2)
    job = old.client.batch_endpoints.invoke("ep-old", input=str(old.data)).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    for ep in ("ep-a", "ep-b"):
        old.client.batch_endpoints.create_or_update({"name": ep})
    start = time.time() - 600 * 60
    seed_jobs(old.client, job["name"], 100, ["ep-old"], start - 200 * 60, prefix="old")
    seed_jobs(old.client, job["name"], 399, ["ep-a", "ep-b"], start, prefix="new")

    _open_sidebar(page, lab, "ep-old")
    sidebar = page.locator("#batchnb-sidebar")
    for ep, total in (("ep-old", 101), ("ep-a", 200), ("ep-b", 199)):
        section = sidebar.locator(f'section[data-endpoint="{ep}"]')
        count = section.locator(".batchnb-count")
        expect(count).to_have_attribute("data-count", str(total), timeout=15_000)
        expect(count).to_have_text(f"{total} jobs")
        expect(section.locator(".batchnb-job")).to_have_count(8)
        expect(section.locator(".batchnb-no-jobs")).to_have_count(0)
        more = section.locator('[data-action="more"]')
        expect(more).to_have_text(f"All {total} jobs…")
        # The count and the link are seen: of a real size, inside their endpoint's box.
        outer = _box(section)
        for part in (count, more):
            box = _box(part)
            assert box["height"] >= 12 and box["width"] >= 30, box
            assert outer["x"] <= box["x"] and box["x"] + box["width"] <= outer["x"] + outer["width"] + 0.5, (box, outer)
    assert low_contrast_text(sidebar) == []

    # "All 101 jobs…" of the oldest endpoint: the job list, filtered to it, a page at a time.
    sidebar.locator('section[data-endpoint="ep-old"] [data-action="more"]').click()
    listing = page.locator(".batchnb-joblist")
    expect(listing).to_have_attribute("data-total", "101", timeout=15_000)
    rows = listing.locator("tbody tr[data-job]")
    expect(rows).to_have_count(50)
    expect(rows.first).to_have_attribute("data-job", job["name"])
    expect(listing.locator(".batchnb-joblist-summary")).to_have_text("Jobs 1–50 of 101")
    listing.locator('[data-action="next-page"]').click()
    expect(listing.locator(".batchnb-joblist-summary")).to_have_text("Jobs 51–100 of 101")
    listing.locator('[data-action="next-page"]').click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job", "old-0000")
    expect(listing.locator('[data-action="next-page"]')).to_be_disabled()

    # Filters: status (its option counts the matches), a search, an endpoint.
    failed = sum(1 for j in old.client.jobs.list(endpoint_name="ep-old") if j["status"] == "Failed")
    listing.locator('select[name="status"]').select_option("Failed")
    expect(listing).to_have_attribute("data-total", str(failed), timeout=10_000)
    expect(listing.locator('select[name="status"] option[value="Failed"]')).to_have_text(f"Failed ({failed})")
    assert {r.get_attribute("data-status") for r in rows.all()} == {"Failed"}
    listing.locator('select[name="status"]').select_option("")
    listing.locator('input[name="search"]').fill("old-009")
    expect(listing).to_have_attribute("data-total", "10", timeout=10_000)
    listing.locator('input[name="search"]').fill("")
    listing.locator('select[name="endpoint"]').select_option("ep-a")
    expect(listing).to_have_attribute("data-total", "200", timeout=10_000)

    # Archive the newest of ep-a: it leaves the list and the sidebar's count.
    newest = rows.first.get_attribute("data-job")
    rows.first.locator('[data-action="archive"]').click()
    expect(listing).to_have_attribute("data-total", "199", timeout=10_000)
    expect(listing.locator(f'tr[data-job="{newest}"]')).to_have_count(0)
    expect(sidebar.locator('section[data-endpoint="ep-a"] .batchnb-count')).to_have_attribute(
        "data-count", "199", timeout=15_000
    )
    _dismiss_news(page)
    try:
        for theme in (DARK, LIGHT):
            use_theme(page, theme)
            assert low_contrast_text(listing) == [], f"job list text below WCAG AA contrast in {theme}"
    finally:
        use_theme(page, LIGHT)
    page.screenshot(path=str(tmp_path / "job-list.png"))
    if updating() or not (IMAGES / "job-list.png").exists():
        shutil.copyfile(tmp_path / "job-list.png", IMAGES / "job-list.png")


def test_an_ended_job_notifies_and_its_details_show_throughput_logs_and_output(page: Page, lab, tmp_path: Path) -> None:
    setup = _deploy(lab, "ep-detail", 12, SLEEP="0.4")
    _open_sidebar(page, lab, "ep-detail")
    job = setup.client.batch_endpoints.invoke("ep-detail", input=str(setup.data))
    name = job["name"]
    row = page.locator(f'#batchnb-sidebar .batchnb-job[data-job="{name}"]')
    expect(row).to_be_visible(timeout=15_000)
    expect(row).to_have_attribute("data-status", "Completed", timeout=JOB_TIMEOUT_MS)

    # The notification, with its buttons.
    toast = page.locator(".Toastify__toast").filter(has_text=f"Job {name}")
    expect(toast).to_be_visible(timeout=15_000)
    expect(toast).to_contain_text("completed: 12/12 mini-batches, 12 rows")
    for label in ("Details", "Logs", "Output"):
        expect(toast.get_by_role("button", name=label)).to_be_visible()
    toast.get_by_role("button", name="Details").click()

    detail = page.locator(f'.batchnb-detail[data-job="{name}"]')
    expect(detail).to_have_attribute("data-status", "Completed", timeout=15_000)
    facts = detail.locator(".batchnb-facts")
    expect(facts.locator('tr[data-fact="Deployment"] td')).to_have_text("blue (revision 1)")
    expect(facts.locator('tr[data-fact="Setting mini_batch_size"] td')).to_have_text("1")
    expect(facts.locator('tr[data-fact="Items"] td')).to_contain_text("12 succeeded, 0 failed of 12")

    # The throughput chart: of a real size, its axes labelled in units, its line drawn.
    chart = detail.locator("svg.batchnb-throughput")
    expect(chart).to_be_visible()
    box = _box(chart)
    assert box["width"] >= 400 and box["height"] >= 150, box
    expect(chart.locator(".batchnb-axis-label")).to_have_text(["time since start (s)", "rows/s"])
    assert len(chart.locator(".batchnb-series").get_attribute("d") or "") > 20
    assert chart.locator("text.batchnb-axis-tick").count() >= 3

    # The output as a table: append_row's rows (no header: columns numbered), and its download.
    preview = detail.locator(".batchnb-preview")
    expect(preview).to_have_attribute("data-file", "predictions.csv", timeout=15_000)
    expect(preview.locator("th")).to_have_text(["column 1"])
    cells = preview.locator("tbody td")
    expect(cells).to_have_count(12)
    assert sorted(cells.all_inner_texts()) == [f"f{i:02d}.txt" for i in range(12)]
    with page.expect_download() as download:
        detail.locator('li[data-file="predictions.csv"] [data-action="download"]').click()
    assert download.value.suggested_filename == "predictions.csv"
    saved = tmp_path / "downloaded.csv"
    download.value.save_as(saved)
    output = Path(setup.client.jobs.get(name)["outputs"]["score"]["path"]) / "predictions.csv"
    assert saved.read_text() == output.read_text()

    # job_result.txt lives in the hidden .batchnb/ folder: it opens all the same, read through the API.
    log = detail.locator('[data-section="logs"] [data-file="job_result.txt"]')
    expect(log.locator("pre")).to_contain_text("Completed: 12 of 12")
    log.locator('[data-action="open-log"]').click()
    opened = page.locator('.batchnb-file-view[data-file="job_result.txt"] pre')
    expect(opened).to_contain_text("Completed: 12 of 12", timeout=10_000)
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="job_result.txt").locator(
        ".lm-TabBar-tabCloseIcon"
    ).click()

    # "Output" of the sidebar row goes to the same output section (no copy-the-path dialog).
    row.locator('[data-action="outputs"]').click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    expect(preview).to_be_in_viewport(timeout=10_000)

    _dismiss_news(page)
    try:
        for theme in (DARK, LIGHT):
            use_theme(page, theme)
            assert low_contrast_text(detail) == [], f"detail text below WCAG AA contrast in {theme}"
    finally:
        use_theme(page, LIGHT)
    detail.locator('[data-section="overview"]').scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "job-detail.png"))
    if updating() or not (IMAGES / "job-detail.png").exists():
        shutil.copyfile(tmp_path / "job-detail.png", IMAGES / "job-detail.png")


def _notebook(lab, data: Path, name: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext batchnb"),
        nbformat.v4.new_code_cell(f"%batch batch-endpoint invoke -n ep-nb --input {data} --job-name {name}"),
    ]
    nbformat.write(nb, lab.root / "reattach.ipynb")
    return "reattach.ipynb"


@pytest.mark.timeout(600)
def test_a_kernel_restart_leaves_the_summary_and_show_in_notebook_reattaches(page: Page, lab, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    setup = _deploy(lab, "ep-nb", 4, GATE=str(gate), SLEEP="0.2")
    name = "nb-reattach"
    notebook = _notebook(lab, setup.data, name)
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{lab.url}/lab/tree/{notebook}?reset")
    idle = page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$"))
    expect(idle).to_be_visible(timeout=90_000)
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    live = page.locator(".batchnb-live")
    expect(live.locator(".batchnb-live-status")).to_have_text("Running", timeout=60_000)

    # The kernel restarts while the job waits at the gate: the widget, whose kernel state is gone,
    # becomes the job's summary (read from the server), not a frozen widget with broken links.
    page.evaluate("() => { void window.jupyterapp.commands.execute('kernelmenu:restart', {}); }")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    card = page.locator(f".jp-OutputArea-output .batchnb-card[data-job='{name}']")
    expect(card).to_be_visible(timeout=30_000)
    expect(card).to_have_attribute("data-status", "Running")
    expect(page.locator(".jp-OutputArea-output .batchnb-live")).to_have_count(0)
    expect(page.locator(".jupyter-widgets-disconnected")).to_have_count(0)
    expect(idle).to_be_visible(timeout=60_000)

    # "Show in notebook" from the job's menu: a cell that shows the job live, no name typed.
    page.locator('.jp-SideBar [data-id="batchnb-sidebar"]').click()
    row = page.locator(f'#batchnb-sidebar .batchnb-job[data-job="{name}"]')
    expect(row).to_be_visible(timeout=30_000)
    row.locator('[data-action="menu"]').click()
    page.locator(".batchnb-job-menu .lm-Menu-item", has_text="Show in Notebook").click()
    expect(live.locator(".batchnb-live-status")).to_have_text("Running", timeout=60_000)
    bar = _box(live.locator(".widget-hprogress .progress"))
    assert bar["height"] >= 10 and bar["width"] > 100, bar

    # The job ends: the re-attached widget turns into the summary card.
    gate.touch()
    summary = page.locator(f".jp-OutputArea-output .batchnb-card[data-job='{name}'][data-status='Completed']")
    expect(summary).to_have_count(1, timeout=JOB_TIMEOUT_MS)
    expect(summary).to_contain_text("4 done, 0 failed")
    expect(page.locator(".jp-OutputArea-output .batchnb-live .widget-hprogress")).to_have_count(0)
