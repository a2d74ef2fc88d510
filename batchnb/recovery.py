"""Keeping a workspace's records safe: ``batchnb workspace check``, ``backup`` and ``restore``.

The records (registry, endpoints, deployments, jobs) live in one SQLite file; the job folders and
artifacts beside it are worth little without them. These functions take the workspace folder, not
a :class:`~batchnb.client.BatchClient`, because a client refuses a workspace whose database is lost
(:meth:`batchnb.workspace.Workspace.refuse_lost_database`), and that is exactly when they are needed::

    check(root)                  what is wrong: the file, SQLite's integrity check, the schema
                                 version, job folders without records and records without folders
    backup(root, file)           a consistent copy (SQLite's online backup API), safe while jobs run
    restore(root, file)          put a backup in place; the damaged file is kept aside as
                                 batchnb.db.damaged-<timestamp>; refused while jobs run
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from .errors import ConflictError, InvalidStateError, ValidationError, WorkspaceError
from .store.files import EMPTY, MISSING, OK, copy_database, inspect, integrity_problems
from .store.migrations import MIGRATIONS
from .workspace import Workspace, resolve_workspace_path

# The processes that run work on a workspace, started with ``-m <module> --workspace <root>``.
_AGENT = "batchnb.engine.agent"
_WORKING_MODULES = (_AGENT, "batchnb.pipelines.runner")


def _workspace(root: str | os.PathLike[str] | None) -> Workspace:
    return Workspace(resolve_workspace_path(root))


def check(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Look the workspace over without changing it.

    Args:
        root: The workspace folder (default: by the workspace rule).

    Returns:
        A report: ``healthy``, ``problems`` (one sentence each), the file's ``state``, ``size_bytes``,
        ``schema_version``, SQLite's ``integrity`` findings, counts of job ``records`` and
        ``folders``, and the names in ``folders_without_records`` and ``records_without_folders``.
    """
    ws = _workspace(root)
    db = inspect(ws.db_path)
    report: dict[str, Any] = {
        "workspace": str(ws.root),
        "database": str(ws.db_path),
        "state": db.state,
        "size_bytes": db.size,
        "schema_version": db.schema_version,
        "expected_schema_version": len(MIGRATIONS),
        "integrity": [],
        "jobs": {"records": None, "folders": 0},
        "folders_without_records": [],
        "records_without_folders": [],
    }
    problems: list[str] = []
    folders = sorted(p.name for p in ws.jobs_dir.glob("*") if p.is_dir())
    report["jobs"]["folders"] = len(folders)
    if not ws.root.is_dir():
        problems.append(f"the workspace folder {ws.root} does not exist")
    elif db.state != OK:
        held = ws.contents()
        if db.state in (MISSING, EMPTY) and not held:
            report["notes"] = ["a new workspace: the database is made when it is first opened"]
        else:
            problems.append(f"the database {ws.db_path} {db.problem}")
            report["folders_without_records"] = folders
    else:
        report["integrity"] = integrity_problems(ws.db_path)
        if report["integrity"]:
            problems.append(f"SQLite's integrity check of {ws.db_path} failed: {report['integrity'][0]}")
        if db.schema_version is not None and db.schema_version < len(MIGRATIONS):
            report["notes"] = [f"schema version {db.schema_version}: opening the workspace upgrades it"]
        elif db.schema_version is not None and db.schema_version > len(MIGRATIONS):
            report["notes"] = [f"schema version {db.schema_version}: written by a newer batchnb"]
        try:
            records = _job_records(ws.db_path)
        except WorkspaceError as exc:
            problems.append(str(exc))
        else:
            report["jobs"]["records"] = len(records)
            report["folders_without_records"] = [f for f in folders if f not in records]
            # A job that never started may have no folder yet; one that started always has one.
            report["records_without_folders"] = sorted(
                name for name, started in records.items() if started and not ws.job_dir(name).is_dir()
            )
    if report["folders_without_records"] and db.state == OK:
        problems.append(f"{len(report['folders_without_records'])} job folders have no record in the database")
    if report["records_without_folders"]:
        problems.append(f"{len(report['records_without_folders'])} started jobs have no folder under {ws.jobs_dir}")
    report["healthy"] = not problems
    report["problems"] = problems
    return report


def _job_records(db_path: Path) -> dict[str, bool]:
    """Every job's name, and whether it ever started."""
    from .store import Store

    store = Store(db_path)
    try:
        with store.read() as db:
            return {r["name"]: r["started_at"] is not None for r in db.execute("SELECT name, started_at FROM jobs")}
    finally:
        store.close()


def backup(root: str | os.PathLike[str] | None, file: str | os.PathLike[str]) -> dict[str, Any]:
    """Copy the workspace's database to ``file``: one consistent snapshot, safe while jobs run.

    Args:
        root: The workspace folder (default: by the workspace rule).
        file: The backup file to write; it must not exist (an older backup is never overwritten).

    Returns:
        ``{"workspace", "database", "backup", "size_bytes", "schema_version", "jobs"}``.

    Raises:
        WorkspaceError: The database is missing, empty or unreadable: there is nothing to back up.
        ConflictError: ``file`` exists.
    """
    ws = _workspace(root)
    target = Path(file).expanduser().resolve()
    db = inspect(ws.db_path)
    if db.state != OK:
        raise WorkspaceError(f"nothing to back up: the workspace database {ws.db_path} {db.problem}")
    if target.exists():
        raise ConflictError(f"the backup file {target} already exists; choose another name")
    if not target.parent.is_dir():
        raise ValidationError(f"the folder of the backup file {target} does not exist", field="file")
    copy_database(ws.db_path, target)
    copied = inspect(target)
    return {
        "workspace": str(ws.root),
        "database": str(ws.db_path),
        "backup": str(target),
        "size_bytes": copied.size,
        "schema_version": copied.schema_version,
        "jobs": len(_job_records(target)),
    }


def restore(root: str | os.PathLike[str] | None, file: str | os.PathLike[str]) -> dict[str, Any]:
    """Put a backup in place of the workspace's database.

    The backup is checked first (a batchnb database that passes SQLite's integrity check), copied to
    a temporary name beside the database, and renamed into place; the file it replaces is kept as
    ``batchnb.db.damaged-<timestamp>``. A running agent or pipeline runner refuses the restore.

    Args:
        root: The workspace folder (default: by the workspace rule).
        file: The backup, as written by :func:`backup`.

    Returns:
        ``{"workspace", "database", "restored_from", "damaged_kept_as", "schema_version", "jobs",
        "still_open_by"}``; ``still_open_by`` lists other processes (a notebook kernel, a Jupyter
        server) that had the old file open: restart them, or they keep using it.

    Raises:
        ValidationError: ``file`` is missing or not a valid batchnb database.
        InvalidStateError: Jobs are running on the workspace.
    """
    ws = _workspace(root)
    source = Path(file).expanduser().resolve()
    checked = inspect(source)
    if checked.state != OK:
        raise ValidationError(f"cannot restore from {source}: it {checked.problem}", field="file")
    damage = integrity_problems(source)
    if damage:
        raise ValidationError(f"cannot restore from {source}: SQLite's integrity check failed: {damage[0]}")
    if source == ws.db_path.resolve():
        raise ValidationError(f"{source} is the workspace's own database", field="file")
    _refuse_running(ws.root)
    ws.root.mkdir(parents=True, exist_ok=True)  # a backup may move a workspace to a new folder
    holders = _holders(ws.db_path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    staged = ws.db_path.with_name(f"{ws.db_path.name}.restoring")
    staged.unlink(missing_ok=True)
    copy_database(source, staged)
    kept = ws.db_path.with_name(f"{ws.db_path.name}.damaged-{stamp}")
    for n in range(2, 1000):  # two restores in one second: the first file kept aside stays
        if not kept.exists():
            break
        kept = ws.db_path.with_name(f"{ws.db_path.name}.damaged-{stamp}-{n}")
    if ws.db_path.exists():
        os.replace(ws.db_path, kept)
        # A write-ahead log belongs to the file it was written for: applied to the restored copy it
        # would corrupt it. It goes aside with its file; the shared-memory index is rebuilt.
        wal = ws.db_path.with_name(ws.db_path.name + "-wal")
        if wal.exists():
            os.replace(wal, kept.with_name(kept.name + "-wal"))
        ws.db_path.with_name(ws.db_path.name + "-shm").unlink(missing_ok=True)
    os.replace(staged, ws.db_path)
    opened = Workspace.open(ws.root)  # upgrades an older backup's schema
    return {
        "workspace": str(ws.root),
        "database": str(ws.db_path),
        "restored_from": str(source),
        "damaged_kept_as": str(kept) if kept.exists() else None,
        "schema_version": inspect(opened.db_path).schema_version,
        "jobs": len(_job_records(ws.db_path)),
        "still_open_by": holders,
    }


def working_processes(root: Path) -> list[dict[str, Any]]:
    """The live processes running work on a workspace: computes' agents and pipeline runners, found
    by their command line (so also when the database is unreadable).

    Returns:
        ``{"pid", "what"}`` records, ``what`` in words (``the agent of compute <name>``, ``job <name>``).
    """
    import psutil

    root = Path(root).resolve()
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        module = next((m for m in _WORKING_MODULES if m in cmd), None)
        if module is None or "--workspace" not in cmd[:-1] or proc.pid == os.getpid():
            continue
        if Path(cmd[cmd.index("--workspace") + 1]).resolve() != root:
            continue
        if module == _AGENT:
            compute = cmd[cmd.index("--compute") + 1] if "--compute" in cmd[:-1] else "?"
            found.append({"pid": proc.pid, "what": f"the agent of compute {compute}"})
        else:
            found.append(
                {"pid": proc.pid, "what": f"job {cmd[cmd.index('--job') + 1]}" if "--job" in cmd[:-1] else module}
            )
    return found


def _refuse_running(root: Path) -> None:
    running = working_processes(root)
    if running:
        listed = ", ".join(f"{p['what']} (pid {p['pid']})" for p in running)
        raise InvalidStateError(
            f"batchnb processes run on the workspace {root}: {listed}; wait for their jobs to end (or "
            "cancel them), stop the computes' agents (`batchnb compute stop -n <compute>`) and restore again"
        )


def _holders(db_path: Path) -> list[dict[str, Any]]:
    """Other processes with the database file open (those of this user: others' cannot be read)."""
    import psutil

    target = str(db_path.resolve())
    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):
            if any(f.path == target for f in proc.open_files()):
                found.append({"pid": proc.pid, "name": proc.info.get("name")})
    return found
