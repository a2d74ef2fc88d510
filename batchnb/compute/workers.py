"""A compute agent's worker processes: a fixed number of slots, shared fairly by the jobs it runs.

A local compute has a *capacity* in worker processes (the machine's cores unless the compute's
``max_workers`` says otherwise); its agent (:mod:`batchnb.engine.agent`) never runs more. Each slot
holds at most one worker process: a one-process loky executor whose worker is forked from the
agent's zygote (:mod:`batchnb.compute.zygote`), so it starts in milliseconds with the data stack
imported.

**Warm, never shared across deployments.** A slot's worker serves one *revision key*: the
deployment and its revision, the code snapshot, the scoring script, the model and the interpreter.
It outlives jobs: the next job with the same key finds the script's module imported (the worker
runs ``init()`` again for that job, see :mod:`batchnb.engine.worker`). A slot given to a job with
another key replaces its worker first, so no module state crosses deployments.

**Fair sharing.** Every running job asks for ``instance_count × max_concurrency_per_instance``
workers; the slots are split between the running jobs by water-filling (each gets at most what it
asked, the rest shares equally), and re-split whenever a job joins or leaves. A slot taken from a
job stays with it until its mini-batches on that slot come back, so nothing is interrupted.

**A lost worker is exact.** A slot's executor has one process, so when it breaks the mini-batch
that was running on it (its oldest one in flight) is the one whose worker died; the others queued
behind it never started. Replacing the worker is a fork from the zygote.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .base import worker_env

# Mini-batches handed to a slot ahead of the one it runs: the next one waits in loky's call queue,
# so a worker never idles between two mini-batches while the agent's dispatch loop looks away.
DEPTH = 2
# How long a killed worker may take to be gone (reaped by the zygote) before its slot is reused.
STOP_WAIT_S = 2.0


def revision_key(spec: dict[str, Any]) -> str:
    """What a worker's state belongs to: the job's deployment revision, code, script, model and
    interpreter. Jobs with equal keys may share warm workers; no others."""
    fields = {
        "endpoint": spec.get("endpoint"),
        "deployment": spec.get("deployment"),
        "revision": spec.get("deployment_revision"),
        "code_dir": spec.get("code_dir"),
        "scoring_script": spec.get("scoring_script"),
        "driver": spec.get("builtin_driver"),
        "model_dir": spec.get("model_dir"),
        "python": spec.get("python"),
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def capacity_of(compute: dict[str, Any]) -> int:
    """How many worker processes a local compute runs at most."""
    return int(compute.get("max_workers") or os.cpu_count() or 1)


class Slot:
    """One worker process at most, serving one revision key."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.key: str | None = None
        self.executor: Any = None
        self.owner: str | None = None  # the job this slot is allotted to
        self.inflight: list[Future[Any]] = []  # in submission order, whichever job submitted them
        self.reserved = 0  # submits under way (a new worker's first waits for the zygote)
        self.last_done = 0.0  # when its last mini-batch came back: the next one started then
        self.used_at = 0.0

    def pid(self) -> int | None:
        """The worker's pid, if it has one running."""
        processes = getattr(self.executor, "_processes", None) or {}
        for pid in list(processes):
            return int(pid)
        return None

    def busy(self) -> bool:
        return bool(self.inflight or self.reserved)


class WorkerPool:
    """The agent's slots and the jobs sharing them.

    Args:
        capacity: Worker processes at most.
        start: Makes a one-process executor for a key and an interpreter (None: batchnb's own).
    """

    def __init__(self, capacity: int, start: Callable[[str | None], Any]) -> None:
        self.capacity = capacity
        self._start = start
        self._slots = [Slot(i) for i in range(capacity)]
        self._jobs: dict[str, dict[str, Any]] = {}  # job → {"key", "wanted", "python"}, in arrival order
        self._lock = threading.RLock()

    # -- jobs joining and leaving -----------------------------------------------------------------

    def join(self, job: str, key: str, wanted: int, python: str | None = None) -> JobWorkers:
        """Admit ``job`` (see :meth:`fits`); the slots are split again."""
        with self._lock:
            self._jobs[job] = {"key": key, "wanted": max(1, wanted), "python": python}
            self._rebalance()
        return JobWorkers(self, job)

    def fits(self) -> bool:
        """True if one more job can run now: every running job keeps at least one worker."""
        with self._lock:
            return len(self._jobs) < self.capacity

    def leave(self, job: str, retire: bool = False) -> None:
        """``job`` is done with its slots. ``retire``: stop their workers (a script with a
        ``shutdown()`` runs it as its worker exits)."""
        with self._lock:
            self._jobs.pop(job, None)
            for slot in self._slots:
                if slot.owner == job:
                    slot.owner = None
                    if retire:
                        self._stop(slot, kill=False)
            self._rebalance()

    def share_of(self, job: str) -> int:
        with self._lock:
            return sum(1 for slot in self._slots if slot.owner == job)

    def _shares(self) -> dict[str, int]:
        """Water-filling: each job at most what it asked, the rest split equally (first come first)."""
        shares = dict.fromkeys(self._jobs, 0)
        left = self.capacity
        while left:
            hungry = [j for j in self._jobs if shares[j] < self._jobs[j]["wanted"]]
            if not hungry:
                break
            for job in hungry:
                if left == 0:
                    break
                shares[job] += 1
                left -= 1
        return shares

    def _rebalance(self) -> None:
        shares = self._shares()
        for job, share in shares.items():
            mine = [s for s in self._slots if s.owner == job]
            for slot in mine[share:]:
                slot.owner = None
        for job, share in shares.items():
            key = self._jobs[job]["key"]
            need = share - sum(1 for s in self._slots if s.owner == job)
            # Prefer a worker warm for this key, then an empty slot, then the least recently used.
            free = sorted(
                (s for s in self._slots if s.owner is None),
                key=lambda s: (s.key != key, s.executor is not None, s.used_at),
            )
            for slot in free[: max(0, need)]:
                slot.owner = job

    # -- slots ------------------------------------------------------------------------------------

    def slots_of(self, job: str) -> list[Slot]:
        with self._lock:
            return [s for s in self._slots if s.owner == job]

    def submit(self, slot: Slot, job: str, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
        """Hand ``fn(*args)`` to ``slot``'s worker for ``job``; None if the slot cannot take it now
        (no longer this job's, full, or still finishing another key's mini-batches). The first
        submit to a new worker waits for the zygote's imports: outside the lock, so that the other
        jobs go on meanwhile.

        Raises:
            BrokenProcessPool: The slot's worker died since the last look.
        """
        with self._lock:
            wanted = self._jobs.get(job)
            if wanted is None or slot.owner != job or len(slot.inflight) + slot.reserved >= DEPTH:
                return None
            if slot.key != wanted["key"] or slot.executor is None:
                if slot.busy() or slot.reserved:
                    return None  # the previous job's mini-batches finish first
                self._stop(slot, kill=True)
                slot.executor = self._start(wanted["python"])
                slot.key = wanted["key"]
            slot.used_at = time.time()
            slot.reserved += 1
            executor = slot.executor
        try:
            fut: Future[Any] = executor.submit(fn, *args)
        finally:
            with self._lock:
                slot.reserved -= 1
        with self._lock:
            if not fut.done() and slot.executor is executor:
                slot.inflight.append(fut)
        fut.add_done_callback(functools.partial(self._done, slot))
        return fut

    def _done(self, slot: Slot, fut: Future[Any]) -> None:
        with self._lock:
            with contextlib.suppress(ValueError):
                slot.inflight.remove(fut)
            slot.last_done = time.time()

    def running(self, slot: Slot) -> tuple[Future[Any], float] | None:
        """The future ``slot``'s worker runs now, and since when (at most)."""
        with self._lock:
            if not slot.inflight:
                return None
            return slot.inflight[0], slot.last_done

    def reset(self, slot: Slot) -> None:
        """Drop a slot's broken worker; the next submit forks a new one."""
        with self._lock:
            self._stop(slot, kill=True)

    def kill(self, slot: Slot) -> int | None:
        """SIGKILL the slot's worker (a ``run()`` stuck in C code); loky then reports it lost."""
        pid = slot.pid()
        if pid is not None:
            import signal

            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pid

    def _stop(self, slot: Slot, kill: bool) -> None:
        pid = slot.pid()
        executor, slot.executor, slot.key = slot.executor, None, None
        slot.inflight = []
        if executor is None:
            return
        with contextlib.suppress(Exception):
            executor.shutdown(wait=not kill, kill_workers=kill)
        if kill and pid is not None:
            # Gone before its replacement starts: the compute never runs more than its capacity.
            import psutil

            with contextlib.suppress(psutil.Error):
                psutil.wait_procs([psutil.Process(pid)], timeout=STOP_WAIT_S)

    def pids(self) -> list[int]:
        with self._lock:
            return [pid for pid in (s.pid() for s in self._slots) if pid is not None]

    def idle(self) -> bool:
        with self._lock:
            return not self._jobs

    def shutdown(self, kill: bool = True) -> None:
        """Stop every worker."""
        with self._lock:
            self._jobs.clear()
            for slot in self._slots:
                slot.owner = None
                self._stop(slot, kill=kill)


class JobWorkers:
    """One job's view of the pool: what its dispatch loop uses (see :class:`batchnb.compute.base.TargetWorkers`)."""

    exact_losses = True  # a lost worker names the mini-batch it was running
    supports_kill_worker = True

    def __init__(self, pool: WorkerPool, job: str) -> None:
        self.pool = pool
        self.job = job

    def slots(self) -> list[Slot]:
        return self.pool.slots_of(self.job)

    def submit(self, slot: Slot, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
        return self.pool.submit(slot, self.job, fn, *args)

    def running(self, slot: Slot) -> tuple[Future[Any], float] | None:
        return self.pool.running(slot)

    def kill(self, slot: Slot) -> int | None:
        return self.pool.kill(slot)

    def reset(self, slot: Slot) -> None:
        self.pool.reset(slot)

    def abandon(self, slots: set[Slot]) -> None:
        """Kill the workers running this job's mini-batches (cancel, a failed job)."""
        for slot in slots:
            self.pool.kill(slot)
            self.pool.reset(slot)

    def describe(self) -> str:
        return f"{self.pool.share_of(self.job)} worker process(es)"

    def close(self, retire: bool = False) -> None:
        self.pool.leave(self.job, retire)


def local_starter(
    workspace_root: Path,
    compute: str,
    capacity: int,
    modules: tuple[str, ...],
    log: str | None,
    linger: float,
    first: str | None = None,
) -> Callable[[str | None], Any]:
    """What :class:`WorkerPool` starts a slot's worker with: a one-process loky executor whose
    worker is forked from the compute's zygote for its interpreter (batchnb's own, or a built
    environment's ``python``), adopted or started here importing ``modules`` (one nobody holds
    waits ``linger`` s for the next agent); with ``BATCHNB_WORKER_START=spawn``, a deployment
    without an environment gets a fresh interpreter of batchnb's own instead. The zygote of
    ``first``, the interpreter of the job the pool is started for, is under way at once."""
    from joblib.externals.loky import ProcessPoolExecutor

    from . import zygote, zygote_client

    env = worker_env(capacity)
    forked = zygote.start_method() == "zygote"

    def start(python: str | None) -> Any:
        if python is None and not forked:
            return ProcessPoolExecutor(
                max_workers=1, env=env, initializer=zygote_client.worker_started, initargs=({}, ())
            )
        # An environment's zygote imports what batchnb's workers need (its runtime is in every build).
        wanted = modules if python is None else ()
        zygote.ensure(workspace_root, compute, env, wanted, log, linger, python)
        return ProcessPoolExecutor(
            max_workers=1,
            context=zygote_client.context(python),
            initializer=zygote_client.worker_started,
            initargs=(env, wanted),
        )

    # Under way at once: its imports are the longest part of a cold start. (An environment's build
    # removed since the job was invoked is built again, and its zygote started, by its first worker.)
    if first is not None and os.path.exists(first):
        with contextlib.suppress(OSError):
            zygote.ensure(workspace_root, compute, env, modules, log, linger, first)  # its job's imports
    elif first is None and forked:
        zygote.ensure(workspace_root, compute, env, modules, log, linger)
    return start
