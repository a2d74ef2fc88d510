"""In a real JupyterLab and a real Chromium: the job's progress widget advances while the kernel is
busy running another cell, and is replaced by the final summary when the job ends."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import nbformat
from playwright.sync_api import Page, expect

from batchnb import BatchClient

SCRIPT = """
import os, time
def init():
    pass
def run(mini_batch):
    time.sleep(1.0)
    return [os.path.basename(f) for f in mini_batch]
"""


def _setup_endpoint(lab, tmp_path: Path) -> Path:
    client = BatchClient(lab.workspace)
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.txt").write_text("1")
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(textwrap.dedent(SCRIPT))
    data = tmp_path / "data"
    data.mkdir()
    for i in range(10):
        (data / f"f{i}.txt").write_text(str(i))
    client.models.create_or_update({"name": "ui-model", "path": str(model)})
    client.batch_endpoints.create_or_update({"name": "ep-ui"})
    client.batch_deployments.create_or_update(
        {
            "name": "slow",
            "endpoint_name": "ep-ui",
            "model": "azureml:ui-model@latest",
            "code_configuration": {"code": str(code), "scoring_script": "score.py"},
            "settings": {"mini_batch_size": 1, "max_concurrency_per_instance": 2},
        }
    )
    return data


def _notebook(lab, data: Path) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext batchnb"),
        nbformat.v4.new_code_cell(f"job = %batch batch-endpoint invoke -n ep-ui --input {data}\njob"),
        nbformat.v4.new_code_cell("import time\ntime.sleep(14)\nprint('slept')"),
    ]
    nbformat.write(nb, lab.root / "progress.ipynb")
    return "progress.ipynb"


def test_progress_advances_while_another_cell_runs(lab, page: Page, tmp_path: Path) -> None:
    data = _setup_endpoint(lab, tmp_path)
    name = _notebook(lab, data)
    page.goto(f"{lab.url}/lab/tree/{name}")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    page.wait_for_timeout(1500)
    page.locator(".jp-Cell").first.click()
    for _ in range(3):  # run the three cells: the last one keeps the kernel busy for 14 s
        page.keyboard.press("Shift+Enter")

    counters = page.locator(".batchnb-counters")
    expect(counters).to_be_visible(timeout=30_000)
    seen: list[int] = []
    busy_until = time.monotonic() + 14
    while time.monotonic() < busy_until:
        if page.locator(".jp-OutputArea-output pre:text-is('slept')").count():
            break
        # Read without waiting: the widget is replaced by the summary the moment the job ends.
        text = page.evaluate("() => document.querySelector('.batchnb-counters')?.innerText ?? ''")
        match = re.match(r"(\d+)/10 mini-batches", text)
        if match and (not seen or int(match.group(1)) != seen[-1]):
            seen.append(int(match.group(1)))
            if len(seen) == 3:
                page.screenshot(path=str(tmp_path / "progress-running.png"))
        page.wait_for_timeout(250)
    # It moved several times while the third cell was still running (no "slept" yet), never backwards.
    assert len(seen) >= 3 and seen == sorted(seen), seen

    summary = page.locator(".batchnb-summary[data-status='Completed']")
    expect(summary).to_be_visible(timeout=60_000)
    expect(summary).to_contain_text("10 done, 0 failed")
    expect(page.locator(".jp-OutputArea-output pre:text-is('slept')")).to_be_visible(timeout=30_000)
    page.screenshot(path=str(tmp_path / "progress-done.png"))
