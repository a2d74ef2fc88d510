"""SSH-cluster compute against a real sshd on loopback addresses (127.0.0.2 and 127.0.0.3 as two
hosts): jobs spread over both hosts, survive a killed worker, report unreachable hosts and wrong
host keys, and clusters scale to zero or stay warm as asked."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from engine_helpers import lines, output_file, reaping, wait_until
from ssh_helpers import HOSTS, Sshd, no_sshd

from batchnb import BatchClient

pytestmark = pytest.mark.skipif(no_sshd(), reason="openssh-server is not installed")

SCRIPT = """
import os, time
from pathlib import Path
from distributed import get_worker

def init():
    Path(os.environ["MARKERS"], f"init-{os.getpid()}").write_text(get_worker().address)

def run(mini_batch):
    address = get_worker().address
    Path(os.environ["MARKERS"], f"run-{os.getpid()}").write_text(address)
    # Short sleeps: a hang in Python code, which a timeout can interrupt on a Dask worker thread
    # (a single long C call such as time.sleep(600) cannot be interrupted there).
    for _ in range(int(float(os.environ.get("SLEEP", "0")) * 20)):
        time.sleep(0.05)
    host = address.split("://")[1].rsplit(":", 1)[0]
    return [f"{os.path.basename(f)} {host}" for f in mini_batch]
"""


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


def _compute(
    client: BatchClient,
    sshd: Sshd,
    name: str = "sshpool",
    hosts: tuple[str, ...] = HOSTS,
    known_hosts: Path | None = None,
    idle: int = 0,
    workers_per_host: int = 1,
    python: str | None = None,
) -> dict:
    return client.computes.create_or_update(
        {
            "name": name,
            "type": "ssh",
            "hosts": [f"{h}:{sshd.port}" for h in hosts],
            "ssh_user": "root",
            "ssh_key": str(sshd.key),
            "known_hosts": str(known_hosts or sshd.known_hosts),
            "workers_per_host": workers_per_host,
            "python": python or sshd.python,
            "idle_time_before_scale_down": idle,
        }
    )


def _deploy(client: BatchClient, deploy, compute: str, tmp_path: Path, **settings: object) -> Path:
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    env = {"MARKERS": str(markers), **settings.pop("env", {})}  # type: ignore[dict-item]
    dep = deploy(SCRIPT, environment_variables=env, **settings)
    client.batch_deployments.update(dep["name"], dep["endpoint_name"], [f"compute=azureml:{compute}"])
    return markers


def test_a_job_spreads_over_both_hosts(client, deploy, csv_inputs, sshd, tmp_path) -> None:
    _compute(client, sshd)
    # Two mini-batches in flight: the cluster's two threads (one worker process per host).
    markers = _deploy(
        client, deploy, "sshpool", tmp_path, mini_batch_size=1, max_concurrency_per_instance=2, env={"SLEEP": "0.3"}
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(8))).wait(timeout=180)
    assert job["status"] == "Completed", job["error"]
    rows = [line.split() for line in lines(output_file(job))]
    assert [r[0] for r in rows] == [f"f{i:03d}.csv" for i in range(8)]  # one line per file, input order
    assert {r[1] for r in rows} == set(HOSTS)  # both hosts scored
    inits = list(markers.glob("init-*"))
    assert 1 <= len(inits) <= 2  # init() once per worker process (one per host here)
    log = (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert "the SSH cluster started in" in log  # how long the start took
    assert all(f"on host {h}: 1 thread(s)" in log for h in HOSTS)  # which host each worker is on
    # Scale to zero: with no idle time the agent, and its cluster, are gone soon after the job.
    wait_until(lambda: client.computes.show("sshpool")["agent"] is None, 30, "the cluster to stop")


def test_killed_workers_work_moves_on_and_nothing_is_lost(client, deploy, csv_inputs, sshd, tmp_path) -> None:
    _compute(client, sshd)
    markers = _deploy(client, deploy, "sshpool", tmp_path, mini_batch_size=1, env={"SLEEP": "1"})
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(10)))
    marker = wait_until(lambda: next(iter(markers.glob("run-*")), None), 120, "a worker to start scoring")
    os.kill(int(marker.name.split("-")[1]), signal.SIGKILL)
    job = client.jobs.wait(job["name"], timeout=240)
    assert job["status"] == "Completed", job["error"]
    names = [line.split()[0] for line in lines(output_file(job))]
    assert names == [f"f{i:03d}.csv" for i in range(10)]  # nothing lost, nothing duplicated


def test_an_unreachable_host_fails_the_job_naming_it(client, deploy, csv_inputs, sshd, tmp_path) -> None:
    _compute(client, sshd, hosts=(HOSTS[0], "127.0.0.4"))
    _deploy(client, deploy, "sshpool", tmp_path)
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=180)
    assert job["status"] == "Failed"
    assert "cannot reach an SSH host" in job["error"] and "127.0.0.4" in job["error"]
    report = client.computes.check("sshpool")
    assert report["ok"] is False
    bad = next(h for h in report["hosts"] if h["host"].startswith("127.0.0.4"))
    assert bad["reachable"] is False


def test_a_wrong_host_key_is_refused(client, deploy, csv_inputs, sshd, tmp_path) -> None:
    _compute(client, sshd, known_hosts=sshd.folder / "wrong_known_hosts")
    _deploy(client, deploy, "sshpool", tmp_path)
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=180)
    assert job["status"] == "Failed"
    assert "host key not trusted" in job["error"]
    report = client.computes.check("sshpool")
    assert [h["reachable"] for h in report["hosts"]] == [True, False]
    assert "host key not trusted" in report["hosts"][1]["error"]


def test_compute_check_compares_versions(client, sshd, csv_inputs) -> None:
    _compute(client, sshd, workers_per_host=2)
    data = csv_inputs(1)
    report = client.computes.check("sshpool", input=str(data))
    assert report["ok"] is True, report
    assert [h["versions"]["batchnb"] for h in report["hosts"]] == [report["local"]["batchnb"]] * 2
    for row in report["hosts"]:  # one row per host: what its workers get, and what it reaches
        assert (row["threads"], row["python"]) == (2, report["local"]["python"])
        assert row["cpus"] >= 1 and row["memory"] > 0 and "mlflow" in row["versions"]
        assert row["input"] == {"target": str(data), "reachable": True}
    report = client.computes.check("sshpool", input="file:///batchnb/nowhere")
    assert report["ok"] is False
    assert all(h["error"] == "cannot reach file:///batchnb/nowhere" for h in report["hosts"])


def test_idle_time_keeps_the_cluster_warm_for_the_next_job(client, deploy, csv_inputs, sshd, tmp_path) -> None:
    _compute(client, sshd, idle=60)
    _deploy(client, deploy, "sshpool", tmp_path, mini_batch_size=2)
    data = csv_inputs(4)
    first = client.batch_endpoints.invoke("ep-test", input=str(data)).wait(timeout=180)
    assert first["status"] == "Completed", first["error"]
    address = wait_until(lambda: client.computes.show("sshpool")["agent"]["cluster"], 30, "the cluster's address")
    second = client.batch_endpoints.invoke("ep-test", input=str(data)).wait(timeout=180)
    assert second["status"] == "Completed", second["error"]
    assert client.computes.show("sshpool")["agent"]["cluster"] == address  # the same cluster served both jobs
    assert lines(output_file(second)) == lines(output_file(first))
    report = client.computes.stop("sshpool")  # a warm cluster can be stopped at once
    assert report["stopped"] and client.computes.show("sshpool")["agent"] is None


def _kill_host_workers(address: str, host: str) -> None:
    """SIGKILL the worker processes of ``host`` and their Nannies, as a host that went down would."""
    from distributed import Client

    with Client(address, timeout=10, set_as_default=False) as c:
        pids = [pid for a, pid in c.run(os.getpid).items() if a.startswith(f"tcp://{host}:")]
        assert pids
        for pid in pids:
            nanny = psutil.Process(pid).parent()
            for proc in (psutil.Process(pid), nanny):
                proc.send_signal(signal.SIGKILL)
        wait_until(lambda: len(c.scheduler_info(n_workers=-1)["workers"]) == 2 - len(pids), 30, "the loss")


def test_a_warm_cluster_that_lost_a_worker_restarts_it_before_the_next_job(
    client, deploy, csv_inputs, sshd, tmp_path
) -> None:
    _compute(client, sshd, idle=60)
    _deploy(
        client, deploy, "sshpool", tmp_path, mini_batch_size=1, max_concurrency_per_instance=2, env={"SLEEP": "0.3"}
    )
    data = csv_inputs(8)
    first = client.batch_endpoints.invoke("ep-test", input=str(data)).wait(timeout=180)
    assert first["status"] == "Completed", first["error"]
    address = wait_until(lambda: client.computes.show("sshpool")["agent"]["cluster"], 30, "the cluster's address")
    _kill_host_workers(address, HOSTS[1])

    second = client.batch_endpoints.invoke("ep-test", input=str(data)).wait(timeout=180)
    assert second["status"] == "Completed", second["error"]
    assert client.computes.show("sshpool")["agent"]["cluster"] == address  # the same (warm) cluster
    rows = [line.split() for line in lines(output_file(second))]
    assert [r[0] for r in rows] == [f"f{i:03d}.csv" for i in range(8)]
    assert {r[1] for r in rows} == set(HOSTS)  # the restarted host scored too
    log = (Path(second["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert f"1 of 2 worker(s) lost since the last job ({HOSTS[1]}:{sshd.port}-0)" in log
    assert "1 worker(s) restarted in" in log
    assert "(2 worker(s), 2 thread(s)" in log  # the job was dispatched to the full cluster
    client.computes.stop("sshpool")


def test_a_hung_run_times_out_on_a_dask_worker_thread(client, deploy, csv_inputs, sshd, tmp_path) -> None:
    _compute(client, sshd, hosts=(HOSTS[0],))
    _deploy(
        client,
        deploy,
        "sshpool",
        tmp_path,
        mini_batch_size=1,
        env={"SLEEP": "600"},
        retry_settings={"max_retries": 1, "timeout": 2},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(1))).wait(timeout=180)
    # The only mini-batch timed out (raised inside the worker thread), so nothing succeeded.
    assert job["status"] == "Failed"
    assert "No succeeded mini batch item" in job["error"]
    errors = (Path(job["logs_dir"]) / "user" / "error.txt").read_text()
    assert "MiniBatchTimeout: run() did not return within the timeout of 2 s" in errors


def test_compute_check_works_inside_a_running_event_loop(client, sshd) -> None:
    import asyncio

    _compute(client, sshd)

    async def from_a_notebook() -> dict:  # a kernel or a Jupyter server already runs a loop
        return client.computes.check("sshpool")

    # (asyncio.run in a thread of its own: pytest-playwright leaves this thread's loop marked running)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(lambda: asyncio.run(from_a_notebook())).result()["ok"] is True


def _session_processes(sshd: Sshd, since: float) -> list[psutil.Process]:
    """The processes started since ``since`` over SSH sessions of this test's sshd, read from /proc
    (they carry ``SSH_CONNECTION``, which ends with the sshd's port, even when orphaned): the
    cluster's scheduler, Nannies and workers."""
    found = []
    for proc in psutil.process_iter(["create_time"]):
        with contextlib.suppress(psutil.Error):
            connection = proc.environ().get("SSH_CONNECTION", "")
            if connection.endswith(f" {sshd.port}") and proc.info["create_time"] >= since:
                found.append(proc)
    return found


def _stop_during_the_job(client: BatchClient, sshd: Sshd, name: str, since: float) -> None:
    """``compute stop`` now: the job is Interrupted when it returns, and the cluster is gone."""
    report = client.computes.stop("sshpool")
    assert report["stopped"]
    job = client.jobs.get(name)  # already ended when `compute stop` returns
    assert job["status"] == "Interrupted"
    assert job["error"] == f"compute sshpool was stopped; run `batchnb job resume -n {name}` to finish the job"
    _, alive = psutil.wait_procs(_session_processes(sshd, since), timeout=10)  # they end with their sessions
    assert not alive, [p.cmdline() for p in alive]


def test_compute_stop_during_a_job_interrupts_it_and_leaves_no_process(
    client, deploy, csv_inputs, sshd, tmp_path
) -> None:
    since = time.time() - 1
    _compute(client, sshd)
    markers = _deploy(client, deploy, "sshpool", tmp_path, mini_batch_size=1, env={"SLEEP": "1"})
    name = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(8)))["name"]
    wait_until(lambda: next(iter(markers.glob("run-*")), None), 120, "a worker to start scoring")
    assert len(_session_processes(sshd, since)) >= 5  # the scheduler, and a Nanny and its worker per host
    _stop_during_the_job(client, sshd, name, since)


def test_compute_stop_while_the_cluster_starts_interrupts_the_job_and_leaves_no_process(
    client, deploy, csv_inputs, sshd, tmp_path
) -> None:
    since = time.time() - 1
    slow = tmp_path / "slow-python"  # each process of the cluster takes 2 s more to start
    slow.write_text(f'#!/bin/sh\nsleep 2\nexec {shlex.quote(sshd.python)} "$@"\n')
    slow.chmod(0o755)
    _compute(client, sshd, python=str(slow))
    _deploy(client, deploy, "sshpool", tmp_path)
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2)))
    log = Path(job["logs_dir"]) / "sys" / "master_role.txt"
    wait_until(lambda: "status Running" in "".join(lines(log)), 120, "the job to start its cluster")
    wait_until(lambda: _session_processes(sshd, since), 60, "the cluster's first process")
    _stop_during_the_job(client, sshd, job["name"], since)
    assert "the SSH cluster started" not in log.read_text()


def test_a_scheduler_lost_mid_job_interrupts_the_job_and_a_new_cluster_finishes_it(
    client, deploy, csv_inputs, sshd, tmp_path
) -> None:
    _compute(client, sshd)
    _deploy(client, deploy, "sshpool", tmp_path, mini_batch_size=1, env={"SLEEP": "0.5"})
    name = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(10)))["name"]
    wait_until(lambda: client.jobs.get(name)["progress"]["mini_batches"]["done"] >= 2, 120, "mini-batches committed")
    address = client.computes.show("sshpool")["agent"]["cluster"]
    port = int(address.rsplit(":", 1)[1])
    (scheduler,) = {
        c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    os.kill(scheduler, signal.SIGKILL)

    # Interrupted, then resumed by the agent on a cluster it starts again: bounded, never for ever.
    wait_until(lambda: "resumed automatically" in _log(client, name), 120, "the agent to resume the job")
    job = wait_until(lambda: (j := client.jobs.get(name))["status"] == "Completed" and j, 240, "the job to complete")
    assert [line.split()[0] for line in lines(output_file(job))] == [f"f{i:03d}.csv" for i in range(10)]
    log = _log(client, name)
    assert f"status Interrupted: compute sshpool: lost the connection to the Dask scheduler at {address}" in log
    assert "does not answer: the cluster is closed and started again" in log
    assert log.count("the SSH cluster started in") == 2  # a new cluster finished the job


def _log(client: BatchClient, job: str) -> str:
    return "\n".join(lines(Path(client.jobs.get(job)["logs_dir"]) / "sys" / "master_role.txt"))
