"""The Running phase of a job: mini-batches handed to the pool, their results applied, a lost pool replaced.

:class:`Dispatcher` is the part of the job supervisor (:mod:`batchnb.engine.supervisor`) that
scores the pending mini-batches. At most two per worker are in flight. Each result is applied to
the store through a batched transaction (see ``FLUSH_INTERVAL_S`` in the supervisor's docstring).
A failed attempt is re-queued at the back until ``max_retries``; a lost worker, a ``run()`` stuck
past its timeout and batchnb's own I/O failures are handled as :mod:`batchnb.engine.faults` says.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compute import standby
from ..compute.base import ComputeTarget, worker_env
from ..store import Store
from . import faults, output, state
from .drivers import DRIVERS_DIR, MLFLOW_DRIVER
from .logs import JobLogs
from .worker import RunningMarker, score_minibatch

FLUSH_INTERVAL_S = 0.2  # for short mini-batches; a result of one that took longer is written at once
PROGRESS_INTERVAL_S = 1.0
# How long past its timeout a run() may stay stuck in C code before its worker is killed.
KILL_GRACE_S = 5.0
# How often the watchdog looks for such a run(): far below the grace, far above a tiny mini-batch.
WATCHDOG_INTERVAL_S = 0.5
# How long the futures of a broken pool may take to be ended by loky (it ends them all at once).
LOSS_SETTLE_S = 5.0


@dataclass
class Task:
    """One mini-batch as the dispatcher sees it."""

    idx: int
    items: list[Any]
    n_items: int
    attempts: int  # attempts already counted
    duration: float = 0.0
    submitted_at: float = 0.0  # when the current attempt was handed to the pool


class Dispatcher:
    """Scores a job's pending mini-batches on a compute target (the base of the job's supervisor)."""

    def __init__(self, store: Store, name: str, spec: dict[str, Any], logs: JobLogs, cancel: threading.Event) -> None:
        self.store = store
        self.name = name
        self.spec = spec
        self.settings: dict[str, Any] = spec["settings"]
        self.job_dir = Path(spec["job_dir"])
        self.logs = logs
        self.cancel = cancel
        self._updates: list[tuple[str, tuple[Any, ...]]] = []
        self._last_flush = 0.0
        self._flush_now = False  # a long mini-batch's result is waiting: write it without delay
        self._last_progress = 0.0
        self._last_watchdog = 0.0
        self._log_records: list[dict[str, Any]] = []
        self._warm_pool = False  # the pool (zygote and workers) was a warm standby's, not started for this job
        # When the pool last broke: the mini-batches a dead worker was scoring (see _note_dead_worker).
        self._dead_scoring: dict[int, float] | None = None

    # -- store helpers --------------------------------------------------------------------------

    def _queue(self, sql: str, params: tuple[Any, ...]) -> None:
        self._updates.append((sql, params))

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not (self._updates or self._log_records):
            return
        if not (force or self._flush_now) and now - self._last_flush < FLUSH_INTERVAL_S:
            return
        self._flush_now = False
        # The store first: it is what a resumed job trusts, and the logs may be what fails.
        updates, self._updates = self._updates, []
        if updates:
            with self.store.write() as tx:
                for sql, params in updates:
                    tx.execute(sql, params)
        self._last_flush = now
        records, self._log_records = self._log_records, []
        self.logs.minibatches(records)

    def _reset_running(self) -> None:
        # Mini-batches that were in flight when a supervisor stopped were never committed.
        self._flush(force=True)
        with self.store.write() as tx:
            tx.execute("UPDATE minibatches SET status = 'pending' WHERE job = ? AND status = 'running'", (self.name,))

    def _run_env(self) -> dict[str, str]:
        """Variables the job adds to the scoring script's environment; none here (see the supervisor)."""
        return {}

    def _context(self) -> dict[str, Any]:
        s = self.settings
        builtin = self.spec.get("builtin_driver") == "mlflow"
        return {
            "job": self.name,
            "job_dir": str(self.job_dir),
            # The built-in driver is found where this batchnb is installed (it may have moved since invoke).
            "code_dir": str(DRIVERS_DIR) if builtin else self.spec["code_dir"],
            "scoring_script": MLFLOW_DRIVER if builtin else self.spec["scoring_script"],
            "model_dir": self.spec.get("model_dir"),
            "cache_dir": self.spec.get("cache_dir"),
            "output_dir": self.spec["output"]["dir"],
            # The job's own additions (its MLflow run); the deployment's variables win.
            "environment_variables": {**self._run_env(), **s.get("environment_variables", {})},
            "logging_level": s.get("logging_level", "info"),
            "timeout": s["retry_settings"]["timeout"],
            "max_attempts": max(1, s["retry_settings"]["max_retries"]),  # 0 means a single attempt
            "mode": s["mini_batch_mode"],
            "output_action": s["output_action"],
            "part_format": output.part_format(s["output_file_name"]),
            # Workers of a warm standby that ran init() for exactly this deployment skip it.
            "preload_key": standby.preload_key(self.spec),
        }

    def _dispatch(self, target: Any) -> tuple[str, str | None]:
        """Score every pending mini-batch. Returns (``done`` | ``canceled`` | ``failed`` |
        ``interrupted``, reason)."""
        context = self._context()
        n_workers = int(self.spec["workers"])
        env = worker_env(n_workers)
        max_attempts = context["max_attempts"]
        threshold = int(self.settings["error_threshold"])
        with self.store.read() as db:
            rows = db.execute(
                "SELECT idx, items, n_items, attempts, duration FROM minibatches "
                "WHERE job = ? AND status = 'pending' ORDER BY idx",
                (self.name,),
            ).fetchall()
            failed_items = state.progress(db, self.name)["items"]["failed"]
        queue = collections.deque(
            Task(r["idx"], json.loads(r["items"]), r["n_items"], r["attempts"], r["duration"]) for r in rows
        )
        inflight: dict[Future[Any], Task] = {}
        losses = faults.PoolLosses()
        if not target.wait_started(self.cancel):  # canceled while the zygote imports
            self._abandon({}, target)
            return "canceled", None
        executor = target.executor(n_workers, env)
        self.logs.event(f"dispatching {len(queue)} mini-batch(es) to {n_workers} worker process(es)")

        while queue or inflight:
            if self.cancel.is_set():
                self._abandon(inflight, target)
                return "canceled", None
            broken = False
            while queue and len(inflight) < 2 * n_workers and losses.may_submit(queue[0].idx, bool(inflight)):
                task = queue.popleft()
                task.submitted_at = time.time()
                try:
                    fut = executor.submit(
                        score_minibatch, context, task.idx, task.attempts + 1, task.items, task.n_items
                    )
                except BaseException as exc:
                    if not target.is_broken_pool_error(exc):
                        raise
                    # A worker died since the last look: this one never started, so it goes first, free.
                    queue.appendleft(task)
                    losses.not_submitted(task.idx)
                    broken = True
                    break
                if target.supports_kill_worker:  # its workers are local processes: tell which one died
                    fut.add_done_callback(self._note_dead_worker)
                inflight[fut] = task
                self._queue(
                    "UPDATE minibatches SET status = 'running' WHERE job = ? AND idx = ?", (self.name, task.idx)
                )
            done, _ = wait(list(inflight), timeout=0 if broken else 0.25, return_when=FIRST_COMPLETED)
            if broken or any(self._is_lost(fut, target) for fut in done):
                # loky ends every pending future of a broken pool at once: take them all, keeping the
                # results that came back before the break (bounded: a future left pending is lost too).
                broken = True
                done, _ = wait(list(inflight), timeout=LOSS_SETTLE_S)
            lost: list[Task] = []
            for fut in sorted(done, key=lambda f: inflight[f].idx):
                try:
                    result = fut.result()
                except BaseException as exc:
                    if not target.is_broken_pool_error(exc):
                        # Everything the scoring script does is caught in the worker: what escapes is ours.
                        self._abandon(inflight, target)
                        return "interrupted", faults.interrupted_reason(
                            faults.SystemFault(faults.system_error(f"score mini-batch {inflight[fut].idx}", exc)),
                            self.name,
                        )
                    lost.append(inflight.pop(fut))
                    continue
                task = inflight.pop(fut)
                losses.finished(task.idx)
                stop = self._settle(task, result, queue, max_attempts, failed_items, threshold)
                if isinstance(stop, tuple):
                    self._abandon(inflight, target)
                    return stop
                failed_items = stop
            if broken:
                lost.extend(inflight.values())
                inflight.clear()
                failed_items += self._lose_pool(lost, queue, losses, max_attempts)
                executor = target.executor(n_workers, env)
                if threshold != -1 and failed_items > threshold:
                    self._abandon({}, target)
                    return "failed", self._over_threshold(failed_items, threshold)
            if target.supports_kill_worker:  # only a local pool's worker pids are ours to kill
                self._watchdog(inflight, context["timeout"], losses.killed)
            self._flush()
            self._write_progress()
        target.release()  # the workers exit while the output is merged; _finish waits for them
        return "done", None

    @staticmethod
    def _over_threshold(failed_items: int, threshold: int) -> str:
        return (
            f"the error threshold was exceeded: {failed_items} item(s) failed, more than "
            f"error_threshold {threshold}; see logs/user/error.txt"
        )

    def _settle(
        self,
        task: Task,
        result: dict[str, Any],
        queue: collections.deque[Task],
        max_attempts: int,
        failed_items: int,
        threshold: int,
    ) -> int | tuple[str, str]:
        """Apply a worker's result. Returns the job's failed items so far, or (outcome, reason) if
        the job must stop: init() failed, the error threshold was exceeded, or batchnb's own files failed."""
        if result["status"] == faults.SYSTEM_ERROR:
            self.logs.event(f"mini-batch {task.idx}: {result['error']}")
            return "interrupted", faults.interrupted_reason(faults.SystemFault(result["error"]), self.name)
        reason = self._record(task, result, queue, max_attempts)
        if reason == "init_failed":
            return "failed", f"init() of the scoring script failed in {result.get('worker')}:\n{result.get('error')}"
        failed_items += self._failed_items_of(task, result, max_attempts)
        if threshold != -1 and failed_items > threshold:
            return "failed", self._over_threshold(failed_items, threshold)
        return failed_items

    def _failed_items_of(self, task: Task, result: dict[str, Any], max_attempts: int) -> int:
        if result["status"] == "ok":
            return int(result.get("failed", 0))
        return task.n_items if task.attempts >= max_attempts else 0

    def _record(self, task: Task, result: dict[str, Any], queue: collections.deque[Task], max_attempts: int) -> str:
        """Apply one worker result to the task and the store. Returns the result's status."""
        status = result["status"]
        attempt = task.attempts + 1
        task.duration += float(result.get("duration") or 0.0)
        worker = result.get("worker")
        if result.get("init") == "preloaded":
            where = "(warm standby)" if self._warm_pool else f"once, in the zygote, in {result.get('init_s', 0):.2f} s"
            self.logs.event(f"{worker}: init() had already run for this deployment {where}; not run again")
        elif result.get("init") == "ran":
            self.logs.event(f"{worker}: init() ran in {result.get('init_s', 0):.2f} s")
        if status == "init_failed":
            self.logs.user_error(f"init() failed in {worker}; see logs/user/stderr/{worker}.stderr.txt")
            return status
        task.attempts = attempt
        if float(result.get("duration") or 0.0) >= FLUSH_INTERVAL_S:
            self._flush_now = True
        record = {
            "mini_batch": task.idx,
            "attempt": attempt,
            "items": task.n_items,
            "status": status,
            "succeeded": result.get("succeeded", 0),
            "failed": result.get("failed", 0),
            "rows": result.get("rows", 0),
            "duration_s": round(float(result.get("duration") or 0), 4),
            "worker": worker,
        }
        self._log_records.append(record)  # written with the store updates, in _flush
        if status == "ok":
            self._queue(
                "UPDATE minibatches SET status = 'done', attempts = ?, succeeded = ?, failed = ?, rows = ?, "
                "worker = ?, started_at = ?, ended_at = ?, duration = ?, error = ? WHERE job = ? AND idx = ?",
                (
                    attempt,
                    result["succeeded"],
                    result["failed"],
                    result["rows"],
                    worker,
                    result.get("started_at"),
                    time.time(),
                    task.duration,
                    result.get("error"),
                    self.name,
                    task.idx,
                ),
            )
            if result["failed"]:
                self.logs.user_error(
                    f"mini-batch {task.idx}: {result['error']} on the last attempt; "
                    f"{result['failed']} item(s) counted as failed"
                )
            return status
        where = f" (traceback: logs/user/error/{worker}.txt)" if worker else ""
        self.logs.user_error(
            f"mini-batch {task.idx} attempt {attempt}/{max_attempts} failed in {worker}: {result.get('error')}{where}"
        )
        if attempt < max_attempts:
            queue.append(task)  # re-queued at the back, as PRS re-queues with a dequeue count
            self._queue(
                "UPDATE minibatches SET status = 'pending', attempts = ?, duration = ?, error = ? "
                "WHERE job = ? AND idx = ?",
                (attempt, task.duration, result.get("error"), self.name, task.idx),
            )
        else:
            self._queue(
                "UPDATE minibatches SET status = 'failed', attempts = ?, succeeded = 0, failed = n_items, "
                "rows = 0, worker = ?, ended_at = ?, duration = ?, error = ? WHERE job = ? AND idx = ?",
                (attempt, worker, time.time(), task.duration, result.get("error"), self.name, task.idx),
            )
        return status

    @staticmethod
    def _is_lost(fut: Future[Any], target: Any) -> bool:
        """True if ``fut`` ended with its pool broken (a worker died)."""
        exc = fut.exception()
        return exc is not None and bool(target.is_broken_pool_error(exc))

    def _note_dead_worker(self, fut: Future[Any]) -> None:
        """A future's done-callback. When loky finds a worker dead, it ends every future of the pool
        (running this, in its own thread) before it kills the workers still alive: so a worker
        already gone now is the one that died, and its running marker says what it was scoring."""
        if self._dead_scoring is not None or fut.cancelled():
            return
        exc = fut.exception()
        if exc is None or not ComputeTarget.is_broken_pool_error(exc):
            return
        # A zombie counts as gone: a clean interpreter's dead worker awaits its reaping.
        markers = RunningMarker.read(self.job_dir)
        self._dead_scoring = {idx: t for idx, pid, t in markers if state.supervisor_alive(pid, None) is not True}

    def _lose_pool(
        self, lost: list[Task], queue: collections.deque[Task], losses: faults.PoolLosses, max_attempts: int
    ) -> int:
        """A worker died and the pool with it, taking the ``lost`` mini-batches: each is scored again,
        charged at most one attempt (see :meth:`faults.PoolLosses.lost`). Returns items that became failed."""
        names = ", ".join(str(t.idx) for t in sorted(lost, key=lambda t: t.idx)) or "none"
        self.logs.event(f"a worker process died; mini-batch(es) in flight: {names}; restarting the pool")
        newly_failed = 0
        timeout = self.settings["retry_settings"]["timeout"]
        verdicts = losses.lost(sorted(lost, key=lambda t: t.idx), timeout, self._dead_scoring)
        self._dead_scoring = None
        for task, why in reversed(verdicts):
            if why is None:
                queue.appendleft(task)  # first again, never charged
                self._queue(
                    "UPDATE minibatches SET status = 'pending' WHERE job = ? AND idx = ?", (self.name, task.idx)
                )
                continue
            result = {"status": "retry", "error": why, "duration": 0.0, "worker": None}
            self._record(task, result, queue, max_attempts)
            newly_failed += self._failed_items_of(task, result, max_attempts)
        return newly_failed

    def _watchdog(self, inflight: dict[Future[Any], Task], timeout: float, killed: set[int]) -> None:
        """Kill a worker whose run() ignored the in-process timeout (stuck in C code)."""
        now = time.time()
        if now - self._last_watchdog < WATCHDOG_INTERVAL_S:
            return
        self._last_watchdog = now
        tasks = {task.idx: task for task in inflight.values()}
        for idx, pid, started in RunningMarker.read(self.job_dir):
            task = tasks.get(idx)
            if task is None or started < task.submitted_at:
                continue  # not in flight, or left by an earlier attempt whose worker died
            if idx not in killed and now - started > timeout + KILL_GRACE_S:
                killed.add(idx)
                late = f"exceeded its timeout by {KILL_GRACE_S:g} s"
                self.logs.event(f"mini-batch {idx} {late}; killing worker pid {pid}")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _abandon(self, inflight: dict[Future[Any], Task], target: Any) -> None:
        for fut in inflight:
            fut.cancel()
        target.shutdown(kill=True)
        self._reset_running()

    def _write_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        with self.store.read() as db:
            p = state.progress(db, self.name)
        mb, items = p["mini_batches"], p["items"]
        self.logs.progress(
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            f"Total mini-batches: {mb['total']}\nProcessed: {mb['done'] + mb['failed']}\n"
            f"Succeeded: {mb['done']}\nFailed: {mb['failed']}\nIn progress: {mb['running']}\n"
            f"Retrying: {mb['retrying']}\nItems succeeded: {items['succeeded']}\nItems failed: {items['failed']}\n"
            f"Rows written: {p['rows_written']}\n"
        )
