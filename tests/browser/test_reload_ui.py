"""A page reload without saving, in a real JupyterLab and Chromium (issue 25, point 5): the invoke
cell shows the job it ran last, not the one of the notebook's last save.

The notebook is saved while the cell shows its first job; the cell is run again (a second job, held
at a gate) and the page reloaded without saving, twice: while the second job runs (the cell shows
its live widget, which then ends as its summary) and after it has ended (its summary). The saved
file still holds the first job's output; the kernel, which survives a reload, knows which job each
cell showed last (batchnb.widgets.cells), and the extension asks it.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import nbformat
from playwright.sync_api import Page, expect

from batchnb import BatchClient

EP = "ep-reload"
# Each mini-batch waits until the file GATE exists.
SCRIPT = """
import os, time
def init():
    pass
def run(mini_batch):
    deadline = time.monotonic() + 300
    while not os.path.exists(os.environ["GATE"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [os.path.basename(f) for f in mini_batch]
"""


def _setup(lab, tmp_path: Path, gate: Path) -> str:
    client = BatchClient(lab.workspace)
    model, code, data = tmp_path / "model", tmp_path / "code", tmp_path / "data"
    for folder in (model, code, data):
        folder.mkdir()
    (model / "w.txt").write_text("1")
    (code / "score.py").write_text(textwrap.dedent(SCRIPT))
    for i in range(3):
        (data / f"f{i}.txt").write_text(str(i))
    client.models.create_or_update({"name": "reload-model", "path": str(model)})
    client.batch_endpoints.create_or_update({"name": EP})
    client.batch_deployments.create_or_update(
        {
            "name": "blue",
            "endpoint_name": EP,
            "model": "azureml:reload-model@latest",
            "code_configuration": {"code": str(code), "scoring_script": "score.py"},
            "settings": {"mini_batch_size": 1, "environment_variables": {"GATE": str(gate)}},
        }
    )
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext batchnb"),
        nbformat.v4.new_code_cell(f"%batch batch-endpoint invoke -n {EP} --input {data}"),
    ]
    nbformat.write(nb, lab.root / "reload.ipynb")
    return "reload.ipynb"


def _shown_job(page: Page) -> str:
    """The job the invoke cell shows once it has completed (its summary card)."""
    card = page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output .batchnb-card[data-status='Completed']")
    expect(card).to_have_count(1, timeout=90_000)
    return card.get_attribute("data-job") or ""


def _command(page: Page, command: str) -> None:
    page.evaluate("command => window.jupyterapp.commands.execute(command)", command)


def _reload(page: Page, idle) -> None:
    page.reload()
    expect(idle).to_be_visible(timeout=90_000)


def test_a_reload_without_saving_shows_the_job_the_cell_ran_last(page: Page, lab, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    notebook = _setup(lab, tmp_path, gate)
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{lab.url}/lab/tree/{notebook}?reset")
    idle = page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$"))
    expect(idle).to_be_visible(timeout=90_000)
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    first = _shown_job(page)
    expect(idle).to_be_visible(timeout=30_000)
    _command(page, "docmanager:save")
    expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=10_000)

    # The invoke cell again: a second job, held at the gate; the notebook is not saved.
    gate.unlink()
    cell = page.locator(".jp-Cell").nth(1)
    cell.locator(".jp-InputArea-editor").click()
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-cell'); }")
    live = cell.locator(".batchnb-live")
    expect(live.locator(".batchnb-live-status")).to_have_text("Running", timeout=60_000)
    second = BatchClient(lab.workspace).jobs.list(endpoint_name=EP, limit=1)[0]["name"]
    assert second != first
    expect(live).to_contain_text(f"Job {second}")

    page.on("dialog", lambda dialog: dialog.accept())  # "leave the page with unsaved changes?": yes
    # Reloaded while it runs: the cell shows the second job live (not the first job's summary) ...
    _reload(page, idle)
    live = page.locator(".jp-Cell").nth(1).locator(".batchnb-live")
    try:
        expect(live).to_contain_text(f"Job {second}", timeout=30_000)
    finally:
        page.screenshot(path=str(tmp_path / "after-reload-running.png"))
    expect(live.locator(".batchnb-live-status")).to_have_text("Running")
    expect(page.locator(".jp-Cell").nth(1).locator(f".batchnb-card[data-job='{first}']")).to_have_count(0)
    # ... which goes on and ends as its summary.
    gate.touch()
    summary = page.locator(".jp-Cell").nth(1).locator(f".batchnb-card[data-job='{second}'][data-status='Completed']")
    expect(summary).to_have_count(1, timeout=90_000)

    # Reloaded again after it ended, still unsaved: the second job's summary, once.
    _reload(page, idle)
    cards = page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output .batchnb-card")
    expect(cards).to_have_attribute("data-job", second, timeout=30_000)
    expect(cards).to_have_count(1)
    expect(cards).to_have_attribute("data-status", "Completed")
