"""The compute agent: one process per compute that runs every batch job queued on it.

The processes of batchnb, and how they talk to each other::

    front end (a kernel, the CLI, the Jupyter server)
      │  writes a job (Queued) to the store, then ensure(): starts the compute's agent if none
      │  runs, else wakes it (SIGUSR1); cancel, stop and show go through the store too
      ▼
    agent: python -m batchnb.engine.agent --workspace W --compute C    (one per compute)
      │  holds the compute's row in the store's ``agents`` table (pid, start time, heartbeat);
      │  claims Queued jobs of its compute, runs each as a Supervisor on a thread, stamps their
      │  heartbeats and its own, resumes the jobs a dead agent left, exits when idle
      ├── zygote: python -m batchnb.compute.zygote_server: imports once, forks workers on request
      │     │  over a Unix socket; the agent holds a lease on it; it outlives a killed agent, for
      │     │  the compute's next agent to adopt (batchnb.compute.zygote)
      │     └── workers: one per slot (batchnb.compute.workers), loky executors of one process;
      │         init() and run(); mini-batches and results go through loky's pipes, parts to files
      └── for an ssh compute, its Dask cluster instead (batchnb.compute.ssh): a scheduler and
          workers started over SSH on the compute's hosts; for a dask compute, a cluster that
          already runs (batchnb.compute.dask), never started or stopped by the agent; each job's
          Dask client submits there
    pipeline runner: python -m batchnb.pipelines.runner (one per pipeline job) → its steps' commands;
      a lost one is started again by the front ends (batchnb.pipelines.auto_resume)

Everything durable is in the SQLite store (jobs, mini-batches, the agents' rows) and the job
folders (parts, logs). The agent's workers end with it; its zygote ends with it when it exits, and
after a crash waits for the compute's next agent (the compute's idle time, 30 s at least).

**Lifecycle.** An agent starts on demand (a job queued on its compute, ``compute start``, or the
Jupyter server extension finding work left) and takes the compute's row unless a live agent holds
it. It runs Queued jobs while they fit (each running job needs one worker at least). Without
``idle_time_before_scale_down`` it exits as soon as it has nothing to run; with it, it keeps its
warm workers that long after its last job. One started by ``compute start`` waits for a first
job at least :data:`START_LINGER_S` (jobs are coming). ``compute stop`` asks it to stop at once: its running
jobs end Interrupted (the reason says the compute was stopped and how to resume), and nothing of it
is left: its workers and zygote are killed, an ssh compute's cluster is closed (an attached Dask
cluster is only disconnected from). A job blocked in a call to its cluster (starting it, shipping)
is freed by that close; one that still has not ended is marked Interrupted by the agent itself.

**Recovery by itself.** A job whose owner died (the agent killed, the machine rebooted) is seen
Interrupted (see :func:`batchnb.engine.state.check_interrupted`, which marks it ``lost``). The
compute's next agent queues it again (:mod:`batchnb.engine.auto_resume`), up to the job's
``max_auto_resumes`` times, and its committed mini-batches are kept; past that it stays Interrupted
with the reason, for ``job resume``. Its workers start at once: the next agent adopts the zygote
the lost one left.

**A Dask scheduler lost mid-job.** The job ends Interrupted at once (``lost``: see
:class:`batchnb.errors.ClusterLostError`). Its agent stays up, and every :data:`RECOVER_EVERY_S` asks
whether the cluster is back (:func:`batchnb.engine.auto_resume.cluster_back`: an attached scheduler
accepts connections again; an ssh compute's agent starts a new cluster, so it need not wait); then
it queues the job again, counted against the job's ``max_auto_resumes`` like any automatic resume,
and says so in the job's log. A scheduler that does not answer within
:data:`batchnb.engine.auto_resume.CLUSTER_WAIT_S` of the interruption leaves the job Interrupted,
with the reason, for ``job resume``. Any lost job of a Dask compute (its agent killed too) waits the
same way.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..store import Store
from . import lifecycle, state
from .auto_resume import compute_spec, resume_lost

# How often an agent looks at the store when nothing wakes it.
POLL_S = 0.25
# How often it checks its compute's jobs for a lost owner (to resume them).
RECOVER_EVERY_S = 2.0
# A running job is given this long to stop when the agent stops ...
STOP_JOBS_S = 15.0
# ... the first of which before its Dask cluster is closed under it.
STOP_NOTICE_S = 2.0
# ... and this long after its workers or cluster are gone, before the agent marks it Interrupted itself.
STOP_CLOSED_S = 5.0
# How long an agent started by `compute start` waits for a first job, whatever its idle time.
START_LINGER_S = 60.0
LOCAL_TYPES = ("local", "amlcompute")


def agent_row(store: Store, compute: str) -> dict[str, Any] | None:
    """The compute's agent as the store has it, if its process is alive."""
    with store.read() as db:
        row = db.execute("SELECT * FROM agents WHERE compute = ?", (compute,)).fetchone()
    if row is None or state.supervisor_alive(row["pid"], row["started"]) is not True:
        return None
    return dict(row)


def ensure(workspace_root: Path, compute: str, linger: float = 0.0) -> int | None:
    """Make sure the compute's agent runs: wake it, or start one. Returns a live agent's pid, or
    None when one was started (it takes the compute's row as it starts). ``linger``: a new agent
    waits at least that long for a first job (``compute start``: jobs are coming)."""
    store = Store(workspace_root / "batchnb.db")
    try:
        row = agent_row(store, compute)
    finally:
        store.close()
    if row is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(row["pid"], signal.SIGUSR1)
            return int(row["pid"])
    lifecycle.start_detached(
        "batchnb.engine.agent",
        ["--workspace", str(workspace_root), "--compute", compute, "--linger", str(linger)],
        log_folder(workspace_root, compute) / "agent.log",
        workspace_root,
    )
    return None


def log_folder(workspace_root: Path, compute: str) -> Path:
    """``agents/<compute>/`` in the workspace: the agent's log, and its zygote's (``stdout/``, ``stderr/``)."""
    folder = workspace_root / "agents" / compute
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def stop(workspace_root: Path, compute: str, timeout: float = 30.0) -> dict[str, Any]:
    """Stop the compute's agent now: its running jobs end Interrupted, its workers go. Waits for
    the process to be gone (up to ``timeout``)."""
    import psutil

    store = Store(workspace_root / "batchnb.db")
    try:
        row = agent_row(store, compute)
        if row is None:
            from ..compute import zygote

            lingering = zygote.stop_lingering(workspace_root, compute)  # a lost agent's, left for the next
            return {"name": compute, "stopping": bool(lingering), "agent": None}
        with store.write() as tx:
            tx.execute("UPDATE agents SET stop_requested = 1 WHERE compute = ? AND pid = ?", (compute, row["pid"]))
    finally:
        store.close()
    with contextlib.suppress(ProcessLookupError):
        os.kill(row["pid"], signal.SIGTERM)
    with contextlib.suppress(psutil.Error):
        psutil.Process(row["pid"]).wait(timeout)
    gone = state.supervisor_alive(row["pid"], row["started"]) is not True
    return {"name": compute, "stopping": True, "stopped": gone, "agent": row["pid"]}


class Agent:
    """The agent of one compute in one workspace (see the module docstring)."""

    def __init__(self, workspace_root: Path, compute: str, linger: float = 0.0) -> None:
        self.root = workspace_root
        self.name = compute
        from ..cloud.fs import use_workspace

        use_workspace(workspace_root)  # the jobs' datastores (and their credentials) are this workspace's
        self.store = Store(workspace_root / "batchnb.db")
        self.compute = compute_spec(self.store, compute)
        self.local = self.compute.get("type", "local") in LOCAL_TYPES
        self.idle_s = float(self.compute.get("idle_time_before_scale_down") or 0)
        self.linger = linger  # before its first job: it was started ahead of jobs
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.jobs: dict[str, tuple[threading.Thread, Any]] = {}
        self.dask_jobs: dict[str, Any] = {}  # each running job's DaskWorkers (closed at a stop)
        self.pool: Any = None
        self.cluster: Any = None  # an ssh compute's cluster, started by its first job
        self._last_recover = 0.0

    # -- the lease --------------------------------------------------------------------------------

    def take_lease(self) -> bool:
        """Take the compute's row unless a live agent holds it."""
        import psutil

        me = psutil.Process()
        now = time.time()
        with self.store.write() as tx:
            row = tx.execute("SELECT pid, started FROM agents WHERE compute = ?", (self.name,)).fetchone()
            if row is not None and row["pid"] != me.pid and state.supervisor_alive(row["pid"], row["started"]):
                return False
            tx.execute(
                "INSERT OR REPLACE INTO agents (compute, pid, started, host, created_at, heartbeat_at, capacity) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.name, me.pid, me.create_time(), socket.gethostname(), now, now, self._capacity()),
            )
        return True

    def _capacity(self) -> int:
        from ..compute.workers import capacity_of

        return capacity_of(self.compute) if self.local else 0

    def _release_if_idle(self) -> bool:
        """Give up the compute's row if nothing is queued for it (atomically: a job queued meanwhile
        finds either this agent's row, and wakes it, or none, and starts a new agent)."""
        with self.store.write() as tx:
            waiting = tx.execute(
                "SELECT 1 FROM jobs WHERE compute = ? AND kind = 'batch' AND (status = ? OR (status = ? AND lost = 1)) "
                "LIMIT 1",
                (self.name, state.QUEUED, state.INTERRUPTED),
            ).fetchone()
            if waiting:
                return False
            tx.execute("DELETE FROM agents WHERE compute = ? AND pid = ?", (self.name, os.getpid()))
        return True

    def _beat(self) -> None:
        """Stamp the agent's row (its workers and memory, for ``compute show``); see a stop request."""
        import psutil

        from ..compute import zygote

        me = psutil.Process()
        store = Store(self.store.path)
        while not self.stopping.wait(state.HEARTBEAT_INTERVAL_S):
            try:
                _, rss = zygote.agent_usage(self.root, self.name, me.pid)
                workers = len(self.pool.pids()) if self.pool is not None else 0
                address = self.cluster.running_address() if self.cluster is not None else None
                with store.write() as tx:
                    tx.execute(
                        "UPDATE agents SET heartbeat_at = ?, workers = ?, rss = ?, cluster = ? "
                        "WHERE compute = ? AND pid = ?",
                        (time.time(), workers, rss, address, self.name, me.pid),
                    )
                    row = tx.execute("SELECT stop_requested FROM agents WHERE compute = ?", (self.name,)).fetchone()
                    # Queued jobs are this agent's: their heartbeat says someone will run them.
                    tx.execute(
                        "UPDATE jobs SET heartbeat_at = ? WHERE compute = ? AND kind = 'batch' AND status = ?",
                        (time.time(), self.name, state.QUEUED),
                    )
                if row is None or row["stop_requested"]:
                    self.stopping.set()
                    self.wake.set()
            except Exception as exc:  # keep beating: a transient store error must not stop the agent
                print(f"agent heartbeat error: {exc}", file=sys.stderr, flush=True)
        store.close()

    # -- serving ----------------------------------------------------------------------------------

    def serve(self) -> int:
        """Run the compute's jobs until idle or stopped. Returns the exit code."""
        if not self.take_lease():
            print(f"agent {os.getpid()}: another agent runs compute {self.name}", flush=True)
            return 0
        print(f"agent {os.getpid()}: serving compute {self.name}", flush=True)
        beat = threading.Thread(target=self._beat, name="batchnb-agent-beat", daemon=True)
        beat.start()
        idle_since = time.monotonic()
        try:
            while not self.stopping.is_set():
                self._reap()
                self._recover()
                self._claim()
                if self.jobs:
                    idle_since = time.monotonic()
                    self.linger = 0.0
                elif time.monotonic() - idle_since >= max(self.idle_s, self.linger) and self._release_if_idle():
                    break
                self.wake.wait(POLL_S)
                self.wake.clear()
        finally:
            self._shutdown()
        return 0

    def _reap(self) -> None:
        for name, (thread, _) in list(self.jobs.items()):
            if not thread.is_alive():
                del self.jobs[name]
                self.dask_jobs.pop(name, None)

    def _recover(self) -> None:
        now = time.monotonic()
        if now - self._last_recover < RECOVER_EVERY_S:
            return
        self._last_recover = now
        for name in resume_lost(self.store, self.name, skip=set(self.jobs)):
            print(f"agent {os.getpid()}: resuming job {name} (its owner or its cluster was lost)", flush=True)

    def _claim(self) -> None:
        with self.store.read() as db:
            queued = db.execute(
                "SELECT name, waiting FROM jobs WHERE compute = ? AND kind = 'batch' AND status = ? "
                "ORDER BY created_at",
                (self.name, state.QUEUED),
            ).fetchall()
        for row in queued:
            if row["name"] in self.jobs:
                continue  # its last run is still closing
            if self.local and self.pool is not None and not self.pool.fits():
                self._waiting([r for r in queued if r["name"] not in self.jobs], len(self.jobs))
                return
            self._start(row["name"])

    def _waiting(self, rows: list[Any], running: int) -> None:
        reason = (
            f"waiting for a worker: compute {self.name} runs {running} job(s) on its "
            f"{self.pool.capacity} worker process(es)"
        )
        stale = [(reason, r["name"]) for r in rows if r["waiting"] != reason]
        if stale:
            with self.store.write() as tx:
                tx.executemany("UPDATE jobs SET waiting = ? WHERE name = ? AND status = 'Queued'", stale)

    def _start(self, name: str) -> None:
        if self.local and self.pool is None:
            # The zygote's imports are the longest part of a cold start: under way first. What
            # fails here (the job deleted since it was listed, a bad worker start method) fails
            # again below, where the job is told.
            with contextlib.suppress(SystemExit, Exception):
                self._local_pool(lifecycle.load_spec(self.store, name))
        from .supervisor import Supervisor

        try:
            sup = Supervisor(self.root, name)
        except SystemExit as gone:  # deleted since it was listed
            print(f"agent {os.getpid()}: {gone}", flush=True)
            return
        if not sup.claim():
            sup.store.close()
            return
        try:
            workers = self._workers_for(sup)
        except Exception as exc:
            sup.logs.result(f"Failed: {exc}\n")
            lifecycle.record_status(sup.store, sup.logs, name, state.FAILED, str(exc), ended=True)
            sup.store.close()
            return
        thread = threading.Thread(target=self._run, args=(sup, workers), name=f"batchnb-job-{name}", daemon=True)
        self.jobs[name] = (thread, sup)
        if not self.local:
            self.dask_jobs[name] = workers
        thread.start()

    def _workers_for(self, sup: Any) -> Any:
        wanted = int(sup.spec["workers"])
        if not self.local:
            from ..compute.dask import DaskWorkers

            cluster = self._cluster()
            if self.compute.get("type") == "dask":
                address = self.compute["address"]
                sup.logs.event(f"compute {self.name}: the Dask cluster at {address} (not started by batchnb)")
            else:
                sup.logs.event(f"compute {self.name}: SSH cluster on {', '.join(self.compute.get('hosts', []))}")
            return DaskWorkers(cluster, self.compute, sup.name, wanted, log=sup.logs.event)
        from ..compute import workers

        pool = self._local_pool(sup.spec)
        from ..environments import interpreter_for

        python = interpreter_for(sup.spec, self.root)  # a build gc removed is built again
        if wanted > pool.capacity:
            sup.logs.event(
                f"instance_count × max_concurrency_per_instance asks for {wanted} worker processes; compute "
                f"{self.name} runs {pool.capacity} at most: capped at {pool.capacity}"
            )
        if python:
            sup.logs.event(f"workers run in environment {sup.spec.get('environment')}: {python}")
        return pool.join(sup.name, workers.revision_key(sup.spec), wanted, python)

    def _cluster(self) -> Any:
        """The compute's Dask cluster: attached to (``dask``), or started by its first job (``ssh``)."""
        if self.cluster is None and self.compute.get("type") == "dask":
            from ..compute.dask import AttachedCluster

            self.cluster = AttachedCluster(self.compute)
        elif self.cluster is None:
            from ..compute import ssh

            self.cluster = ssh.SSHCluster(self.compute)
        return self.cluster

    def _join_jobs(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread, _ in list(self.jobs.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _local_pool(self, spec: dict[str, Any]) -> Any:
        """The agent's worker pool, started (its zygote importing what a job like ``spec`` needs) if it is not."""
        from ..compute import preload, workers

        if self.pool is None:
            capacity = workers.capacity_of(self.compute)
            log = str(log_folder(self.root, self.name))
            modules = preload.preload_for(spec)
            first = spec.get("python")
            start = workers.local_starter(self.root, self.name, capacity, modules, log, self.idle_s, first)
            self.pool = workers.WorkerPool(capacity, start)
        return self.pool

    def _run(self, sup: Any, workers: Any) -> None:
        try:
            sup.run(workers)
        except BaseException:  # the supervisor records its own failures; this is a last word
            import traceback

            traceback.print_exc()
        finally:
            self.wake.set()

    def _shutdown(self) -> None:
        """Stop every running job (Interrupted), then the workers, the zygote, and the lease."""
        self.stopping.set()
        reason = f"compute {self.name} was stopped; run `batchnb job resume -n {{job}}` to finish the job"
        for name, (_, sup) in self.jobs.items():
            sup.stopped = reason.format(job=name)
        self._join_jobs(STOP_NOTICE_S)  # a job handing out mini-batches stops at once
        for workers in self.dask_jobs.values():
            workers.stop()  # frees a job blocked in a call to its cluster (shipping, building)
        if self.cluster is not None:
            self.cluster.close()  # ... or starting it (an ssh compute's)
        self._join_jobs(STOP_JOBS_S)
        if self.pool is not None:
            self.pool.shutdown(kill=True)
            from ..compute import zygote

            zygote.stop(kill=True)
        self._join_jobs(STOP_CLOSED_S)
        for name, (thread, sup) in self.jobs.items():
            if thread.is_alive():  # not ended yet: said here, as its supervisor would
                with contextlib.suppress(Exception), self.store.write() as tx:
                    active = sorted(state.ACTIVE)
                    marks = ", ".join("?" * len(active))
                    tx.execute(
                        f"UPDATE jobs SET status = ?, error = ? WHERE name = ? AND status IN ({marks})",
                        (state.INTERRUPTED, sup.stopped, name, *active),
                    )
        with contextlib.suppress(Exception), self.store.write() as tx:
            tx.execute("DELETE FROM agents WHERE compute = ? AND pid = ?", (self.name, os.getpid()))
        print(f"agent {os.getpid()}: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m batchnb.engine.agent --workspace W --compute C``."""
    parser = argparse.ArgumentParser(prog="batchnb-agent")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--compute", required=True)
    parser.add_argument("--linger", type=float, default=0.0, help="seconds to wait for a first job")
    args = parser.parse_args(argv)
    agent = Agent(Path(args.workspace), args.compute, args.linger)

    def on_stop(signum: int, frame: Any) -> None:
        agent.stopping.set()
        agent.wake.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, lambda signum, frame: agent.wake.set())
    return agent.serve()


if __name__ == "__main__":
    sys.exit(main())
