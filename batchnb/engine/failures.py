"""Failed items as data: what the dispatcher records of each item that failed for good, and how it is read.

An *item* is a file (file mode) or a tabular chunk, named by its file and row range. A mini-batch
whose attempts all failed is, unless the deployment sets ``isolate_failures: false``, split in
halves (:func:`halves`) and each half scored again, down to single items: only the items that
really fail are recorded here and counted against ``error_threshold``. A ``run()`` that returned
fewer results than items (on its last attempt) has its mini-batch recorded as one row, ``why``
``missing``: which of its items were left out is not known, so ``rerun-failed`` scores it whole.

Rows live in the store table ``failed_items`` (migration 8); a mini-batch's rows are dropped when
it is scored again. ``batchnb job failures`` reads them with :func:`list_failures`.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from . import planner

# How each kind of failure is named in the ``why`` column.
RAISED, TIMEOUT, CRASHED, MISSING = "raised", "timeout", "crashed", "missing"
COLUMNS = ("item", "mini_batch", "attempts", "why", "error_type", "error", "traceback", "revision")


def item_label(item: Any) -> str:
    """A file's path, or a tabular chunk's file and row range (``rows 100-199``, 0-based, inclusive)."""
    if not isinstance(item, dict):
        return str(item)
    rows = int(item.get("rows", 0))
    if "first_row" in item:  # a CSV chunk
        first = int(item["first_row"])
        return f"{item['path']} rows {first}-{first + rows - 1}"
    groups = item.get("row_groups")
    if groups is None:
        return f"{item['path']} (all {rows} rows)"
    return f"{item['path']} row groups {','.join(str(g) for g in groups)} ({rows} rows)"


def halves(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """Split a mini-batch's items in two; each half has at least one item (``items`` has two or more)."""
    middle = (len(items) + 1) // 2
    return items[:middle], items[middle:]


def why_failed(result: dict[str, Any]) -> str:
    """How a failed attempt failed: it raised, it timed out, or its worker was lost."""
    if result.get("timeout"):
        return TIMEOUT
    if result.get("lost"):
        return CRASHED
    return RAISED


def item_rows(
    job: str, idx: int, items: list[Any], attempts: int, result: dict[str, Any], revision: int | None
) -> list[tuple[Any, ...]]:
    """The ``failed_items`` rows of a mini-batch that failed for good (every item of it)."""
    worker = result.get("worker")
    trace = f"logs/user/error/{worker}.txt" if worker and result.get("traceback") else None
    error = result.get("error") or ""
    error_type = result.get("error_type") or error.partition(":")[0] or None
    text = result.get("traceback") or None
    now = time.time()
    return [
        (job, idx, item_label(item), attempts, why_failed(result), error_type, error, trace, revision, now, text)
        for item in items
    ]


def missing_row(
    job: str, idx: int, items: list[Any], attempts: int, result: dict[str, Any], revision: int | None
) -> tuple[Any, ...]:
    """The ``failed_items`` row of a mini-batch whose ``run()`` left items out of its result."""
    first, last = item_label(items[0]), item_label(items[-1])
    label = first if len(items) == 1 else f"{first} .. {last} ({len(items)} items)"
    return (
        job,
        idx,
        label,
        attempts,
        MISSING,
        "MissingResults",
        result.get("error"),
        None,
        revision,
        time.time(),
        None,
    )


INSERT = (
    "INSERT OR REPLACE INTO failed_items (job, idx, item, attempts, why, error_type, error, traceback, revision, "
    "failed_at, traceback_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def list_failures(
    db: sqlite3.Connection,
    job: str,
    limit: int | None = None,
    tracebacks: bool = False,
    job_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """The job's failed items, in input order: the first ``limit`` (default all). With
    ``tracebacks``, each has ``traceback_text`` too: the traceback its last attempt raised (``None``
    when it timed out, crashed or left items out); for a job failed before the store kept them, read
    from the ``traceback`` log file under ``job_dir``."""
    text = ", f.traceback_text" if tracebacks else ""
    rows = db.execute(
        f"SELECT f.item, f.idx AS mini_batch, f.attempts, f.why, f.error_type, f.error, f.traceback, f.revision{text} "
        "FROM failed_items f LEFT JOIN minibatches m ON m.job = f.job AND m.idx = f.idx "
        "WHERE f.job = ? ORDER BY COALESCE(m.pos, f.idx), f.rowid LIMIT ?",
        (job, -1 if limit is None else limit),
    ).fetchall()
    found = [dict(r) for r in rows]
    if tracebacks and job_dir is not None:
        for row in found:
            if row["traceback_text"] is None and row["traceback"]:
                row["traceback_text"] = traceback_from_log(
                    job_dir / row["traceback"], row["mini_batch"], row["attempts"]
                )
    return found


def traceback_from_log(path: Path, idx: int, attempt: int) -> str | None:
    """The traceback of a mini-batch's attempt in a worker's ``logs/user/error/<process>.txt``: the
    text of its last section headed ``=== <time> mini-batch <idx> attempt <attempt>`` (the first half
    of a split mini-batch keeps its index, so an earlier section may have the same heading)."""
    try:
        content = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    heading = f" mini-batch {idx} attempt {attempt}"
    found: str | None = None
    for section in content.split("\n=== "):
        head, _, body = section.partition("\n")
        if head.endswith(heading):
            items, _, text = body.partition("\n")  # the section's second line lists its items
            # As the worker had it (format_exc's text ends in one newline; the log adds a blank line).
            found = (text if items.startswith("items:") else body).rstrip("\n") + "\n"
    return found


def scored_by_revision(db: sqlite3.Connection, job: str) -> dict[str, int]:
    """Items that succeeded, by the deployment revision that scored them (``"1": 180, "2": 20``)."""
    rows = db.execute(
        "SELECT revision, SUM(succeeded) AS n FROM minibatches WHERE job = ? AND status = 'done' "
        "AND revision IS NOT NULL GROUP BY revision ORDER BY revision",
        (job,),
    ).fetchall()
    return {str(r["revision"]): int(r["n"]) for r in rows if r["n"]}


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write failed items to a CSV file (``path``, or ``failures.csv`` in that folder). Returns the file."""
    target = Path(path).expanduser()
    # Path() drops a trailing slash: "out/" names a folder even before it exists.
    if target.is_dir() or str(path).endswith(("/", os.sep)):
        target = target / "failures.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in COLUMNS})
    tmp.replace(target)  # never a half-written file
    return target


def split_rows(items: list[Any], pos: int) -> tuple[list[Any], list[Any], int]:
    """Halve a mini-batch at input position ``pos``. Returns both halves and the input position of
    the second (the first keeps ``pos``)."""
    left, right = halves(items)
    return left, right, pos + planner.minibatch_items(left)


def items_json(items: list[Any]) -> str:
    return json.dumps(items)
