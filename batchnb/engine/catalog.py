"""The workspace's jobs as a catalog: pages of jobs with their total, the newest jobs of each
endpoint with counts, and archiving and deleting jobs that have ended.

Every query filters and sorts in SQL and builds the job records (with their live counters) only
for the page it returns, so a workspace of many jobs costs no more per request than a few. The
steps of pipeline jobs are child jobs and never listed here (``jobs.list(parent_job_name=...)``).

Archived jobs (``az ml job archive``) are left out of every listing unless asked for; a deleted
job is gone with its folder under the workspace (logs, parts, and an output written there). An
output written elsewhere is the user's and is kept.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import InvalidStateError, NotFoundError, ValidationError
from . import state

if TYPE_CHECKING:
    from ..client import BatchClient

# What a page can be sorted by; ``-`` in front sorts descending. Ties go to the newest first.
SORT_KEYS = {
    "created_at": "created_at",
    "started_at": "COALESCE(started_at, created_at)",
    "name": "name",
    "status": "status",
    "endpoint": "COALESCE(endpoint, '')",
    "deployment": "COALESCE(deployment, '')",
    "duration": "COALESCE(COALESCE(ended_at, :now) - started_at, 0)",
}


def parse_time(value: str | float | None, field: str) -> float | None:
    """An ISO 8601 date or date-time (local time unless it names a zone) or epoch seconds, as epoch seconds.

    Raises:
        ValidationError: naming ``field`` when the value is neither.
    """
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{field}: {value!r} is not a date (2026-12-01), a date-time (2026-12-01T08:30) or epoch seconds",
            field=field,
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a naive time is the user's local time
    return moment.astimezone(timezone.utc).timestamp()


def _statuses(status: str | list[str] | None) -> list[str]:
    if not status:
        return []
    given = status.split(",") if isinstance(status, str) else status
    wanted = [s.strip() for s in given if s.strip()]
    for s in wanted:
        if s not in state.ALL:
            raise ValidationError(f"status: {s!r} is not a job status ({', '.join(state.ALL)})", field="status")
    return wanted


def _where(
    endpoint: str | None,
    deployment: str | None,
    statuses: list[str],
    search: str | None,
    since: float | None,
    until: float | None,
    archived: str,
) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = ["parent IS NULL"]
    params: dict[str, Any] = {}
    if archived == "exclude":
        clauses.append("archived_at IS NULL")
    elif archived == "only":
        clauses.append("archived_at IS NOT NULL")
    elif archived != "include":
        raise ValidationError(f"archived: {archived!r} is not exclude, only or include", field="archived")
    if endpoint:
        clauses.append("endpoint = :endpoint")
        params["endpoint"] = endpoint
    if deployment:
        clauses.append("deployment = :deployment")
        params["deployment"] = deployment
    if statuses:
        names = [f":status{i}" for i in range(len(statuses))]
        clauses.append(f"status IN ({', '.join(names)})")
        params.update({n[1:]: s for n, s in zip(names, statuses, strict=True)})
    if search:
        # A plain substring (LIKE's own wildcards escaped) of the name, endpoint, deployment or who invoked it.
        needle = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(
            "(name LIKE :search ESCAPE '\\' OR COALESCE(endpoint, '') LIKE :search ESCAPE '\\' "
            "OR COALESCE(deployment, '') LIKE :search ESCAPE '\\' OR COALESCE(invoked_by, '') LIKE :search ESCAPE '\\')"
        )
        params["search"] = needle
    if since is not None:
        clauses.append("created_at >= :since")
        params["since"] = since
    if until is not None:
        clauses.append("created_at < :until")
        params["until"] = until
    return " AND ".join(clauses), params


def _order(sort: str) -> str:
    key = sort.removeprefix("-")
    if key not in SORT_KEYS:
        raise ValidationError(
            f"sort: {sort!r} is not one of {', '.join(SORT_KEYS)} (prefix - for descending)", field="sort"
        )
    direction = "DESC" if sort.startswith("-") else "ASC"
    return f"{SORT_KEYS[key]} {direction}, created_at DESC, name ASC"


def settle_active(client: BatchClient) -> None:
    """Record ``Interrupted`` for running jobs whose supervisor is gone, so a status filter sees
    what a job's own record would say (only the few unfinished rows are checked)."""
    active = tuple(state.ACTIVE)
    marks = ", ".join("?" for _ in active)
    with client.store.read() as db:
        rows = db.execute(f"SELECT * FROM jobs WHERE status IN ({marks})", active).fetchall()
    for row in rows:
        state.check_interrupted(client.store, row)


def page(
    client: BatchClient,
    *,
    endpoint: str | None = None,
    deployment: str | None = None,
    status: str | list[str] | None = None,
    search: str | None = None,
    since: str | float | None = None,
    until: str | float | None = None,
    archived: str = "exclude",
    sort: str = "-created_at",
    limit: int | None = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """One page of the workspace's jobs (batch and pipeline jobs), filtered and sorted, with the total.

    Args:
        client: The workspace.
        endpoint: Only this endpoint's jobs.
        deployment: Only this deployment's jobs.
        status: Only jobs in this status, or in any of several (a list, or comma-separated).
        search: A substring of the job's name, endpoint, deployment or who invoked it.
        since: Only jobs created at or after this time (ISO 8601 or epoch seconds).
        until: Only jobs created before this time.
        archived: ``exclude`` (the default), ``only`` or ``include`` archived jobs.
        sort: ``created_at``, ``started_at``, ``name``, ``status``, ``endpoint``, ``deployment`` or
            ``duration``; ``-`` in front for descending.
        limit: At most this many jobs; None: all of them.
        offset: Skip this many first.

    Returns:
        ``{"jobs", "total", "offset", "limit", "status_counts"}``: ``total`` counts every job that
        matches; ``status_counts`` counts the matches of every filter but ``status``, by status.
    """
    if limit is not None and limit < 1:
        raise ValidationError(f"limit: must be 1 or more (got {limit})", field="limit")
    if offset < 0:
        raise ValidationError(f"offset: must be 0 or more (got {offset})", field="offset")
    statuses = _statuses(status)
    start, end = parse_time(since, "since"), parse_time(until, "until")
    order = _order(sort)
    settle_active(client)
    where, params = _where(endpoint, deployment, statuses, search, start, end, archived)
    unfiltered, base = _where(endpoint, deployment, [], search, start, end, archived)
    with client.store.read() as db:
        total = db.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}", params).fetchone()[0]
        names = [
            r[0]
            for r in db.execute(
                f"SELECT name FROM jobs WHERE {where} ORDER BY {order} LIMIT :limit OFFSET :offset",
                {**params, "now": time.time(), "limit": -1 if limit is None else limit, "offset": offset},
            )
        ]
        counts = {
            r[0]: r[1]
            for r in db.execute(f"SELECT status, COUNT(*) FROM jobs WHERE {unfiltered} GROUP BY status", base)
        }
    return {
        "jobs": [client.jobs.get(n, metrics=False) for n in names],
        "total": total,
        "offset": offset,
        "limit": limit,
        "status_counts": counts,
    }


def overview(client: BatchClient, per_endpoint: int = 8) -> dict[str, Any]:
    """The newest ``per_endpoint`` jobs of each endpoint, with how many it has in all and how many run.

    Jobs outside any endpoint (pipeline jobs from ``job create``) are the group whose endpoint is
    None. Archived jobs are not counted.

    Returns:
        ``{"groups": [{"endpoint", "total", "active", "jobs"}], "total"}``, groups sorted by endpoint.
    """
    if not 1 <= per_endpoint <= 100:
        raise ValidationError(f"per_endpoint: must be between 1 and 100 (got {per_endpoint})", field="per_endpoint")
    settle_active(client)
    active = tuple(state.ACTIVE)
    marks = ", ".join("?" for _ in active)
    with client.store.read() as db:
        counts = db.execute(
            f"SELECT endpoint, COUNT(*), COALESCE(SUM(status IN ({marks})), 0) FROM jobs "
            "WHERE parent IS NULL AND archived_at IS NULL GROUP BY endpoint",
            active,
        ).fetchall()
        newest = db.execute(
            "SELECT name, endpoint FROM (SELECT name, endpoint, created_at, ROW_NUMBER() OVER "
            "(PARTITION BY endpoint ORDER BY created_at DESC, name) AS n FROM jobs "
            "WHERE parent IS NULL AND archived_at IS NULL) WHERE n <= ? ORDER BY created_at DESC, name",
            (per_endpoint,),
        ).fetchall()
    jobs: dict[str | None, list[Any]] = {}
    for name, ep in newest:
        jobs.setdefault(ep, []).append(client.jobs.get(name, metrics=False))
    groups = [
        {"endpoint": ep, "total": total, "active": running, "jobs": jobs.get(ep, [])}
        for ep, total, running in sorted(counts, key=lambda r: (r[0] is None, r[0] or ""))
    ]
    return {"groups": groups, "total": sum(g["total"] for g in groups)}


def _ended_row(client: BatchClient, name: str, action: str) -> Any:
    """The job's row if it has ended and nothing of it still runs; otherwise the error that says why."""
    with client.store.read() as db:
        row = db.execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFoundError(f"job {name} does not exist in this workspace")
    if row["parent"]:
        raise InvalidStateError(f"job {name} is step {row['step']} of pipeline job {row['parent']}; {action} that job")
    status = state.check_interrupted(client.store, row)
    if status not in state.ENDED:
        raise InvalidStateError(f"job {name} is {status}; only a job that has ended can be {action}d (cancel it first)")
    if state.supervisor_alive(row["supervisor_pid"], row["supervisor_started"]):
        raise InvalidStateError(f"job {name}'s supervisor (pid {row['supervisor_pid']}) is still exiting; try again")
    return row


def archive(client: BatchClient, name: str, archived: bool = True) -> Any:
    """Archive an ended job (hidden from listings, kept whole), or restore it with ``archived=False``.

    Returns:
        The job.
    """
    _ended_row(client, name, "archive" if archived else "restore")
    with client.store.write() as tx:
        tx.execute(
            "UPDATE jobs SET archived_at = ? WHERE name = ? OR parent = ?",
            (time.time() if archived else None, name, name),
        )
    return client.jobs.get(name, metrics=False)


def delete(client: BatchClient, name: str) -> list[str]:
    """Delete an ended job: its record (and its steps'), and its folder under the workspace.

    Returns:
        The folders removed (the job's, and its steps' for a pipeline job).
    """
    _ended_row(client, name, "delete")
    jobs_root = client.workspace.jobs_dir.resolve()
    with client.store.write() as tx:
        names = [r[0] for r in tx.execute("SELECT name FROM jobs WHERE name = ? OR parent = ?", (name, name))]
        tx.execute("DELETE FROM jobs WHERE parent = ?", (name,))
        tx.execute("DELETE FROM jobs WHERE name = ?", (name,))
    removed = []
    for job in names:
        folder = client.workspace.job_dir(job).resolve()
        # Only a folder of the workspace's jobs folder is ever removed.
        if folder.parent == jobs_root and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed
