"""Metrics where Azure shows them: scoring scripts and pipeline steps that log with MLflow log into the
job's run (``MLFLOW_TRACKING_URI`` and ``MLFLOW_RUN_ID`` set for them), and ``job show`` lists them.

Without a configured tracking URI the runs live in the workspace's own store (``<workspace>/mlruns``);
a job whose code never imports mlflow gets no run and no store. Real supervisors, real worker
processes, real MLflow stores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import reaping

from batchnb import BatchClient

mlflow = pytest.importorskip("mlflow")

ROOT = Path(__file__).resolve().parents[1]

LOGGING_SCRIPT = """
import os
import time
from pathlib import Path

import mlflow

MET = Path(os.environ["MET_DIR"])


def init():
    mlflow.log_metric("init_calls", 1)
    mlflow.set_tag("init_pid_" + str(os.getpid()), "init")


def run(mini_batch):
    # Both workers score: each first run() waits (bounded) until the other worker has started one.
    (MET / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(MET.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    mlflow.log_metric("files_seen", len(mini_batch))
    mlflow.log_metric("pid_" + str(os.getpid()), 1)
    return [os.path.basename(p) for p in mini_batch]
"""

QUIET_SCRIPT = """
import os


def init():
    pass


def run(mini_batch):
    return [os.path.basename(p) for p in mini_batch]
"""


@pytest.fixture(autouse=True)
def _no_configured_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As a user who never set a tracking URI; every process the test starts is gone at its end."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    with reaping():
        yield


def _spec(client: BatchClient, name: str) -> dict[str, Any]:
    with client.store.read() as db:
        return json.loads(db.execute("SELECT spec FROM jobs WHERE name = ?", (name,)).fetchone()["spec"])


def _cli(*args: str, workspace: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "batchnb", "--workspace", str(workspace), *args, "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _workspace_client(client: BatchClient) -> Any:
    from mlflow import MlflowClient

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 asks for it to open a file store
    return MlflowClient((client.workspace.root / "mlruns").as_uri())


def test_a_scoring_script_logs_from_init_and_run_in_two_workers_into_the_jobs_run(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[[int], Path], tmp_path: Path
) -> None:
    met = tmp_path / "met"
    met.mkdir()
    deploy(
        LOGGING_SCRIPT,
        endpoint="ep-metrics",
        mini_batch_size=1,
        max_concurrency_per_instance=2,
        environment_variables={"MET_DIR": str(met)},
    )
    job = client.batch_endpoints.invoke("ep-metrics", input=str(csv_inputs(6))).wait(timeout=180)
    assert job["status"] == "Completed", job["error"]

    shown = client.jobs.get(job["name"])
    assert shown["metrics"]["init_calls"] == 1.0 and shown["metrics"]["files_seen"] == 1.0
    assert shown["metrics"]["items_succeeded"] == 6.0  # the supervisor's totals, in the same run
    workers = sorted(k for k in shown["metrics"] if k.startswith("pid_"))
    assert len(workers) == 2, shown["metrics"]  # both workers logged, each into the job's run

    run_id = _spec(client, job["name"])["mlflow_run_id"]
    run = _workspace_client(client).get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == job["name"]
    assert run.data.params["endpoint"] == "ep-metrics" and run.data.params["mini_batch_size"] == "1"
    assert {k.removeprefix("init_") for k in run.data.tags if k.startswith("init_pid_")} == set(workers)
    assert sorted(p.name for p in met.iterdir()) == sorted(k.removeprefix("pid_") for k in workers)
    experiment = _workspace_client(client).get_experiment(run.info.experiment_id)
    assert experiment.name == "ep-metrics"  # named after the endpoint, as on Azure

    result = _cli("job", "show", "-n", job["name"], workspace=client.workspace.root)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["metrics"]["init_calls"] == 1.0
    listed = _cli("job", "list", workspace=client.workspace.root)
    assert listed.returncode == 0, listed.stderr
    assert "metrics" not in json.loads(listed.stdout)[0]  # job list reads no MLflow store


INIT_LOGGING_SCRIPT = """
import os

import mlflow


def init():
    mlflow.log_metric("init_calls", 1)


def run(mini_batch):
    return [os.path.basename(p) for p in mini_batch]
"""


def test_jobs_on_a_warm_compute_each_log_into_their_own_run_and_compute_show_counts_only_workers(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[[int], Path]
) -> None:
    client.computes.create_or_update({"name": "warm", "type": "amlcompute", "idle_time_before_scale_down": 120})
    settings = {"mini_batch_size": 1, "max_concurrency_per_instance": 2}
    deploy(INIT_LOGGING_SCRIPT, endpoint="ep-warm", compute="warm", set_default=True, **settings)
    runs, inputs = [], csv_inputs(4)
    for _ in range(2):
        job = client.batch_endpoints.invoke("ep-warm", input=str(inputs)).wait(timeout=180)
        assert job["status"] == "Completed", job["error"]
        runs.append(_spec(client, job["name"])["mlflow_run_id"])
        # The agent keeps its two workers; the process it makes MLflow calls in is not one of them.
        assert client.computes.show("warm")["agent"]["workers"] == 2
    tracker = _workspace_client(client)
    assert len(set(runs)) == 2
    for run_id in runs:
        run = tracker.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.params["deployment"] == "blue"
        assert run.data.metrics["init_calls"] == 1.0 and run.data.metrics["items_succeeded"] == 4.0
    client.computes.stop("warm")


RESUMED_SCRIPT = """
import os
import time
from pathlib import Path

import mlflow

MARKS = Path(os.environ["MARKS"])


def init():
    mlflow.log_metric("init_calls", 1)


def run(mini_batch):
    # The first agent's worker holds its first mini-batch until the test has killed that agent.
    (MARKS / "started").touch()
    deadline = time.monotonic() + 60
    while not (MARKS / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return [os.path.basename(p) for p in mini_batch]
"""


def test_a_job_resumed_after_its_agent_was_killed_logs_into_the_same_run_and_ends_it(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[[int], Path], tmp_path: Path
) -> None:
    import psutil
    from engine_helpers import supervisor_pid, wait_until

    marks = tmp_path / "marks"
    marks.mkdir()
    deploy(RESUMED_SCRIPT, endpoint="ep-resumed", mini_batch_size=1, environment_variables={"MARKS": str(marks)})
    name = client.batch_endpoints.invoke("ep-resumed", input=str(csv_inputs(3)))["name"]
    wait_until(lambda: (marks / "started").exists(), 120, "the first mini-batch to start")
    run_id = wait_until(lambda: _spec(client, name).get("mlflow_run_id"), 60, "the job's run")
    agent = psutil.Process(supervisor_pid(client, name))
    agent.kill()  # SIGKILL: its worker dies with it, the run is left open
    agent.wait(10)
    wait_until(lambda: client.jobs.get(name)["status"] == "Interrupted", 15, "the job to read Interrupted")

    (marks / "go").touch()
    client.computes.start("local")
    job = client.jobs.wait(name, timeout=180)
    assert job["status"] == "Completed", job["error"]
    assert _spec(client, name)["mlflow_run_id"] == run_id  # reopened, not replaced
    tracker = _workspace_client(client)
    assert tracker.get_run(run_id).info.status == "FINISHED"
    # One init() before the kill and one after: the resumed job's worker logged into the same run.
    assert [m.value for m in tracker.get_metric_history(run_id, "init_calls")] == [1.0, 1.0]
    assert tracker.get_run(run_id).data.metrics["items_succeeded"] == 3.0


def test_a_job_whose_script_never_imports_mlflow_has_no_run_and_no_store(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[[int], Path]
) -> None:
    deploy(QUIET_SCRIPT, endpoint="ep-quiet", mini_batch_size=2)
    job = client.batch_endpoints.invoke("ep-quiet", input=str(csv_inputs(3))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert client.jobs.get(job["name"])["metrics"] == {}
    spec = _spec(client, job["name"])
    assert spec["mlflow_tracking_uri"] is None and "mlflow_run_id" not in spec
    assert not (client.workspace.root / "mlruns").exists()
    assert "mlflow" not in (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text().lower()
    stderr = Path(job["logs_dir"]) / "user" / "stderr"
    assert all("MLFLOW" not in p.read_text() for p in stderr.iterdir())


def test_a_pipeline_step_logs_into_its_own_child_run_in_the_workspace_store(
    client: BatchClient, tmp_path: Path
) -> None:
    code = tmp_path / "train-src"
    code.mkdir()
    (code / "train.py").write_text(
        "import sys\n\nimport mlflow\n\n"
        "mlflow.log_metric('loss', 0.5, step=0)\nmlflow.log_metric('loss', float(sys.argv[1]), step=1)\n"
    )
    spec = {
        "type": "pipeline",
        "jobs": {
            "train": {
                "component": {
                    "code": str(code),
                    "command": "python train.py ${{inputs.lr}}",
                    "inputs": {"lr": {"type": "number"}},
                },
                "inputs": {"lr": 0.25},
            },
            "report": {"component": {"command": "echo done"}},
        },
    }
    job = client.jobs.create_or_update(spec).wait(timeout=180)
    assert job["status"] == "Completed", job["error"]

    steps = {s["name"]: s for s in job["steps"]}
    assert steps["train"]["metrics"] == {"loss": 0.25}
    assert steps["report"]["metrics"] == {}
    assert client.jobs.get(steps["train"]["job_name"])["metrics"] == {"loss": 0.25}  # the step job itself
    step_spec = _spec(client, steps["train"]["job_name"])
    wd = Path(step_spec["job_dir"]) / "wd"
    assert (wd / "train.py").exists() and not (wd / "mlflow.db").exists() and not (wd / "mlruns").exists()

    tracker = _workspace_client(client)
    run = tracker.get_run(step_spec["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "train"
    assert [m.value for m in tracker.get_metric_history(run.info.run_id, "loss")] == [0.5, 0.25]
    pipeline_run = _spec(client, job["name"])["mlflow_run_id"]
    assert run.data.tags["mlflow.parentRunId"] == pipeline_run
    assert tracker.get_run(pipeline_run).info.status == "FINISHED"

    shown = _cli("job", "show", "-n", job["name"], workspace=client.workspace.root)
    assert shown.returncode == 0, shown.stderr
    assert {s["name"]: s["metrics"] for s in json.loads(shown.stdout)["steps"]} == {
        "train": {"loss": 0.25},
        "report": {},
    }


def test_a_pipeline_whose_steps_never_use_mlflow_has_no_runs_and_no_store(client: BatchClient) -> None:
    spec = {"type": "pipeline", "jobs": {"hello": {"component": {"command": "echo hello"}}}}
    job = client.jobs.create_or_update(spec).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert job["metrics"] == {} and job["steps"][0]["metrics"] == {}
    assert _spec(client, job["name"])["mlflow_tracking_uri"] is None
    assert "mlflow_run_id" not in _spec(client, job["steps"][0]["job_name"])
    assert not (client.workspace.root / "mlruns").exists()
    assert "mlflow" not in (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text().lower()
    step_log = Path(client.jobs.get(job["steps"][0]["job_name"])["std_log"]).read_text()
    assert step_log.splitlines()[-1] == "hello"


def test_a_resumed_pipeline_keeps_its_run_and_a_rerun_step_logs_into_a_new_child_run(
    client: BatchClient, tmp_path: Path
) -> None:
    import psutil
    from engine_helpers import supervisor_pid, wait_until

    code = tmp_path / "src"
    code.mkdir()
    (code / "first.py").write_text("import mlflow\n\nmlflow.log_metric('a', 1)\n")
    (code / "second.py").write_text(
        "import pathlib, sys, time\n\nimport mlflow\n\n"
        "mlflow.log_metric('b', 1, step=0)\n"
        "marks = pathlib.Path(sys.argv[1])\n"
        "(marks / 'started').touch()\n"
        "deadline = time.monotonic() + 60\n"
        "while not (marks / 'go').exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "mlflow.log_metric('b', 2, step=1)\n"
    )
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = {
        "type": "pipeline",
        "jobs": {
            "first": {"component": {"code": str(code), "command": "python first.py"}},
            "second": {"component": {"code": str(code), "command": f"python second.py {marks}"}},
        },
    }
    name = client.jobs.create_or_update(spec)["name"]
    wait_until(lambda: (marks / "started").exists(), 120, "the second step to start")
    lost_run = _spec(client, f"{name}-second")["mlflow_run_id"]
    runner = psutil.Process(supervisor_pid(client, name))
    runner.kill()  # SIGKILL: the step dies with it, its run left open
    runner.wait(10)
    wait_until(lambda: client.jobs.get(name)["status"] == "Interrupted", 15, "the pipeline to read Interrupted")
    pipeline_run = _spec(client, name)["mlflow_run_id"]

    (marks / "started").unlink()
    (marks / "go").touch()
    client.jobs.resume(name)
    job = client.jobs.wait(name, timeout=180)
    assert job["status"] == "Completed", job["error"]

    assert {s["name"]: s["metrics"] for s in job["steps"]} == {"first": {"a": 1.0}, "second": {"b": 2.0}}
    assert _spec(client, name)["mlflow_run_id"] == pipeline_run  # reopened, not replaced
    tracker = _workspace_client(client)
    assert tracker.get_run(pipeline_run).info.status == "FINISHED"
    assert tracker.get_run(lost_run).info.status == "KILLED"
    rerun = tracker.get_run(_spec(client, f"{name}-second")["mlflow_run_id"])
    assert rerun.info.run_id != lost_run and rerun.info.status == "FINISHED"
    assert rerun.data.tags["mlflow.parentRunId"] == pipeline_run
