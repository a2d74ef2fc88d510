"""A deployment's environment on a Dask cluster: each host builds it (with uv, offline, from wheels
the test builds) and caches it before its workers take the job's mini-batches; the same worker
processes then score two deployments that need two versions of one package, each with its own, in
environment processes of the Dask workers that run the build's interpreter (never in the Dask
worker's process); one that dies is replaced, and its mini-batch retried.

The cluster is a real ``dask scheduler`` and two ``dask worker`` processes on loopback (one host,
so they share the host's cache: one builds, the other finds the build); and an SSH compute's cluster
on two loopback hosts of a real sshd."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import test_dask_shipped
from dask_helpers import Cluster, dask_cluster
from engine_helpers import lines, output_file, reaping, wait_until
from env_helpers import conda_file, tiny_wheel
from ssh_helpers import HOSTS, no_sshd

from batchnb import BatchClient

pytest.importorskip("distributed")

SCORE = """
import os
import tinypkg

def init():
    pass

def run(mini_batch):
    return [f"{tinypkg.VERSION} {os.path.basename(p)}" for p in mini_batch]
"""


@pytest.fixture(autouse=True)
def _uv_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uv's cache for the builds of this test: here, and on the workers started after it."""


# A cluster whose workers cannot see this machine's files.
elsewhere = test_dask_shipped.elsewhere


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with dask_cluster(tmp_path / "cluster.log", env={"BATCHNB_WORKER_CACHE": str(tmp_path / "worker-cache")}) as c:
        yield c


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    """A folder of wheels with tinypkg 1.0."""
    folder = tmp_path / "wheels"
    tiny_wheel("tinypkg", "1.0", folder)
    return folder


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


# One line per file: its name, its first row (read where it was scored), the pid and the interpreter
# of the process that scored it, and how many times init() ran in that process. The first
# mini-batch ever scored kills its own process (SIGKILL, as the OOM killer would) once, if the test
# leaves a marker file name in the script.
WHERE = """
import os, signal, sys
from pathlib import Path
import tinypkg

KILL_ONCE = {kill_once!r}
INITS = 0

def init():
    global INITS
    INITS += 1

def run(mini_batch):
    if KILL_ONCE:
        try:  # created by one process only, of those scoring at once
            fd = os.open(KILL_ONCE, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    row = lambda p: Path(p).read_text().splitlines()[1]
    return [f"{{os.path.basename(p)}} {{row(p)}} {{os.getpid()}} {{sys.executable}} {{INITS}}" for p in mini_batch]
"""


def _deploy_in(
    client: BatchClient,
    deploy,
    name: str,
    version: str,
    wheels: Path,
    tmp_path: Path,
    script: str = SCORE,
    **settings: object,
) -> None:
    conda = conda_file(tmp_path / f"env-{name}", wheels, f"tinypkg=={version}")
    env = client.environments.create_or_update({"name": f"tiny-{name}", "conda_file": str(conda)})
    deploy(script, name=name, **{"mini_batch_size": 1, "max_concurrency_per_instance": 2, **settings})
    client.batch_deployments.update(
        name, "ep-test", [f"environment=azureml:tiny-{name}:{env['version']}", "compute=azureml:daskpool"]
    )


def _events(job: dict) -> list[str]:
    return (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text().splitlines()


def test_each_host_builds_the_environment_before_the_job_and_reuses_it(
    client, deploy, csv_inputs, cluster, tmp_path, wheels
) -> None:
    tiny_wheel("tinypkg", "2.0", wheels)
    client.computes.create_or_update({"name": "daskpool", "type": "dask", "address": cluster.address})
    _deploy_in(client, deploy, "one", "1.0", wheels, tmp_path)
    _deploy_in(client, deploy, "two", "2.0", wheels, tmp_path)
    data = csv_inputs(4)
    files = [f"f{i:03d}.csv" for i in range(4)]

    before = client.computes.check("daskpool", endpoint_name="ep-test", deployment_name="one")
    assert [h["environment"]["built"] for h in before["hosts"]] == [False, False]
    assert before["ok"] is False  # the workers' own Python lacks tinypkg

    first = client.batch_endpoints.invoke("ep-test", "one", input=str(data)).wait(timeout=240)
    assert first["status"] == "Completed", first["error"]
    assert lines(output_file(first)) == [f"1.0 {f}" for f in files]
    events = _events(first)
    # Both workers are on one host: one built it, the other found the build in the host's cache.
    assert len([e for e in events if "environment tiny-one:1 on host 127.0.0.1" in e and "built in" in e]) == 1
    assert len([e for e in events if "environment tiny-one:1 on host 127.0.0.1" in e and "host's cache" in e]) == 1
    ready = next(i for i, e in enumerate(events) if "ready on the cluster's hosts" in e)
    assert ready < next(i for i, e in enumerate(events) if "dispatching" in e)  # built before any mini-batch

    after = client.computes.check("daskpool", endpoint_name="ep-test", deployment_name="one")
    assert after["ok"] is True, after
    assert [h["environment"]["built"] for h in after["hosts"]] == [True, True]

    # The same worker processes, another deployment needing another version: it sees its own.
    second = client.batch_endpoints.invoke("ep-test", "two", input=str(data)).wait(timeout=240)
    assert second["status"] == "Completed", second["error"]
    assert lines(output_file(second)) == [f"2.0 {f}" for f in files]
    third = client.batch_endpoints.invoke("ep-test", "one", input=str(data)).wait(timeout=240)
    assert third["status"] == "Completed", third["error"]
    assert lines(output_file(third)) == [f"1.0 {f}" for f in files]
    events = _events(third)
    assert len([e for e in events if "tiny-one:1 on host 127.0.0.1" in e and "host's cache" in e]) == 2
    assert not [e for e in events if "built in" in e]
    assert os.listdir(tmp_path / "worker-cache" / "envs")  # the host's cache holds the builds


def _scored_by(job: dict) -> dict[str, tuple[int, str, int]]:
    """By input file, in output order: the pid and the interpreter that scored it, and the inits in
    that process (its first row checked against the input's)."""
    out = {}
    for line in lines(output_file(job)):
        name, row, pid, python, inits = line.split(" ")
        assert row == f"{int(name[1:4])},{2 * int(name[1:4])}"  # as csv_inputs writes it
        out[name] = (int(pid), python, int(inits))
    return out


def _builds(tmp_path: Path) -> list[str]:
    """The interpreters of the environments built in the host's cache."""
    return [
        str(p / "bin" / "python")
        for p in (tmp_path / "worker-cache" / "envs").iterdir()
        if p.is_dir() and not p.is_symlink()
    ]


def test_an_environments_mini_batches_run_in_a_child_of_the_dask_worker_that_runs_the_builds_python(
    client, deploy, csv_inputs, cluster, tmp_path, wheels
) -> None:
    client.computes.create_or_update({"name": "daskpool", "type": "dask", "address": cluster.address})
    _deploy_in(client, deploy, "one", "1.0", wheels, tmp_path, WHERE.format(kill_once=""))
    data = csv_inputs(4)
    files = [f"f{i:03d}.csv" for i in range(4)]
    with cluster.client() as dask_client:
        dask_pids = set(dask_client.run(os.getpid).values())

    first = client.batch_endpoints.invoke("ep-test", "one", input=str(data)).wait(timeout=240)
    assert first["status"] == "Completed", first["error"]
    scored = _scored_by(first)
    assert sorted(scored) == files
    [build] = _builds(tmp_path)
    children = {pid for pid, _, _ in scored.values()}
    assert not children & dask_pids  # never in a Dask worker's own process
    assert {python for _, python, _ in scored.values()} == {build}
    # Each a child of a Dask worker, alive between jobs; at most one per worker (one thread each).
    child_of = {psutil.Process(pid).ppid(): pid for pid in children}
    assert set(child_of) <= dask_pids and len(child_of) == len(children)
    assert {inits for _, _, inits in scored.values()} == {1}

    # The next job of the deployment finds them warm: a worker's same process, init() once more.
    second = client.batch_endpoints.invoke("ep-test", "one", input=str(data)).wait(timeout=240)
    assert second["status"] == "Completed", second["error"]
    again = {pid: inits for pid, _, inits in _scored_by(second).values()}
    warm = {pid: inits for pid, inits in again.items() if psutil.Process(pid).ppid() in child_of}
    assert warm and set(warm) <= children and set(warm.values()) == {2}
    assert any("init() ran" in e and "warm worker" in e for e in _events(second))

    # A deployment without an environment runs in the Dask workers' own processes, as before.
    deploy("import os\ndef init(): pass\ndef run(b): return [str(os.getpid()) for _ in b]\n", name="plain")
    client.batch_deployments.update("plain", "ep-test", ["compute=azureml:daskpool"])
    plain = client.batch_endpoints.invoke("ep-test", "plain", input=str(data)).wait(timeout=240)
    assert plain["status"] == "Completed", plain["error"]
    assert {int(pid) for pid in lines(output_file(plain))} <= dask_pids


def test_an_environment_process_that_dies_is_replaced_and_its_mini_batch_retried(
    client, deploy, csv_inputs, cluster, tmp_path, wheels
) -> None:
    client.computes.create_or_update({"name": "daskpool", "type": "dask", "address": cluster.address})
    marker = tmp_path / "killed-once"
    _deploy_in(client, deploy, "one", "1.0", wheels, tmp_path, WHERE.format(kill_once=str(marker)))
    data = csv_inputs(4)

    job = client.batch_endpoints.invoke("ep-test", "one", input=str(data)).wait(timeout=240)
    assert job["status"] == "Completed", job["error"]
    scored = _scored_by(job)
    assert sorted(scored) == [f"f{i:03d}.csv" for i in range(4)]  # one row per input, none lost
    killed = int(marker.read_text())
    assert killed not in {pid for pid, _, _ in scored.values()}  # a new process took over
    attempts = client.jobs.worker_timeline(job["name"])
    [died] = [a for a in attempts if a["outcome"] != "ok"]
    assert died["outcome"] == "retried"
    assert f"the environment process {killed}" in died["error"] and signal.SIGKILL.name in died["error"]
    assert any(a["mini_batch"] == died["mini_batch"] and a["outcome"] == "ok" for a in attempts)


@pytest.mark.skipif(no_sshd(), reason="openssh-server is not installed")
def test_an_ssh_computes_workers_score_an_environment_in_its_own_python(
    client, deploy, csv_inputs, sshd, tmp_path, wheels
) -> None:
    # The hosts' Python, with this test's cache folders and no package index (an SSH session passes
    # no environment on).
    host_env = {
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "UV_OFFLINE": "1",
        "UV_NO_CONFIG": "1",
        "BATCHNB_WORKER_CACHE": str(tmp_path / "worker-cache"),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
    }
    python = tmp_path / "host-python"
    assigned = " ".join(f"{k}={shlex.quote(v)}" for k, v in host_env.items())
    python.write_text(f'#!/bin/sh\n{assigned} exec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    client.computes.create_or_update(
        {
            "name": "daskpool",
            "type": "ssh",
            "hosts": [f"{h}:{sshd.port}" for h in HOSTS],
            "ssh_user": "root",
            "ssh_key": str(sshd.key),
            "known_hosts": str(sshd.known_hosts),
            "python": str(python),
            "idle_time_before_scale_down": 0,
        }
    )
    _deploy_in(client, deploy, "one", "1.0", wheels, tmp_path, WHERE.format(kill_once=""))

    job = client.batch_endpoints.invoke("ep-test", "one", input=str(csv_inputs(4))).wait(timeout=240)
    assert job["status"] == "Completed", job["error"]
    scored = _scored_by(job)
    assert sorted(scored) == [f"f{i:03d}.csv" for i in range(4)]
    [build] = _builds(tmp_path)
    assert {python for _, python, _ in scored.values()} == {build}
    # Scale to zero: the cluster, and the environment processes of its workers, are gone after the job.
    wait_until(lambda: client.computes.show("daskpool")["agent"] is None, 30, "the cluster to stop")
    wait_until(lambda: not any(psutil.pid_exists(pid) for pid, _, _ in scored.values()), 30, "them to end")


HANGS_ONCE = """
import os, time
from pathlib import Path
import tinypkg

def init():
    pass

def run(mini_batch):
    if os.path.basename(mini_batch[0]) == "f001.csv" and not Path({marker!r}).exists():
        Path({marker!r}).write_text("hung")
        time.sleep(600)  # one call in C: a Dask worker's thread could not be interrupted in it
    return [os.path.basename(p) for p in mini_batch]
"""


def test_a_hung_run_in_an_environment_process_times_out_there(
    client, deploy, csv_inputs, cluster, tmp_path, wheels
) -> None:
    client.computes.create_or_update({"name": "daskpool", "type": "dask", "address": cluster.address})
    # One mini-batch at a time: the first one starts the environment process, the second one hangs
    # in it, well inside the time the dispatcher gives a Dask task before it restarts its worker.
    script = HANGS_ONCE.format(marker=str(tmp_path / "hung-once"))
    retries = {"max_retries": 2, "timeout": 3}
    _deploy_in(
        client, deploy, "one", "1.0", wheels, tmp_path, script, retry_settings=retries, max_concurrency_per_instance=1
    )

    job = client.batch_endpoints.invoke("ep-test", "one", input=str(csv_inputs(3))).wait(timeout=240)
    assert job["status"] == "Completed", job["error"]
    assert lines(output_file(job)) == ["f000.csv", "f001.csv", "f002.csv"]
    [hung] = [a for a in client.jobs.worker_timeline(job["name"]) if a["outcome"] != "ok"]
    # Ended by the timeout in the process itself (a signal), not by restarting the Dask worker.
    assert hung["error"] == "MiniBatchTimeout: run() did not return within the timeout of 3 s"


def test_a_shipped_jobs_environment_process_scores_the_copies_its_task_brought(
    client, deploy, csv_inputs, elsewhere, tmp_path
) -> None:
    # The wheels where the hosts see them (as an index would be): outside the folder hidden from them.
    outside = Path(tempfile.mkdtemp(prefix="batchnb-test-"))
    try:
        tiny_wheel("tinypkg", "1.0", outside / "wheels")
        client.computes.create_or_update({"name": "daskpool", "type": "dask", "address": elsewhere.address})
        _deploy_in(client, deploy, "one", "1.0", outside / "wheels", tmp_path, WHERE.format(kill_once=""))
        data = csv_inputs(4)
        with elsewhere.client() as c:  # the premise: the workers see none of it
            assert set(c.run(os.path.exists, str(data)).values()) == {False}
        job = client.batch_endpoints.invoke("ep-test", "one", input=str(data)).wait(timeout=240)
    finally:
        shutil.rmtree(outside, ignore_errors=True)
    assert job["status"] == "Completed", job["error"]
    assert "do not see this machine's job folder" in "\n".join(_events(job))
    scored = _scored_by(job)  # each row read from the copy of its file the task brought
    assert list(scored) == [f"f{i:03d}.csv" for i in range(4)]
    # The hosts' own build, in their cache (which this machine does not see), not batchnb's Python.
    pythons = {python for _, python, _ in scored.values()}
    assert all("/worker-cache/envs/" in python and python.endswith("/bin/python") for python in pythons)
