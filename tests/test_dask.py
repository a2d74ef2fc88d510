"""A ``dask`` compute attached to a real Dask cluster that the test starts (``dask scheduler`` and two
``dask worker`` processes with Nannies, on loopback): exact output spread over the workers, every
worker SIGKILLed mid-job, a run() stuck in C code, ``compute check``, and ``compute stop`` leaving
the cluster alone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from dask_helpers import Cluster, dask_cluster
from engine_helpers import lines, output_file, reaping, wait_until

from batchnb import BatchClient

pytest.importorskip("distributed")

SCRIPT = """
import ctypes, os, time
from pathlib import Path
from distributed import get_worker

def init():
    pass

def run(mini_batch):
    markers = Path(os.environ["MARKERS"])
    (markers / f"run-{os.getpid()}").write_text(get_worker().address)
    if os.environ.get("HANG_ONCE") and not (markers / "hung").exists():
        (markers / "hung").write_text(str(os.getpid()))
        ctypes.CDLL(None).sleep(600)  # stuck in C: no Python-level timeout reaches it
    for _ in range(int(float(os.environ.get("SLEEP", "0")) * 20)):
        time.sleep(0.05)
    return [f"{os.path.basename(f)} {get_worker().name}" for f in mini_batch]
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with dask_cluster(tmp_path / "cluster.log") as c:
        yield c


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


def _attach(client: BatchClient, cluster: Cluster, idle: int = 0, **fields: object) -> dict:
    return client.computes.create_or_update(
        {"name": "daskpool", "type": "dask", "address": cluster.address, "idle_time_before_scale_down": idle, **fields}
    )


def _deploy(client: BatchClient, deploy, tmp_path: Path, env: dict | None = None, **settings: object) -> Path:
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    dep = deploy(SCRIPT, environment_variables={"MARKERS": str(markers), **(env or {})}, **settings)
    client.batch_deployments.update(dep["name"], dep["endpoint_name"], ["compute=azureml:daskpool"])
    return markers


def test_a_job_on_an_attached_cluster_scores_exactly_over_its_workers(
    client, deploy, csv_inputs, cluster, tmp_path
) -> None:
    _attach(client, cluster)
    _deploy(client, deploy, tmp_path, env={"SLEEP": "0.3"}, mini_batch_size=1, max_concurrency_per_instance=2)
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(8))).wait(timeout=180)
    assert job["status"] == "Completed", job["error"]
    rows = [line.split() for line in lines(output_file(job))]
    assert [r[0] for r in rows] == [f"f{i:03d}.csv" for i in range(8)]  # one row per input, in order
    assert {r[1] for r in rows} == {"w0", "w1"}  # both workers scored
    log = (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert f"the Dask cluster at {cluster.address} (2 worker(s), 2 thread(s)" in log
    assert "on host 127.0.0.1: 1 thread(s)" in log  # which host each worker is on
    # The dashboard shows the job's tasks under the job's name.
    job_prefix = "batchnb:" + job["name"].replace("-", "_")
    assert job_prefix in cluster.task_prefixes()


def test_compute_check_reports_the_workers(client, cluster) -> None:
    _attach(client, cluster)
    report = client.computes.check("daskpool")
    assert report["ok"] is True, report
    assert [(w["hostname"], w["threads"]) for w in report["hosts"]] == [("127.0.0.1", 1)] * 2
    assert {w["versions"]["batchnb"] for w in report["hosts"]} == {report["local"]["batchnb"]}


def test_compute_check_names_a_package_the_workers_lack(
    client, deploy, csv_inputs, cluster, tmp_path, monkeypatch
) -> None:
    from cli_helpers import error_line, run_cli
    from env_helpers import conda_file, tiny_wheel

    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    tiny_wheel("tinypkg", "1.0", tmp_path / "wheels")  # a package batchnb's environment (the workers') lacks
    conda = conda_file(tmp_path / "env", tmp_path / "wheels", "tinypkg==1.0")
    client.environments.create_or_update({"name": "tiny-env", "conda_file": str(conda)})
    _attach(client, cluster)
    _deploy(client, deploy, tmp_path)
    client.batch_deployments.update("blue", "ep-test", ["environment=azureml:tiny-env:1"])
    data = csv_inputs(1)

    report = client.computes.check("daskpool", endpoint_name="ep-test", input=str(data))
    assert report["ok"] is False
    assert len(report["hosts"]) == 2  # one row per worker
    for row in report["hosts"]:
        assert (row["hostname"], row["threads"], row["python"]) == ("127.0.0.1", 1, report["local"]["python"])
        assert row["memory_limit"] > 0 and row["cpus"] >= 1
        assert {"batchnb", "pandas", "pyarrow", "mlflow"} <= set(row["versions"])
        assert row["environment"] == {
            "name": "tiny-env:1",
            "unmet": ["tinypkg is missing (required: tinypkg==1.0)"],
            "built": False,
        }
        assert row["input"] == {"target": str(data), "reachable": True}
        assert row["error"] == "environment tiny-env:1: tinypkg is missing (required: tinypkg==1.0)"

    # The CLI's table: one row per worker, naming the package; a URL no worker reaches is named too.
    ws = client.workspace.root
    args = ("compute", "check", "-n", "daskpool", "-e", "ep-test", "-d", "blue", "-i", "file:///batchnb/nowhere")
    monkeypatch.setenv("COLUMNS", "300")  # a wide terminal: no cell is cut
    code, out, err = run_cli(*args, "-o", "table", ws=ws)
    error_line((code, "", err), "tinypkg is missing", "cannot reach file:///batchnb/nowhere")
    rows = [line.split() for line in out.splitlines() if line.startswith("tcp://127.0.0.1:")]
    assert len(rows) == 2
    assert all(r[1] == "1" for r in rows)  # threads
    assert all({"missing", "not", "reachable"} <= set(r) for r in rows)


def test_compute_stop_leaves_the_cluster_running(client, deploy, csv_inputs, cluster, tmp_path) -> None:
    _attach(client, cluster, idle=60)
    _deploy(client, deploy, tmp_path)
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=180)
    assert job["status"] == "Completed", job["error"]
    report = client.computes.stop("daskpool")
    assert report["stopped"] and client.computes.show("daskpool")["agent"] is None
    assert cluster.scheduler.poll() is None  # batchnb did not start it, so it did not stop it
    assert cluster.n_workers() == 2


def test_a_cluster_whose_workers_all_die_fails_the_job_after_its_no_workers_timeout(
    client, deploy, csv_inputs, cluster, tmp_path
) -> None:
    _attach(client, cluster, no_workers_timeout=5)
    markers = _deploy(
        client, deploy, tmp_path, env={"SLEEP": "2"}, mini_batch_size=1, retry_settings={"max_retries": 1, "timeout": 3}
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(4)))
    wait_until(lambda: next(iter(markers.glob("run-*")), None), 120, "a worker to start scoring")
    killed_at = time.monotonic()
    cluster.kill_workers()
    job = client.jobs.wait(job["name"], timeout=240)  # bounded: never Running for ever
    assert job["status"] == "Failed"
    assert f"the Dask cluster at {cluster.address} has had no workers for 5 s" in job["error"]
    assert time.monotonic() - killed_at >= 5  # it waited for workers that long first
    assert cluster.scheduler.poll() is None


def test_workers_lost_between_jobs_are_reported_in_the_next_jobs_log(
    client, deploy, csv_inputs, cluster, tmp_path
) -> None:
    _attach(client, cluster, idle=60)
    _deploy(client, deploy, tmp_path)
    first = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=180)
    assert first["status"] == "Completed", first["error"]
    cluster.kill_workers([1])
    wait_until(lambda: cluster.n_workers() == 1, 30, "the scheduler to see the loss")
    second = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2, name="more"))).wait(timeout=180)
    assert second["status"] == "Completed", second["error"]
    log = (Path(second["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert "1 worker(s) lost since the last job (w1 on host 127.0.0.1)" in log
    assert "the job runs on 1 worker(s)" in log
    client.computes.stop("daskpool")


def test_a_run_stuck_in_c_code_gets_its_worker_restarted_and_is_retried(
    client, deploy, csv_inputs, cluster, tmp_path
) -> None:
    _attach(client, cluster)
    markers = _deploy(
        client,
        deploy,
        tmp_path,
        env={"HANG_ONCE": "1"},
        mini_batch_size=1,
        retry_settings={"max_retries": 2, "timeout": 2},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(3))).wait(timeout=240)
    assert job["status"] == "Completed", job["error"]
    assert [line.split()[0] for line in lines(output_file(job))] == [f"f{i:03d}.csv" for i in range(3)]
    hung = int((markers / "hung").read_text())
    wait_until(lambda: not psutil.pid_exists(hung), 60, "the hung worker process to be replaced")
    log = (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert "through its Nanny" in log
    wait_until(lambda: cluster.n_workers() == 2, 60, "the restarted worker to rejoin")
    # Dask's own chatter (the worker stopping for the restart) stays out of the user's stderr log.
    user_stderr = "".join(f.read_text() for f in (Path(job["logs_dir"]) / "user" / "stderr").glob("*.txt"))
    assert "distributed." not in user_stderr


def test_the_cli_attaches_a_cluster_from_a_yaml_and_refuses_one_without_an_address(cluster, tmp_path) -> None:
    from cli_helpers import error_line, run_cli

    ws = tmp_path / "ws"
    refused = run_cli("compute", "create", "-n", "nowhere", "--type", "dask", ws=ws)
    error_line(refused, "needs its scheduler's address", "--address")
    refused = run_cli("compute", "create", "-n", "nowhere", "--type", "dask", "--address", "127.0.0.1:8786", ws=ws)
    error_line(refused, "tcp://host:port")
    refused = run_cli("compute", "create", "-n", "here", "--set", "no_workers_timeout=30", ws=ws)
    error_line(refused, "no_workers_timeout: only applies to types ssh and dask, not local")
    spec = tmp_path / "cluster.yml"
    spec.write_text(f"name: shared\ntype: dask\naddress: {cluster.address}\nno_workers_timeout: 120\n")
    code, out, err = run_cli("compute", "create", "--file", str(spec), ws=ws)
    assert code == 0, err
    assert '"no_workers_timeout": 120' in out
    code, out, err = run_cli("compute", "check", "-n", "shared", "-o", "json", ws=ws)
    assert code == 0, err
    assert '"threads": 1' in out and cluster.address in out


def test_a_scheduler_lost_mid_job_interrupts_the_job_and_its_agent_resumes_it_when_back(
    client, deploy, csv_inputs, cluster, tmp_path
) -> None:
    _attach(client, cluster)
    _deploy(client, deploy, tmp_path, env={"SLEEP": "0.5"}, mini_batch_size=1, max_concurrency_per_instance=2)
    name = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(12)))["name"]
    wait_until(lambda: client.jobs.get(name)["progress"]["mini_batches"]["done"] >= 2, 120, "mini-batches committed")
    cluster.kill_scheduler()

    job = wait_until(lambda: (j := client.jobs.get(name))["status"] == "Interrupted" and j, 60, "the interruption")
    assert f"lost the connection to the Dask scheduler at {cluster.address}" in job["error"]
    kept = job["progress"]["mini_batches"]["done"]
    assert kept >= 2  # committed mini-batches are kept
    assert client.computes.show("daskpool")["agent"] is not None  # the agent waits for the scheduler

    cluster.restart_scheduler()
    wait_until(lambda: client.jobs.get(name)["status"] != "Interrupted", 120, "the agent to resume the job")
    job = client.jobs.wait(name, timeout=240)
    assert job["status"] == "Completed", job["error"]
    assert [line.split()[0] for line in lines(output_file(job))] == [f"f{i:03d}.csv" for i in range(12)]
    log = (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()
    why = f"compute daskpool: lost the connection to the Dask scheduler at {cluster.address}"
    assert f"status Interrupted: {why}" in log
    assert f"resumed automatically on compute daskpool (automatic resume 1 of 3, after: {why}" in log
    assert "committed ones are kept" in log


def test_compute_stop_during_a_job_interrupts_it_at_once_and_leaves_the_cluster_running(
    client, deploy, csv_inputs, cluster, tmp_path
) -> None:
    _attach(client, cluster)
    markers = _deploy(client, deploy, tmp_path, env={"SLEEP": "1"}, mini_batch_size=1)
    name = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(6)))["name"]
    wait_until(lambda: next(iter(markers.glob("run-*")), None), 120, "a worker to start scoring")
    report = client.computes.stop("daskpool")
    assert report["stopped"]
    job = client.jobs.get(name)  # already ended when `compute stop` returns
    assert job["status"] == "Interrupted"
    assert job["error"] == f"compute daskpool was stopped; run `batchnb job resume -n {name}` to finish the job"
    assert cluster.scheduler.poll() is None and cluster.n_workers() == 2  # not batchnb's to stop

    client.jobs.resume(name)
    job = client.jobs.wait(name, timeout=240)
    assert job["status"] == "Completed", job["error"]
    assert [line.split()[0] for line in lines(output_file(job))] == [f"f{i:03d}.csv" for i in range(6)]


def test_a_scheduler_that_stays_away_leaves_the_job_interrupted_for_job_resume(
    client, deploy, csv_inputs, cluster, tmp_path
) -> None:
    from batchnb.engine.auto_resume import CLUSTER_WAIT_S

    _attach(client, cluster)
    _deploy(client, deploy, tmp_path)
    name = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=180)["name"]
    cluster.kill_scheduler()
    with client.store.write() as tx:  # as if the scheduler had been lost that long ago, mid-job
        tx.execute(
            "UPDATE jobs SET status = 'Interrupted', lost = 1, error = 'compute daskpool: lost the connection', "
            "heartbeat_at = ? WHERE name = ?",
            (time.time() - CLUSTER_WAIT_S - 1, name),
        )
    client.computes.start("daskpool")
    job = wait_until(lambda: (j := client.jobs.get(name))["error"] and "did not answer" in j["error"] and j, 60, "why")
    assert job["status"] == "Interrupted"
    assert job["error"].startswith(
        "compute daskpool: lost the connection; not resumed automatically: compute daskpool's"
    )
    client.computes.stop("daskpool")
