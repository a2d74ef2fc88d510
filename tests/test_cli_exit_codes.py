"""What a script can trust: exit codes, the last line of stderr, and a stdout that holds only the result.

A job followed with ``job stream`` (or ``invoke --stream``) that does not complete, and a dry run whose
scoring script fails, exit non-zero with the error as the last line, as ``job wait`` does; what a
scoring script prints during a dry run never lands in the command's output."""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from engine_helpers import HOLD, reaping, wait_until
from test_cli import run

from batchnb import BatchClient

FAILS = """
def init():
    pass

def run(mini_batch):
    raise ValueError("this model cannot score " + str(len(mini_batch)) + " files")
"""

CHATTY = """
import os, subprocess, sys

def init():
    print("init: loading the model")
    os.write(1, b"init: a C-level write to fd 1\\n")

def run(mini_batch):
    print("run: scoring", len(mini_batch), "files")
    sys.stdout.write("run: a write to sys.stdout\\n")
    subprocess.run(["echo", "run: a child process"], check=True)
    return [os.path.basename(p) for p in mini_batch]
"""

INIT_FAILS = """
def init():
    print("init: about to fail")
    raise RuntimeError("no model file in AZUREML_MODEL_DIR")

def run(mini_batch):
    return mini_batch
"""


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    with reaping():
        yield


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert lines, (result.returncode, result.stdout)
    return lines[-1]


def test_stream_of_a_failed_job_exits_non_zero_like_wait(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path]
) -> None:
    deploy(FAILS, set_default=True, retry_settings={"max_retries": 1})
    ws = client.workspace.root
    name = run("batch-endpoint", "invoke", "-n", "ep-test", "--input", str(csv_inputs(2)),
               "--query", "name", "-o", "tsv", ws=ws).stdout.strip()  # fmt: skip

    streamed = run("job", "stream", "-n", name, "--query", "status", "-o", "tsv", ws=ws)
    assert streamed.returncode == 6, streamed.stderr
    assert streamed.stdout == "Failed\n"
    assert _last_line(streamed).startswith(f"ERROR: job {name} ended Failed: ")
    waited = run("job", "wait", "-n", name, ws=ws)
    assert (waited.returncode, _last_line(waited)) == (6, _last_line(streamed))

    # The Python API keeps returning the job: the caller decides what Failed means.
    events = io.StringIO()
    assert client.jobs.stream(name, out=events)["status"] == "Failed"
    assert "status Failed" in events.getvalue()


def test_stream_of_a_canceled_job_exits_non_zero(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path], tmp_path: Path
) -> None:
    release = tmp_path / "release"
    deploy(HOLD, set_default=True, environment_variables={"RELEASE": str(release)}, retry_settings={"timeout": 600})
    name = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2)))["name"]
    wait_until(lambda: client.jobs.get(name)["status"] == "Running", 60, "the job to run")
    ws = client.workspace.root
    assert run("job", "cancel", "-n", name, "-o", "none", ws=ws).returncode == 0

    streamed = run("job", "stream", "-n", name, ws=ws)
    assert streamed.returncode == 6, streamed.stderr
    assert json.loads(streamed.stdout)["status"] == "Canceled"
    assert _last_line(streamed).startswith(f"ERROR: job {name} ended Canceled")


def test_wait_past_its_timeout_is_one_error_line_not_an_internal_error(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path], tmp_path: Path
) -> None:
    # It printed "ERROR: internal error: TimeoutError: ..." and exited 1, the code of a bug.
    release = tmp_path / "release"
    deploy(HOLD, set_default=True, environment_variables={"RELEASE": str(release)}, retry_settings={"timeout": 600})
    name = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2)))["name"]
    waited = run("job", "wait", "-n", name, "--timeout", "0.5", ws=client.workspace.root)
    assert waited.returncode == 4, waited.stderr
    assert re.fullmatch(f"ERROR: job {name} is still (Queued|Running) after 0.5 s\n", waited.stderr), waited.stderr
    assert waited.stdout == ""
    # The Python API still raises Python's TimeoutError.
    with pytest.raises(TimeoutError):
        client.jobs.wait(name, timeout=0.1)
    release.touch()
    assert client.jobs.wait(name, timeout=60)["status"] == "Completed"


def test_invoke_stream_of_a_failing_deployment_ends_with_the_error(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path]
) -> None:
    deploy(FAILS, set_default=True, retry_settings={"max_retries": 1})
    result = run("batch-endpoint", "invoke", "-n", "ep-test", "--input", str(csv_inputs(2)), "--stream",
                 "--query", "status", "-o", "tsv", ws=client.workspace.root)  # fmt: skip
    assert result.returncode == 6
    assert result.stdout == "Failed\n"
    assert _last_line(result).startswith("ERROR: job batchjob-") and " ended Failed: " in _last_line(result)


def test_stream_of_a_completed_job_exits_zero(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path], tmp_path: Path
) -> None:
    release = tmp_path / "release"
    release.touch()
    deploy(HOLD, set_default=True, environment_variables={"RELEASE": str(release)})
    name = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2)))["name"]
    streamed = run("job", "stream", "-n", name, ws=client.workspace.root)
    assert streamed.returncode == 0, streamed.stderr
    assert json.loads(streamed.stdout)["status"] == "Completed"
    assert "ERROR" not in streamed.stderr


def test_a_dry_run_keeps_the_scripts_output_off_stdout(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path]
) -> None:
    deploy(CHATTY, set_default=True, mini_batch_size=2)
    ws, data = client.workspace.root, str(csv_inputs(3))
    tsv = run("batch-endpoint", "invoke", "-n", "ep-test", "--input", data, "--dry-run",
              "--query", "{s: status, n: n_results}", "-o", "tsv", ws=ws)  # fmt: skip
    assert tsv.returncode == 0, tsv.stderr
    assert tsv.stdout == "ok\t2\n"
    for printed in ("init: loading the model", "init: a C-level write to fd 1", "run: scoring 2 files",
                    "run: a write to sys.stdout", "run: a child process"):  # fmt: skip
        assert printed in tsv.stderr

    as_json = run("batch-endpoint", "invoke", "-n", "ep-test", "--input", data, "--dry-run", ws=ws)
    assert json.loads(as_json.stdout)["status"] == "ok"


def test_a_failed_dry_run_exits_non_zero_with_the_error_last(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path]
) -> None:
    deploy(INIT_FAILS, set_default=True)
    result = run("batch-endpoint", "invoke", "-n", "ep-test", "--input", str(csv_inputs(2)), "--dry-run",
                 ws=client.workspace.root)  # fmt: skip
    assert result.returncode == 6
    record = json.loads(result.stdout)  # the record, traceback included, and nothing else
    assert (record["status"], record["stage"]) == ("failed", "init")
    assert "RuntimeError: no model file in AZUREML_MODEL_DIR" in record["error"]
    assert "init: about to fail" in result.stderr
    assert _last_line(result) == "ERROR: the dry run failed in init(): RuntimeError: no model file in AZUREML_MODEL_DIR"


def test_the_error_line_of_a_job_whose_init_failed_says_why(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path]
) -> None:
    # It ended at the colon of the error's first line ("... failed in process123:"), the exception
    # left in the traceback below it.
    deploy(INIT_FAILS, set_default=True)
    result = run("batch-endpoint", "invoke", "-n", "ep-test", "--input", str(csv_inputs(2)), "--wait",
                 ws=client.workspace.root)  # fmt: skip
    assert result.returncode == 6
    assert re.fullmatch(
        r"ERROR: job batchjob-\w+ ended Failed: init\(\) of the scoring script failed in process\d+: "
        r"RuntimeError: no model file in AZUREML_MODEL_DIR",
        _last_line(result),
    ), _last_line(result)
