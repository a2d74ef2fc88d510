"""A deployment's environment on a Dask cluster: each host builds it (with uv, offline, from wheels
the test builds) and caches it before its workers take the job's mini-batches; the same worker
processes then score two deployments that need two versions of one package, each with its own.

The cluster is a real ``dask scheduler`` and two ``dask worker`` processes on loopback (one host,
so they share the host's cache: one builds, the other finds the build)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dask_helpers import Cluster, dask_cluster
from engine_helpers import lines, output_file, reaping
from env_helpers import conda_file, tiny_wheel

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


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    env = {"BATCHNB_WORKER_CACHE": str(tmp_path / "worker-cache"), "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    with dask_cluster(tmp_path / "cluster.log", env=env) as c:
        yield c


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


def _deploy_in(client: BatchClient, deploy, name: str, version: str, wheels: Path, tmp_path: Path) -> None:
    conda = conda_file(tmp_path / f"env-{name}", wheels, f"tinypkg=={version}")
    env = client.environments.create_or_update({"name": f"tiny-{name}", "conda_file": str(conda)})
    deploy(SCORE, name=name, mini_batch_size=1, max_concurrency_per_instance=2)
    client.batch_deployments.update(
        name, "ep-test", [f"environment=azureml:tiny-{name}:{env['version']}", "compute=azureml:daskpool"]
    )


def _events(job: dict) -> list[str]:
    return (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text().splitlines()


def test_each_host_builds_the_environment_before_the_job_and_reuses_it(
    client, deploy, csv_inputs, cluster, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))  # environment create builds here too
    wheels = tmp_path / "wheels"
    for version in ("1.0", "2.0"):
        tiny_wheel("tinypkg", version, wheels)
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
