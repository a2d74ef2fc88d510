"""How the benchmarks measure: jobs followed through the store as a user would see them, baselines
run as processes, contenders alternated (A B A B, because shared machines are noisy), and the
processes of a compute's agent (to kill them on purpose).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
CORES = os.cpu_count() or 1
ENDED = {"Completed", "Failed", "Canceled", "Interrupted"}


def med(values: list[float]) -> float:
    return statistics.median(values)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def _tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def _progress(client: Any, name: str) -> tuple[str, int, int, int | None]:
    """The job's status, its committed and total mini-batches, and its owner's pid, from the store."""
    with client.store.read() as db:
        row = db.execute("SELECT status, supervisor_pid FROM jobs WHERE name = ?", (name,)).fetchone()
        total, done = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'done'), 0) FROM minibatches WHERE job = ?", (name,)
        ).fetchone()
    return str(row["status"]), int(done), int(total), row["supervisor_pid"]


def follow(
    client: Any,
    names: list[str],
    t0: float,
    sample_rss: bool = False,
    timeout: float = 1800,
    through_interrupted: bool = False,
) -> dict[str, Any]:
    """Poll the store until every job in ``names`` has ended (``through_interrupted``: Interrupted
    does not count, its owner having been killed on purpose). Returns, in seconds since ``t0``,
    when each job first committed a mini-batch *in this run* and when it ended, and the peak
    resident memory of its owner's process tree (``sample_rss``)."""
    until = ENDED - {"Interrupted"} if through_interrupted else ENDED
    before = {name: _progress(client, name)[1] for name in names}
    first: dict[str, float | None] = dict.fromkeys(names)
    ended: dict[str, float] = {}
    owners: dict[str, int] = {}
    peak = 0
    while len(ended) < len(names):
        now = time.perf_counter() - t0
        for name in names:
            if name in ended:
                continue
            status, done, _, pid = _progress(client, name)
            if first[name] is None and done > before[name]:
                first[name] = now
            if pid:
                owners[name] = pid
            if status in until:
                ended[name] = now
        if sample_rss:
            peak = max([peak, *(_tree_rss(pid) for pid in set(owners.values()))])
        if now > timeout:
            raise RuntimeError(f"job(s) {', '.join(n for n in names if n not in ended)} did not end in {timeout} s")
        # A poll costs tens of microseconds: polling often keeps the job's end from being seen late
        # (the baselines' end is exact: they answer when done).
        time.sleep(0.01)
    for name in names:
        job = client.jobs.get(name)
        if job["status"] != "Completed":
            raise RuntimeError(f"job {name} ended {job['status']}: {job.get('error')}")
    return {"first": first, "ended": ended, "owners": owners, "peak_rss": peak}


def run_job(
    client: Any, endpoint: str, data: Path, sample_rss: bool = False, cold: bool = False, **invoke: Any
) -> dict[str, Any]:
    """Invoke, follow the job through the store until it ends: the timings a user would see.
    ``cold``: the compute's agent exits after the job (no idle time); wait (untimed) until it has,
    so that the next job starts a new one rather than finding this one's workers."""
    t0 = time.perf_counter()
    job = client.batch_endpoints.invoke(endpoint, input=str(data), **invoke)
    invoke_s = time.perf_counter() - t0
    name = job["name"]
    seen = follow(client, [name], t0, sample_rss=sample_rss)
    owner = seen["owners"].get(name)
    if cold and owner:
        with contextlib.suppress(psutil.Error):
            psutil.Process(owner).wait(timeout=60)
    result = {
        "name": name,
        "wall_s": seen["ended"][name],
        "invoke_s": invoke_s,
        "first_progress_s": seen["first"][name],
        "rows": client.jobs.get(name)["progress"]["rows_written"],
    }
    if sample_rss:
        result["peak_rss_mb"] = seen["peak_rss"] / 2**20
    return result


def wait_fraction(client: Any, name: str, fraction: float, timeout: float = 600) -> None:
    """Wait until ``fraction`` of the job's mini-batches are committed."""
    deadline = time.monotonic() + timeout
    while True:
        status, done, total, _ = _progress(client, name)
        if total and done >= fraction * total:
            return
        if status in ENDED:
            raise RuntimeError(f"job {name} ended {status} before {fraction:.0%} of it was done")
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {name} did not reach {fraction:.0%} in {timeout} s")
        time.sleep(0.01)


def agent_pid(client: Any, compute: str) -> int:
    """The pid of the compute's running agent."""
    agent = client.computes.show(compute)["agent"]
    if not agent:
        raise RuntimeError(f"compute {compute} has no agent running")
    return int(agent["pid"])


def worker_pids(agent: int) -> list[int]:
    """An agent's worker processes: its zygote's children (the zygote itself is not a worker)."""
    found = []
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(agent).children():
            with contextlib.suppress(psutil.Error):
                found += [w.pid for w in child.children()]
    return found


def with_start_method(method: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()`` with local workers started by ``method`` (zygote or spawn): an agent started by this
    process (a cold compute's, at invoke) inherits ``BATCHNB_WORKER_START`` from it."""
    saved = os.environ.get("BATCHNB_WORKER_START")
    os.environ["BATCHNB_WORKER_START"] = method
    try:
        return run()
    finally:
        if saved is None:
            os.environ.pop("BATCHNB_WORKER_START")
        else:
            os.environ["BATCHNB_WORKER_START"] = saved


def alternate(
    contenders: dict[str, Callable[[], dict[str, Any]]], rounds: int, pairs: list[tuple[str, str]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Run every contender once per round, rotating the order each round (A B C, B C A, ...).

    ``pairs``: contenders compared with each other run back to back, first one then the other in
    turn (A B, then B A): the machine's speed drifts by the minute, and a ratio of two runs a
    minute apart measures the drift as much as the contenders."""
    paired = {name for pair in pairs or [] for name in pair}
    groups: list[tuple[str, ...]] = [*(pairs or []), *((n,) for n in contenders if n not in paired)]
    # In the contenders' order (the first of each group decides where it stands).
    groups.sort(key=lambda g: list(contenders).index(g[0]))
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in contenders}
    for r in range(rounds):
        turned = groups[r % len(groups) :] + groups[: r % len(groups)]
        for group in turned:
            for name in group if r % 2 == 0 else reversed(group):
                result = contenders[name]()
                results[name].append(result)
                shown = ", ".join(f"{k} {v:.3f}" for k, v in result.items() if isinstance(v, float))
                print(f"  round {r + 1} {name}: {shown}", flush=True)
    return results


def run_baseline(args: list[str], log: Path) -> dict[str, Any]:
    """``benchmarks/baselines.py ARGS`` in a fresh process: its wall time from launch to exit, and
    the figures it prints as JSON on its last line."""
    cmd = [sys.executable, str(HERE / "baselines.py"), *args]
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
        wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"baseline {args[0]} failed; see {log}:\n{log.read_text()[-2000:]}")
    return {"wall_s": wall, **json.loads(log.read_text().strip().splitlines()[-1])}


class LiveBaseline:
    """``benchmarks/baselines.py serve``: a Python process kept alive between runs of its loop, as
    a notebook's kernel is; each :meth:`run` is one more run of the loop in it."""

    def __init__(self, args: list[str], log: Path) -> None:
        self._log = open(log, "w")  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            [sys.executable, str(HERE / "baselines.py"), "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        # Its first run of the loop, untimed: loky's workers start and load the model.
        if not self._proc.stdout or not self._proc.stdout.readline():
            raise RuntimeError(f"the live baseline did not start; see {log}")

    def run(self) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        t0 = time.perf_counter()
        self._proc.stdin.write("run\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        wall = time.perf_counter() - t0
        if not line:
            raise RuntimeError(f"the live baseline exited; see {self._log.name}")
        return {"wall_s": wall, **json.loads(line)}

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()
