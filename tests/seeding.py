"""Many jobs in a workspace, quickly: copies of one real, ended job (its store rows, mini-batches
and folder) under new names, endpoints, statuses and times. For the job list, the sidebar and its
benchmark, which are about finding and showing jobs, not running them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

STATUSES = ("Completed", "Completed", "Failed", "Completed", "Canceled")


def seed_jobs(
    client: Any,
    template: str,
    count: int,
    endpoints: list[str],
    start: float,
    prefix: str = "seeded",
    step: float = 60.0,
) -> list[str]:
    """Copy the ended job ``template`` ``count`` times, one minute apart from ``start``, the
    endpoints taken in turn and the statuses cycling through :data:`STATUSES`.

    Returns:
        The new jobs' names, oldest first.
    """
    with client.store.read() as db:
        row = dict(db.execute("SELECT * FROM jobs WHERE name = ?", (template,)).fetchone())
        row.pop("compute")  # generated from the spec: never inserted
        minibatches = [dict(r) for r in db.execute("SELECT * FROM minibatches WHERE job = ?", (template,))]
    source = Path(json.loads(row["spec"])["job_dir"])
    names, rows, mbs = [], [], []
    for i in range(count):
        name = f"{prefix}-{i:04d}"
        created = start + i * step
        spec = json.loads(row["spec"])
        spec["job_dir"] = str(client.workspace.job_dir(name))
        status = STATUSES[i % len(STATUSES)]
        rows.append(
            {
                **row,
                "name": name,
                "endpoint": endpoints[i % len(endpoints)],
                "status": status,
                "spec": json.dumps(spec),
                "error": None if status == "Completed" else f"{status.lower()} (seeded copy of {template})",
                "created_at": created,
                "started_at": created + 1,
                "ended_at": created + 1 + (i % 7) * 10,
                "supervisor_pid": None,
                "supervisor_started": None,
                "archived_at": None,
            }
        )
        mbs.extend({**mb, "job": name} for mb in minibatches)
        shutil.copytree(source, client.workspace.job_dir(name))
        names.append(name)
    with client.store.write() as tx:
        _insert(tx, "jobs", rows)
        _insert(tx, "minibatches", mbs)
    return names


def _insert(tx: Any, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    tx.executemany(sql, [tuple(r[c] for c in columns) for r in rows])
