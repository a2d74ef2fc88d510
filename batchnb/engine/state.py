"""Job states, liveness and progress, read from the store by every process alike.

Statuses are Azure's (``Queued``, ``Preparing``, ``Running``, ``Finalizing``, ``Completed``,
``Failed``, ``CancelRequested``, ``Canceled``) plus ``Interrupted``: the job's owner (its compute's
agent, or a pipeline's runner) died (its heartbeat went stale, or its pid is gone; the job is then
marked ``lost`` and the compute's next agent resumes it), its compute was stopped, or it could not
write its output (the reason says why). An interrupted job keeps every committed mini-batch, and
``job resume`` finishes it.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ..processes import process_alive as supervisor_alive
from ..store import Store

QUEUED = "Queued"
PREPARING = "Preparing"
RUNNING = "Running"
FINALIZING = "Finalizing"
COMPLETED = "Completed"
FAILED = "Failed"
CANCEL_REQUESTED = "CancelRequested"
CANCELED = "Canceled"
INTERRUPTED = "Interrupted"

TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})
ACTIVE = frozenset({QUEUED, PREPARING, RUNNING, FINALIZING, CANCEL_REQUESTED})
# Nothing more will happen without a user's action: what waiting and following stop at.
ENDED = TERMINAL | {INTERRUPTED}
ALL = (QUEUED, PREPARING, RUNNING, FINALIZING, COMPLETED, FAILED, CANCEL_REQUESTED, CANCELED, INTERRUPTED)

HEARTBEAT_INTERVAL_S = 1.0
# A heartbeat older than this means the supervisor is gone (the bound is 10 s), when its
# process cannot be checked (another host) ...
STALE_AFTER_S = 6.0
# ... but a supervisor whose process is alive is only given up on after a long silence (hung, or
# stopped): a loaded machine must not turn a slow job into an Interrupted one.
HUNG_AFTER_S = 120.0
# A Queued job whose supervisor never reported within this time was never started.
START_GRACE_S = 60.0


def check_interrupted(store: Store, row: sqlite3.Row) -> str:
    """Return the job's effective status, recording ``Interrupted`` if its supervisor is gone."""
    status: str = row["status"]
    if status not in ACTIVE:
        return status
    now = time.time()
    alive = supervisor_alive(row["supervisor_pid"], row["supervisor_started"])
    if status == QUEUED and not row["supervisor_pid"] and _agent_alive(store, row):
        return status  # its compute's agent runs: it will claim the job when it fits
    heartbeat = row["heartbeat_at"]
    if alive is False:
        gone = True
    elif alive is True:
        gone = heartbeat is not None and now - heartbeat > HUNG_AFTER_S
    elif heartbeat is None:
        gone = now - row["created_at"] > START_GRACE_S
    else:
        gone = now - heartbeat > (START_GRACE_S if status == QUEUED else STALE_AFTER_S)
    if not gone:
        return status
    new_status = CANCELED if row["cancel_requested"] else INTERRUPTED
    # A pipeline's step is resumed with its pipeline job (resume refuses a step).
    resumed = row["parent"] or row["name"]
    with store.write() as tx:
        # Only if nothing moved since we looked: a live supervisor may have just written.
        changed = tx.execute(
            "UPDATE jobs SET status = ?, ended_at = COALESCE(ended_at, ?), "
            "error = COALESCE(error, ?), lost = ? WHERE name = ? AND status = ? AND heartbeat_at IS ?",
            (
                new_status,
                now if new_status == CANCELED else None,
                None
                if new_status == CANCELED
                else "the job's owner process stopped (heartbeat lost); "
                + _who_resumes(row)
                + f"`batchnb job resume -n {resumed}`",
                new_status == INTERRUPTED,
                row["name"],
                status,
                heartbeat,
            ),
        ).rowcount
    return new_status if changed else status


def _who_resumes(row: sqlite3.Row) -> str:
    """What resumes a lost job by itself, as its error says (a pipeline's step goes with its pipeline)."""
    if row["parent"]:
        return "run "
    if row["kind"] == "batch":
        return "its compute's next agent resumes it, or run "
    return "the next pipeline job or the Jupyter server's start resumes it, or run "


def _agent_alive(store: Store, row: sqlite3.Row) -> bool:
    """True if the agent of a batch job's compute is running (and will claim it)."""
    if row["kind"] != "batch":
        return False
    with store.read() as db:
        agent = db.execute("SELECT pid, started FROM agents WHERE compute = ?", (row["compute"],)).fetchone()
    return agent is not None and supervisor_alive(agent["pid"], agent["started"]) is True


def finished_since(db: sqlite3.Connection, job: str, since: float) -> int:
    """How many of the job's mini-batches finished (done or failed) at or after ``since``."""
    row = db.execute(
        "SELECT COUNT(*) FROM minibatches WHERE job = ? AND status IN ('done', 'failed') AND ended_at >= ?",
        (job, since),
    ).fetchone()
    return int(row[0])


def progress(db: sqlite3.Connection, job: str) -> dict[str, Any]:
    """Live counters of one job, aggregated from its mini-batch rows."""
    r = db.execute(
        "SELECT COUNT(*) AS total, "
        "COALESCE(SUM(status = 'done'), 0) AS done, COALESCE(SUM(status = 'failed'), 0) AS failed, "
        "COALESCE(SUM(status = 'running'), 0) AS running, "
        "COALESCE(SUM(status IN ('pending', 'running') AND attempts > 0), 0) AS retrying, "
        "COALESCE(SUM(n_items), 0) AS items, COALESCE(SUM(succeeded), 0) AS succeeded, "
        "COALESCE(SUM(CASE WHEN status IN ('done', 'failed') THEN failed ELSE 0 END), 0) AS items_failed, "
        "COALESCE(SUM(rows), 0) AS rows, COALESCE(SUM(duration), 0) AS worker_seconds "
        "FROM minibatches WHERE job = ?",
        (job,),
    ).fetchone()
    return {
        "mini_batches": {
            "total": r["total"],
            "done": r["done"],
            "failed": r["failed"],
            "running": r["running"],
            "retrying": r["retrying"],
            "pending": r["total"] - r["done"] - r["failed"] - r["running"],
        },
        "items": {"total": r["items"], "succeeded": r["succeeded"], "failed": r["items_failed"]},
        "rows_written": r["rows"],
        "worker_seconds": round(r["worker_seconds"], 3),
    }
