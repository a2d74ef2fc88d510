"""Local workers are forked from a zygote: one process per pool that imported the data stack (and,
for batchnb's MLflow driver, loaded the model) once. Real processes, real SIGKILLs."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

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
              "omp": os.environ.get("OMP_NUM_THREADS"), "purge": os.environ.get("MIMALLOC_PURGE_DELAY")}
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
    """The zygote's log: beside its agent's (its compute's), not in one job's folder."""
    workspace = Path(job["logs_dir"]).parents[2]
    return workspace / "agents" / "local" / "stdout" / "zygote.stdout.txt"


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
    assert parent != supervisor, "the workers are the agent's own children, not the zygote's"
    # The zygote says what it imported; the workers found pandas imported before their script was.
    log = _zygote_log(job).read_text()
    assert f"zygote {parent}: imported batchnb.engine.worker, pandas, pyarrow.parquet" in log
    assert all(r["pandas"] for r in records)
    # The thread and memory settings reach forked workers too: the cores shared among the 2 workers.
    assert {r["omp"] for r in records} == {str(max(1, (os.cpu_count() or 1) // 2))}
    assert {r["purge"] for r in records} == {"-1"}  # as scoring-script.md says: Arrow keeps what it frees
    # The agent exited with the job (no idle time), and its zygote with it, record and all.
    wait_until(lambda: not psutil.pid_exists(parent), 30, "the zygote to exit after its agent")
    assert not list((client.workspace.root / "run").iterdir())


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
    # A new worker in place of the killed one, forked from the same zygote.
    assert {r["pid"] for r in records} - before, "no new worker scored after the kill"
    assert {r["ppid"] for r in records} == {first["ppid"]}
    assert _zygote_log(job).read_text().count("imported") == 1


def test_a_killed_agent_s_workers_end_and_its_zygote_is_adopted_by_the_next_agent(client, deploy, csv_inputs, tmp_path):
    trace = tmp_path / "trace.jsonl"
    job, first = _started(client, deploy, csv_inputs(8), trace, sleep=1)
    agent = psutil.Process(supervisor_pid(client, job["name"]))
    the_zygote = psutil.Process(first["ppid"])
    workers = the_zygote.children()
    assert the_zygote.ppid() == agent.pid and workers
    # What the zygote keeps on disk (where the next agent finds it) is private to the user who runs jobs.
    run = client.workspace.root / "run"
    assert _mode(run) == 0o700
    assert [(f.name, _mode(f)) for f in run.iterdir()] == [("zygote-local.json", 0o600)]

    agent.kill()
    _, alive = psutil.wait_procs([agent, *workers], timeout=10)
    assert not alive, f"still alive after the agent was killed: {[p.pid for p in alive]}"
    assert the_zygote.is_running(), "the zygote waits for the compute's next agent"
    wait_until(lambda: client.jobs.get(job["name"])["status"] == "Interrupted", 15, "the job to read Interrupted")
    scored = len(_records(trace))

    client.computes.start("local")
    wait_until(lambda: len(_records(trace)) > scored, 60, "a file scored by the next agent's workers")
    shown = client.computes.show("local")["agent"]  # its workers, though the zygote is not its child
    assert shown is not None and shown["workers"] >= 1, shown
    ended = client.jobs.wait(job["name"], timeout=120)
    assert ended["status"] == "Completed", ended["error"]
    assert sorted(lines(output_file(ended))) == [f"f{i:03d}.csv" for i in range(8)]
    # The next agent's workers were forked by the same zygote, which imported the data stack once.
    after = _records(trace)[scored:]
    assert after and {r["ppid"] for r in after} == {the_zygote.pid}
    assert _zygote_log(job).read_text().count("imported") == 1
    # That agent exits once idle, and stops its zygote.
    the_zygote.wait(60)
    assert not list(run.iterdir()), "the zygote left its record behind"


def _agent_killed(client, deploy, data: Path, trace: Path) -> tuple[object, psutil.Process]:
    """A job started on ``data`` whose agent is SIGKILLed once it has scored a file: the job, and
    the zygote its workers were forked from."""
    job, first = _started(client, deploy, data, trace, sleep=1)
    agent = psutil.Process(supervisor_pid(client, job["name"]))
    the_zygote = psutil.Process(first["ppid"])
    agent.kill()
    agent.wait(10)
    return job, the_zygote


def test_compute_stop_ends_the_zygote_a_killed_agent_left(client, deploy, csv_inputs, tmp_path):
    job, the_zygote = _agent_killed(client, deploy, csv_inputs(8), tmp_path / "trace.jsonl")
    assert the_zygote.is_running()

    stopped = client.computes.stop("local")
    assert stopped["stopping"] is True
    the_zygote.wait(10)
    assert client.computes.stop("local")["stopping"] is False  # nothing is left to stop
    assert not list((client.workspace.root / "run").iterdir())
    assert client.jobs.get(job["name"])["status"] == "Interrupted"


def test_worker_start_spawn_gives_clean_interpreters(client, deploy, csv_inputs, tmp_path, monkeypatch):
    """``BATCHNB_WORKER_START=spawn``: no zygote; each worker is the agent's own child."""
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
    from batchnb.compute import preload

    (tmp_path / "score.py").write_text(
        "import os, numpy as np\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from . import helpers\n"
        "try:\n    import torch\nexcept ImportError:\n    import pandas.api.types\n"
        "if os.environ.get('X'):\n    import scipy.stats\n"
        "def init():\n    import skops.io\n"
    )
    spec = {"code_dir": str(tmp_path), "scoring_script": "score.py"}
    assert preload.preload_for(spec) == (
        "batchnb.engine.worker",
        "pandas",
        "pyarrow.parquet",
        "numpy",
        "sklearn.ensemble",
        "pandas.api.types",
        "scipy.stats",
    )
    # torch is not known to be safe to fork after importing; skops is imported inside init() only.
    (tmp_path / "broken.py").write_text("import numpy\ndef init(:\n")
    assert preload.preload_for({**spec, "scoring_script": "broken.py"})[3:] == ()


def test_the_zygote_imports_what_loading_an_mlflow_model_imports_read_from_its_files(tmp_path):
    # A deployment whose scoring script loads its MLflow model: the zygote imports the flavor's
    # loader and the model's classes, named in MLmodel and in the model file (never unpickled).
    import mlflow.sklearn
    import numpy as np
    import skops.io
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression

    from batchnb.compute import preload

    x = np.arange(20, dtype=float).reshape(10, 2)
    forest = RandomForestRegressor(n_estimators=2, max_depth=2, random_state=0).fit(x, x[:, 0])
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(forest))
    models = tmp_path / "model"  # AZUREML_MODEL_DIR: the model sits in a sub-folder of it
    mlflow.sklearn.save_model(
        forest, models / "forest", serialization_format="skops", skops_trusted_types=trusted, pip_requirements=[]
    )
    (tmp_path / "score.py").write_text("import mlflow\ndef init():\n    pass\n")
    spec = {"code_dir": str(tmp_path), "scoring_script": "score.py", "model_dir": str(models)}
    loaded = preload.preload_for(spec)
    assert loaded[3:6] == ("mlflow", "mlflow.pyfunc", "mlflow.sklearn")
    assert {"skops.io", "sklearn.ensemble._forest", "sklearn.tree._classes"} <= set(loaded)

    pickled = tmp_path / "pickled"
    logistic = LogisticRegression().fit(x, [0, 1] * 5)
    mlflow.sklearn.save_model(logistic, pickled, serialization_format="cloudpickle", pip_requirements=[])
    assert "sklearn.linear_model._logistic" in preload.model_imports(pickled)
    # Without mlflow in the script, the model is not what it loads; a folder without MLmodel says nothing.
    (tmp_path / "plain.py").write_text("import numpy\ndef init():\n    pass\n")
    assert preload.preload_for({**spec, "scoring_script": "plain.py"})[3:] == ("numpy",)
    (tmp_path / "empty").mkdir()
    assert preload.model_imports(tmp_path / "empty") == []


def test_a_zygote_left_by_other_code_is_stopped_not_adopted(client, deploy, csv_inputs, tmp_path):
    trace = tmp_path / "trace.jsonl"
    job, the_zygote = _agent_killed(client, deploy, csv_inputs(6), trace)
    # As if batchnb had been upgraded since that zygote started: its workers would run the old code.
    record = client.workspace.root / "run" / "zygote-local.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "code": "an older batchnb"}))
    scored = len(_records(trace))

    client.computes.start("local")
    ended = client.jobs.wait(job["name"], timeout=120)
    assert ended["status"] == "Completed", ended["error"]
    the_zygote.wait(10)  # stopped by the next agent
    after = _records(trace)[scored:]
    assert after and the_zygote.pid not in {r["ppid"] for r in after}


def test_the_socket_folder_of_a_killed_zygote_is_removed_by_the_next_start(client, deploy, csv_inputs, tmp_path):
    job, the_zygote = _agent_killed(client, deploy, csv_inputs(4), tmp_path / "trace.jsonl")
    record = client.workspace.root / "run" / "zygote-local.json"
    folder = Path(json.loads(record.read_text())["address"]).parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # only the user who runs jobs can reach it
    the_zygote.kill()  # SIGKILL: it removes nothing itself
    the_zygote.wait(10)

    client.computes.start("local")
    ended = client.jobs.wait(job["name"], timeout=120)
    assert ended["status"] == "Completed", ended["error"]
    assert not folder.exists()
