"""The database file itself: what state it is in, a consistent copy of it, and its integrity.

A workspace's records live in one SQLite file. Opening a missing or zero-byte file would silently
make a new, empty store beside the jobs it no longer knows, so :func:`inspect` tells the cases apart
first (missing, empty, unreadable, a batchnb store) and :mod:`batchnb.workspace` refuses the bad ones.
Copies are made with SQLite's online backup API, which reads one consistent snapshot while other
processes keep writing (WAL), and are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

MISSING, EMPTY, UNREADABLE, BUSY, OK = "missing", "empty", "unreadable", "busy", "ok"
# The tables every batchnb store has had since its first schema version.
_CORE_TABLES = frozenset({"assets", "endpoints", "deployments", "jobs", "minibatches"})


@dataclass(frozen=True)
class DatabaseFile:
    """What :func:`inspect` found.

    Attributes:
        path: The file.
        state: ``ok`` (a batchnb store), ``missing``, ``empty`` (no tables: zero bytes or never
            written), ``unreadable`` (not SQLite, corrupt, or another program's database) or
            ``busy`` (locked by a writer past the wait: nothing is known).
        size: Its size in bytes (``None`` if missing).
        schema_version: Its ``PRAGMA user_version`` (``None`` if unreadable or missing).
        problem: What is wrong, in words, for the states other than ``ok``.
    """

    path: Path
    state: str
    size: int | None = None
    schema_version: int | None = None
    problem: str | None = None


def _connect(path: Path) -> sqlite3.Connection:
    # Never creates the file: callers have checked that it exists.
    return sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5.0, isolation_level=None)


def inspect(path: Path) -> DatabaseFile:
    """Tell what a database file holds without changing it.

    Args:
        path: The SQLite file.

    Returns:
        Its state; see :class:`DatabaseFile`.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return DatabaseFile(path, MISSING, problem="is missing")
    except OSError as exc:
        return DatabaseFile(path, UNREADABLE, problem=f"cannot be read ({exc.strerror})")
    try:
        with closing(_connect(path)) as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):  # another process is writing: readable, not now
            return DatabaseFile(path, BUSY, size, problem=f"is locked by another process ({exc})")
        return DatabaseFile(path, UNREADABLE, size, problem=f"is not a readable SQLite database ({exc})")
    except sqlite3.Error as exc:
        return DatabaseFile(path, UNREADABLE, size, problem=f"is not a readable SQLite database ({exc})")
    if not tables and version == 0:
        what = "is empty (0 bytes)" if size == 0 else "is empty (it holds no tables)"
        return DatabaseFile(path, EMPTY, size, 0, problem=what)
    missing = sorted(_CORE_TABLES - tables)
    if missing:
        return DatabaseFile(
            path, UNREADABLE, size, version, problem=f"is not a batchnb database (no table {', '.join(missing)})"
        )
    return DatabaseFile(path, OK, size, version)


def integrity_problems(path: Path, limit: int = 20) -> list[str]:
    """Run SQLite's ``PRAGMA integrity_check`` on a file; return its findings (empty: intact).

    Args:
        path: An existing SQLite file.
        limit: At most this many findings.

    Returns:
        SQLite's messages, e.g. ``"Page 7: btreeInitPage() returns error code 11"``.
    """
    try:
        with closing(_connect(Path(path))) as conn:
            rows = conn.execute(f"PRAGMA integrity_check({int(limit)})").fetchall()
    except sqlite3.Error as exc:
        return [str(exc)]
    found = [str(r[0]) for r in rows]
    return [] if found == ["ok"] else found


def copy_database(source: Path, target: Path) -> None:
    """Copy a live database consistently to ``target`` with SQLite's backup API.

    Written to a temporary name beside ``target``, flushed to disk, then renamed into place: a
    crash leaves either no file or the whole copy.

    Args:
        source: The database to copy; other processes may be writing to it.
        target: The new file; must not exist.
    """
    target = Path(target)
    temporary = target.with_name(f".{target.name}.partial-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    try:
        with closing(_connect(Path(source))) as src, closing(sqlite3.connect(temporary)) as dst:
            src.backup(dst)
            # One self-contained file: no -wal beside it to lose when the copy is moved.
            dst.execute("PRAGMA journal_mode = DELETE")
        with open(temporary, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
