"""The Running phase of a job: mini-batches handed to its workers, their results applied, a lost worker replaced.

:class:`Dispatcher` is the part of the job supervisor (:mod:`batchnb.engine.supervisor`) that
scores the pending mini-batches on the workers its compute gives it: slots of the agent's pool
(:class:`batchnb.compute.workers.JobWorkers`), or a Dask cluster's executor. A slot holds two at
most (one running, one waiting). Each result is applied to the store through a batched transaction
(see ``FLUSH_INTERVAL_S`` in the supervisor's docstring). A failed attempt is re-queued at the back
until ``max_retries``; a lost worker, a ``run()`` stuck past its timeout and batchnb's own I/O
failures are handled as :mod:`batchnb.engine.faults` says.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compute.base import is_lost_worker
from ..compute.workers import revision_key
from ..errors import ClusterLostError
from ..store import Store
from . import attempts, failures, faults, output, remote, state
from .drivers import DRIVERS_DIR, MLFLOW_DRIVER
from .logs import JobLogs
from .merge_stream import OutputStream
from .planner import minibatch_items

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
    pos: int = 0  # the input position of its first item
    submitted_at: float = 0.0  # when the current attempt was handed to the pool
    slot: Any = None  # where the current attempt went


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
        # Set by the agent when its compute is stopped: the job ends Interrupted with this reason.
        self.stopped: str | None = None
        self._isolate = bool(self.settings.get("isolate_failures", True))
        self._next_idx = 0  # the index a split mini-batch's second half gets
        self.stream: OutputStream | None = None  # the output, appended to as parts commit

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
            # Workers add the lineage columns to a part only when the output keeps them: on a large
            # tabular mini-batch they cost more than writing the part.
            "lineage": output.lineage_enabled(s),
        }

    def _dispatch(self, workers: Any) -> tuple[str, str | None]:
        """Score every pending mini-batch on ``workers``. Returns (``done`` | ``canceled`` |
        ``failed`` | ``interrupted``, reason)."""
        # On a Dask cluster, before the first mini-batch: the code and the model shipped to workers
        # that cannot see this machine's files, the deployment's environment built on every host.
        environment = {
            "name": self.spec.get("environment"),
            "build": self.spec.get("environment_build"),
            "revision": revision_key(self.spec),
        }
        context = remote.prepare(self._context(), workers, self.logs.event, environment)
        max_attempts = context["max_attempts"]
        threshold = int(self.settings["error_threshold"])
        with self.store.read() as db:
            rows = db.execute(
                "SELECT idx, items, n_items, attempts, duration, COALESCE(pos, idx) AS pos FROM minibatches "
                "WHERE job = ? AND status = 'pending' ORDER BY COALESCE(pos, idx), idx",
                (self.name,),
            ).fetchall()
            failed_items = state.progress(db, self.name)["items"]["failed"]
            top = db.execute("SELECT MAX(idx) FROM minibatches WHERE job = ?", (self.name,)).fetchone()[0]
            order = [
                (r["idx"], r["rows"] if r["status"] == "done" else 0 if r["status"] == "failed" else None)
                for r in db.execute(
                    "SELECT idx, status, rows FROM minibatches WHERE job = ? ORDER BY COALESCE(pos, idx), idx",
                    (self.name,),
                )
            ]
        self._next_idx = (top or 0) + 1
        self.stream = OutputStream.open(self.spec, order)
        queue = collections.deque(
            Task(r["idx"], json.loads(r["items"]), r["n_items"], r["attempts"], r["duration"], pos=r["pos"])
            for r in rows
        )
        inflight: dict[Future[Any], Task] = {}
        losses = faults.PoolLosses()
        self.logs.event(f"dispatching {len(queue)} mini-batch(es) to {workers.describe()}")

        while queue or inflight:
            if self.cancel.is_set():
                self._abandon(inflight, workers)
                return "canceled", None
            if self.stopped:
                self._abandon(inflight, workers)
                return "interrupted", self.stopped
            broken = self._submit(workers, queue, inflight, losses, context)
            if not inflight:
                self.cancel.wait(0.05)  # no slot could take one now (another job's work finishes first)
                continue
            done, _ = wait(list(inflight), timeout=0 if broken else 0.25, return_when=FIRST_COMPLETED)
            broken |= {inflight[f].slot for f in done if self._is_lost(f)}
            if broken:
                # A broken executor ends every future it holds at once: take them all (bounded).
                held = [f for f, t in inflight.items() if t.slot in broken]
                done = set(done) | set(wait(held, timeout=LOSS_SETTLE_S)[0]) | set(held)
            lost: list[Task] = []
            for fut in sorted(done, key=lambda f: inflight[f].idx):
                task = inflight.pop(fut)
                try:
                    result = fut.result(timeout=0)
                except BaseException as exc:
                    if isinstance(exc, ClusterLostError):
                        raise  # the whole cluster, not a worker: the supervisor interrupts the job
                    if not is_lost_worker(exc) and fut.done():
                        # Everything the scoring script does is caught in the worker: what escapes is ours.
                        self._abandon(inflight, workers)
                        return "interrupted", faults.interrupted_reason(
                            faults.SystemFault(faults.system_error(f"score mini-batch {task.idx}", exc)),
                            self.name,
                        )
                    lost.append(task)
                    continue
                losses.finished(task.idx)
                stop = self._settle(task, result, queue, max_attempts, failed_items, threshold)
                if isinstance(stop, tuple):
                    self._abandon(inflight, workers)
                    return stop
                failed_items = stop
            if broken:
                for slot in broken:
                    workers.reset(slot)
                failed_items += self._lose_workers(lost, queue, losses, max_attempts, workers.exact_losses)
                if threshold != -1 and failed_items > threshold:
                    self._abandon(inflight, workers)
                    return "failed", self._over_threshold(failed_items, threshold, self._first_failed())
            if workers.supports_kill_worker:  # only a local worker's pid is ours to kill
                self._watchdog(inflight, workers, context["timeout"], losses.killed)
            elif getattr(workers, "supports_expire", False):
                failed_items += self._expire_overdue(inflight, queue, workers, context["timeout"], max_attempts)
                if threshold != -1 and failed_items > threshold:
                    self._abandon(inflight, workers)
                    return "failed", self._over_threshold(failed_items, threshold)
            self._flush()
            self._write_progress()
            if self.stream is not None:
                self.stream.advance()
        return "done", None

    def _submit(
        self,
        workers: Any,
        queue: collections.deque[Task],
        inflight: dict[Future[Any], Task],
        losses: faults.PoolLosses,
        context: dict[str, Any],
    ) -> set[Any]:
        """Hand queued mini-batches to every slot of the job with room. Returns the slots found broken."""
        broken: set[Any] = set()
        for slot in workers.slots():
            while queue and losses.may_submit(queue[0].idx, bool(inflight)):
                task = queue[0]
                submitted = time.time()
                fn, shipped = remote.task_for(context, task.items)
                try:
                    fut = workers.submit(
                        slot, fn, context, task.idx, task.attempts + 1, task.items, task.n_items, *shipped
                    )
                except BaseException as exc:
                    if not is_lost_worker(exc):
                        raise
                    # The worker died since the last look: this one never started.
                    losses.not_submitted(task.idx)
                    broken.add(slot)
                    break
                if fut is None:
                    break
                queue.popleft()
                task.submitted_at, task.slot = submitted, slot
                inflight[fut] = task
                self._queue(
                    "UPDATE minibatches SET status = 'running' WHERE job = ? AND idx = ?", (self.name, task.idx)
                )
        return broken

    @staticmethod
    def _over_threshold(failed_items: int, threshold: int, named: list[str] | None = None) -> str:
        which = f" ({', '.join(named)}{', ...' if failed_items > len(named) else ''})" if named else ""
        return (
            f"the error threshold was exceeded: {failed_items} item(s) failed{which}, more than "
            f"error_threshold {threshold}; see `batchnb job failures` and logs/user/error.txt"
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
        try:
            remote.commit_returned(self.job_dir, result)  # a part scored where this folder is not seen
        except OSError as exc:
            error = faults.system_error(f"write the part file of mini-batch {task.idx}", exc)
            result = {**result, "status": faults.SYSTEM_ERROR, "error": error}
        if result["status"] == faults.SYSTEM_ERROR:
            self.logs.event(f"mini-batch {task.idx}: {result['error']}")
            return "interrupted", faults.interrupted_reason(faults.SystemFault(result["error"]), self.name)
        reason = self._record(task, result, queue, max_attempts)
        if reason == "init_failed":
            return "failed", f"init() of the scoring script failed in {result.get('worker')}:\n{result.get('error')}"
        failed_items += self._failed_items_of(task, result, reason)
        if threshold != -1 and failed_items > threshold:
            return "failed", self._over_threshold(failed_items, threshold, self._first_failed())
        return failed_items

    @staticmethod
    def _failed_items_of(task: Task, result: dict[str, Any], outcome: str) -> int:
        """Items that became failed for good by ``result`` (``outcome``: what :meth:`_record` made of it)."""
        if outcome == "ok":
            return int(result.get("failed", 0))
        return task.n_items if outcome == "failed" else 0

    def _first_failed(self) -> list[str]:
        """The first failed items recorded, to name them when the job stops."""
        self._flush(force=True)
        with self.store.read() as db:
            return [r["item"] for r in failures.list_failures(db, self.name)[:5]]

    def _record(self, task: Task, result: dict[str, Any], queue: collections.deque[Task], max_attempts: int) -> str:
        """Apply one worker result to the task and the store. Returns ``ok``, ``init_failed``, ``retry``
        (queued again), ``split`` (its halves queued, see :mod:`batchnb.engine.failures`) or ``failed``."""
        status = result["status"]
        attempt = task.attempts + 1
        task.duration += float(result.get("duration") or 0.0)
        worker = result.get("worker")
        if result.get("init") == "warm":
            took = f"{result.get('init_s', 0):.2f} s"
            self.logs.event(f"{worker}: init() ran in {took} (warm worker: the script was imported by an earlier job)")
        elif result.get("init") == "ran":
            self.logs.event(f"{worker}: init() ran in {result.get('init_s', 0):.2f} s")
        if status == "init_failed":
            self.logs.user_error(f"init() failed in {worker}; see logs/user/stderr/{worker}.stderr.txt")
            self._attempt(task, attempt, result, attempts.FAILED)
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
        revision = self.spec.get("deployment_revision")
        if status == "ok":
            self._attempt(task, attempt, result, attempts.FAILED if result["failed"] else attempts.OK)
            self._queue("DELETE FROM failed_items WHERE job = ? AND idx = ?", (self.name, task.idx))
            if result["failed"]:
                row = failures.missing_row(self.name, task.idx, task.items, attempt, result, revision)
                self._queue(failures.INSERT, row)
            self._queue(
                "UPDATE minibatches SET status = 'done', attempts = ?, succeeded = ?, failed = ?, rows = ?, "
                "worker = ?, started_at = ?, ended_at = ?, duration = ?, error = ?, revision = ? "
                "WHERE job = ? AND idx = ?",
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
                    revision,
                    self.name,
                    task.idx,
                ),
            )
            if result["failed"]:
                self.logs.user_error(
                    f"mini-batch {task.idx}: {result['error']} on the last attempt; "
                    f"{result['failed']} item(s) counted as failed"
                )
            if self.stream is not None:
                self.stream.settled(task.idx, int(result["rows"]))
            return status
        where = f" (traceback: logs/user/error/{worker}.txt)" if worker else ""
        self.logs.user_error(
            f"mini-batch {task.idx} attempt {attempt}/{max_attempts} failed in {worker}: {result.get('error')}{where}"
        )
        gives_up = attempt >= max_attempts and not (self._isolate and len(task.items) > 1)
        self._attempt(task, attempt, result, attempts.FAILED if gives_up else attempts.RETRIED)
        if attempt < max_attempts:
            queue.append(task)  # re-queued at the back, as PRS re-queues with a dequeue count
            self._queue(
                "UPDATE minibatches SET status = 'pending', attempts = ?, duration = ?, error = ? "
                "WHERE job = ? AND idx = ?",
                (attempt, task.duration, result.get("error"), self.name, task.idx),
            )
            return "retry"
        if self._isolate and len(task.items) > 1:
            self._split(task, queue, max_attempts, result.get("error"))
            return "split"
        self._queue(
            "UPDATE minibatches SET status = 'failed', attempts = ?, succeeded = 0, failed = n_items, "
            "rows = 0, worker = ?, ended_at = ?, duration = ?, error = ? WHERE job = ? AND idx = ?",
            (attempt, worker, time.time(), task.duration, result.get("error"), self.name, task.idx),
        )
        for row in failures.item_rows(self.name, task.idx, task.items, attempt, result, revision):
            self._queue(failures.INSERT, row)
        if self.stream is not None:
            self.stream.settled(task.idx, 0)
        return "failed"

    def _attempt(self, task: Task, attempt: int, result: dict[str, Any], outcome: str) -> None:
        """Record one attempt of ``task`` for the worker timeline (see :mod:`batchnb.engine.attempts`)."""
        row = attempts.attempt_row(self.name, task.idx, attempt, task.n_items, result, outcome, task.submitted_at)
        self._queue(attempts.INSERT, row)

    def _split(self, task: Task, queue: collections.deque[Task], max_attempts: int, error: str | None) -> None:
        """Every attempt of ``task`` failed: score its halves, one attempt each, ahead of the rest. The
        first half keeps its index; the second gets a new one, and its input position, so the
        output keeps input order."""
        if self.stream is not None:
            self.stream.abandon()  # a new mini-batch takes a place in the input order: merge at the end
        left, right, right_pos = failures.split_rows(task.items, task.pos)
        first = Task(task.idx, left, minibatch_items(left), max(0, max_attempts - 1), pos=task.pos)
        second = Task(self._next_idx, right, minibatch_items(right), max(0, max_attempts - 1), pos=right_pos)
        self._next_idx += 1
        self.logs.event(
            f"mini-batch {task.idx} failed on every attempt: its {len(task.items)} items are split into "
            f"mini-batches {first.idx} and {second.idx} to find the ones that fail"
        )
        self._queue(
            "UPDATE minibatches SET status = 'pending', items = ?, n_items = ?, attempts = ?, duration = 0, "
            "error = ? WHERE job = ? AND idx = ?",
            (failures.items_json(left), first.n_items, first.attempts, error, self.name, task.idx),
        )
        self._queue(
            "INSERT INTO minibatches (job, idx, items, n_items, status, attempts, pos) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            (self.name, second.idx, failures.items_json(right), second.n_items, second.attempts, second.pos),
        )
        # Its items changed: an incremental job must not take this mini-batch for what it was.
        self._queue("DELETE FROM scored_inputs WHERE job = ? AND idx = ?", (self.name, task.idx))
        self._queue("DELETE FROM failed_items WHERE job = ? AND idx = ?", (self.name, task.idx))
        queue.appendleft(second)
        queue.appendleft(first)

    @staticmethod
    def _is_lost(fut: Future[Any]) -> bool:
        """True if ``fut`` ended with its worker lost."""
        exc = fut.exception()
        return exc is not None and is_lost_worker(exc)

    def _lose_workers(
        self,
        lost: list[Task],
        queue: collections.deque[Task],
        losses: faults.PoolLosses,
        max_attempts: int,
        exact: bool,
    ) -> int:
        """Workers died, taking the ``lost`` mini-batches: each is scored again, charged at most one
        attempt (see :meth:`faults.PoolLosses.lost`). With ``exact`` workers (one process per slot)
        the oldest lost mini-batch of each slot was the one running there. Returns items that became failed."""
        names = ", ".join(str(t.idx) for t in sorted(lost, key=lambda t: t.idx)) or "none"
        self.logs.event(f"a worker process died; mini-batch(es) in flight: {names}; starting a new worker")
        dead: dict[int, float] | None = None
        if exact:
            dead = {}
            for slot in {t.slot for t in lost}:
                running = min((t for t in lost if t.slot is slot), key=lambda t: t.submitted_at)
                dead[running.idx] = running.submitted_at
        newly_failed = 0
        timeout = self.settings["retry_settings"]["timeout"]
        verdicts = losses.lost(sorted(lost, key=lambda t: t.idx), timeout, dead)
        for task, why in reversed(verdicts):
            if why is None:
                queue.appendleft(task)  # first again, never charged
                self._queue(
                    "UPDATE minibatches SET status = 'pending' WHERE job = ? AND idx = ?", (self.name, task.idx)
                )
                continue
            result = {"status": "retry", "error": why, "duration": 0.0, "worker": None, "lost": True}
            result["timeout"] = "timeout" in why  # its worker was killed by the watchdog
            outcome = self._record(task, result, queue, max_attempts)
            newly_failed += self._failed_items_of(task, result, outcome)
        return newly_failed

    def _watchdog(self, inflight: dict[Future[Any], Task], workers: Any, timeout: float, killed: set[int]) -> None:
        """Kill a worker whose run() ignored the in-process timeout (stuck in C code)."""
        now = time.time()
        if now - self._last_watchdog < WATCHDOG_INTERVAL_S:
            return
        self._last_watchdog = now
        for slot in {task.slot for task in inflight.values()}:
            running = workers.running(slot)
            task = inflight.get(running[0]) if running else None
            if task is None or running is None:
                continue  # idle, or running another job's mini-batch
            started = max(task.submitted_at, running[1])
            if task.idx not in killed and now - started > timeout + KILL_GRACE_S:
                killed.add(task.idx)
                pid = workers.kill(slot)
                self.logs.event(
                    f"mini-batch {task.idx} exceeded its timeout by {KILL_GRACE_S:g} s; killing worker pid {pid}"
                )

    def _expire_overdue(
        self,
        inflight: dict[Future[Any], Task],
        queue: collections.deque[Task],
        workers: Any,
        timeout: float,
        max_attempts: int,
    ) -> int:
        """On a Dask cluster, give up on mini-batches not back ``timeout`` plus a grace after their
        submission: run() stuck in C code, or no worker ever took them (every worker died). Each is
        charged an attempt and retried; its worker is restarted. Returns items that became failed."""
        now = time.time()
        if now - self._last_watchdog < WATCHDOG_INTERVAL_S:
            return 0
        self._last_watchdog = now
        newly_failed = 0
        for fut, task in sorted(inflight.items(), key=lambda kv: kv[1].idx):
            if fut.done() or now - task.submitted_at <= timeout + KILL_GRACE_S:
                continue
            del inflight[fut]
            done = workers.expire(fut)
            why = f"MiniBatchTimeout: not back {timeout:g} s (+{KILL_GRACE_S:g} s) after its submission; {done}"
            self.logs.event(f"mini-batch {task.idx}: {why}")
            result = {"status": "retry", "error": why, "duration": 0.0, "worker": None}
            outcome = self._record(task, result, queue, max_attempts)
            newly_failed += self._failed_items_of(task, result, outcome)
        return newly_failed

    def _abandon(self, inflight: dict[Future[Any], Task], workers: Any) -> None:
        """Stop at once: the job's mini-batches in flight are dropped and their workers killed."""
        for fut in inflight:
            fut.cancel()
        workers.abandon({task.slot for task in inflight.values()})
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
