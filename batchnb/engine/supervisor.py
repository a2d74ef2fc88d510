"""The job supervisor: runs one batch job, on a thread of its compute's agent (:mod:`batchnb.engine.agent`).

It receives only the workspace path, the job name and the job's workers, and reads everything else
from the store. Lifecycle::

    Queued ──claim──▶ Preparing (plan mini-batches, once) ──▶ Running ──▶ Finalizing ──▶ Completed
                                                             │            (merge parts)
                                                             ├─ init() raised / error threshold exceeded /
                                                             │  nothing succeeded ─▶ Failed
                                                             ├─ cancel requested ─▶ Canceled
                                                             ├─ batchnb's own files or store
                                                             │  failed ─▶ Interrupted (resumable)
                                                             ├─ its compute stopped ─▶ Interrupted
                                                             └─ its Dask scheduler lost ─▶ Interrupted,
                                                                resumed by the agent when it is back
    Finalizing ── the output cannot be written (see output_location.merge) ──▶ Interrupted (resumable)

When the user configured an MLflow tracking URI at invoke, or the scoring script imports mlflow, the
job is also one MLflow run (see :mod:`batchnb.engine.tracking`): started after the claim, ended at
Completed, Failed or Canceled, left open at Interrupted and reopened by ``resume``. The workers get
its ``MLFLOW_TRACKING_URI`` and ``MLFLOW_RUN_ID`` with the job's environment, before ``init()``.
Only then does this process import mlflow; tracking never fails a job.

The Running phase (handing mini-batches to the pool, a lost worker, a stuck ``run()``) is
:class:`batchnb.engine.dispatch.Dispatcher`'s; what counts against ``error_threshold`` and what
interrupts the job instead is said in :mod:`batchnb.engine.faults`.

A heartbeat thread stamps the job every second; if the agent dies, readers see the stale heartbeat
and show ``Interrupted``, and the compute's next agent (or ``resume``) runs it again, skipping every
committed mini-batch. Store writes from the dispatch loop are batched into one transaction every
``FLUSH_INTERVAL_S``: a crash between a worker's commit of its part and that flush only means the
mini-batch is scored again, and its part (named by index) is replaced, never duplicated. The result
of a mini-batch that took longer than that interval is written at once: one transaction is cheap
beside it, and a crash then costs no finished work.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import BatchnbError, ClusterLostError
from ..registry.code import may_define
from ..store import Store
from . import faults, lifecycle, output, output_location, planner, state
from .dispatch import Dispatcher
from .logs import JobLogs

NO_SUCCESS_MESSAGE = (
    "No succeeded mini batch item returned from run(). Please check 'response: run()' in "
    "https://aka.ms/batch-inference-documentation"
)


class Supervisor(Dispatcher):
    """Runs one job from its store record to a final status."""

    def __init__(self, workspace_root: Path, job_name: str) -> None:
        store = Store(workspace_root / "batchnb.db")
        spec: dict[str, Any] = lifecycle.load_spec(store, job_name)
        super().__init__(store, job_name, spec, JobLogs(Path(spec["job_dir"])), threading.Event())
        from .tracking import JobRun  # imports the registry (pydantic): not for a supervisor that finds no job

        self.tracking = JobRun(self.spec, self.logs.event)
        self._stop = threading.Event()

    def _set_status(self, status: str, error: str | None = None, ended: bool = False) -> None:
        self._flush(force=True)
        if ended and status in state.TERMINAL:
            # Before the status is written: whoever sees the job ended sees its MLflow run ended.
            self.tracking.finish(status, self._totals())
        lifecycle.record_status(self.store, self.logs, self.name, status, error, ended)

    # -- lifecycle ------------------------------------------------------------------------------

    def claim(self) -> bool:
        """Take the job if it is Queued; record this process (the agent) as its owner."""
        me = lifecycle.claim(self.store, self.name, state.PREPARING)
        if me is None:
            return False
        self.logs.event(f"agent pid {me.pid} claimed job {self.name}")
        return True

    def run(self, workers: Any) -> str:
        """Run the claimed job on ``workers`` to a final status and return it."""
        beat = lifecycle.start_heartbeat(self.store.path, self.name, self._stop, self.cancel)
        retire = False
        try:
            retire = self._script_may_define("shutdown")
            self._start_tracking()
            self._plan()
            self._set_status(state.RUNNING)
            outcome, reason = self._dispatch(workers)
            return self._finish(outcome, reason, workers)
        except BaseException as exc:
            workers.abandon(set(workers.slots()))
            if self.stopped:  # its compute was stopped under it (its cluster closed): not the job's fault
                with contextlib.suppress(OSError):
                    self.logs.event(f"stopped during a call to its compute: {type(exc).__name__}: {exc}")
                return self._interrupt(self.stopped)
            text = traceback.format_exc()
            with contextlib.suppress(OSError):  # the logs may be what failed
                self.logs.event(f"supervisor error:\n{text}")
            if isinstance(exc, ClusterLostError):  # resumed by the compute's agent when it is back
                return self._interrupt(exc.message, lost=True)
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
            if self.stream is not None:
                self.stream.abandon()  # whatever was not used by the merge
            self._stop.set()
            beat.join(timeout=5)
            workers.close(retire=retire)
            self.store.close()

    def _start_tracking(self) -> None:
        """Start (or reopen) the job's MLflow run, in the background, if a tracking URI was given."""
        self.tracking.start_in_background(self.name, self._record_run_id)

    def _run_env(self) -> dict[str, str]:
        """The job's MLflow run for its scoring script (``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID``)."""
        # The script's init() may log: its run must exist by then. A resumed job's run does (its
        # id is in the spec, and reopening it only marks it running): no wait for mlflow's import.
        if self.spec.get("mlflow_in_code") and not self.tracking.run_id:
            self.tracking.wait_created()
        return self.tracking.script_env()

    def _record_run_id(self, run_id: str) -> None:
        """Keep the run's id in the job's spec, so that ``resume`` reopens the same run. Called from
        the tracking thread (the store keeps one connection per thread; this one is closed after)."""
        if run_id == self.spec.get("mlflow_run_id"):
            return
        from .tracking_store import record_run_id

        try:
            record_run_id(self.store, self.name, run_id)
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

    def _plan(self) -> None:
        with self.store.read() as db:
            planned = db.execute("SELECT planned FROM jobs WHERE name = ?", (self.name,)).fetchone()[0]
        if planned:
            self._reset_running()
            lost = self._requeue_lost_parts()
            again = f"; {lost} whose part file is missing (lost in a power loss) are scored again" if lost else ""
            self.logs.event(f"mini-batches already planned (resumed, or incremental); committed ones are kept{again}")
            return
        inp = self.spec["input"]
        files = planner.list_input_files(inp["path"], inp["type"], recursive=self.settings.get("recursive", False))
        planner.check_builtin_inputs(self.spec, files)
        size = self.settings["mini_batch_size"]
        batches: Iterator[list[Any]] = (
            planner.plan_tabular_minibatches(files, size)
            if self.settings["mini_batch_mode"] == "tabular"
            else planner.plan_file_minibatches(files, int(size))
        )
        rows, pos = [], 0
        for i, mb in enumerate(batches):
            n = planner.minibatch_items(mb)
            rows.append((self.name, i, json.dumps(mb), n, pos))
            pos += n
        with self.store.write() as tx:
            tx.executemany(
                "INSERT INTO minibatches (job, idx, items, n_items, status, pos) VALUES (?, ?, ?, ?, 'pending', ?)",
                rows,
            )
            tx.execute("UPDATE jobs SET planned = 1 WHERE name = ?", (self.name,))
        self.logs.event(f"planned {len(rows)} mini-batch(es) over {len(files)} file(s)")

    def _requeue_lost_parts(self) -> int:
        """Parts are not fsynced (see files.atomic_write_bytes): re-queue committed mini-batches whose
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

    # -- the end --------------------------------------------------------------------------------

    def _interrupt(self, reason: str, lost: bool = False) -> str:
        """Stop as Interrupted (resumable): batchnb's own files or store failed, the compute was
        stopped, or (``lost``) its cluster went away, and its agent resumes it when it is back. The
        store may be what fails again here: whatever cannot be written is left, and readers see the
        job Interrupted from its stopped heartbeat if not from this status."""
        with contextlib.suppress(Exception):
            self._reset_running()
        with contextlib.suppress(Exception):
            self.logs.result(f"Interrupted: {reason}\n")
        try:
            lifecycle.record_status(self.store, self.logs, self.name, state.INTERRUPTED, reason, ended=False)
            if lost:
                with self.store.write() as tx:
                    tx.execute("UPDATE jobs SET lost = 1 WHERE name = ? AND status = ?", (self.name, state.INTERRUPTED))
        except Exception:
            with contextlib.suppress(Exception), self.store.write() as tx:
                sql = "UPDATE jobs SET status = ?, error = ? WHERE name = ?"
                tx.execute(sql, (state.INTERRUPTED, reason, self.name))
        return state.INTERRUPTED

    def _finish(self, outcome: str, reason: str | None, workers: Any) -> str:
        self._flush(force=True)
        self._write_progress(force=True)
        if outcome == "canceled":
            self.logs.result("Canceled. Committed mini-batches are kept in parts/.\n")
            self._set_status(state.CANCELED, "canceled by request; committed mini-batches are kept", ended=True)
            return state.CANCELED
        if self.stopped and outcome in ("interrupted", "failed"):  # what the stop's closing caused
            return self._interrupt(self.stopped)
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
            self._set_status(state.FAILED, NO_SUCCESS_MESSAGE, ended=True)
            return state.FAILED
        self._set_status(state.FINALIZING)
        if self.settings["output_action"] == "append_row":
            blocked = output_location.merge(self.store, self.name, self.spec, self.logs, self.stream)
            if blocked:
                # Every mini-batch is scored and its part kept: resume only merges again.
                self.logs.result(f"Interrupted: {blocked}\n")
                self._set_status(state.INTERRUPTED, blocked)
                return state.INTERRUPTED
        mb, items = p["mini_batches"], p["items"]
        appended = self.settings["output_action"] == "append_row"
        self.logs.result(
            f"Completed: {mb['done']} of {mb['total']} mini-batch(es) succeeded, {mb['failed']} failed; "
            f"{items['succeeded']} item(s) succeeded, {items['failed']} failed.\n"
            f"Output: {self.spec['output']['path' if appended else 'dir']}\n"
        )
        # Status last: whoever waits for the job finds its logs complete and, if the script has a
        # shutdown(), its workers gone (its shutdown() run); without one, they stay warm.
        if self._script_may_define("shutdown"):
            workers.close(retire=True)
        self._set_status(state.COMPLETED, ended=True)
        return state.COMPLETED

    def _script_may_define(self, name: str) -> bool:
        context = self._context()
        return may_define(Path(context["code_dir"]) / context["scoring_script"], name)
