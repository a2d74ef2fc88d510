"""Local workers are forked from a zygote: one process per pool that imported the data stack (and,
for batchnb's MLflow driver, loaded the model) once. Real processes, real SIGKILLs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from engine_helpers import csv_rows, lines, output_file, reaping, supervisor_pid, wait_until

# Logs, per scored file, the scoring process, its parent and what it found in place.
TRACE_SCRIPT = """
import json, os, sys, time
PANDAS_BEFORE_SCRIPT = "pandas" in sys.modules
def init():
    pass
def run(mini_batch):
    time.sleep(float(os.environ.get("SLEEP", "0")))
    record = {"pid": os.getpid(), "ppid": os.getppid(), "pandas": PANDAS_BEFORE_SCRIPT,
              "omp": os.environ.get("OMP_NUM_THREADS")}
    with open(os.environ["TRACE"], "a") as fh:
        fh.write("".join(json.dumps({**record, "file": os.path.basename(f)}) + "\\n" for f in mini_batch))
    return [os.path.basename(f) for f in mini_batch]
"""


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    with reaping():
        yield


def _records(trace: Path) -> list[dict]:
    return [json.loads(line) for line in lines(trace)] if trace.exists() else []


def _started(client, deploy, data: Path, trace: Path, sleep: float) -> tuple[object, dict]:
    """Invoke TRACE_SCRIPT (2 workers, ``sleep`` s per file) on ``data``: the job, and the first
    record once a file is scored."""
    deploy(
        TRACE_SCRIPT,
        mini_batch_size=1,
        max_concurrency_per_instance=2,
        environment_variables={"TRACE": str(trace), "SLEEP": str(sleep)},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(data))
    return job, wait_until(lambda: _records(trace), timeout=60, what="a first scored file")[0]


def _zygote_log(job: dict) -> Path:
    return Path(job["logs_dir"]) / "user" / "stdout" / "zygote.stdout.txt"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_workers_are_forked_from_one_zygote_that_imported_the_data_stack(client, deploy, csv_inputs, tmp_path):
    trace = tmp_path / "trace.jsonl"
    deploy(
        TRACE_SCRIPT,
        mini_batch_size=1,
        max_concurrency_per_instance=2,
        environment_variables={"TRACE": str(trace), "SLEEP": "0.3"},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(6))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert sorted(lines(output_file(job))) == [f"f{i:03d}.csv" for i in range(6)]

    records = _records(trace)
    assert len(records) == 6
    parents = {r["ppid"] for r in records}
    assert len(parents) == 1, f"workers with different parents: {parents}"
    (parent,) = parents
    with client.store.read() as db:
        supervisor = db.execute("SELECT supervisor_pid FROM jobs WHERE name = ?", (job["name"],)).fetchone()[0]
    assert parent != supervisor, "the workers are the supervisor's own children, not the zygote's"
    # The zygote says what it imported; the workers found pandas imported before their script was.
    log = _zygote_log(job).read_text()
    assert f"zygote {parent}: imported batchnb.engine.worker, pandas, pyarrow.parquet" in log
    assert all(r["pandas"] for r in records)
    # The thread settings reach forked workers too: the cores shared among the 2 workers.
    assert {r["omp"] for r in records} == {str(max(1, (os.cpu_count() or 1) // 2))}
    # Its configuration file (it may hold the deployment's environment variables) is gone, and so is
    # its ready file once it has exited after its supervisor.
    run = client.workspace.root / "run"
    assert not list(run.glob("*.json"))
    wait_until(lambda: not list(run.iterdir()), 30, "the zygote's ready file to go")


def test_a_killed_worker_is_replaced_by_a_fork_of_the_same_zygote(client, deploy, csv_inputs, tmp_path):
    trace = tmp_path / "trace.jsonl"
    job, first = _started(client, deploy, csv_inputs(8), trace, sleep=0.5)
    os.kill(first["pid"], signal.SIGKILL)
    before = {r["pid"] for r in _records(trace)}
    job.wait(timeout=120)

    assert job["status"] == "Completed", job["error"]
    assert sorted(lines(output_file(job))) == [f"f{i:03d}.csv" for i in range(8)]
    assert "a worker process died" in (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()
    records = _records(trace)
    # New workers (loky replaces the whole pool after a crash), forked from the same zygote.
    assert {r["pid"] for r in records} - before, "no new worker scored after the kill"
    assert {r["ppid"] for r in records} == {first["ppid"]}
    assert _zygote_log(job).read_text().count("imported") == 1


def test_a_killed_supervisor_takes_its_zygote_and_workers_with_it(client, deploy, csv_inputs, tmp_path):
    trace = tmp_path / "trace.jsonl"
    job, first = _started(client, deploy, csv_inputs(8), trace, sleep=1)
    supervisor = psutil.Process(supervisor_pid(client, job["name"]))
    the_zygote = psutil.Process(first["ppid"])
    workers = the_zygote.children()
    assert the_zygote.ppid() == supervisor.pid and workers
    # While the job runs, what the zygote keeps on disk is private to the user who runs jobs.
    run = client.workspace.root / "run"
    assert _mode(run) == 0o700
    assert [_mode(f) for f in run.iterdir()] == [0o600]  # its ready file; its configuration is gone
    supervisor.kill()
    _, alive = psutil.wait_procs([supervisor, the_zygote, *workers], timeout=10)
    assert not alive, f"still alive after the supervisor was killed: {[p.pid for p in alive]}"
    assert not list(run.iterdir()), "the zygote left its files behind"


def test_worker_start_spawn_gives_clean_interpreters(client, deploy, csv_inputs, tmp_path, monkeypatch):
    """``BATCHNB_WORKER_START=spawn``: no zygote; each worker is the supervisor's own child."""
    monkeypatch.setenv("BATCHNB_WORKER_START", "spawn")
    trace = tmp_path / "trace.jsonl"
    deploy(TRACE_SCRIPT, mini_batch_size=1, max_concurrency_per_instance=2, environment_variables={"TRACE": str(trace)})
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(4))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    with client.store.read() as db:
        supervisor = db.execute("SELECT supervisor_pid FROM jobs WHERE name = ?", (job["name"],)).fetchone()[0]
    assert {r["ppid"] for r in _records(trace)} == {supervisor}
    assert not _zygote_log(job).exists()


def test_an_unknown_worker_start_method_fails_the_job_naming_the_variable(client, deploy, csv_inputs, monkeypatch):
    monkeypatch.setenv("BATCHNB_WORKER_START", "fork")
    deploy(TRACE_SCRIPT, environment_variables={"TRACE": "/dev/null"})
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=120)
    assert job["status"] == "Failed"
    assert "BATCHNB_WORKER_START='fork' is not a worker start method; use one of zygote, spawn" in job["error"]


def test_output_is_the_same_with_either_start_method(client, deploy, csv_inputs, monkeypatch):
    deploy(
        """
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
        """,
        mini_batch_size=2,
        max_concurrency_per_instance=2,
    )
    data = csv_inputs(5)
    outputs = []
    for method in ("zygote", "spawn"):
        monkeypatch.setenv("BATCHNB_WORKER_START", method)
        job = client.batch_endpoints.invoke("ep-test", input=str(data)).wait(timeout=120)
        assert job["status"] == "Completed", job["error"]
        outputs.append(lines(output_file(job)))
    assert outputs[0] == outputs[1] == csv_rows(5)


def test_the_zygote_imports_what_a_scoring_script_imports_of_the_fork_safe_packages(tmp_path):
    from batchnb.compute import standby

    (tmp_path / "score.py").write_text(
        "import os, numpy as np\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from . import helpers\n"
        "try:\n    import torch\nexcept ImportError:\n    import pandas.api.types\n"
        "if os.environ.get('X'):\n    import scipy.stats\n"
        "def init():\n    import skops.io\n"
    )
    spec = {"code_dir": str(tmp_path), "scoring_script": "score.py"}
    assert standby.preload_for(spec) == (
        "pandas",
        "pyarrow.parquet",
        "batchnb.engine.worker",
        "numpy",
        "sklearn.ensemble",
        "pandas.api.types",
        "scipy.stats",
    )
    # torch is not known to be safe to fork after importing; skops is imported inside init() only.
    (tmp_path / "broken.py").write_text("import numpy\ndef init(:\n")
    assert standby.preload_for({**spec, "scoring_script": "broken.py"})[3:] == ()


@pytest.fixture
def secret_deployment(client, csv_inputs) -> SimpleNamespace:
    """An MLflow scikit-learn model deployed for batchnb's own driver (whose ``init()`` runs in the
    zygote, so the zygote's configuration carries the deployment's environment variables), with a
    secret among them; and what a job on ``csv_inputs(4)`` must write."""
    mlflow = pytest.importorskip("mlflow")
    pd = pytest.importorskip("pandas")
    linear = pytest.importorskip("sklearn.linear_model")
    from mlflow.models import infer_signature

    data = csv_inputs(4)
    frame = pd.DataFrame({"x": [0, 1, 2, 3, 5], "y": [1, 0, 4, 2, 3]})
    model = linear.LinearRegression().fit(frame, frame.x * 3 - frame.y)
    folder = data.parent / "model"
    signature = infer_signature(frame, model.predict(frame))
    mlflow.sklearn.save_model(model, folder, serialization_format="pickle", signature=signature, pip_requirements=[])
    client.models.create_or_update({"name": "linear", "path": str(folder), "type": "mlflow_model"})
    client.batch_endpoints.create_or_update({"name": "ep-secret"})
    secret = uuid.uuid4().hex
    settings = {"mini_batch_mode": "tabular", "environment_variables": {"DB_PASSWORD": secret}}
    client.batch_deployments.create_or_update(
        {"name": "blue", "endpoint_name": "ep-secret", "model": "azureml:linear@latest", "settings": settings},
        set_default=True,
    )
    expected = []
    for f in sorted(data.iterdir()):
        rows = pd.read_csv(f)
        expected += [f"{i},{p},{f.name}" for i, p in enumerate(model.predict(rows).astype(str))]
    return SimpleNamespace(secret=secret, data=data, expected=sorted(expected))


def _holding(secret: str, run: Path) -> list[Path]:
    """Files in the workspace's run folder, or directly in the temporary folder (where the zygote's
    configuration used to go), that contain ``secret``."""
    found = []
    for path in (*run.rglob("*"), *Path(tempfile.gettempdir()).iterdir()):
        with contextlib.suppress(OSError):  # another test's file, gone meanwhile
            if path.is_file() and path.stat().st_size < 1 << 20 and secret.encode() in path.read_bytes():
                found.append(path)
    return found


def _finished_without_leaving_the_secret(client, name: str, deployment: SimpleNamespace) -> None:
    """Resume the job killed ``name``: it completes with every row, and once its processes are gone
    nothing in the run folder or the temporary folder holds the deployment's secret."""
    run = client.workspace.root / "run"
    job = wait_until(lambda: client.jobs.get(name)["status"] == "Interrupted", 30, "the job to be Interrupted")
    job = client.jobs.resume(name).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert sorted(lines(output_file(job))) == deployment.expected
    wait_until(lambda: not list(run.iterdir()), 30, "the resumed job's zygote files to go")
    assert _holding(deployment.secret, run) == []


def test_a_zygote_configuration_left_by_a_killed_process_is_swept_by_the_next_start(client, secret_deployment):
    """A supervisor SIGKILLed right after it asked for its zygote, before the zygote could read its
    configuration, leaves it behind (it can clean up nothing): the next start in the workspace
    deletes it. Here the killed process is a real one that wrote a configuration and killed itself."""
    run = client.workspace.root / "run"
    leave = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from batchnb.compute import zygote\n"
        "folder = zygote.run_folder(Path(sys.argv[1]))\n"
        "zygote.write_config(folder, {'preinit': {'environment_variables': {'DB_PASSWORD': sys.argv[2]}}})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", leave, str(client.workspace.root), secret_deployment.secret])
    assert killed.returncode == -signal.SIGKILL
    [left] = _holding(secret_deployment.secret, run)
    assert left.parent == run and _mode(left) == 0o600 and _mode(run) == 0o700

    job = client.batch_endpoints.invoke("ep-secret", input=str(secret_deployment.data)).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert sorted(lines(output_file(job))) == secret_deployment.expected
    wait_until(lambda: not list(run.iterdir()), 30, "the job's zygote files to go")
    assert _holding(secret_deployment.secret, run) == []


@pytest.mark.parametrize("victims", ["the supervisor", "its process group"])
def test_a_supervisor_killed_as_it_starts_its_zygote_leaves_no_secret_behind(client, secret_deployment, victims):
    """SIGKILL the job's supervisor (alone: its zygote starts anyway and reads its configuration;
    or with its process group: the zygote never reads it) the moment the zygote's configuration
    appears. The file is private while it exists, and nothing holds the secret once the job is resumed."""
    run = client.workspace.root / "run"
    job = client.batch_endpoints.invoke("ep-secret", input=str(secret_deployment.data))

    def config() -> os.stat_result | None:
        for path in run.glob("*.json") if run.exists() else ():
            with contextlib.suppress(FileNotFoundError):  # read by the zygote meanwhile
                return path.stat()
        return None

    found = wait_until(config, 60, "the zygote's configuration", interval=0.002)
    pid = supervisor_pid(client, job["name"])
    if victims == "the supervisor":
        os.kill(pid, signal.SIGKILL)
    else:
        os.killpg(pid, signal.SIGKILL)  # the supervisor leads its own session
    assert stat.S_IMODE(found.st_mode) == 0o600 and _mode(run) == 0o700
    _finished_without_leaving_the_secret(client, job["name"], secret_deployment)


def test_a_supervisor_killed_while_its_zygote_imports_leaves_no_file_behind(client, secret_deployment):
    """SIGKILL the job's process group once the zygote is importing (it has read and deleted its
    configuration): its ready file, if it got to make it, is swept by the next start."""
    job = client.batch_endpoints.invoke("ep-secret", input=str(secret_deployment.data))
    wait_until(lambda: _zygote_log(job).exists(), 60, "the zygote to start", interval=0.01)
    os.killpg(supervisor_pid(client, job["name"]), signal.SIGKILL)
    _finished_without_leaving_the_secret(client, job["name"], secret_deployment)
