"""Helpers for the engine tests: polling with a deadline, reading outputs and the store, and
process control (every process a test starts is gone when the test ends)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")

# A scoring script that holds its mini-batch until the file named by RELEASE exists: a job that runs
# as long as a test needs (deploy it with environment_variables={"RELEASE": path}).
HOLD = """
import os, time

def init():
    pass

def run(mini_batch):
    while not os.path.exists(os.environ["RELEASE"]):
        time.sleep(0.05)
    return [str(p) for p in mini_batch]
"""


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def output_file(job: dict[str, Any]) -> Path:
    """The job's append_row output: ``outputs.score.path / file_name``."""
    score = job["outputs"]["score"]
    return Path(score["path"]) / score["file_name"]


def lines(path: str | os.PathLike[str]) -> list[str]:
    """The lines of a text file, or [] if it does not exist yet."""
    p = Path(path)
    return p.read_text(encoding="utf-8").splitlines() if p.exists() else []


def csv_rows(n: int, skip: tuple[int, ...] = ()) -> list[str]:
    """The output lines an echo script gives for ``csv_inputs(n)``: ``"i 2i"``, in input order."""
    return [f"{i} {2 * i}" for i in range(n) if i not in skip]


def supervisor_pid(client: Any, name: str) -> int | None:
    """The pid of the job's owner as recorded in the store: its compute's agent (a pipeline: its runner)."""
    with client.store.read() as db:
        row = db.execute("SELECT supervisor_pid FROM jobs WHERE name = ?", (name,)).fetchone()
    return None if row is None else row[0]


def minibatches(client: Any, name: str) -> list[dict[str, Any]]:
    """The job's mini-batch rows, by index."""
    with client.store.read() as db:
        rows = db.execute(
            "SELECT idx, items, n_items, status, attempts, succeeded, failed, rows, error "
            "FROM minibatches WHERE job = ? ORDER BY idx",
            (name,),
        ).fetchall()
    return [dict(r) for r in rows]


def job_count(client: Any) -> int:
    with client.store.read() as db:
        return int(db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


def kill_and_reap(procs: list[psutil.Process], timeout: float = 10.0) -> None:
    """SIGKILL these processes (by pid) and wait until they are gone."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    assert not alive, f"processes still alive after SIGKILL: {[p.pid for p in alive]}"


def zygote_pid(client: Any, compute: str = "local") -> int | None:
    """The pid of the compute's zygote, as its record in the workspace names it (None: none runs)."""
    try:
        return int(json.loads((client.workspace.root / "run" / f"zygote-{compute}.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


@contextlib.contextmanager
def reaping(grace: float = 10.0) -> Iterator[None]:
    """Around a test: afterwards, give the processes it started (supervisors, loky workers) ``grace``
    seconds to exit, then SIGKILL whatever is left, so no test leaks a process into the next."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    try:
        yield
    finally:
        started = [p for p in me.children(recursive=True) if p.pid not in before]
        # Grandchildren first, while the parent link still names them.
        for proc in list(started):
            with contextlib.suppress(psutil.Error):
                started.extend(c for c in proc.children(recursive=True) if c not in started)
        _, alive = psutil.wait_procs(started, timeout=grace)
        if alive:
            kill_and_reap(alive)


def run_together(argv: list[str], copies: int = 2, timeout: float = 120.0) -> list[subprocess.CompletedProcess[str]]:
    """Run ``copies`` processes of ``argv`` that start their work at one moment: each prints
    ``ready`` when it is set up, then reads a line from stdin, which all get only once all are ready.
    Returns each one's exit code and output."""
    procs = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(copies)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return results
