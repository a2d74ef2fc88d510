"""Connections and transactions on the workspace's SQLite file.

Several writers share one file: notebook kernels, the CLI, the Jupyter server and job supervisors.
WAL lets readers run beside one writer; writers take the lock up front (``BEGIN IMMEDIATE``) so a
transaction never fails half-way on a lock upgrade, wait on ``busy_timeout``, and are retried with
back-off past it. So "database is locked" never reaches a user: it becomes a wait, or after
``LOCK_WAIT_S`` a :class:`WorkspaceError` that says which file is held.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import WorkspaceError
from .migrations import MIGRATIONS

LOCK_WAIT_S = 120.0  # total time a writer waits for the lock before giving up
_BUSY_TIMEOUT_MS = 5000
# The folder of the store this process opened last: a job's supervisor opens only its workspace's,
# and batchnb.remote looks the job's datastores up there (see last_opened_folder).
_last_opened: Path | None = None


def last_opened_folder() -> Path | None:
    """The folder (the workspace) of the store this process opened last, None if none."""
    return _last_opened


def _is_lock_error(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _damaged(path: Path, exc: sqlite3.DatabaseError) -> WorkspaceError | None:
    """The error to show for a database file that SQLite finds corrupt or not a database, else None."""
    if getattr(exc, "sqlite_errorname", None) not in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return None
    return WorkspaceError(
        f"the workspace database {path} is damaged ({exc}); nothing more was written to it. "
        "`batchnb workspace check` says what is wrong; `batchnb workspace restore --file BACKUP` restores a backup"
    )


class Store:
    """The SQLite store of one workspace.

    Connections are kept per thread (sqlite3 connections must not cross threads) and per process
    (a fork must not reuse its parent's connection).
    """

    def __init__(self, path: Path) -> None:
        global _last_opened
        self.path = Path(path)
        self._local = threading.local()
        _last_opened = self.path.parent

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL: a crash loses no committed txn
            except sqlite3.Error as exc:  # e.g. "file is not a database"
                raise WorkspaceError(f"cannot open the workspace database {self.path}: {exc}") from exc
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection, if any."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads. Each statement sees a consistent snapshot."""
        try:
            yield self._connection()
        except sqlite3.DatabaseError as exc:
            damaged = _damaged(self.path, exc)
            if damaged is None:
                raise
            raise damaged from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of its statements commit together or not at all.

        The body must be safe to run again: it is retried if the lock could not be taken.
        Only the ``BEGIN`` is retried here; a lock error inside the body (which cannot happen
        under ``BEGIN IMMEDIATE``) would roll back and propagate.
        """
        conn = self._connection()
        deadline = time.monotonic() + LOCK_WAIT_S
        delay = 0.01
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    raise WorkspaceError(
                        f"the workspace database {self.path} stayed locked for {LOCK_WAIT_S:.0f} s: {exc}"
                    ) from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            damaged = _damaged(self.path, exc)
            if damaged is None:
                conn.execute("ROLLBACK")
                raise
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise damaged from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def migrate(self) -> int:
        """Create or upgrade the schema; return the schema version. Safe to call from many processes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connection()
        try:
            # WAL is a property of the file: set once, before the first write transaction.
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if not _is_lock_error(exc):
                raise WorkspaceError(f"cannot use the workspace database {self.path}: {exc}") from exc
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return version
        with self.write() as tx:
            version = tx.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            for number in range(version, len(MIGRATIONS)):
                for statement in _statements(MIGRATIONS[number]):
                    tx.execute(statement)
            tx.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        return len(MIGRATIONS)


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a migration, one by one. ``executescript`` would commit the migration's
    transaction first, and a plain split on ``;`` would cut a trigger's body (its statements end in
    ``;`` too): SQLite's own tokenizer says where each statement ends."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                yield pending
            pending = ""
    if pending.strip(" \t\n;"):
        yield pending
