"""Pipeline jobs in the front ends that show jobs: the static HTML and text renderings, the live
widget, the job table, and ``job stream``'s progress line on a real terminal (a pty).

The pipelines run for real: their steps are shell commands in their own processes.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import reaping

from batchnb import BatchClient


def chain(*names: str, sleep: float = 0.6) -> dict[str, Any]:
    """A pipeline whose steps run one after the other, each writing ``x`` to its output; the last
    one's output is the pipeline's output ``final``."""
    jobs: dict[str, Any] = {}
    for i, name in enumerate(names):
        component: dict[str, Any] = {
            "command": f"sleep {sleep}; echo {name} said hi; echo {name} > ${{{{outputs.o}}}}/x",
            "outputs": {"o": {"type": "uri_folder"}},
        }
        step: dict[str, Any] = {"component": component}
        if i:
            component["inputs"] = {"i": {"type": "uri_folder"}}
            component["command"] = f"cat ${{{{inputs.i}}}}/x > /dev/null; {component['command']}"
            step["inputs"] = {"i": f"${{{{parent.jobs.{names[i - 1]}.outputs.o}}}}"}
        if i == len(names) - 1:
            step["outputs"] = {"o": "${{parent.outputs.final}}"}
        jobs[name] = step
    return {
        "type": "pipeline",
        "display_name": "three in a row",
        "outputs": {"final": {"type": "uri_folder"}},
        "jobs": jobs,
    }


@pytest.fixture
def failed_pipeline(client: BatchClient) -> Any:
    """A finished pipeline job: step ``ok`` Completed, step ``bad`` Failed (exit 3), ``after_bad`` Canceled."""
    spec = {
        "type": "pipeline",
        "settings": {"continue_on_step_failure": True},
        "outputs": {"report": {"type": "uri_folder"}},
        "jobs": {
            "ok": {
                "component": {
                    "command": "echo fine > ${{outputs.o}}/x",
                    "outputs": {"o": {"type": "uri_folder"}},
                },
                "outputs": {"o": "${{parent.outputs.report}}"},
            },
            "bad": {
                "component": {
                    "command": "echo about to fail >&2; exit 3",
                    "outputs": {"o": {"type": "uri_folder"}},
                }
            },
            "after_bad": {
                "component": {"command": "echo ${{inputs.i}}", "inputs": {"i": {"type": "uri_folder"}}},
                "inputs": {"i": "${{parent.jobs.bad.outputs.o}}"},
            },
        },
    }
    with reaping():
        job = client.jobs.create_or_update(spec).wait(timeout=60)
    assert job["status"] == "Failed"
    return job


# --- the static renderings ------------------------------------------------------------------------


def test_pipeline_job_renders_its_steps_outputs_and_error(failed_pipeline: Any) -> None:
    job = failed_pipeline
    html = job._repr_html_()
    assert f'data-job="{job["name"]}" data-type="pipeline" data-status="Failed"' in html
    assert f"Pipeline job {job['name']}" in html
    assert "1/3 steps, 1 failed, 1 canceled" in html
    assert '<tr data-step="ok" data-status="Completed">' in html
    bad_row = re.search(r'<tr data-step="bad" data-status="Failed">(.*?)</tr>', html).group(1)  # type: ignore[union-attr]
    assert "the command ended with exit code 3" in bad_row
    assert "about to fail" not in bad_row  # the first line of the error only; the card shows it whole
    assert "about to fail" in html
    after = re.search(r'<tr data-step="after_bad" data-status="Canceled">(.*?)</tr>', html).group(1)  # type: ignore[union-attr]
    assert "<td>bad</td>" in after  # it runs after bad
    assert "Output report" in html and job["outputs"]["report"]["path"] in html
    assert "mini-batches" not in html

    text = repr(job)
    lines = text.splitlines()
    assert lines[0] == f"Pipeline job {job['name']}: Failed"
    assert "  steps         1/3 steps, 1 failed, 1 canceled" in lines
    assert f"  output report {job['outputs']['report']['path']}" in lines
    bad_line = next(line for line in lines if line.strip().startswith("bad "))
    assert "Failed" in bad_line and "exit code 3" in bad_line
    assert lines[-1].startswith("  error         step bad failed: the command ended with exit code 3")


def test_step_job_renders_its_pipeline_command_and_log(client: BatchClient, failed_pipeline: Any) -> None:
    bad = client.jobs.get(failed_pipeline["steps"][1]["job_name"])
    html = unescape(bad._repr_html_())
    assert f"Step job {bad['name']}" in html and 'data-type="command"' in html
    assert f"{failed_pipeline['name']} (step bad)" in html
    assert "<code>echo about to fail >&2; exit 3</code>" in html
    assert bad["std_log"] in html and bad["std_log"].endswith("user_logs/std_log.txt")
    text = repr(bad)
    assert text.startswith(f"Step job {bad['name']}: Failed")
    assert f"  pipeline job  {failed_pipeline['name']} (step bad)" in text
    assert f"  log           {bad['std_log']}" in text


# --- the live widget and the job table ------------------------------------------------------------


def test_progress_widget_follows_a_pipeline_step_by_step(client: BatchClient) -> None:
    from batchnb.widgets import JobProgress
    from batchnb.widgets.progress import _Summary

    with reaping():
        job = client.jobs.create_or_update(chain("one", "two", "three"))
        view = JobProgress(job)
        assert "Pipeline job" in view.header.value and "three in a row" in view.header.value
        assert view.bar.max == 3
        ended: list[Any] = []
        counters: set[str] = set()
        thread = view.follow(on_end=ended.append)
        deadline = time.monotonic() + 60
        while thread.is_alive() and time.monotonic() < deadline:
            counters.add(re.sub(r"elapsed .*", "", view.counters.value))
            time.sleep(0.05)
    assert ended and ended[0]["status"] == "Completed"
    assert view.bar.value == 3 and view.bar.bar_style == "success"
    # It moved through the steps while the job ran, not only at the end.
    seen = " ".join(counters)
    assert "1/3 steps, 1 running" in seen and "2/3 steps, 1 running" in seen
    assert "3/3 steps" in view.counters.value
    for step in ("one", "two", "three"):
        assert f"data-step='{step}' data-status='Completed'" in view.steps.value
    assert "final: " in view.paths.value and view.cancel_button.disabled
    # The static summary that replaces the widget lists the steps.
    summary = _Summary(ended[0])._repr_html_()
    assert '<tr data-step="three" data-status="Completed">' in summary and "3/3 steps" in summary


def test_cancel_button_of_a_pipeline_cancels_it(client: BatchClient, tmp_path: Path) -> None:
    from batchnb.widgets import JobProgress

    spec = {"type": "pipeline", "jobs": {"long": {"component": {"command": f"touch {tmp_path}/go; sleep 60"}}}}
    with reaping():
        job = client.jobs.create_or_update(spec)
        view = JobProgress(job)
        assert not view.cancel_button.disabled
        view.cancel_button.click()
        job = client.jobs.wait(job["name"], timeout=30)
        step = JobProgress(client.jobs.get(job["steps"][0]["job_name"]))
    assert job["status"] == "Canceled"
    assert "Step job" in step.header.value and f"step long of {job['name']}" in step.header.value
    assert "sleep 60" in step.counters.value and "log: " in step.paths.value
    assert step.cancel_button.disabled  # a step is canceled with its pipeline


def test_job_table_shows_step_counts_of_pipeline_jobs(client: BatchClient) -> None:
    from batchnb.widgets import JobTable

    with reaping():
        job = client.jobs.create_or_update(chain("one", "two", sleep=0.3))
        table = JobTable(client, poll=0.2)
        row = re.search(rf"<tr data-job='{job['name']}' data-type='pipeline'>(.*?)</tr>", table.table.value)
        assert row and "<td>three in a row</td>" in row.group(1)
        client.jobs.wait(job["name"], timeout=60)
        deadline = time.monotonic() + 10
        while ">Completed<" not in table.table.value and time.monotonic() < deadline:
            time.sleep(0.1)
    assert "<td>2/2 steps</td><td>0</td>" in table.table.value


# --- job stream on a terminal ----------------------------------------------------------------------


def stream_on_a_tty(workspace: Path, name: str, timeout: float = 60) -> tuple[int, str, str]:
    """Run ``batchnb job stream -n NAME`` with stderr on a pseudo-terminal; (exit code, stdout, terminal)."""
    master, slave = pty.openpty()
    env = {**os.environ, "BATCHNB_WORKSPACE": str(workspace), "COLUMNS": "160", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchnb", "job", "stream", "-n", name, "--query", "status", "-o", "tsv"],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out = proc.communicate(timeout=10)[0].decode()
    os.close(master)
    return proc.returncode, out, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))


def test_job_stream_shows_a_pipelines_steps_on_a_terminal(client: BatchClient) -> None:
    with reaping():
        job = client.jobs.create_or_update(chain("one", "two", sleep=0.5))
        code, out, terminal = stream_on_a_tty(client.workspace.root, job["name"])
    assert code == 0 and out.strip() == "Completed"
    assert "2/2" in terminal and "steps" in terminal
    assert "running 1" in terminal and "now: one" in terminal  # the line while step one ran
    assert f"step two ({job['name']}-two) Completed" in terminal  # the runner's events
    assert "mini-batches" not in terminal


def test_job_stream_of_a_step_shows_its_command_output(client: BatchClient) -> None:
    with reaping():
        job = client.jobs.create_or_update(chain("one", sleep=0.5))
        step = f"{job['name']}-one"
        code, out, terminal = stream_on_a_tty(client.workspace.root, step)
    assert code == 0 and out.strip() == "Completed"
    assert "one said hi" in terminal
    assert f"step one of {job['name']}" in terminal and "1/1" in terminal
