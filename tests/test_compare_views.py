"""A comparison of two deployments as the notebook shows it: the live widget (each job's progress,
then the report in its place), the static report (the charts as inline SVG, the disagreement table),
and a notebook executed headless, whose saved output is the static report, once.

The deployments "blue" and "green" run the same scoring script, except that green shifts the label
and adds 0.25 to the score of the rows x=4 and x=7: exactly those rows disagree.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from engine_helpers import reaping
from test_scoring_loop import PER_FILE

from batchnb.comparison_display import comparison_html
from batchnb.widgets.compare import ComparisonProgress

DIFFERING = {("f004.csv", "label"), ("f004.csv", "score"), ("f007.csv", "label"), ("f007.csv", "score")}


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


@pytest.fixture
def two(deploy, csv_inputs, tmp_path: Path) -> Path:
    """blue and green on ep-test (green differs on x=4 and x=7), and an input of 10 files."""
    env = {"CALLS": str(tmp_path / "calls.txt")}
    deploy(PER_FILE, name="blue", environment_variables=env, output_file_name="out.parquet", mini_batch_size=2)
    deploy(
        PER_FILE,
        name="green",
        environment_variables={**env, "LABEL_SHIFT": "4,7"},
        output_file_name="out.parquet",
        mini_batch_size=3,
    )
    return csv_inputs(10)


def _report_checks(card: str) -> None:
    """What the report must show: the disagreement rows exactly, and well-formed charts with axes."""
    soup = BeautifulSoup(card, "html.parser")
    rows = soup.select("table.batchnb-comparison-disagreements tr[data-column]")
    assert {(Path(str(r["data-source-file"])).name, r["data-column"]) for r in rows} == DIFFERING
    score = next(r for r in rows if r["data-column"] == "score" and "f004" in str(r["data-source-file"]))
    assert [td.get_text() for td in score.find_all("td")][2:] == ["score", "2.0", "2.25"]
    assert soup.select_one("table.batchnb-comparison-columns tr[data-column='score']").get_text("|").split("|") == [
        "score",
        "80.0%",
        "0.05",
        "0.25",
    ]
    svgs = {s["data-chart"]: s for s in soup.select("svg.batchnb-comparison-chart")}
    assert set(svgs) == {"histogram", "pairs", "throughput"}
    for svg in svgs.values():  # inline SVG that stands alone (no script, no external reference)
        ET.fromstring(str(svg))
        assert not svg.find_all(["script", "image", "use"])
    histogram = svgs["histogram"]
    # The two differing rows, both 0.25 apart: in the last bin; the axes say what and in which units.
    assert [int(str(r["data-rows"])) for r in histogram.select("rect[data-rows]")] == [0] * 9 + [2]
    assert "|blue − green| of score (in score's units)" in histogram.get_text()
    assert "rows" in histogram.get_text()
    assert "score: how far apart (8 rows equal)" in card
    pairs = {str(r["data-pair"]): r["class"] for r in svgs["pairs"].select("rect[data-pair]")}
    assert pairs["L1 → L2"] == ["batchnb-comparison-different"]
    assert pairs["L0 → L0"] == ["batchnb-comparison-same"]
    assert soup.select("table.batchnb-comparison-throughput tr[data-deployment]")[1]["data-deployment"] == "green"


def test_the_widget_follows_each_job_and_ends_as_the_report(client, two: Path) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    view = ComparisonProgress(client, "ep-test", ("blue", "green"))
    seen: list[tuple[str, str, str]] = []

    def run(on_job):
        def hook(deployment, job):
            on_job(deployment, job)
            seen.append((deployment, view.counters[deployment].value, view.stage.value))

        return client.batch_endpoints.compare("ep-test", ["blue", "green"], input=str(two), on_job=hook)

    shell = InteractiveShell.instance()
    try:
        with capture_output() as shown:
            result = view.run(run)
        # Its first display (the cell's result) adds nothing: the live display already shows it.
        assert shell.display_formatter.format(result) == ({}, {})
        with capture_output() as again:
            shell.display_formatter.format(result)
    finally:
        InteractiveShell.clear_instance()

    # Each job, as soon as it was invoked: its name on its deployment's line, and what runs now.
    assert [(d, re.search(r"data-job='([^']+)'", c).group(1)) for d, c, _ in seen] == [
        ("blue", result.throughput["blue"]["job"]),
        ("green", result.throughput["green"]["job"]),
    ]
    assert "scoring with green" in seen[1][2]
    assert all("Queued" in counters and "mini-batches" in counters for _, counters, _ in seen)
    # The end: the widget is the report, nothing else, and the display was updated to it.
    (report,) = view.widget.children
    assert report.value == comparison_html(result)
    _report_checks(report.value)
    live, final = shown.outputs
    assert "application/vnd.jupyter.widget-view+json" in live.data
    assert final.update and final.transient["display_id"] == live.transient["display_id"]
    assert final.data["text/html"] == report.value
    assert 'data-agreement="0.8"' in again.outputs[0].data["text/html"]


def test_the_static_report_has_the_charts_and_exactly_the_disagreeing_rows(client, two: Path) -> None:
    result = client.batch_endpoints.compare("ep-test", ["blue", "green"], input=str(two))
    assert result.agreement == 0.8
    _report_checks(result._repr_html_())
    assert result.columns["score"]["histogram"]["zero"] == 8
    assert result.columns["label"]["pairs"][:1] == [{"a": "L0", "b": "L0", "rows": 4}]


def test_an_executed_notebook_keeps_the_static_report_once_and_exports_it_offline(client, two: Path, tmp_path):
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext batchnb"),
        nbformat.v4.new_code_cell(f"%batch compare -n ep-test --deployments blue green --input {two}"),
        nbformat.v4.new_code_cell("_.agreement"),
    ]
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = nb.cells[1].outputs
    assert [o["output_type"] for o in outputs] == ["display_data"], outputs  # one report, no Out[] twice
    assert "application/vnd.jupyter.widget-view+json" not in outputs[0]["data"]
    _report_checks(outputs[0]["data"]["text/html"])
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "0.8"  # _ is the comparison
    exported, _ = HTMLExporter().from_notebook_node(nb)
    page = BeautifulSoup(exported, "html.parser")  # nbconvert re-serializes the output's HTML
    assert len(page.select("svg.batchnb-comparison-chart[data-chart='histogram'] rect[data-rows]")) == 10
    assert len(page.select("table.batchnb-comparison-disagreements tr[data-column]")) == 4
