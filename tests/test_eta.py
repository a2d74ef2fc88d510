"""The ETA of a running job is measured over its current run: after a resume, neither the
mini-batches committed before it nor the time the job lay Interrupted count (issue 25, point 5)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from engine_helpers import minibatches, reaping, supervisor_pid, wait_until

from batchnb.engine.records import eta_seconds

# File fN waits for the gate file "open-N": the test decides when each mini-batch may finish.
GATED = """
import os, time
def init():
    pass
def run(mini_batch):
    for f in mini_batch:
        gate = os.path.join(os.environ["GATES"], "open-" + str(int(os.path.basename(f)[1:4])))
        while not os.path.exists(gate):
            time.sleep(0.05)
    return [os.path.basename(f) for f in mini_batch]
"""

HOUR = 3600.0


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    with reaping():
        yield


def test_the_eta_of_a_resumed_job_counts_only_the_mini_batches_since_the_resume():
    # A job of 10 mini-batches: 6 finished in its first run, an hour ago; resumed 20 s ago, it has
    # finished 2 since. At this run's pace the last 2 take 20 s more.
    assert eta_seconds(remaining=2, finished_in_run=2, run_elapsed=20.0) == 20.0
    # Measured since the first start over every finished mini-batch, it was ~15 minutes.
    assert eta_seconds(remaining=2, finished_in_run=8, run_elapsed=HOUR + 20.0) == 905.0
    # Nothing finished since the resume yet: no pace to go by, so no ETA (not one from the old run).
    assert eta_seconds(remaining=4, finished_in_run=0, run_elapsed=5.0) is None
    assert eta_seconds(remaining=0, finished_in_run=3, run_elapsed=5.0) == 0.0


def _open(gates: Path, *indices: int) -> None:
    for i in indices:
        (gates / f"open-{i}").touch()


def _done(client, name: str) -> int:
    return sum(mb["status"] == "done" for mb in minibatches(client, name))


def test_a_resumed_job_shows_the_eta_of_its_new_run(client, deploy, csv_inputs, tmp_path):
    gates = tmp_path / "gates"
    gates.mkdir()
    deploy(GATED, mini_batch_size=1, max_concurrency_per_instance=1, environment_variables={"GATES": str(gates)})
    name = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(10)))["name"]
    _open(gates, *range(6))
    wait_until(lambda: _done(client, name) == 6, timeout=90, what="six committed mini-batches")

    owner = psutil.Process(supervisor_pid(client, name))
    workers = owner.children(recursive=True)
    os.kill(owner.pid, signal.SIGKILL)
    psutil.wait_procs([owner, *workers], timeout=10)
    wait_until(lambda: client.jobs.get(name)["status"] == "Interrupted", timeout=30, what="Interrupted")
    # The first run began an hour ago: the job lay Interrupted since (the store's times, moved back).
    with client.store.write() as tx:
        tx.execute("UPDATE jobs SET started_at = started_at - ? WHERE name = ?", (HOUR, name))
        tx.execute("UPDATE minibatches SET ended_at = ended_at - ? WHERE job = ? AND status = 'done'", (HOUR, name))

    client.jobs.resume(name)
    _open(gates, 6, 7)
    wait_until(lambda: _done(client, name) == 8, timeout=90, what="two mini-batches of the resumed run")
    with client.store.read() as db:
        run_started = db.execute("SELECT run_started_at FROM jobs WHERE name = ?", (name,)).fetchone()[0]
    before = time.time()
    job = client.jobs.get(name)
    after = time.time()

    assert job["status"] == "Running"
    assert job["progress"]["elapsed_s"] > HOUR
    # 2 left, 2 finished in this run: the ETA is this run's time so far (taken between the two clocks).
    assert round(before - run_started, 1) <= job["progress"]["eta_s"] <= round(after - run_started, 1)
    _open(gates, 8, 9)
    assert client.jobs.wait(name, timeout=90)["status"] == "Completed"
