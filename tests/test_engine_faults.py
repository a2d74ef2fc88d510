"""Troubles that are not the scoring script's: workers killed at random while a job runs, batchnb's
own folder made unwritable mid-job, and the output folder a ``summary_only`` script writes into.
Real processes killed with SIGKILL, a real immutable folder (``chattr +i``); assertions on what a
user sees: the status, the message, the rows."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from engine_helpers import csv_rows, lines, minibatches, output_file, reaping, supervisor_pid, wait_until

SLOW_ECHO = """
import os, time
import pandas as pd
def init():
    pass
def run(mini_batch):
    time.sleep(float(os.environ["SLEEP"]))
    return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
"""


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    with reaping():
        yield


def _workers(client, name: str) -> list[psutil.Process]:
    """The job's worker processes: children of its agent's children (the zygote they are forked
    from); the agent's own children (the zygote, multiprocessing's resource tracker) are spared."""
    pid = supervisor_pid(client, name)
    if not pid:
        return []
    try:
        return [worker for child in psutil.Process(pid).children() for worker in child.children()]
    except psutil.Error:
        return []


def _kill_random_workers(client, name: str, every: float, seconds: float, rng: random.Random) -> int:
    """SIGKILL one random worker of the job every ``every`` s for ``seconds`` s from the first kill
    (the workers start once the zygote has imported: seconds on a busy machine), or until the job
    ends. Returns how many were killed."""
    kills = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and client.jobs.get(name)["status"] in ("Queued", "Preparing", "Running"):
        time.sleep(every)
        workers = _workers(client, name)
        if workers:
            with contextlib.suppress(psutil.Error):
                rng.choice(workers).send_signal(signal.SIGKILL)
                if not kills:
                    deadline = time.monotonic() + seconds
                kills += 1
    return kills


def test_workers_killed_at_random_lose_and_duplicate_nothing(client, deploy, csv_inputs):
    n = 30
    deploy(SLOW_ECHO, mini_batch_size=1, max_concurrency_per_instance=2, environment_variables={"SLEEP": "0.1"})
    data = csv_inputs(n)
    rng = random.Random(7)
    kills = 0
    for _ in range(5):
        job = client.batch_endpoints.invoke("ep-test", input=str(data))
        kills += _kill_random_workers(client, job["name"], every=0.25, seconds=4, rng=rng)
        job.wait(timeout=180)

        assert job["status"] == "Completed", job["error"]
        assert lines(output_file(job)) == csv_rows(n)
        assert job["progress"]["items"] == {"total": n, "succeeded": n, "failed": 0}
        assert all(mb["status"] == "done" for mb in minibatches(client, job["name"]))
    assert kills >= 5, "the test killed too few workers to mean anything"


def test_a_mini_batch_that_kills_its_worker_every_time_is_charged_until_it_fails(client, deploy, csv_inputs):
    """The other side of the coin: a mini-batch whose own worker dies under it (a segfault, the OOM
    killer) is charged, one attempt per loss it is found guilty of, until it fails; the others are not."""
    deploy(
        """
        import os, signal
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            if any(os.path.basename(f) == "f002.csv" for f in mini_batch):
                os.kill(os.getpid(), signal.SIGKILL)
            return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
        """,
        mini_batch_size=1,
        max_concurrency_per_instance=2,
        retry_settings={"max_retries": 2, "timeout": 30},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(8))).wait(timeout=180)

    assert job["status"] == "Completed", job["error"]
    assert lines(output_file(job)) == csv_rows(8, skip=(2,))
    assert job["progress"]["items"] == {"total": 8, "succeeded": 7, "failed": 1}
    by_idx = {mb["idx"]: mb for mb in minibatches(client, job["name"])}
    assert by_idx[2]["status"] == "failed"
    assert by_idx[2]["attempts"] == 2
    assert "the worker process died while scoring this mini-batch" in by_idx[2]["error"]
    assert all(mb["status"] == "done" and mb["attempts"] == 1 for idx, mb in by_idx.items() if idx != 2)


def _chattr_works(folder: Path) -> str | None:
    """None if ``chattr +i`` works on ``folder``'s filesystem here, else why not."""
    if shutil.which("chattr") is None:
        return "chattr is not installed"
    probe = folder / "chattr-probe"
    probe.mkdir()
    try:
        done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
        if done.returncode:
            return f"chattr +i does not work here: {done.stderr.strip()}"
        subprocess.run(["chattr", "-i", str(probe)], check=True)
        return None
    finally:
        probe.rmdir()


@contextlib.contextmanager
def _immutable(folder: Path) -> Iterator[None]:
    """``folder`` made immutable (``chattr +i``: root's ``chmod`` would not stop root) for the block."""
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def _start_and_lock(client, deploy, data: Path, tmp_path: Path, folder_of, settle: int, **settings) -> tuple:
    """Invoke a SLOW_ECHO job on ``data``; once ``settle`` mini-batches are committed, make
    ``folder_of(job)`` immutable and wait for the job to end. Returns (job, folder)."""
    why_not = _chattr_works(tmp_path)
    if why_not:
        pytest.skip(why_not)
    settings.update(mini_batch_size=1, max_concurrency_per_instance=2, environment_variables={"SLEEP": "0.1"})
    deploy(SLOW_ECHO, **settings)
    job = client.batch_endpoints.invoke("ep-test", input=str(data))
    wait_until(
        lambda: sum(mb["status"] == "done" for mb in minibatches(client, job["name"])) >= settle,
        timeout=120,
        what=f"{settle} committed mini-batch(es)",
    )
    folder = folder_of(job)
    with _immutable(folder):
        job.wait(timeout=120)
    return job, folder


def _resume_to_completion(client, name: str, n: int) -> dict:
    client.jobs.resume(name)
    job = client.jobs.wait(name, timeout=180)
    assert job["status"] == "Completed", job["error"]
    assert lines(output_file(job)) == csv_rows(n)
    assert job["progress"]["items"] == {"total": n, "succeeded": n, "failed": 0}
    return job


def test_an_unwritable_parts_folder_interrupts_the_job_and_resume_finishes_it(client, deploy, csv_inputs, tmp_path):
    n = 40
    # error_threshold 0: one item counted failed would fail the job; none may be.
    job, parts = _start_and_lock(
        client, deploy, csv_inputs(n), tmp_path, lambda j: Path(j["job_dir"]) / "parts", settle=3, error_threshold=0
    )
    name = job["name"]

    assert job["status"] == "Interrupted", job["error"]
    assert str(parts) in job["error"]
    assert "could not write the part file" in job["error"]
    assert f"batchnb job resume -n {name}" in job["error"]
    assert job["progress"]["items"]["failed"] == 0
    assert job["progress"]["mini_batches"]["failed"] == 0
    _resume_to_completion(client, name, n)
    assert [mb["attempts"] for mb in minibatches(client, name)] == [1] * n  # nothing was charged
    assert not [p for p in os.listdir(parts) if p.endswith(".tmp")]


def test_an_unwritable_logs_folder_interrupts_the_job_and_resume_finishes_it(client, deploy, csv_inputs, tmp_path):
    """The job's own writes (its progress file in logs/) fail: Interrupted, then resumable."""
    n = 30
    job, logs = _start_and_lock(client, deploy, csv_inputs(n), tmp_path, lambda j: Path(j["logs_dir"]), settle=1)

    assert job["status"] == "Interrupted", job["error"]
    assert str(logs / "job_progress_overview.txt") in job["error"]
    assert f"batchnb job resume -n {job['name']}" in job["error"]
    assert job["progress"]["items"]["failed"] == 0
    _resume_to_completion(client, job["name"], n)


def test_a_summary_only_script_writes_its_own_parquet_files_into_the_output_folder(client, deploy, tmp_path):
    """Azure's custom-outputs-parquet example: init() reads AZUREML_BI_OUTPUT_PATH, run() writes one
    Parquet file per input file there."""
    import pandas as pd

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        pd.DataFrame({"x": range(i * 10, i * 10 + 5)}).to_csv(data / f"part{i}.csv", index=False)
    deploy(
        """
        import os
        import pandas as pd
        def init():
            global output_path
            output_path = os.environ["AZUREML_BI_OUTPUT_PATH"]
        def run(mini_batch):
            for path in mini_batch:
                frame = pd.read_csv(path)
                frame["double"] = frame["x"] * 2
                name = os.path.splitext(os.path.basename(path))[0] + ".parquet"
                frame.to_parquet(os.path.join(output_path, name))
            return mini_batch
        """,
        mini_batch_size=2,
        output_action="summary_only",
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(data)).wait(timeout=120)

    assert job["status"] == "Completed", job["error"]
    assert job["progress"]["items"] == {"total": 4, "succeeded": 4, "failed": 0}
    folder = Path(job["outputs"]["score"]["path"])
    assert sorted(p.name for p in folder.iterdir()) == [f"part{i}.parquet" for i in range(4)]
    for i in range(4):
        frame = pd.read_parquet(folder / f"part{i}.parquet")
        assert frame["x"].tolist() == list(range(i * 10, i * 10 + 5))
        assert frame["double"].tolist() == [2 * x for x in range(i * 10, i * 10 + 5)]
