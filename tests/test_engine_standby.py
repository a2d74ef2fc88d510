"""Warm standby supervisors (``batchnb.compute.standby``): a local compute with
``idle_time_before_scale_down`` leaves a warmed supervisor and pool for the next job, and the next job
runs on it, with every guarantee of a cold job. For an MLflow model deployed without a scoring script
the standby's workers have run init() (loaded the model) for the deployment of the job that spawned it:
a job of that deployment, or that job resumed after a crash, runs no init(); any other gets fresh workers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from engine_helpers import csv_rows, kill_and_reap, lines, output_file, reaping, supervisor_pid, wait_until

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


def test_a_job_ending_after_stop_all_leaves_no_standby_until_the_next_job_is_invoked(
    client, deploy, csv_inputs, tmp_path, warm
):
    root = client.workspace.root
    assert standby.stop_all(root) == 0
    # A supervisor that was ending as stop_all ran: its last step spawns the end-of-job standby.
    standby.spawn(root, dict(client.computes.get(warm)), 1, standby.preload_for({}), job=None, nice=0)
    assert not standby.standbys(root, warm), "a standby started after stop_all"
    assert not list((root / "standby" / warm).glob("*.json"))

    # A job invoked on the compute allows standbys again.
    trace = tmp_path / "trace"
    trace.mkdir()
    deploy(TRACED, set_default=True)
    _deploy_on(client, tmp_path, "blue", warm, trace)
    job = client.batch_endpoints.invoke("ep-test", deployment_name="blue", input=str(csv_inputs(2))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert standby.wait_ready(root, warm, timeout=120), "no standby was left warm"


def test_a_compute_without_idle_time_leaves_no_standby(client, deploy, csv_inputs, tmp_path):
    with reaping():
        deploy(TRACED, set_default=True, environment_variables={"TRACE": str(tmp_path)})
        job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=120)
        assert job["status"] == "Completed", job["error"]
    assert not (client.workspace.root / "standby").exists()


# -- preloaded MLflow models ----------------------------------------------------------------------

# An MLflow model (models from code) that records every load, by process and deployment, and every
# prediction, by process, its parent and the load it used; it holds a mini-batch holding a negative
# x until the GATE file exists. Workers are forked from a zygote that loaded the model: a worker
# that did not load it again predicts with the load of its parent.
TRACED_MODEL = """
import json, os, time
import mlflow
from mlflow.pyfunc import PythonModel


class Traced(PythonModel):
    def load_context(self, context):
        self.loaded_in, self.tag = os.getpid(), os.environ.get("TAG")
        path = os.path.join(os.environ["TRACE"], f"load-{os.getpid()}-{time.time_ns()}.json")
        with open(path, "w") as fh:
            json.dump({"pid": os.getpid(), "tag": self.tag}, fh)

    def predict(self, context, model_input, params=None):
        gate = os.environ.get("GATE")
        while gate and (model_input["x"] < 0).any() and not os.path.exists(gate):
            time.sleep(0.05)
        path = os.path.join(os.environ["TRACE"], f"score-{os.getpid()}-{time.time_ns()}.json")
        with open(path, "w") as fh:
            json.dump({"pid": os.getpid(), "ppid": os.getppid(), "loaded_in": self.loaded_in, "tag": self.tag}, fh)
        return model_input["x"] * 2


mlflow.models.set_model(Traced())
"""


# MLflow asks for type hints on predict(); this model takes any frame.
quiet_mlflow = pytest.mark.filterwarnings("ignore:Add type hints:UserWarning")


@pytest.fixture
def traced_model(client, tmp_path: Path) -> Path:
    mlflow = pytest.importorskip("mlflow")
    source = tmp_path / "traced_model.py"
    source.write_text(TRACED_MODEL)
    folder = tmp_path / "traced"
    mlflow.pyfunc.save_model(str(folder), python_model=str(source), pip_requirements=[])
    client.models.create_or_update({"name": "traced", "path": str(folder), "type": "mlflow_model"})
    client.batch_endpoints.create_or_update({"name": "ep-ml"})
    return folder


def _deploy_model_on(client, name: str, compute: str, trace: Path, **env: str) -> None:
    client.batch_deployments.create_or_update(
        {
            "name": name,
            "endpoint_name": "ep-ml",
            "model": "azureml:traced@latest",
            "compute": f"azureml:{compute}",
            "settings": {
                "mini_batch_size": 1,
                "max_concurrency_per_instance": 2,
                "environment_variables": {"TRACE": str(trace), "TAG": name, **env},
            },
        }
    )


def _loads(trace: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(trace.glob("load-*.json"))]


def _scores(trace: Path, workers: set[int]) -> list[dict[str, object]]:
    """The predictions made by ``workers``: which process's load of the model each one used."""
    found = [json.loads(p.read_text()) for p in sorted(trace.glob("score-*.json"))]
    return [r for r in found if r["pid"] in workers]


def _scored_by(client, job: str) -> set[int]:
    with client.store.read() as db:
        rows = db.execute("SELECT DISTINCT worker FROM minibatches WHERE job = ? AND status = 'done'", (job,))
        return {int(r[0].removeprefix("process")) for r in rows}


def _master_log(job: dict) -> str:
    return (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()


def _blue_job_then_standby(client, csv_inputs, tmp_path: Path, warm: str) -> tuple[Path, dict, dict]:
    """Deployment blue of the traced model on the warm compute, one job of it, and the standby it left."""
    trace = tmp_path / "trace"
    trace.mkdir()
    _deploy_model_on(client, "blue", warm, trace)
    first = client.batch_endpoints.invoke("ep-ml", deployment_name="blue", input=str(csv_inputs(4))).wait(timeout=180)
    assert first["status"] == "Completed", first["error"]
    return trace, first, _ready_standby(client, warm)


def _ready_standby(client, compute: str) -> dict:
    assert standby.wait_ready(client.workspace.root, compute, timeout=180), "no standby became ready"
    [ready] = standby.standbys(client.workspace.root, compute)
    return ready


@quiet_mlflow
def test_a_standby_preloads_the_model_and_a_job_of_that_deployment_runs_no_init(
    client, traced_model, csv_inputs, tmp_path, warm
):
    trace, first, ready = _blue_job_then_standby(client, csv_inputs, tmp_path, warm)
    assert ready["preload_key"] and '"deployment": "blue"' in ready["preload_key"]
    before = _loads(trace)
    # One load by the first job's zygote, one by the standby's: none by a worker.
    assert len(before) == 2 and all(r["tag"] == "blue" for r in before)
    assert not {int(r["pid"]) for r in before} & _scored_by(client, first["name"])

    second = client.batch_endpoints.invoke("ep-ml", deployment_name="blue", input=str(csv_inputs(6, name="more"))).wait(
        timeout=180
    )
    assert second["status"] == "Completed", second["error"]
    assert sorted(lines(output_file(second))) == sorted(f"0,{2 * i},f{i:03d}.csv" for i in range(6))
    assert supervisor_pid(client, second["name"]) == ready["pid"], "the standby did not run the job"
    # The job's workers predicted with the model their parent (the standby's zygote) had loaded
    # before the job was invoked, and loaded nothing themselves.
    workers = _scored_by(client, second["name"])
    scores = _scores(trace, workers)
    assert workers and {r["pid"] for r in scores} == workers
    assert all(r["loaded_in"] == r["ppid"] for r in scores)
    assert {r["loaded_in"] for r in scores} <= {r["pid"] for r in before}
    assert not {int(r["pid"]) for r in _loads(trace)} & workers, "a preloaded worker ran init() again"
    log = _master_log(second)
    assert "init() had already run for this deployment" in log and "init() ran in" not in log


@quiet_mlflow
def test_a_job_of_another_deployment_does_not_get_the_preloaded_workers(
    client, traced_model, csv_inputs, tmp_path, warm
):
    trace, _, ready = _blue_job_then_standby(client, csv_inputs, tmp_path, warm)
    _deploy_model_on(client, "green", warm, trace)
    blue_pids = {int(r["pid"]) for r in _loads(trace)}

    second = client.batch_endpoints.invoke(
        "ep-ml", deployment_name="green", input=str(csv_inputs(3, name="more"))
    ).wait(timeout=180)
    assert second["status"] == "Completed", second["error"]
    assert supervisor_pid(client, second["name"]) == ready["pid"], "the standby did not run the job"
    workers = _scored_by(client, second["name"])
    scores = _scores(trace, workers)
    assert workers and {r["pid"] for r in scores} == workers
    # Every prediction of green's job used a load made for green, in a fresh zygote.
    assert all(r["tag"] == "green" and r["loaded_in"] not in blue_pids for r in scores), scores
    assert all(r["loaded_in"] == r["ppid"] for r in scores)
    assert (
        "another deployment: it gets fresh workers"
        in (client.workspace.root / "standby" / warm / "standby.log").read_text()
    )


@quiet_mlflow
def test_resume_after_a_sigkill_on_a_warm_compute_is_served_by_the_preloaded_standby(
    client, traced_model, csv_inputs, tmp_path, warm
):
    trace = tmp_path / "trace"
    trace.mkdir()
    gate = tmp_path / "gate"
    _deploy_model_on(client, "blue", warm, trace, GATE=str(gate))
    data = csv_inputs(6)
    (data / "f003.csv").write_text("x,y\n-3,-6\n")  # held until the gate opens
    job = client.batch_endpoints.invoke("ep-ml", deployment_name="blue", input=str(data))
    name = job["name"]
    # The standby is spawned when the job starts, and warms up while it runs.
    ready = _ready_standby(client, warm)
    wait_until(lambda: len(_scored_by(client, name)) >= 1, 180, "a mini-batch to be committed")
    wait_until(lambda: _running(client, name), 180, "the held mini-batch to be in flight")
    supervisor = psutil.Process(supervisor_pid(client, name))
    first_workers = [p for p in supervisor.children(recursive=True)]
    assert ready["pid"] not in {p.pid for p in [supervisor, *first_workers]}, "the standby is the job's child"
    kill_and_reap([supervisor])
    psutil.wait_procs(first_workers, timeout=30)  # they follow their supervisor out
    wait_until(lambda: client.jobs.get(name)["status"] == "Interrupted", 60, "the job to read Interrupted")
    preloaded = {int(r["pid"]) for r in _loads(trace)} - {p.pid for p in first_workers}
    assert len(preloaded) == 1  # the standby's zygote: its workers are forked from it

    gate.write_text("open")
    client.jobs.resume(name)
    done = client.jobs.wait(name, timeout=180)
    assert done["status"] == "Completed", done["error"]
    assert supervisor_pid(client, name) == ready["pid"], "the resumed job was not served by the standby"
    resumed_workers = _scored_by(client, name) - {p.pid for p in first_workers}
    scores = _scores(trace, resumed_workers)
    assert resumed_workers and {r["pid"] for r in scores} == resumed_workers
    assert all(r["loaded_in"] == r["ppid"] and r["loaded_in"] in preloaded for r in scores)
    assert not {int(r["pid"]) for r in _loads(trace)} & resumed_workers, "a preloaded worker ran init() again"
    assert sorted(lines(output_file(done))) == sorted(f"0,{-6 if i == 3 else 2 * i},f{i:03d}.csv" for i in range(6))


@pytest.fixture
def spare(client) -> Iterator[str]:
    """A compute that keeps two standbys (``min_instances: 2``)."""
    client.computes.create_or_update(
        {
            "name": "spare-pool",
            "type": "amlcompute",
            "min_instances": 2,
            "max_instances": 2,
            "idle_time_before_scale_down": 60,
        }
    )
    with reaping():
        try:
            yield "spare-pool"
        finally:
            standby.stop_all(client.workspace.root)
            assert not standby.standbys(client.workspace.root, "spare-pool")


@quiet_mlflow
def test_with_two_standbys_a_job_killed_before_the_next_warms_up_resumes_on_the_warm_spare(
    client, traced_model, csv_inputs, tmp_path, spare
):
    """The standby a job spawns as it starts warms up at the lowest priority, so a job killed early
    would find it still loading; a compute with min_instances 2 keeps a second one warm meanwhile."""
    root = client.workspace.root
    trace = tmp_path / "trace"
    trace.mkdir()
    gate = tmp_path / "gate"
    _deploy_model_on(client, "blue", spare, trace, GATE=str(gate))
    first = client.batch_endpoints.invoke("ep-ml", deployment_name="blue", input=str(csv_inputs(2))).wait(timeout=180)
    assert first["status"] == "Completed", first["error"]
    assert standby.wait_ready(root, spare, timeout=180, count=2), "the compute did not keep two warm standbys"
    warm = {int(r["pid"]) for r in standby.standbys(root, spare)}
    assert len(warm) == 2

    data = csv_inputs(6, name="held")
    (data / "f003.csv").write_text("x,y\n-3,-6\n")  # held until the gate opens
    job = client.batch_endpoints.invoke("ep-ml", deployment_name="blue", input=str(data))
    name = job["name"]
    wait_until(lambda: _running(client, name) and len(_scored_by(client, name)) >= 1, 180, "the job to be midway")
    taker = supervisor_pid(client, name)
    assert taker in warm, "a warm standby did not take the job"
    [other] = warm - {taker}
    supervisor = psutil.Process(taker)
    first_workers = supervisor.children(recursive=True)
    kill_and_reap([supervisor])
    psutil.wait_procs(first_workers, timeout=30)
    wait_until(lambda: client.jobs.get(name)["status"] == "Interrupted", 60, "the job to read Interrupted")
    loads_before = set(trace.glob("load-*.json"))

    gate.write_text("open")
    client.jobs.resume(name)
    done = client.jobs.wait(name, timeout=180)
    assert done["status"] == "Completed", done["error"]
    assert supervisor_pid(client, name) == other, "the resumed job was not served by the warm spare"
    # Later loads are the next standbys' warm-ups, never a worker of the resumed job.
    later = {int(json.loads(f.read_text())["pid"]) for f in set(trace.glob("load-*.json")) - loads_before}
    assert not later & _scored_by(client, name), "a worker of the spare loaded the model again"
    assert "init() had already run for this deployment" in _master_log(done)
    assert sorted(lines(output_file(done))) == sorted(f"0,{-6 if i == 3 else 2 * i},f{i:03d}.csv" for i in range(6))
    assert standby.wait_ready(root, spare, timeout=180, count=2), "the compute is not back to two standbys"


def _running(client, name: str) -> bool:
    with client.store.read() as db:
        return bool(db.execute("SELECT 1 FROM minibatches WHERE job = ? AND status = 'running'", (name,)).fetchone())


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="no autogroup scheduling in this kernel")
def test_a_niced_standby_lowers_its_whole_session_not_only_its_processes(tmp_path):
    """With autogroup scheduling, CPU is shared between sessions first; a standby runs in a session of
    its own, so process niceness alone would leave it half the CPU beside a running job."""
    import subprocess
    import sys

    probe = (
        "import json, subprocess, sys\n"
        "from batchnb.compute.standby import _set_priority\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "seen = []\n"
        "for nice in (19, 0):\n"
        "    ok = _set_priority(nice)\n"
        "    group = open('/proc/self/autogroup').read().split()[-1]\n"
        "    seen.append([ok, group, open(f'/proc/{child.pid}/autogroup').read().split()[-1],\n"
        "                 int(open(f'/proc/{child.pid}/stat').read().rsplit(')', 1)[1].split()[16])])\n"
        "child.kill()\n"
        "print(json.dumps(seen))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, start_new_session=True, check=True
    ).stdout
    # [permitted, the session's niceness, as a worker sees it, the worker's own niceness]
    assert json.loads(out) == [[True, "19", "19", 19], [True, "0", "0", 0]]


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="no autogroup scheduling in this kernel")
def test_a_standby_started_niced_is_niced_from_its_first_instruction(tmp_path):
    """Its interpreter's start and imports must not take CPU from the job that spawned it."""
    import sys

    log = tmp_path / "out.txt"
    first = "import os; print(open('/proc/self/autogroup').read().split()[-1], os.nice(0))"
    pid = standby.start_detached([sys.executable, "-c", first], log, tmp_path, nice=19)
    wait_until(lambda: not psutil.pid_exists(pid) and log.read_text(), 30, "the detached process to report")
    assert log.read_text().split() == ["19", "19"]


def test_the_process_started_beside_a_standby_exits_without_importing_the_supervisor(
    client, deploy, csv_inputs, tmp_path
):
    """Invoke and resume always start a supervisor process in case no standby takes the job; when a
    standby did, that process must cost next to nothing beside the job's first mini-batches."""
    import subprocess
    import sys

    deploy(TRACED, set_default=True, environment_variables={"TRACE": str(tmp_path)})
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    probe = (
        "import sys\n"
        "from batchnb.engine import launch\n"
        f"code = launch.main(['--workspace', {str(client.workspace.root)!r}, '--job', {job['name']!r}])\n"
        "print(code, 'batchnb.engine.supervisor' in sys.modules, 'pydantic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["0", "False", "False"]  # not ours to run: exit 0, nothing heavy loaded
