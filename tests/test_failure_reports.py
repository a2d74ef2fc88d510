"""Failed items and the per-worker timeline where a user looks at a finished job (issues 20 and 25):
the summary card (``job_html``, which the widget becomes) and an nbconvert HTML report, with real
jobs whose scoring script fails on chosen files on purpose.

What a reader sees is read back from the HTML: the failed items table lists exactly those files,
each with its traceback in a ``<details>`` element; the timeline draws one row per worker process
and one bar per mini-batch attempt, as the store recorded them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from bs4 import BeautifulSoup, Tag
from engine_helpers import reaping

from batchnb import BatchClient, display, display_details

# A file whose content is "bad" fails (its error text has markup in it: the card must escape it).
SCRIPT = """
import time
from pathlib import Path

def init():
    pass

def run(mini_batch):
    time.sleep(0.05)
    for path in mini_batch:
        if Path(path).read_text().strip() == "bad":
            raise ValueError(f"cannot score <{Path(path).name}>")
    return [Path(p).name for p in mini_batch]
"""


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


def _inputs(folder: Path, n: int, bad: set[int]) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"f{i:03d}.txt").write_text("bad" if i in bad else str(i))
    return folder


@pytest.fixture
def failing(deploy: Callable[..., dict]) -> dict:
    """SCRIPT as ep-test/blue: mini-batches of 2 on 2 workers, 2 attempts each, no error threshold."""
    return deploy(
        SCRIPT,
        mini_batch_size=2,
        max_concurrency_per_instance=2,
        error_threshold=-1,
        retry_settings={"max_retries": 2, "timeout": 60},
    )


def _card(html: str) -> Tag:
    cards = BeautifulSoup(html, "html.parser").select("div.batchnb-card[data-job]")
    assert len(cards) == 1, html[:2000]
    return cards[0]


def _failed_rows(card: Tag) -> list[tuple[str, str, str]]:
    """(item file name, the error as shown, the traceback inside its <details>) of each row."""
    rows = []
    for tr in card.select(".batchnb-card-failures tr[data-item]"):
        details = tr.find("details")
        assert details is not None, tr
        rows.append((Path(str(tr["data-item"])).name, details.summary.get_text(), details.pre.get_text()))
    return rows


def _check_timeline(card: Tag, attempts: list[dict[str, Any]]) -> None:
    """One row per worker, in the order of their first attempt; one bar per attempt, with its outcome."""
    svg = card.select_one("svg.batchnb-timeline")
    assert svg is not None
    workers = list(dict.fromkeys(a["worker"] for a in attempts))
    assert [g["data-worker"] for g in svg.select("g.batchnb-timeline-worker")] == workers
    assert svg["data-workers"] == str(len(workers))
    bars = svg.select("rect.batchnb-timeline-bar")
    assert len(bars) == len(attempts)
    assert sorted((b["data-worker"], int(b["data-mini-batch"]), b["data-outcome"]) for b in bars) == sorted(
        (a["worker"], a["mini_batch"], a["outcome"]) for a in attempts
    )
    assert all(float(b["width"]) >= 1 for b in bars)
    assert "seconds since the job started" in svg.get_text()


def test_the_summary_card_lists_the_failed_items_with_tracebacks_and_draws_the_workers(
    client: BatchClient, failing: dict, tmp_path: Path
) -> None:
    data = _inputs(tmp_path / "data", 12, bad={3, 8})
    job = client.batch_endpoints.invoke("ep-test", input=str(data)).wait(timeout=240)
    assert job["status"] == "Completed", job["error"]

    card = _card(job._repr_html_())
    assert card.select_one(".batchnb-card-failures")["data-failed-items"] == "2"
    rows = _failed_rows(card)
    assert [(name, shown) for name, shown, _ in rows] == [
        ("f003.txt", "ValueError: cannot score <f003.txt>"),
        ("f008.txt", "ValueError: cannot score <f008.txt>"),
    ]
    for name, _, trace in rows:
        assert trace.startswith("Traceback (most recent call last):")
        assert trace.rstrip().endswith(f"ValueError: cannot score <{name}>")
    assert "<f003.txt>" not in str(card.select_one(".batchnb-card-failures"))  # escaped, never markup
    assert card.select_one(".batchnb-card-more") is None  # all shown
    # A job failed before the store kept tracebacks: they are read from the workers' error logs.
    kept = [f["traceback_text"] for f in client.jobs.failures(job["name"], tracebacks=True)]
    with client.store.write() as tx:
        tx.execute("UPDATE failed_items SET traceback_text = NULL WHERE job = ?", (job["name"],))
    assert [f["traceback_text"] for f in client.jobs.failures(job["name"], tracebacks=True)] == kept

    attempts = client.jobs.worker_timeline(job["name"])
    _check_timeline(card, attempts)
    # Each failing pair failed twice, was split, and its bad half failed once more (the halves get
    # one attempt each); the rest were scored at the first attempt.
    outcomes = [a["outcome"] for a in attempts]
    assert (outcomes.count("retried"), outcomes.count("failed")) == (4, 2)
    assert outcomes.count("ok") == 6 and len({a["worker"] for a in attempts}) == 2
    assert all(0 <= a["start"] <= a["end"] for a in attempts)


def test_a_card_shows_the_first_failed_items_and_how_to_list_the_rest(
    client: BatchClient, failing: dict, tmp_path: Path
) -> None:
    many = display.FAILURES_SHOWN + 3
    data = _inputs(tmp_path / "data", many + 1, bad=set(range(many)))
    job = client.batch_endpoints.invoke("ep-test", input=str(data)).wait(timeout=240)
    assert job["progress"]["items"]["failed"] == many

    card = _card(job._repr_html_())
    assert card.select_one(".batchnb-card-failures")["data-failed-items"] == str(many)
    names = [name for name, _, _ in _failed_rows(card)]
    assert names == [f"f{i:03d}.txt" for i in range(display.FAILURES_SHOWN)]  # the first, in input order
    more = card.select_one(".batchnb-card-more").get_text()
    assert more == f"3 more failed item(s) not shown; batchnb job failures -n {job['name']} lists them all."


def test_a_timeline_of_many_attempts_draws_the_ones_that_touch_as_one_bar() -> None:
    # 3000 back-to-back attempts of 10 ms on two workers, and one retried in the middle of them.
    attempts = [
        {
            "worker": f"process{i % 2}",
            "mini_batch": i,
            "attempt": 1,
            "items": 1,
            "outcome": "ok",
            "error": None,
            "start": (i // 2) * 0.01,
            "end": (i // 2) * 0.01 + 0.01,
        }
        for i in range(3000)
    ]
    attempts[1500].update(outcome="retried", error="ValueError: x")
    svg = BeautifulSoup(display_details.worker_timeline_svg(attempts), "html.parser").svg
    bars = svg.select("rect.batchnb-timeline-bar")
    assert len(bars) < 10  # a worker's run of ok bars is one, broken only by the retried one
    assert sum(int(b["data-attempts"]) for b in bars) == 3000
    assert [b["data-outcome"] for b in bars if b["data-worker"] == "process0"] == ["ok", "retried", "ok"]


def _report_notebook(folder: Path, data: Path, code: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "%load_ext batchnb\n"
            "from batchnb import BatchClient\n"
            "client = BatchClient()\n"
            f"client.models.create_or_update({{'name': 'tiny', 'path': {str(code)!r}}})\n"
            "client.batch_endpoints.create_or_update({'name': 'ep-report'})\n"
            "client.batch_deployments.create_or_update({'name': 'blue', 'endpoint_name': 'ep-report', "
            "'model': 'azureml:tiny@latest', "
            f"'code_configuration': {{'code': {str(code)!r}, 'scoring_script': 'score.py'}}, "
            "'settings': {'mini_batch_size': 1, 'max_concurrency_per_instance': 2, 'error_threshold': -1, "
            "'retry_settings': {'max_retries': 2, 'timeout': 60}}}, set_default=True);"
        ),
        nbformat.v4.new_code_cell(f"job = %batch batch-endpoint invoke -n ep-report --input {data}\njob"),
        nbformat.v4.new_code_cell("job.wait()\nprint(job.name)"),
    ]
    path = folder / "failures-report.ipynb"
    nbformat.write(nb, path)
    return path


def test_an_nbconvert_report_shows_the_failed_items_and_the_worker_timeline(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(SCRIPT)
    data = _inputs(tmp_path / "data", 6, bad={1, 4})
    notebook = _report_notebook(tmp_path, data, code)
    workspace = tmp_path / "ws"
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute", str(notebook)],
        env={**os.environ, "BATCHNB_WORKSPACE": str(workspace)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    page = BeautifulSoup((tmp_path / "failures-report.html").read_text(), "html.parser")
    for script in page.select('script[type="application/vnd.jupyter.widget-state+json"]'):
        script.decompose()  # the saved widget state is not what a reader sees
    # The cell that showed the job live shows its summary card once it ended.
    cards = page.select("div.batchnb-card[data-job]")
    assert len(cards) == 1 and cards[0]["data-status"] == "Completed"
    rows = _failed_rows(cards[0])
    assert [(name, shown) for name, shown, _ in rows] == [
        ("f001.txt", "ValueError: cannot score <f001.txt>"),
        ("f004.txt", "ValueError: cannot score <f004.txt>"),
    ]
    assert all("Traceback (most recent call last):" in trace for _, _, trace in rows)
    client = BatchClient(workspace)
    _check_timeline(cards[0], client.jobs.worker_timeline(str(cards[0]["data-job"])))
