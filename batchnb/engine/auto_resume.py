"""Recovery by itself: the jobs of a compute whose owner died, queued again for its next agent.

A job whose owner died (the agent killed, the machine rebooted) is seen Interrupted (see
:func:`batchnb.engine.state.check_interrupted`, which marks it ``lost``). The compute's agent, as it
starts and every few seconds after, queues it again (:func:`resume_lost`), up to the job's
``max_auto_resumes`` times, keeping its committed mini-batches; past that it stays Interrupted with
the reason, for ``job resume``. A lost job of a Dask compute whose scheduler batchnb does not run
waits until that scheduler answers again (:func:`cluster_back`), up to :data:`CLUSTER_WAIT_S`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..store import Store
from . import lifecycle, state
from .logs import JobLogs

DEFAULT_MAX_AUTO_RESUMES = 3
# How long a lost job of a Dask compute waits for the cluster to answer again before its agent
# gives up resuming it by itself (it asks on every round meanwhile).
CLUSTER_WAIT_S = 600.0


def compute_spec(store: Store, compute: str) -> dict[str, Any]:
    """The compute's record (the built-in ``local`` has none)."""
    with store.read() as db:
        row = db.execute("SELECT spec FROM computes WHERE name = ?", (compute,)).fetchone()
    return dict(json.loads(row["spec"])) if row else {"name": compute, "type": "local"}


def cluster_back(spec: dict[str, Any]) -> Callable[[], bool] | None:
    """For a compute whose cluster may be away (``dask``: a scheduler batchnb does not run), what
    says whether it answers; None for the others (an ssh compute's agent starts a new cluster)."""
    if spec.get("type") != "dask":
        return None
    from ..compute.dask import answers

    return lambda: answers(str(spec["address"]))


def resume_lost(store: Store, compute: str, skip: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Queue again the jobs of ``compute`` whose owner died or whose cluster was lost, up to their
    ``max_auto_resumes``; past that, say so in their error. Jobs in ``skip`` (the caller runs them)
    are not checked. On a compute whose cluster may be away (:func:`cluster_back`), lost jobs wait
    until it answers, up to :data:`CLUSTER_WAIT_S` after they stopped. Returns the jobs queued."""
    with store.read() as db:
        rows = db.execute(
            "SELECT * FROM jobs WHERE compute = ? AND kind = 'batch' AND status IN (?, ?, ?, ?)",
            (compute, state.PREPARING, state.RUNNING, state.FINALIZING, state.CANCEL_REQUESTED),
        ).fetchall()
    for row in rows:
        if row["name"] not in skip:
            state.check_interrupted(store, row)
    with store.read() as db:
        lost = db.execute(
            "SELECT name, spec, auto_resumes, error, heartbeat_at FROM jobs WHERE compute = ? AND kind = 'batch' "
            "AND status = ? AND lost = 1",
            (compute, state.INTERRUPTED),
        ).fetchall()
    queued = []
    back = cluster_back(compute_spec(store, compute)) if lost else None
    answered: bool | None = None  # asked once, and only if a job waits
    for row in lost:
        spec = json.loads(row["spec"])
        limit = spec["settings"].get("max_auto_resumes", DEFAULT_MAX_AUTO_RESUMES)
        try:
            if row["auto_resumes"] >= limit:
                raise lifecycle.NotResumed(
                    f"not resumed automatically: its owner or its cluster was lost {row['auto_resumes'] + 1} times "
                    f"(max_auto_resumes {limit})"
                )
            if back is not None:
                answered = back() if answered is None else answered
                waited = time.time() - (row["heartbeat_at"] or 0.0)
                if not answered and waited < CLUSTER_WAIT_S:
                    continue  # asked again on the next round
                if not answered:
                    raise lifecycle.NotResumed(
                        f"not resumed automatically: compute {compute}'s cluster did not answer for {waited:.0f} s"
                    )
            if lifecycle.requeue(store, row["name"], reset_failed=False, auto=True):
                queued.append(row["name"])
                with contextlib.suppress(OSError):  # the logs may be what failed
                    JobLogs(Path(spec["job_dir"])).event(
                        f"resumed automatically on compute {compute} (automatic resume {row['auto_resumes'] + 1} "
                        f"of {limit}, after: {(row['error'] or 'its owner was lost').rstrip('. ')}); its committed "
                        "mini-batches are kept"
                    )
        except Exception as exc:  # it stays Interrupted, with the reason, for `job resume`
            leave_for_job_resume(store, row, exc)
    return queued


def leave_for_job_resume(store: Store, row: Any, why: Exception) -> None:
    """A lost job not resumed by itself: no longer ``lost`` (nothing tries again), and its error
    says why, after what stopped it."""
    with store.write() as tx:
        tx.execute(
            "UPDATE jobs SET lost = 0, error = ? WHERE name = ? AND lost = 1",
            (f"{(row['error'] or '').rstrip('. ')}; {why}", row["name"]),
        )
