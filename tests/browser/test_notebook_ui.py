"""In a real JupyterLab (with batchnb's extension, as installed by default) and a real Chromium: the
job's progress widget is seen (a bar of real height, whose filled part grows, a Cancel button inside
the output that can be clicked, readable text in the light and the dark theme), advances while the
kernel is busy running another cell, and is replaced by the final summary when the job ends.

The scoring script waits for a gate file, so the widget is first looked at in a state that does not
change (Running, 0 of 10 mini-batches) and compared with reference screenshots in both themes.
Saves docs/images/progress-widget.png when BATCHNB_UPDATE_SCREENSHOTS=1 (or when it is missing).
"""

from __future__ import annotations

import re
import shutil
import textwrap
import time
from pathlib import Path

import nbformat
from playwright.sync_api import Locator, Page, expect

from batchnb import BatchClient

from .visual import DARK, LIGHT, check_screenshot, low_contrast_text, updating, use_theme

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "progress-widget.png"
JOB = "ui-live"

SCRIPT = """
import os, time
def init():
    pass
def run(mini_batch):
    deadline = time.monotonic() + 300  # the test opens the gate once it has looked at the widget
    while not os.path.exists(os.environ["GATE"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    return [os.path.basename(f) for f in mini_batch]
"""

# The third cell keeps the kernel busy from before the gate opens until well after.
BUSY_CELL = """
import os, time
deadline = time.monotonic() + 300
while not os.path.exists({gate!r}) and time.monotonic() < deadline:
    time.sleep(0.1)
time.sleep(12)
print('slept')
"""


def _setup_endpoint(lab, tmp_path: Path, gate: Path) -> Path:
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
            "settings": {
                "mini_batch_size": 1,
                "max_concurrency_per_instance": 2,
                "retry_settings": {"timeout": 600},  # a mini-batch waits at the gate
                "environment_variables": {"GATE": str(gate)},
            },
        }
    )
    return data


def _notebook(lab, data: Path, gate: Path) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext batchnb"),
        nbformat.v4.new_code_cell(f"job = %batch batch-endpoint invoke -n ep-ui --input {data} --job-name {JOB}\njob"),
        nbformat.v4.new_code_cell(BUSY_CELL.strip().format(gate=str(gate))),
    ]
    nbformat.write(nb, lab.root / "progress.ipynb")
    return "progress.ipynb"


def _box(locator: Locator) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not rendered"
    return box


def _assert_inside(inner: dict[str, float], outer: dict[str, float]) -> None:
    assert outer["x"] <= inner["x"] and inner["x"] + inner["width"] <= outer["x"] + outer["width"], (inner, outer)
    assert outer["y"] <= inner["y"] and inner["y"] + inner["height"] <= outer["y"] + outer["height"], (inner, outer)


def _check_what_is_seen(page: Page, live: Locator, tmp_path: Path, theme: str) -> None:
    """Readable text, and the widget as in the reference screenshot, down to its counters (the
    paths under them vary)."""
    assert low_contrast_text(live) == [], f"text below WCAG AA contrast in {theme}"
    name = f"progress-widget-{theme.split()[-1].lower()}"
    check_screenshot(live, name, tmp_path, down_to=live.locator(".batchnb-live-counters"))


def test_progress_widget_is_seen_and_advances_while_another_cell_runs(lab, page: Page, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    data = _setup_endpoint(lab, tmp_path, gate)
    name = _notebook(lab, data, gate)
    page.set_viewport_size({"width": 1280, "height": 800})
    # ?reset: the default layout (file browser open), whatever an earlier test left.
    page.goto(f"{lab.url}/lab/tree/{name}?reset")
    # The kernel connected (the toolbar's indicator says idle before that, and runs nothing).
    expect(page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\| Idle$"))).to_be_visible(timeout=90_000)
    use_theme(page, LIGHT)
    # Run the three cells (the last one keeps the kernel busy), as Run > Run All Cells does.
    # Not awaited: the command's promise settles only when the last cell has run.
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    try:
        live = page.locator(".batchnb-live")
        expect(live.locator(".batchnb-live-status")).to_have_text("Running", timeout=60_000)
        expect(live.locator(".batchnb-live-counters")).to_contain_text("0/10 mini-batches")
        output = page.locator(".jp-OutputArea-output", has=live)

        # The bar is a bar: of a real height and width, inside the widget and the output (not
        # clipped away: the point at its middle is the bar's), empty at 0 of 10.
        track, fill = live.locator(".widget-hprogress .progress"), live.locator(".widget-hprogress .progress-bar")
        bar, area = _box(track), _box(output)
        assert bar["height"] >= 10 and bar["width"] > 100, bar
        _assert_inside(bar, _box(live))
        _assert_inside(bar, area)
        assert track.evaluate(
            "el => el.contains(document.elementFromPoint(...(r => [r.x + r.width / 2, r.y + r.height / 2])"
            "(el.getBoundingClientRect())))"
        ), "the middle of the bar shows something else"
        assert (fill.bounding_box() or {"width": 0.0})["width"] < 2
        # The Cancel button lies inside the output area, and a click would reach it.
        cancel = _box(live.get_by_role("button", name="Cancel"))
        _assert_inside(cancel, area)
        assert cancel["height"] >= 20 and cancel["width"] >= 60, cancel
        live.get_by_role("button", name="Cancel").click(trial=True)  # visible, enabled, not covered

        _check_what_is_seen(page, live, tmp_path, LIGHT)
        use_theme(page, DARK)
        _check_what_is_seen(page, live, tmp_path, DARK)
        use_theme(page, LIGHT)

        gate.touch()
        seen: list[tuple[int, float]] = []  # (mini-batches finished, filled width in px)
        busy_until = time.monotonic() + 60
        while time.monotonic() < busy_until:
            if page.locator(".jp-OutputArea-output pre:text-is('slept')").count():
                break
            # Read without waiting: the widget is replaced by the summary the moment the job ends.
            state = page.evaluate(
                """() => ({
                    text: document.querySelector('.batchnb-live-counters')?.innerText ?? '',
                    width: document.querySelector('.batchnb-live .progress-bar')?.getBoundingClientRect().width ?? -1,
                })"""
            )
            match = re.match(r"(\d+)/10 mini-batches", state["text"])
            if match and (not seen or int(match.group(1)) != seen[-1][0]):
                seen.append((int(match.group(1)), state["width"]))
                if len(seen) == 3:
                    news = page.get_by_role("alert").get_by_role("button", name="No")
                    if news.count():  # JupyterLab's question about its news, over the notebook
                        news.click()
                        expect(page.get_by_role("alert")).to_have_count(0)
                    page.screenshot(path=str(tmp_path / "progress-running.png"))
            page.wait_for_timeout(250)
        # It moved several times while the third cell was still running (no "slept" yet), never
        # backwards, and the filled part of the bar grew with it.
        counts = [c for c, _ in seen]
        assert len(seen) >= 3 and counts == sorted(counts), seen
        widths = [w for _, w in seen if w >= 0]
        assert widths == sorted(widths) and widths[-1] > widths[0] + 20, seen

        summary = page.locator(f".batchnb-card[data-job='{JOB}'][data-status='Completed']")
        expect(summary).to_be_visible(timeout=60_000)
        expect(summary).to_contain_text("10 done, 0 failed")
        expect(page.locator(".jp-OutputArea-output pre:text-is('slept')")).to_be_visible(timeout=30_000)
        expect(summary.locator("svg.batchnb-chart")).to_be_visible()
        # The summary card, in both themes: readable, and as in its references down to the items
        # (the rate, times, paths and chart below vary from run to run).
        for theme in (LIGHT, DARK):
            use_theme(page, theme)
            summary.screenshot(path=str(tmp_path / f"summary-unmasked-{theme.split()[-1].lower()}.png"))
            assert low_contrast_text(summary) == [], f"summary text below WCAG AA contrast in {theme}"
            name = f"summary-card-{theme.split()[-1].lower()}"
            check_screenshot(summary, name, tmp_path, down_to=summary.locator("tr[data-row='items']"))
    finally:
        use_theme(page, LIGHT)  # the theme is a saved setting: leave the default for the next test
    if updating() or not SCREENSHOT.exists():
        shutil.copyfile(tmp_path / "progress-running.png", SCREENSHOT)
