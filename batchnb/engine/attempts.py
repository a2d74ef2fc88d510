"""Mini-batch attempts as data: one store row per attempt, read back as a per-worker timeline.

The dispatcher (:mod:`batchnb.engine.dispatch`) writes a row of table ``attempts`` (migration 9)
with each result it applies, in the same batched transaction as the mini-batch's own update: which
worker process ran it, from when to when, and what came of it. A ``minibatches`` row keeps only its
last attempt; these rows keep them all, so the timeline shows retries and the halves of a split
mini-batch as the bars they were. ``rerun-failed`` adds rows after the earlier ones (the job's
``started_at`` stays), so a rerun shows as a later stretch of the same timeline.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

# What came of an attempt: its items were scored (``ok``), it failed and was queued again whole or
# in halves (``retried``), or it failed for good (``failed``: its items are failed items).
OK, RETRIED, FAILED = "ok", "retried", "failed"
OUTCOMES = (OK, RETRIED, FAILED)
# The worker of an attempt whose worker process was lost before it said who it was.
LOST_WORKER = "(lost worker)"

INSERT = (
    "INSERT INTO attempts (job, idx, attempt, items, worker, pid, started_at, ended_at, outcome, error) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def attempt_row(
    job: str, idx: int, attempt: int, n_items: int, result: dict[str, Any], outcome: str, submitted_at: float
) -> tuple[Any, ...]:
    """The ``attempts`` row of one worker result.

    Args:
        job: The job's name.
        idx: The mini-batch.
        attempt: Its attempt number (1 for the first).
        n_items: Its items.
        result: What the worker returned (``worker``, ``pid``, ``started_at``, ``duration``,
            ``error``), or the dispatcher's stand-in for an attempt whose worker was lost.
        outcome: :data:`OK`, :data:`RETRIED` or :data:`FAILED`.
        submitted_at: When the dispatcher handed it to the pool: the start of an attempt whose
            worker never reported one.

    Returns:
        The parameters of :data:`INSERT`.
    """
    started = result.get("started_at")
    if started is None:
        started, ended = submitted_at or time.time(), time.time()
    else:
        # The worker's own measure: queueing in the pool and the trip back are not the attempt's.
        ended = float(started) + float(result.get("duration") or 0.0)
    return (
        job,
        idx,
        attempt,
        n_items,
        result.get("worker"),
        result.get("pid"),
        float(started),
        ended,
        outcome,
        result.get("error"),
    )


def list_attempts(db: sqlite3.Connection, job: str) -> list[dict[str, Any]]:
    """The job's attempts in the order they started: ``mini_batch``, ``attempt``, ``items``,
    ``worker`` (:data:`LOST_WORKER` when unknown), ``pid``, ``started_at`` and ``ended_at`` (epoch
    seconds), ``outcome`` and ``error``."""
    rows = db.execute(
        "SELECT idx AS mini_batch, attempt, items, COALESCE(worker, ?) AS worker, pid, started_at, ended_at, "
        "outcome, error FROM attempts WHERE job = ? ORDER BY started_at, rowid",
        (LOST_WORKER, job),
    ).fetchall()
    return [dict(r) for r in rows]


def worker_timeline(db: sqlite3.Connection, job: str, started_at: float | None) -> list[dict[str, Any]]:
    """The job's attempts (see :func:`list_attempts`) with ``start`` and ``end``: seconds since the job
    started (a remote worker's clock may run behind: never before 0). Each says which ``worker``
    process ran it, ``mini_batch``, ``attempt``, ``items``, ``outcome`` (ok, retried, failed) and ``error``."""
    found = list_attempts(db, job)
    if not found:
        return []
    zero = started_at if started_at is not None else min(a["started_at"] for a in found)
    for a in found:
        a["start"] = round(max(0.0, a["started_at"] - zero), 4)
        a["end"] = round(max(a["start"], a["ended_at"] - zero), 4)
    return found
