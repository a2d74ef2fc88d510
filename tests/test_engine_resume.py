"""Crashes, resume, rerun and cancel: real SIGKILLs of real processes.

The scoring script here logs every file it scores (``SCORED``) with the scoring pid, so a test can
tell exactly which mini-batches ran, how often, and in which process.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
from pathlib import Path

import psutil
import pytest
from engine_helpers import (
    csv_rows,
    lines,
    minibatches,
    output_file,
    reaping,
    supervisor_pid,
    wait_until,
    zygote_pid,
)

# Sleeps SLEEP seconds per mini-batch, logs "<file> <pid>" per scored file, and fails for the file
# named by FAIL_FILE while the file FLAG exists.
SLOW_ECHO = """
import os, time
import pandas as pd
def init():
    pass
def run(mini_batch):
    time.sleep(float(os.environ.get("SLEEP", "0")))
    frames = []
    for f in mini_batch:
        name = os.path.basename(f)
        if name == os.environ.get("FAIL_FILE") and os.path.exists(os.environ["FLAG"]):
            raise RuntimeError(f"cannot score {name} yet")
        frames.append(pd.read_csv(f))
    with open(os.environ["SCORED"], "a") as fh:
        fh.write("".join(f"{os.path.basename(f)} {os.getpid()}\\n" for f in mini_batch))
    return pd.concat(frames, ignore_index=True)
"""


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    with reaping():
        yield


@pytest.fixture
def trace(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "trace"
    folder.mkdir()
    return {"scored": folder / "scored.txt", "flag": folder / "flag"}


def _env(trace: dict[str, Path], sleep: float, fail_file: str = "") -> dict[str, str]:
    return {"SLEEP": str(sleep), "SCORED": str(trace["scored"]), "FLAG": str(trace["flag"]), "FAIL_FILE": fail_file}


def _scored(trace: dict[str, Path]) -> collections.Counter[str]:
    return collections.Counter(line.split()[0] for line in lines(trace["scored"]))


def _done(client, name: str) -> list[int]:
    return [mb["idx"] for mb in minibatches(client, name) if mb["status"] == "done"]


def test_a_killed_worker_does_not_lose_or_duplicate_output(client, deploy, csv_inputs, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    deploy(
        """
        import os, time
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            open(os.path.join(os.environ["PIDS"], str(os.getpid())), "w").close()
            time.sleep(1)
            return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
        """,
        mini_batch_size=1,
        max_concurrency_per_instance=2,
        environment_variables={"PIDS": str(pids)},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(6)))
    victim = int(wait_until(lambda: sorted(os.listdir(pids)), timeout=60, what="a worker to start scoring")[0])
    os.kill(victim, signal.SIGKILL)
    job.wait(timeout=120)

    assert job["status"] == "Completed", job["error"]
    assert lines(output_file(job)) == csv_rows(6)
    # The crash is not charged to any mini-batch: nothing failed, nothing is missing.
    assert job["progress"]["mini_batches"]["done"] == 6
    assert job["progress"]["mini_batches"]["failed"] == 0
    assert job["progress"]["items"] == {"total": 6, "succeeded": 6, "failed": 0}
    master = (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert "a worker process died" in master
    # The victim died before finishing anything: every mini-batch was recorded by another worker.
    node = Path(job["logs_dir"]) / "sys" / "node" / socket.gethostname()
    assert not (node / f"process{victim}.txt").exists()
    recorded = sorted(json.loads(line)["mini_batch"] for f in node.glob("process*.txt") for line in lines(f))
    assert recorded == list(range(6))


def test_a_killed_supervisor_is_interrupted_and_resume_finishes_without_recomputing(client, deploy, csv_inputs, trace):
    n = 12
    deploy(SLOW_ECHO, mini_batch_size=1, max_concurrency_per_instance=2, environment_variables=_env(trace, 0.4))
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(n)))
    name = job["name"]
    wait_until(lambda: len(_done(client, name)) >= 3, timeout=60, what="three committed mini-batches")

    pid = supervisor_pid(client, name)
    supervisor = psutil.Process(pid)
    # Its zygote outlives it, for the compute's next agent: not one of what must end with it.
    workers = [p for p in supervisor.children(recursive=True) if p.pid != zygote_pid(client)]
    assert workers, "the supervisor has no worker processes"
    os.kill(pid, signal.SIGKILL)
    # Its workers (and loky's resource trackers) exit at once.
    _, alive = psutil.wait_procs([supervisor, *workers], timeout=10)
    assert not alive, f"orphans of the killed supervisor still alive: {[p.pid for p in alive]}"
    committed = _done(client, name)
    scored_before = _scored(trace)
    assert 3 <= len(committed) < n

    interrupted = wait_until(
        lambda: (j := client.jobs.get(name))["status"] == "Interrupted" and j, timeout=10, what="Interrupted"
    )
    assert "job resume" in interrupted["error"]
    assert _done(client, name) == committed  # committed mini-batches stay done

    resumed = client.jobs.resume(name)
    assert resumed["status"] in ("Queued", "Preparing", "Running")
    job = client.jobs.wait(name, timeout=120)

    assert job["status"] == "Completed", job["error"]
    assert lines(output_file(job)) == csv_rows(n)
    assert job["progress"]["mini_batches"]["done"] == n
    assert job["progress"]["items"] == {"total": n, "succeeded": n, "failed": 0}
    scored = _scored(trace)
    assert set(scored) == {f"f{i:03d}.csv" for i in range(n)}
    for idx in committed:
        assert scored[f"f{idx:03d}.csv"] == 1, f"committed mini-batch {idx} was scored again"
    # Only mini-batches in flight at the kill (at most 2 per worker) may have been scored twice.
    rescored = [f for f, count in scored.items() if count > 1]
    assert len(rescored) <= 4
    assert all(scored_before[f] == 1 for f in rescored)
    master = (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert "mini-batches already planned (resumed, or incremental); committed ones are kept" in master


def test_rerun_failed_scores_only_the_failed_mini_batch(client, deploy, csv_inputs, trace):
    trace["flag"].touch()
    deploy(
        SLOW_ECHO,
        mini_batch_size=2,
        max_concurrency_per_instance=2,
        retry_settings={"max_retries": 2, "timeout": 30},
        environment_variables=_env(trace, 0, fail_file="f005.csv"),
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(8))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert job["progress"]["mini_batches"]["failed"] == 1
    # Its mini-batch (f004, f005) was split to isolate the failing file (isolate_failures).
    assert lines(output_file(job)) == csv_rows(8, skip=(5,))

    trace["flag"].unlink()
    client.jobs.rerun_failed(job["name"])
    job = client.jobs.wait(job["name"], timeout=120)

    assert job["status"] == "Completed", job["error"]
    assert lines(output_file(job)) == csv_rows(8)
    assert job["progress"]["mini_batches"] == {
        "total": 5,
        "done": 5,
        "failed": 0,
        "running": 0,
        "retrying": 0,
        "pending": 0,
    }
    assert job["progress"]["items"] == {"total": 8, "succeeded": 8, "failed": 0}
    # Every file scored successfully exactly once over both runs: the rerun ran f005's mini-batch only.
    assert _scored(trace) == collections.Counter(f"f{i:03d}.csv" for i in range(8))


def test_rerun_failed_refuses_a_job_without_failures(client, deploy, csv_inputs, trace):
    from batchnb.errors import InvalidStateError

    deploy(SLOW_ECHO, mini_batch_size=2, environment_variables=_env(trace, 0))
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    with pytest.raises(InvalidStateError, match="no failed items"):
        client.jobs.rerun_failed(job["name"])


def test_cancel_stops_dispatch_and_keeps_committed_mini_batches(client, deploy, csv_inputs, trace):
    n = 12
    deploy(SLOW_ECHO, mini_batch_size=1, max_concurrency_per_instance=1, environment_variables=_env(trace, 0.5))
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(n)))
    name = job["name"]
    wait_until(lambda: len(_done(client, name)) >= 2, timeout=60, what="two committed mini-batches")
    supervisor = psutil.Process(supervisor_pid(client, name))
    workers = supervisor.children(recursive=True)

    requested = client.jobs.cancel(name)
    assert requested["status"] in ("CancelRequested", "Canceled")
    job = client.jobs.wait(name, timeout=30)
    assert job["status"] == "Canceled"
    assert "canceled" in job["error"]

    # The supervisor and its workers stop; after that nothing can be scored any more.
    _, alive = psutil.wait_procs([supervisor, *workers], timeout=15)
    assert not alive
    done = _done(client, name)
    scored = _scored(trace)
    assert 2 <= len(done) < n
    assert len(scored) < n  # dispatch stopped: not every mini-batch ran
    assert set(scored) >= {f"f{i:03d}.csv" for i in done}
    mb = job["progress"]["mini_batches"]
    assert mb["done"] == len(done) and mb["running"] == 0 and mb["failed"] == 0
    assert mb["pending"] == n - len(done)
    assert not output_file(job).exists()  # a canceled job writes no merged output
    assert "Canceled" in (Path(job["logs_dir"]) / "job_result.txt").read_text()

    # A canceled job can be resumed: it finishes the rest and scores no committed mini-batch again.
    client.jobs.resume(name)
    result = Path(job["logs_dir"]) / "job_result.txt"
    # While it runs again, its result file no longer says Canceled; at the end it says Completed.
    assert "Canceled" not in result.read_text()
    job = client.jobs.wait(name, timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert result.read_text().startswith("Completed: 12 of 12")
    assert lines(output_file(job)) == csv_rows(n)
    rescored = _scored(trace)
    for idx in done:
        assert rescored[f"f{idx:03d}.csv"] == 1, f"committed mini-batch {idx} was scored again"


def test_cancel_right_after_invoke_ends_canceled(client, deploy, csv_inputs, trace):
    deploy(SLOW_ECHO, mini_batch_size=1, max_concurrency_per_instance=1, environment_variables=_env(trace, 0.5))
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(6)))
    client.jobs.cancel(job["name"])
    job.wait(timeout=60)
    assert job["status"] == "Canceled"
    assert job["progress"]["mini_batches"]["done"] < 6
    assert not output_file(job).exists()
