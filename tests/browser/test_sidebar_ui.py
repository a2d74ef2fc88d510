"""The batchnb sidebar in a real JupyterLab and Chromium, against the server extension's REST API.

A job started from the CLI shows up in the sidebar and advances to Completed; a job invoked from
the sidebar's dialog (another deployment, a mini-batch size, a --set override, an output folder
under the server root) completes and its output folder opens in the file browser; the logs open in
a panel; "Set default" changes the endpoint's default deployment (checked through BatchClient).
Saves docs/images/sidebar.png when BATCHNB_UPDATE_SCREENSHOTS=1 (or when it is missing).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import Page, expect

from batchnb import BatchClient

from .visual import DARK, LIGHT, low_contrast_text, use_theme

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "sidebar.png"
EP = "ep-sidebar"
N_FILES = 12
# Loky workers, the supervisor and the poll (every 2 s) on a busy 2-core machine.
JOB_TIMEOUT_MS = 90_000

SCRIPT = """
import os, time
def init():
    pass
def run(mini_batch):
    time.sleep(0.5)
    return [os.path.basename(f) for f in mini_batch]
"""


@pytest.fixture(scope="module")
def setup(lab) -> SimpleNamespace:
    """Endpoint ep-sidebar with deployments blue (the default) and green, and a folder of 6 files."""
    base = lab.root / "sidebar-test"
    model, code, data = base / "model", base / "code", base / "data"
    for folder in (model, code, data):
        folder.mkdir(parents=True)
    (model / "w.txt").write_text("1")
    (code / "score.py").write_text(textwrap.dedent(SCRIPT))
    for i in range(N_FILES):
        (data / f"f{i}.txt").write_text(str(i))
    client = BatchClient(lab.workspace)
    client.models.create_or_update({"name": "sidebar-model", "path": str(model)})
    client.batch_endpoints.create_or_update({"name": EP, "description": "sidebar test"})
    for name in ("blue", "green"):
        client.batch_deployments.create_or_update(
            {
                "name": name,
                "endpoint_name": EP,
                "model": "azureml:sidebar-model@latest",
                "code_configuration": {"code": str(code), "scoring_script": "score.py"},
                "settings": {"mini_batch_size": 1, "max_concurrency_per_instance": 2},
            },
            set_default=name == "blue",
        )
    return SimpleNamespace(client=client, data=data)


def _open_sidebar(page: Page, lab) -> None:
    page.set_viewport_size({"width": 1360, "height": 860})
    # ?reset: start from the default layout, not the one the previous test left (sidebar open).
    page.goto(f"{lab.url}/lab?reset")
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    tab = page.locator('.jp-SideBar [data-id="batchnb-sidebar"]')
    expect(tab).to_be_visible(timeout=30_000)
    tab.click()
    expect(page.locator("#batchnb-sidebar")).to_be_visible()
    expect(page.locator(f'#batchnb-sidebar section.batchnb-endpoint[data-endpoint="{EP}"]')).to_be_visible(
        timeout=15_000
    )


def _job_row(page: Page, name: str):
    return page.locator(
        f'#batchnb-sidebar section.batchnb-endpoint[data-endpoint="{EP}"] .batchnb-job[data-job="{name}"]'
    )


def test_cli_job_goes_live_to_completed_and_default_can_be_changed(page: Page, lab, setup) -> None:
    _open_sidebar(page, lab)
    endpoint = page.locator(f'#batchnb-sidebar section.batchnb-endpoint[data-endpoint="{EP}"]')
    expect(endpoint.locator('.batchnb-deployment[data-deployment="blue"]')).to_have_attribute("data-default", "true")
    expect(endpoint.locator('.batchnb-deployment[data-deployment="green"]')).to_have_attribute("data-default", "false")

    # A job started from the CLI, outside the browser: the poll picks it up.
    cli = Path(sys.executable).parent / "batchnb"
    job_name = "sidebar-cli-1"
    subprocess.run(
        [str(cli), "-w", str(lab.workspace), "batch-endpoint", "invoke", "-n", EP, "--input", str(setup.data),
         "--job-name", job_name, "-o", "none"],
        check=True,
        timeout=120,
    )  # fmt: skip
    row = _job_row(page, job_name)
    expect(row).to_be_visible(timeout=15_000)
    expect(row).to_have_attribute("data-deployment", "blue")
    # Live status: first seen while it runs (12 mini-batches of 0.5 s on 2 workers take 3 s or more),
    # then Completed with a full bar.
    first = row.get_attribute("data-status")
    assert first in ("Queued", "Preparing", "Running", "Finalizing"), first
    expect(row).to_have_attribute("data-status", "Completed", timeout=JOB_TIMEOUT_MS)
    progress = row.locator(".batchnb-progress")
    expect(progress).to_have_attribute("data-done", str(N_FILES))
    expect(progress).to_have_attribute("data-total", str(N_FILES))
    expect(progress).to_have_attribute("aria-valuenow", "100")
    expect(row.locator(".batchnb-job-detail")).to_contain_text(f"{N_FILES}/{N_FILES} mini-batches")
    # When it started, in words, and how long it ran (12 mini-batches of 0.5 s on 2 workers: 3 s or more).
    took = re.compile(r"started (just now|\d+ min ago) · took (?:(\d+)m)?(\d+)s")
    expect(row.locator(".batchnb-job-time")).to_have_text(took)
    minutes, seconds = took.fullmatch(row.locator(".batchnb-job-time").inner_text()).groups()[1:]
    assert 60 * int(minutes or 0) + int(seconds) >= 3, (minutes, seconds)
    assert setup.client.jobs.get(job_name)["status"] == "Completed"

    # Logs open in a main-area panel with the tail of job_result.txt.
    row.locator('[data-action="logs"]').click()
    logs = page.locator(f'.batchnb-logs[data-job="{job_name}"]')
    expect(logs).to_be_visible(timeout=10_000)
    expect(logs.locator('[data-file="job_result.txt"] pre')).not_to_be_empty(timeout=10_000)

    # Set default from the sidebar; the workspace agrees.
    endpoint.locator('.batchnb-deployment[data-deployment="green"] [data-action="set-default"]').click()
    expect(endpoint.locator('.batchnb-deployment[data-deployment="green"]')).to_have_attribute(
        "data-default", "true", timeout=10_000
    )
    expect(endpoint.locator('.batchnb-deployment[data-deployment="blue"]')).to_have_attribute("data-default", "false")
    assert setup.client.batch_endpoints.get(EP)["defaults"]["deployment_name"] == "green"

    # And back, so the other test finds blue as the default whatever the order.
    endpoint.locator('.batchnb-deployment[data-deployment="blue"] [data-action="set-default"]').click()
    expect(endpoint.locator('.batchnb-deployment[data-deployment="blue"]')).to_have_attribute(
        "data-default", "true", timeout=10_000
    )
    assert setup.client.batch_endpoints.get(EP)["defaults"]["deployment_name"] == "blue"

    # The poll stands by while the panel is collapsed, and resumes (at once) when it is shown again.
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/batchnb/api/job-overview?" in r.url else None)
    page.locator('.jp-SideBar [data-id="batchnb-sidebar"]').click()
    expect(page.locator("#batchnb-sidebar")).to_be_hidden()
    time.sleep(1.0)  # a request already under way may still finish
    polls.clear()
    time.sleep(5.0)
    assert polls == [], f"the sidebar polled while hidden: {polls}"
    page.locator('.jp-SideBar [data-id="batchnb-sidebar"]').click()
    expect(page.locator("#batchnb-sidebar")).to_be_visible()
    deadline = time.monotonic() + 20  # every 2 s, plus the request time on a busy machine
    while len(polls) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert len(polls) >= 2, polls


def test_invoke_from_the_dialog_and_open_the_output_folder(page: Page, lab, setup, tmp_path: Path) -> None:
    _open_sidebar(page, lab)
    endpoint = page.locator(f'#batchnb-sidebar section.batchnb-endpoint[data-endpoint="{EP}"]')
    before = {row.get_attribute("data-job") for row in endpoint.locator(".batchnb-job").all()}

    endpoint.locator('[data-action="invoke"]').click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text(f"Invoke {EP}")
    # An empty input is refused with a message, and the dialog comes back.
    dialog.locator(".jp-Dialog-footer .jp-mod-accept").click()
    expect(page.locator(".jp-Dialog .jp-Dialog-header")).to_contain_text("Could not invoke")
    page.locator(".jp-Dialog .jp-Dialog-footer button").last.click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator('input[name="input"]')).to_be_visible()

    dialog.locator('input[name="input"]').fill(str(setup.data))
    dialog.locator('select[name="deployment_name"]').select_option("green")
    dialog.locator('input[name="mini_batch_size"]').fill("2")
    dialog.locator('input[name="output_path"]').fill("sidebar-out/dialog-run")
    dialog.locator('textarea[name="set"]').fill("retry_settings.timeout=77")
    dialog.locator(".jp-Dialog-footer .jp-mod-accept").click()
    try:  # the dialog closes when the server has recorded the job
        expect(page.locator(".jp-Dialog")).to_have_count(0, timeout=15_000)
    except AssertionError:  # an error dialog instead: say what it says
        raise AssertionError(f"the invoke dialog did not close: {page.locator('.jp-Dialog').inner_text()}") from None

    new_rows = endpoint.locator('.batchnb-job[data-deployment="green"]')
    expect(new_rows.first).to_be_visible(timeout=15_000)
    name = next(n for n in (r.get_attribute("data-job") for r in new_rows.all()) if n not in before)
    row = _job_row(page, name)
    expect(row).to_have_attribute("data-status", "Completed", timeout=JOB_TIMEOUT_MS)
    expect(row.locator(".batchnb-progress")).to_have_attribute("data-total", str(N_FILES // 2))
    job = setup.client.jobs.get(name)
    assert job["deployment_name"] == "green"
    assert job["progress"]["mini_batches"]["total"] == N_FILES // 2
    assert job["settings"]["retry_settings"]["timeout"] == 77, job["settings"]
    assert Path(job["outputs"]["score"]["path"]) == lab.root / "sidebar-out" / "dialog-run"

    # Its output folder is under the server root: the file browser goes there.
    row.locator('[data-action="outputs"]').click()
    crumbs = page.locator(".jp-FileBrowser .jp-BreadCrumbs")
    expect(crumbs).to_contain_text("dialog-run", timeout=10_000)
    expect(page.locator(".jp-FileBrowser .jp-DirListing-item")).not_to_have_count(0)

    # A job whose output is in the (hidden) workspace folder: its detail tab shows the output instead.
    cli_row = endpoint.locator('.batchnb-job[data-deployment="blue"]').first
    page.locator('.jp-SideBar [data-id="batchnb-sidebar"]').click()
    expect(cli_row).to_be_visible()
    cli_job = cli_row.get_attribute("data-job")
    cli_row.locator('[data-action="outputs"]').click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    preview = page.locator(f'.batchnb-detail[data-job="{cli_job}"] .batchnb-preview')
    expect(preview).to_have_attribute("data-file", "predictions.csv", timeout=15_000)
    expect(preview.locator("tbody tr")).to_have_count(N_FILES)

    # The screenshot for the README: the sidebar with both jobs, and the first job's logs.
    cli_row.locator('[data-action="logs"]').click()
    expect(page.locator(".batchnb-logs pre").first).to_be_visible(timeout=10_000)
    # Closed after the logs opened (an empty main area gets a new launcher).
    launcher = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab:has-text("Launcher") .lm-TabBar-tabCloseIcon')
    if launcher.count():
        launcher.first.click()
    news = page.get_by_role("alert").get_by_role("button", name="No")
    if news.count():
        news.click()
    # The jobs' "ended" notifications (tested in test_jobs_ui) stay out of the screenshot.
    closers = page.locator(".jp-Notification-Toast-Close")
    deadline = time.monotonic() + 20
    while closers.count() and time.monotonic() < deadline:
        # A DOM click: a toast sliding in is never "stable", or still outside the viewport.
        page.evaluate("document.querySelectorAll('.jp-Notification-Toast-Close').forEach(b => b.click())")
        page.wait_for_timeout(300)
    # Every text in the sidebar is readable in the light and the dark theme (WCAG AA).
    sidebar = page.locator("#batchnb-sidebar")
    try:
        for theme in (DARK, LIGHT):
            use_theme(page, theme)
            assert low_contrast_text(sidebar) == [], f"sidebar text below WCAG AA contrast in {theme}"
            page.screenshot(path=str(tmp_path / f"sidebar-{theme.split()[-1].lower()}.png"))
    finally:
        use_theme(page, LIGHT)
    expect(page.get_by_role("alert")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "sidebar.png"))
    # The committed image is rewritten only on request (or when missing), so test runs leave the tree clean.
    if os.environ.get("BATCHNB_UPDATE_SCREENSHOTS") or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "sidebar.png", SCREENSHOT)


def test_a_pipeline_job_shows_its_steps_and_reruns_the_failed_one(page: Page, lab, setup) -> None:
    """A pipeline deployment's job: a bar by steps, the steps expanded with their statuses, and
    "Rerun failed" running the failed step again (completed steps are kept)."""
    marker = lab.root / "sidebar-test" / "fixed"
    component = {
        "type": "pipeline",
        "jobs": {
            "prepare": {"component": {"command": "sleep 2; echo prepared", "outputs": {"o": {"type": "uri_folder"}}}},
            "score": {
                "component": {"command": "sleep 1; ls ${{inputs.i}}", "inputs": {"i": {"type": "uri_folder"}}},
                "inputs": {"i": "${{parent.jobs.prepare.outputs.o}}"},
            },
            "flaky": {"component": {"command": f"sleep 1; test -e {marker} || exit 4"}},
        },
    }
    client = setup.client
    client.batch_endpoints.create_or_update({"name": "ep-pipeline"})
    client.batch_deployments.create_or_update(
        {
            "name": "steps",
            "endpoint_name": "ep-pipeline",
            "type": "pipeline",
            "component": component,
            "settings": {"continue_on_step_failure": True},  # flaky's failure does not stop the others
        },
        set_default=True,
    )
    _open_sidebar(page, lab)
    job = client.batch_endpoints.invoke("ep-pipeline")
    row = page.locator(
        f'#batchnb-sidebar section.batchnb-endpoint[data-endpoint="ep-pipeline"] .batchnb-job[data-job="{job["name"]}"]'
    )
    expect(row).to_be_visible(timeout=15_000)
    expect(row).to_have_attribute("data-type", "pipeline")
    progress = row.locator(".batchnb-progress")
    expect(progress).to_have_attribute("data-unit", "steps")
    expect(progress).to_have_attribute("data-total", "3")
    expect(row).to_have_attribute("data-status", "Failed", timeout=JOB_TIMEOUT_MS)
    expect(row.locator(".batchnb-job-detail")).to_contain_text("2/3 steps · 1 failed")
    expect(progress).to_have_attribute("aria-valuenow", "100")

    row.locator('[data-action="steps"]').click()
    steps = row.locator(".batchnb-step")
    expect(steps).to_have_count(3)
    expect(row.locator('.batchnb-step[data-step="prepare"]')).to_have_attribute("data-status", "Completed")
    expect(row.locator('.batchnb-step[data-step="score"]')).to_have_attribute("data-status", "Completed")
    flaky = row.locator('.batchnb-step[data-step="flaky"]')
    expect(flaky).to_have_attribute("data-status", "Failed")
    expect(flaky.locator(".batchnb-step-error")).to_contain_text("exit code 4")

    marker.touch()
    row.locator('[data-action="rerun-failed"]').click()
    expect(row).to_have_attribute("data-status", "Completed", timeout=JOB_TIMEOUT_MS)
    expect(flaky).to_have_attribute("data-status", "Completed")  # still expanded, updated live
    expect(row.locator(".batchnb-job-detail")).to_contain_text("3/3 steps")
    expect(row.locator('[data-action="rerun-failed"]')).to_have_count(0)
    assert client.jobs.get(job["name"])["status"] == "Completed"


def test_an_empty_workspace_says_how_to_deploy_from_a_notebook(page: Page, empty_lab) -> None:
    page.goto(f"{empty_lab.url}/lab?reset")
    page.locator('.jp-SideBar [data-id="batchnb-sidebar"]').click()
    empty = page.locator('#batchnb-sidebar [data-empty="workspace"]')
    expect(empty).to_be_visible(timeout=30_000)
    expect(empty).to_contain_text("No batch endpoints in this workspace yet")
    expect(empty).to_contain_text("%%batch deploy")
    expect(empty).to_contain_text("DeploymentForm")
    assert low_contrast_text(empty) == []
