"""Warm standby supervisors (``batchnb.compute.standby``): a local compute with
``idle_time_before_scale_down`` leaves a warmed supervisor and pool after each job, and the next job
runs on it, with every guarantee of a cold job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_helpers import csv_rows, lines, output_file, reaping

from batchnb.compute import standby

# Records, per worker process, the environment init() saw; echoes the single row of each file.
TRACED = """
import json, os
import pandas as pd
def init():
    with open(os.path.join(os.environ["TRACE"], f"init-{os.getpid()}.json"), "w") as fh:
        json.dump({"tag": os.environ.get("TAG"), "job": os.environ["AZUREML_BI_JOB_NAME"]}, fh)
def run(mini_batch):
    return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
"""


@pytest.fixture
def warm(client) -> Iterator[str]:
    client.computes.create_or_update(
        {"name": "warm-pool", "type": "amlcompute", "max_instances": 1, "idle_time_before_scale_down": 60}
    )
    with reaping():
        try:
            yield "warm-pool"
        finally:
            assert standby.stop_all(client.workspace.root) >= 0
            assert not standby.standbys(client.workspace.root, "warm-pool")


def _inits(trace: Path) -> dict[int, dict[str, str]]:
    return {int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in trace.glob("init-*.json")}


def _deploy_on(client, tmp_path: Path, name: str, compute: str, trace: Path) -> None:
    code = tmp_path / f"code-{name}"
    code.mkdir()
    (code / "score.py").write_text(TRACED)
    client.batch_deployments.create_or_update(
        {
            "name": name,
            "endpoint_name": "ep-test",
            "model": "azureml:tiny@latest",
            "compute": f"azureml:{compute}",
            "code_configuration": {"code": str(code), "scoring_script": "score.py"},
            "settings": {
                "mini_batch_size": 1,
                "max_concurrency_per_instance": 2,
                "environment_variables": {"TRACE": str(trace), "TAG": name},
            },
        }
    )


def test_the_next_job_runs_on_the_warm_standby_without_the_last_ones_state(client, deploy, csv_inputs, tmp_path, warm):
    trace = tmp_path / "trace"
    trace.mkdir()
    deploy(TRACED, set_default=True)  # registers the model and the endpoint
    _deploy_on(client, tmp_path, "blue", warm, trace)
    _deploy_on(client, tmp_path, "green", warm, trace)
    first = client.batch_endpoints.invoke("ep-test", deployment_name="blue", input=str(csv_inputs(4))).wait(timeout=120)
    assert first["status"] == "Completed", first["error"]
    first_workers = set(_inits(trace))
    assert first_workers and all(v["tag"] == "blue" for v in _inits(trace).values())

    assert standby.wait_ready(client.workspace.root, warm, timeout=120), "no standby was left warm"
    [ready] = standby.standbys(client.workspace.root, warm)

    second = client.batch_endpoints.invoke(
        "ep-test", deployment_name="green", input=str(csv_inputs(5, name="more"))
    ).wait(timeout=120)
    assert second["status"] == "Completed", second["error"]
    assert lines(output_file(second)) == csv_rows(5)
    with client.store.read() as db:
        pid = db.execute("SELECT supervisor_pid FROM jobs WHERE name = ?", (second["name"],)).fetchone()[0]
    assert pid == ready["pid"], "the standby did not run the job"
    # Its workers were new processes, and init() saw the green deployment and its own job only.
    second_inits = {p: v for p, v in _inits(trace).items() if p not in first_workers}
    assert second_inits and all(v == {"tag": "green", "job": second["name"]} for v in second_inits.values())
    assert "taking job" in (client.workspace.root / "standby" / warm / "standby.log").read_text()


def test_a_compute_without_idle_time_leaves_no_standby(client, deploy, csv_inputs, tmp_path):
    with reaping():
        deploy(TRACED, set_default=True, environment_variables={"TRACE": str(tmp_path)})
        job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=120)
        assert job["status"] == "Completed", job["error"]
    assert not (client.workspace.root / "standby").exists()
