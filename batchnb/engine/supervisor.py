"""The job supervisor: one process per running job, started by ``invoke`` and ``resume``.

It runs apart from the caller so the job outlives the kernel or the CLI that started it. It
receives only the workspace path and the job name and reads everything else from the store.
Lifecycle::

    Queued ──claim──▶ Preparing (plan mini-batches, once) ──▶ Running ──▶ Finalizing ──▶ Completed
                                                             │            (merge parts)
                                                             ├─ init() raised / error threshold exceeded /
                                                             │  nothing succeeded ─▶ Failed
                                                             └─ cancel requested ─▶ Canceled

When the user configured an MLflow tracking URI at invoke, the job is also one MLflow run (see
:mod:`batchnb.engine.tracking`): started after the claim, ended at Completed, Failed or Canceled, left
open at Interrupted and reopened by ``resume``. Only this process imports mlflow for it, and only
then; tracking never fails a job.

A heartbeat thread stamps the job every second; if this process dies, readers see the stale
heartbeat and show ``Interrupted``, and ``resume`` starts a new supervisor that skips every
committed mini-batch. Store writes from the dispatch loop are batched into one transaction every
``FLUSH_INTERVAL_S``: a crash between a worker's commit of its part and that flush only means the
mini-batch is scored again, and its part (named by index) is replaced, never duplicated. The result
of a mini-batch that took longer than that interval is written at once: one transaction is cheap
beside it, and a crash then costs no finished work.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compute import get_target, standby
from ..compute.base import worker_env
from ..errors import BatchnbError, ValidationError
from ..registry.code import may_define
from ..store import Store
from . import faults, lifecycle, output, planner, state
from .drivers import DRIVERS_DIR, MLFLOW_DRIVER, MLFLOW_SUFFIXES
from .logs import JobLogs
from .worker import RunningMarker, score_minibatch

FLUSH_INTERVAL_S = 0.2  # for short mini-batches; a result of one that took longer is written at once
PROGRESS_INTERVAL_S = 1.0
# How long past its timeout a run() may stay stuck in C code before its worker is killed.
KILL_GRACE_S = 5.0
# How long the futures of a broken pool may take to be ended by loky (it ends them all at once).
LOSS_SETTLE_S = 5.0
# How often the watchdog looks for such a run(): far below the grace, far above a tiny mini-batch.
WATCHDOG_INTERVAL_S = 0.5
NO_SUCCESS_MESSAGE = (
    "No succeeded mini batch item returned from run(). Please check 'response: run()' in "
    "https://aka.ms/batch-inference-documentation"
)


@dataclass
class Task:
    """One mini-batch as the dispatcher sees it."""

    idx: int
    items: list[Any]
    n_items: int
    attempts: int  # attempts already counted
    duration: float = 0.0
    submitted_at: float = 0.0  # when the current attempt was handed to the pool


class Supervisor:
    """Runs one job from its store record to a final status."""

    def __init__(self, workspace_root: Path, job_name: str) -> None:
        self.store = Store(workspace_root / "batchnb.db")
        self.name = job_name
        self.spec: dict[str, Any] = lifecycle.load_spec(self.store, job_name)
        self.settings: dict[str, Any] = self.spec["settings"]
        self.job_dir = Path(self.spec["job_dir"])
        self.logs = JobLogs(self.job_dir)
        from .tracking import JobRun  # imports the registry (pydantic): not for a supervisor that finds no job

        self.tracking = JobRun(self.spec, self.logs.event)
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._updates: list[tuple[str, tuple[Any, ...]]] = []
        self._last_flush = 0.0
        self._flush_now = False  # a long mini-batch's result is waiting: write it without delay
        self._last_progress = 0.0
        self._last_watchdog = 0.0
        self._log_records: list[dict[str, Any]] = []
        self._warm_pool = False  # the pool (zygote and workers) was a warm standby's, not started for this job

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

    def _set_status(self, status: str, error: str | None = None, ended: bool = False) -> None:
        self._flush(force=True)
        if ended and status in state.TERMINAL:
            # Before the status is written: whoever sees the job ended sees its MLflow run ended.
            self.tracking.finish(status, self._totals())
        lifecycle.record_status(self.store, self.logs, self.name, status, error, ended)

    # -- lifecycle ------------------------------------------------------------------------------

    def claim(self) -> bool:
        """Take the job if it is Queued; record this process as its supervisor."""
        me = lifecycle.claim(self.store, self.name, state.PREPARING)
        if me is None:
            return False
        self.logs.event(f"supervisor pid {me.pid} claimed job {self.name}")
        return True

    def run(self) -> str:
        """Run the job to a final status and return it."""
        if not self.claim():
            return "not-claimed"
        beat = lifecycle.start_heartbeat(self.store.path, self.name, self._stop, self.cancel)
        compute = self.spec.get("compute_spec") or {"type": "local", "name": self.spec.get("compute", "local")}
        target = get_target(compute, self.store, self.store.path.parent, self.name)
        if compute.get("type") == "ssh":
            self.logs.event(f"compute {compute['name']}: SSH cluster on {', '.join(compute['hosts'])}")
        warm = standby.keeps_warm(compute)
        early = threading.Thread(target=self._spawn_standby, args=(compute, standby.EARLY_NICE), daemon=True)
        if warm:
            # Spawned now, at the lowest priority, so that this job resumed after a crash (or the
            # next one) finds workers with the model loaded; it warms up from the CPU the job leaves.
            # On a thread: starting it must not delay the first mini-batch.
            early.start()
        try:
            # The local pool's zygote imports (and loads an MLflow model) while the job is planned.
            self._warm_pool = not target.prepare(*standby.pool_setup(self.spec), job=self.name)
            self._start_tracking()
            self._plan()
            self._set_status(state.RUNNING)
            outcome, reason = self._dispatch(target)
            return self._finish(outcome, reason, target)
        except BaseException as exc:
            target.shutdown(kill=True)
            text = traceback.format_exc()
            self.logs.event(f"supervisor error:\n{text}")
            if isinstance(exc, SystemExit | KeyboardInterrupt):
                # Stopped from outside (SIGTERM, Ctrl-C): resumable, like a lost supervisor.
                self._reset_running()
                self._set_status(
                    state.INTERRUPTED,
                    f"the supervisor was stopped; run `batchnb job resume -n {self.name}` to finish the job",
                )
                return state.INTERRUPTED
            if faults.is_system_fault(exc):  # batchnb's own files or store: resumable once fixed
                return self._interrupt(faults.interrupted_reason(exc, self.name))
            if isinstance(exc, BatchnbError):  # a problem with the job's input or settings: say it plainly
                self.logs.result(f"Failed: {exc.message}\n")
                self._set_status(state.FAILED, exc.message, ended=True)
                return state.FAILED
            self.logs.result(f"Failed: batchnb system error: {exc}\nSee logs/sys/master_role.txt\n")
            self._set_status(state.FAILED, f"batchnb system error: {exc}\n{text}", ended=True)
            return state.FAILED
        finally:
            self._stop.set()
            beat.join(timeout=5)
            if warm:  # unless the one spawned at the start is still there (it usually is)
                early.join()
                self._spawn_standby(compute, nice=0)

    def _spawn_standby(self, compute: dict[str, Any], nice: int) -> None:
        """Leave a warm standby on this compute for the next job, preloaded for this job's deployment."""
        try:
            standby.spawn(
                self.store.path.parent,
                compute,
                int(self.spec["workers"]),
                standby.preload_for(self.spec),
                job=self.name,
                nice=nice,
            )
        except Exception as exc:  # a standby only saves time: never fail the job for it
            self.logs.event(f"could not start a warm standby: {exc}")

    def _start_tracking(self) -> None:
        """Start (or reopen) the job's MLflow run, in the background, if a tracking URI was given."""
        self.tracking.start_in_background(self.name, self._record_run_id)

    def _record_run_id(self, run_id: str) -> None:
        """Keep the run's id in the job's spec, so that ``resume`` reopens the same run. Called from
        the tracking thread (the store keeps one connection per thread; this one is closed after)."""
        if run_id == self.spec.get("mlflow_run_id"):
            return
        try:
            with self.store.write() as tx:
                row = tx.execute("SELECT spec FROM jobs WHERE name = ?", (self.name,)).fetchone()
                stored = json.loads(row["spec"])
                stored["mlflow_run_id"] = run_id
                tx.execute("UPDATE jobs SET spec = ? WHERE name = ?", (json.dumps(stored), self.name))
        finally:
            self.store.close()

    def _totals(self) -> dict[str, Any]:
        """The job's counters and timing, for its MLflow run."""
        try:
            with self.store.read() as db:
                p = state.progress(db, self.name)
                started = db.execute("SELECT started_at FROM jobs WHERE name = ?", (self.name,)).fetchone()[0]
        except Exception:  # only feeds tracking, which must not fail the job
            return {}
        elapsed = time.time() - started if started else 0.0
        p["elapsed_s"] = round(elapsed, 3)
        p["rows_per_second"] = round(p["rows_written"] / elapsed, 2) if elapsed > 0 else 0.0
        return p

    def _check_builtin_inputs(self, files: list[str]) -> None:
        """The built-in MLflow driver reads CSV and Parquet only; any other file fails the job at once,
        as on Azure, naming the first such file."""
        if self.spec.get("builtin_driver") != "mlflow":
            return
        for path in files:
            suffix = Path(path).suffix.lower()
            if suffix not in MLFLOW_SUFFIXES:
                shown = f"File type '{suffix.lstrip('.')}'" if suffix else "A file without an extension"
                raise ValidationError(
                    f"Error processing input file: '{path}'. {shown} is not supported: an MLflow model "
                    f"deployed without a scoring script reads {', '.join(MLFLOW_SUFFIXES)} files",
                    field="input",
                )

    def _plan(self) -> None:
        with self.store.read() as db:
            planned = db.execute("SELECT planned FROM jobs WHERE name = ?", (self.name,)).fetchone()[0]
        if planned:
            self._reset_running()
            lost = self._requeue_lost_parts()
            again = f"; {lost} whose part file is missing (lost in a power loss) are scored again" if lost else ""
            self.logs.event(f"resuming: mini-batches already planned; committed ones are kept{again}")
            return
        inp = self.spec["input"]
        files = planner.list_input_files(inp["path"], inp["type"], recursive=self.settings.get("recursive", False))
        self._check_builtin_inputs(files)
        size = self.settings["mini_batch_size"]
        batches: Iterator[list[Any]] = (
            planner.plan_tabular_minibatches(files, size)
            if self.settings["mini_batch_mode"] == "tabular"
            else planner.plan_file_minibatches(files, int(size))
        )
        rows = [(self.name, i, json.dumps(mb), planner.minibatch_items(mb)) for i, mb in enumerate(batches)]
        with self.store.write() as tx:
            tx.executemany(
                "INSERT INTO minibatches (job, idx, items, n_items, status) VALUES (?, ?, ?, ?, 'pending')", rows
            )
            tx.execute("UPDATE jobs SET planned = 1 WHERE name = ?", (self.name,))
        self.logs.event(f"planned {len(rows)} mini-batch(es) over {len(files)} file(s)")

    def _requeue_lost_parts(self) -> int:
        """Parts are not fsynced (see output.atomic_write_bytes): re-queue committed mini-batches whose
        part is gone or truncated. One stat per part; returns how many were re-queued."""
        if self.settings["output_action"] != "append_row":
            return 0
        fmt = output.part_format(self.settings["output_file_name"])
        parts = self.job_dir / "parts"
        with self.store.read() as db:
            done = [
                r[0]
                for r in db.execute(
                    "SELECT idx FROM minibatches WHERE job = ? AND status = 'done' AND rows > 0", (self.name,)
                )
            ]
        lost = [(self.name, idx) for idx in done if not output.part_is_committed(output.part_path(parts, idx, fmt))]
        if lost:
            with self.store.write() as tx:
                tx.executemany(
                    "UPDATE minibatches SET status = 'pending', succeeded = 0, failed = 0, rows = 0 "
                    "WHERE job = ? AND idx = ?",
                    lost,
                )
        return len(lost)

    def _reset_running(self) -> None:
        # Mini-batches that were in flight when a supervisor stopped were never committed.
        self._flush(force=True)
        with self.store.write() as tx:
            tx.execute("UPDATE minibatches SET status = 'pending' WHERE job = ? AND status = 'running'", (self.name,))

    # -- dispatch -------------------------------------------------------------------------------

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
            "environment_variables": s.get("environment_variables", {}),
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

    def _lose_pool(
        self, lost: list[Task], queue: collections.deque[Task], losses: faults.PoolLosses, max_attempts: int
    ) -> int:
        """A worker died and the pool with it, taking the ``lost`` mini-batches: each is scored again,
        charged at most one attempt (see :meth:`faults.PoolLosses.lost`). Returns items that became failed."""
        names = ", ".join(str(t.idx) for t in sorted(lost, key=lambda t: t.idx)) or "none"
        self.logs.event(f"a worker process died; mini-batch(es) in flight: {names}; restarting the pool")
        newly_failed = 0
        verdicts = losses.lost(sorted(lost, key=lambda t: t.idx), self.settings["retry_settings"]["timeout"])
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

    # -- the end --------------------------------------------------------------------------------

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

    def _interrupt(self, reason: str) -> str:
        """Stop as Interrupted (resumable) because batchnb's own files or store failed. Those may be
        what fails again here: whatever cannot be written is left, and readers see the job
        Interrupted from its stopped heartbeat if not from this status."""
        with contextlib.suppress(Exception):
            self._reset_running()
        with contextlib.suppress(Exception):
            self.logs.result(f"Interrupted: {reason}\n")
        try:
            lifecycle.record_status(self.store, self.logs, self.name, state.INTERRUPTED, reason, ended=False)
        except Exception:
            with contextlib.suppress(Exception), self.store.write() as tx:
                sql = "UPDATE jobs SET status = ?, error = ? WHERE name = ?"
                tx.execute(sql, (state.INTERRUPTED, reason, self.name))
        return state.INTERRUPTED

    def _finish(self, outcome: str, reason: str | None, target: Any) -> str:
        self._flush(force=True)
        self._write_progress(force=True)
        if outcome == "canceled":
            self.logs.result("Canceled. Committed mini-batches are kept in parts/.\n")
            self._set_status(state.CANCELED, "canceled by request; committed mini-batches are kept", ended=True)
            return state.CANCELED
        if outcome == "interrupted":
            return self._interrupt(reason or "")
        if outcome == "failed":
            self.logs.result(f"Failed: {reason}\n")
            self._set_status(state.FAILED, reason, ended=True)
            return state.FAILED
        with self.store.read() as db:
            p = state.progress(db, self.name)
        if p["items"]["succeeded"] == 0:
            self.logs.result(f"Failed: {NO_SUCCESS_MESSAGE}\nSee logs/user/error.txt\n")
            target.shutdown(kill=False)
            self._set_status(state.FAILED, NO_SUCCESS_MESSAGE, ended=True)
            return state.FAILED
        self._set_status(state.FINALIZING)
        if self.settings["output_action"] == "append_row":
            fmt = output.part_format(self.settings["output_file_name"])
            with self.store.read() as db:
                done = [
                    r["idx"]
                    for r in db.execute(
                        "SELECT idx FROM minibatches WHERE job = ? AND status = 'done' AND rows > 0 ORDER BY idx",
                        (self.name,),
                    )
                ]
            parts = [output.part_path(self.job_dir / "parts", idx, fmt) for idx in done]
            written = output.merge_parts(parts, self.spec["output"]["path"], fmt)
            self.logs.event(
                f"merged {len(parts)} part(s) into {self.spec['output']['path']} ({written} "
                f"{'rows' if fmt == 'parquet' else 'bytes'})"
            )
        mb, items = p["mini_batches"], p["items"]
        appended = self.settings["output_action"] == "append_row"
        self.logs.result(
            f"Completed: {mb['done']} of {mb['total']} mini-batch(es) succeeded, {mb['failed']} failed; "
            f"{items['succeeded']} item(s) succeeded, {items['failed']} failed.\n"
            f"Output: {self.spec['output']['path' if appended else 'dir']}\n"
        )
        # Status last: whoever waits for the job finds its logs complete and, if the script has a
        # shutdown(), every worker gone (its shutdown() run). Without one, nothing is left to wait
        # for: the released workers finish exiting (seconds, after mlflow) while this process ends.
        if self._script_may_define("shutdown"):
            target.shutdown(kill=False)
        self._set_status(state.COMPLETED, ended=True)
        return state.COMPLETED

    def _script_may_define(self, name: str) -> bool:
        context = self._context()
        return may_define(Path(context["code_dir"]) / context["scoring_script"], name)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m batchnb.engine.supervisor --workspace W --job J`` (see
    :mod:`batchnb.engine.launch`, which jobs are started with)."""
    from . import launch

    return launch.main(argv)


if __name__ == "__main__":
    sys.exit(main())
