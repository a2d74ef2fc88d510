"""What every job owner does alike: claim its job, stamp a heartbeat, queue it again, start from the command line.

A batch job is owned by its compute's agent (:mod:`batchnb.engine.agent`), a pipeline job by its
runner process (:mod:`batchnb.pipelines.runner`). Claiming a job records the owning process (pid
and create time, since pids are reused) so readers can tell a live owner from a lost one (see
:func:`batchnb.engine.state.check_interrupted`); the heartbeat keeps that true and carries a
cancel request back to the owner.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..store import Store
from . import state


def load_spec(store: Store, name: str) -> dict[str, Any]:
    """The job's spec (everything its owner needs, resolved at submission); exit if there is no such job."""
    with store.read() as db:
        row = db.execute("SELECT spec FROM jobs WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise SystemExit(f"job {name} not found in {store.path.parent}")
    spec: dict[str, Any] = json.loads(row["spec"])
    return spec


def record_status(store: Store, logs: Any, name: str, status: str, error: str | None, ended: bool) -> None:
    """Write the job's status (and its end time if ``ended``) and log it in ``sys/master_role.txt``."""
    now = time.time()
    with store.write() as tx:
        # A cancel requested meanwhile must stay visible until the owner acts on it.
        keep_cancel = "AND status != 'CancelRequested'" if status in (state.PREPARING, state.RUNNING) else ""
        tx.execute(
            "UPDATE jobs SET status = ?, error = ?, ended_at = CASE WHEN ? THEN ? ELSE ended_at END, "
            f"heartbeat_at = ? WHERE name = ? {keep_cancel}",
            (status, error, ended, now, now, name),
        )
    logs.event(f"status {status}" + (f": {error.splitlines()[0]}" if error else ""))


def claim(store: Store, name: str, status: str) -> Any:
    """Take the job if it is Queued and set ``status``; return this process (psutil), or None if not claimed.

    A job whose cancel was requested while it was queued ends ``Canceled`` here.
    """
    import psutil

    me = psutil.Process()
    now = time.time()
    with store.write() as tx:
        row = tx.execute("SELECT status, cancel_requested FROM jobs WHERE name = ?", (name,)).fetchone()
        if row["status"] != state.QUEUED:
            return None
        if row["cancel_requested"]:
            tx.execute("UPDATE jobs SET status = ?, ended_at = ? WHERE name = ?", (state.CANCELED, now, name))
            return None
        tx.execute(
            "UPDATE jobs SET status = ?, supervisor_pid = ?, supervisor_started = ?, heartbeat_at = ?, "
            "started_at = COALESCE(started_at, ?), run_started_at = ?, ended_at = NULL, error = NULL, lost = 0, "
            "waiting = NULL WHERE name = ?",
            (status, me.pid, me.create_time(), now, now, now, name),
        )
    return me


class NotResumed(Exception):
    """A job cannot be queued again as it is (its output location changed, its owner still runs...)."""


def requeue(
    store: Store, name: str, reset_failed: bool, auto: bool = False, new_spec: dict[str, Any] | None = None
) -> bool:
    """Queue an ended or Interrupted job again, keeping its committed mini-batches (``reset_failed``:
    its failed ones, and those whose ``run()`` left items out, run again too). ``auto``: by an agent
    recovering a lost job (counted against its ``max_auto_resumes``; False if another did it first).
    ``new_spec``: the job's spec on the deployment's current revision (``rerun-failed --latest``).
    The caller then makes sure an owner runs it.

    Raises:
        InvalidStateError: Its owner still runs it.
        BatchnbError: Its output can no longer be written where it was (see output_location).
    """
    from ..errors import InvalidStateError
    from . import output_location

    with store.read() as db:
        row = db.execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
    if row["status"] not in state.ENDED and state.supervisor_alive(row["supervisor_pid"], row["supervisor_started"]):
        raise InvalidStateError(f"job {name}'s owner (pid {row['supervisor_pid']}) is still running it")
    spec = json.loads(row["spec"])
    batch = row["kind"] == "batch"
    if batch:  # refused now rather than after the scoring, at the merge
        output_location.check_resumable(name, spec, (row["output_stamp"] or "").split())
    now = time.time()
    with store.write() as tx:
        # An automatic resume applies once: the agent and a front end may both try.
        only_lost = "AND status = 'Interrupted' AND lost = 1" if auto else ""
        changed = tx.execute(
            "UPDATE jobs SET status = ?, cancel_requested = 0, supervisor_pid = NULL, supervisor_started = NULL, "
            "heartbeat_at = ?, ended_at = NULL, error = NULL, lost = 0, "
            f"auto_resumes = CASE WHEN ? THEN auto_resumes + 1 ELSE 0 END WHERE name = ? {only_lost}",
            (state.QUEUED, now, auto, name),
        ).rowcount
        if not changed:
            return False
        if batch:
            output_location.reserve(tx, name, spec)  # kept if Interrupted; taken again if it had ended
        if reset_failed:
            again = "job = ? AND (status = 'failed' OR (status = 'done' AND failed > 0))"
            if new_spec is not None:
                tx.execute("UPDATE jobs SET spec = ? WHERE name = ?", (json.dumps(new_spec), name))
                # Scored again on another revision: their fingerprints stand for the new key, never the old.
                tx.execute(
                    "UPDATE scored_inputs SET scoring_key = ? WHERE job = ? AND idx IN "
                    f"(SELECT idx FROM minibatches WHERE {again})",
                    (new_spec["lineage"]["scoring_key"], name, name),
                )
            # Their failed_items rows stay until each is scored again (the dispatcher drops them).
            tx.execute(
                "UPDATE minibatches SET status = 'pending', attempts = 0, succeeded = 0, failed = 0, "
                f"rows = 0, error = NULL WHERE {again}",
                (name,),
            )
    if "job_dir" in spec:
        from .logs import mark_requeued

        action = "rerun-failed" if reset_failed else "resumed automatically" if auto else "resume"
        mark_requeued(Path(spec["job_dir"]), action)
    return True


def heartbeat(
    db_path: Path, name: str, stop: threading.Event, cancel: threading.Event, children_running: bool = False
) -> None:
    """Stamp the job (and, for a pipeline, its running steps) every second until ``stop``; set
    ``cancel`` when a cancel is requested. Runs on its own thread with its own connection."""
    store = Store(db_path)
    sql = "UPDATE jobs SET heartbeat_at = ? WHERE name = ?"
    params: tuple[str, ...] = (name,)
    if children_running:
        sql, params = sql + " OR (parent = ? AND status = 'Running')", (name, name)
    while not stop.wait(state.HEARTBEAT_INTERVAL_S):
        try:
            with store.write() as tx:
                tx.execute(sql, (time.time(), *params))
                requested = tx.execute("SELECT cancel_requested FROM jobs WHERE name = ?", (name,)).fetchone()[0]
            if requested:
                cancel.set()
        except Exception as exc:  # keep beating: a transient store error must not look like death
            print(f"heartbeat error: {exc}", file=sys.stderr, flush=True)
    store.close()


def start_heartbeat(
    db_path: Path, name: str, stop: threading.Event, cancel: threading.Event, children_running: bool = False
) -> threading.Thread:
    """:func:`heartbeat` on a daemon thread, started."""
    thread = threading.Thread(
        target=heartbeat, args=(db_path, name, stop, cancel, children_running), name="batchnb-heartbeat", daemon=True
    )
    thread.start()
    return thread


def start_detached(module: str, args: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m module args`` in a session of its own (it outlives the kernel or terminal
    that started it), its output appended to ``log``, and reap it when it ends (a long-lived
    kernel collects no zombies).

    Raises:
        OSError: It could not be started.
    """
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    threading.Thread(target=proc.wait, name=f"batchnb-reap-{proc.pid}", daemon=True).start()
    return proc


def main(prog: str, run: Callable[[Path, str], str], argv: list[str] | None = None) -> int:
    """``python -m <module> --workspace W --job J``: SIGTERM becomes SystemExit (the owner records
    ``Interrupted``); exit 0 when the job Completed or was not ours to claim."""
    import signal

    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--job", required=True)
    args = parser.parse_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    status = run(Path(args.workspace), args.job)
    return 0 if status in (state.COMPLETED, "not-claimed") else 1
