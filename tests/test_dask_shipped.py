"""A ``dask`` compute whose workers share no filesystem with the machine that invokes the job.

Design: the test starts a real scheduler and two real ``dask worker`` processes on loopback, but
each worker runs in a mount namespace of its own (``unshare --mount``) where an empty tmpfs is
mounted over the test session's whole temporary folder. So the workers cannot see the workspace,
the code snapshot, the registered model, the input files nor the job's folder: those paths do not
exist for them, as on a cluster in another machine room (the test checks this first). Each worker's
cache (``BATCHNB_WORKER_CACHE``) is inside its own tmpfs, so the two never share one either. Python
and batchnb are seen at their usual paths, as a cluster's image would have them installed.

The job must still score exactly, one row per input in input order, with the shipped code (a
sibling module of the scoring script) and the shipped model (its weight), on both workers; its parts
are committed by the agent. A second job finds the code and the model already on the cluster.
Tabular chunks read there keep their rows' sources, and a failed attempt's traceback comes back.
Needs root (mount namespaces): skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dask_helpers import Cluster, dask_cluster, deploy_shipped
from engine_helpers import lines, output_file, reaping

pytest.importorskip("distributed")

HIDE = 'mount -t tmpfs batchnb-elsewhere "$0" && cd / && exec "$@"'


def _can_hide(folder: Path) -> bool:
    probe = folder / "probe"
    probe.mkdir(exist_ok=True)
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", HIDE, str(probe), "true"],
        capture_output=True,
    )
    return done.returncode == 0


@pytest.fixture
def elsewhere(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster whose workers cannot see anything under the session's temporary folder."""
    hidden = tmp_path_factory.getbasetemp()
    if not _can_hide(tmp_path):
        pytest.skip("mount namespaces are not available (unshare --mount needs root)")
    wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c", HIDE, str(hidden)]
    env = {"BATCHNB_WORKER_CACHE": str(hidden / "worker-cache")}
    with dask_cluster(tmp_path / "cluster.log", wrap=wrap, env=env) as c:
        yield c


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


def test_a_cluster_that_cannot_see_our_files_scores_exactly(client, model_dir, csv_inputs, elsewhere, tmp_path) -> None:
    data = csv_inputs(12)
    with elsewhere.client() as c:  # the premise: the workers see none of it
        assert set(c.run(os.path.exists, str(client.workspace.root)).values()) == {False}
        assert set(c.run(os.path.exists, str(data)).values()) == {False}
    client.computes.create_or_update({"name": "remote", "type": "dask", "address": elsewhere.address})
    assert json.loads((model_dir / "weights.json").read_text())["w"] == 3
    deploy_shipped(client, model_dir, tmp_path, "remote")

    job = client.batch_endpoints.invoke("ep-test", input=str(data)).wait(timeout=240)
    assert job["status"] == "Completed", job["error"]
    rows = [line.split() for line in lines(output_file(job))]
    assert [(r[0], r[1]) for r in rows] == [(f"f{i:03d}.csv", str(3 * i)) for i in range(12)]
    assert {r[3] for r in rows} == {"w0", "w1"}  # both workers scored
    log = (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert "do not see this machine's job folder" in log
    assert "code snapshot" in log and "model" in log and "sent in" in log

    # Shipped once per content: the next job finds the code and the model on the cluster.
    again = client.batch_endpoints.invoke("ep-test", input=str(data)).wait(timeout=240)
    assert again["status"] == "Completed", again["error"]
    assert lines(output_file(again))[0].split()[:2] == ["f000.csv", "0"]
    assert len(lines(output_file(again))) == 12
    log = (Path(again["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert log.count("already on the cluster") == 2


def test_tabular_chunks_read_elsewhere_keep_their_rows_sources(client, deploy, elsewhere, tmp_path) -> None:
    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "rows.csv").write_text("x\n" + "".join(f"{i}\n" for i in range(7)))
    client.computes.create_or_update({"name": "remote", "type": "dask", "address": elsewhere.address})
    dep = deploy(
        """
        def init():
            pass
        def run(mini_batch):
            out = mini_batch.copy()
            out["double"] = out.x * 2
            return out
        """,
        mini_batch_mode="tabular",
        mini_batch_size=3,
        output_file_name="scores.parquet",
    )
    client.batch_deployments.update(dep["name"], dep["endpoint_name"], ["compute=azureml:remote"])
    job = client.batch_endpoints.invoke("ep-test", input=str(folder)).wait(timeout=240)
    assert job["status"] == "Completed", job["error"]
    import pyarrow.parquet as pq

    table = pq.read_table(output_file(job)).to_pydict()
    assert table["double"] == [2 * i for i in range(7)]
    # Each row names the file it came from on this machine, not the copy the worker read.
    assert table["_source_file"] == [str(folder / "rows.csv")] * 7
    assert table["_source_row"] == list(range(7))


def test_a_failure_elsewhere_keeps_its_traceback_in_the_jobs_logs(client, deploy, csv_inputs, elsewhere) -> None:
    client.computes.create_or_update({"name": "remote", "type": "dask", "address": elsewhere.address})
    dep = deploy(
        """
        import os
        def init():
            pass
        def run(mini_batch):
            if any(os.path.basename(f) == "f001.csv" for f in mini_batch):
                raise ValueError("f001 cannot be scored")
            return [os.path.basename(f) for f in mini_batch]
        """,
        mini_batch_size=1,
        error_threshold=-1,
        retry_settings={"max_retries": 2, "timeout": 30},
    )
    client.batch_deployments.update(dep["name"], dep["endpoint_name"], ["compute=azureml:remote"])
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(3))).wait(timeout=240)
    assert job["status"] == "Completed", job["error"]
    assert lines(output_file(job)) == ["f000.csv", "f002.csv"]
    assert [f["item"].rsplit("/", 1)[-1] for f in client.jobs.failures(job["name"])] == ["f001.csv"]
    # Both attempts' tracebacks came back from the workers into the job's folder here.
    tracebacks = "".join(p.read_text() for p in (Path(job["logs_dir"]) / "user" / "error").glob("*.txt"))
    assert tracebacks.count("ValueError: f001 cannot be scored") == 2
