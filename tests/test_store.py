"""The SQLite store: concurrent writers, migrations, transactions, and locks that never leak out."""

from __future__ import annotations

import sqlite3
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from engine_helpers import run_together

from batchnb import BatchClient
from batchnb.errors import WorkspaceError
from batchnb.store import Store, db
from batchnb.store.migrations import MIGRATIONS
from batchnb.workspace import Workspace

REGISTER = textwrap.dedent(
    """\
    import sys
    from batchnb import BatchClient

    workspace, source, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    client = BatchClient(workspace)
    for _ in range(count):
        model = client.models.create_or_update({"name": "same-model", "path": source})
        print(model.version, flush=True)
    """
)


def test_two_processes_register_the_same_model_at_once(tmp_path: Path, model_dir: Path) -> None:
    script = tmp_path / "register.py"
    script.write_text(REGISTER)
    ws = tmp_path / "shared-ws"  # not created yet: both processes also race to create and migrate it
    results = run_together([sys.executable, str(script), str(ws), str(model_dir), "20"])

    versions: list[int] = []
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "locked" not in result.stderr.lower()
        mine = [int(v) for v in result.stdout.split()]
        assert len(mine) == 20
        assert mine == sorted(mine)  # each process sees its own versions increase
        versions += mine
    assert sorted(versions) == list(range(1, 41))

    client = BatchClient(ws)
    assert sorted(int(m.version) for m in client.models.list(name="same-model")) == list(range(1, 41))
    assert client.models.resolve("same-model@latest").version == "40"
    folders = sorted(p.name for p in (ws / "artifacts" / "models" / "same-model").iterdir())
    assert sorted(folders, key=int) == [str(v) for v in range(1, 41)]
    assert not [p for p in (ws / "artifacts" / "models").iterdir() if p.name.startswith(".staging")]


def test_schema_version_is_recorded(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    with sqlite3.connect(ws.db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"assets", "datastores", "computes", "endpoints", "deployments", "jobs", "minibatches"} <= tables


def test_migrations_are_idempotent(tmp_path: Path, model_dir: Path) -> None:
    first = BatchClient(tmp_path / "ws")
    first.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    first.batch_endpoints.create_or_update({"name": "heart"})
    again = BatchClient(tmp_path / "ws")  # opening again migrates nothing and loses nothing
    assert Store(again.workspace.db_path).migrate() == len(MIGRATIONS)
    assert [m.version for m in again.models.list(name="tiny")] == ["1"]
    assert [e.name for e in again.batch_endpoints.list()] == ["heart"]
    with sqlite3.connect(again.workspace.db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_workspace_layout(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    for sub in ("artifacts/models", "artifacts/code", "datastores/workspaceblobstore", "jobs"):
        assert (ws.root / sub).is_dir(), sub
    assert ws.db_path == ws.root / "batchnb.db"


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "ws" / "batchnb.db")
    store.migrate()
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.execute("INSERT INTO endpoints (name, spec, created_at, updated_at) VALUES ('a', '{}', 0, 0)")
        raise RuntimeError("boom")
    with store.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM endpoints").fetchone()[0] == 0
    with store.write() as tx:  # the connection is usable afterwards
        tx.execute("INSERT INTO endpoints (name, spec, created_at, updated_at) VALUES ('a', '{}', 0, 0)")
    with store.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM endpoints").fetchone()[0] == 1


def test_a_writer_waits_for_a_short_lock(tmp_path: Path) -> None:
    store = Store(tmp_path / "ws" / "batchnb.db")
    store.migrate()
    holder = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, lambda: holder.execute("COMMIT")).start()
    start = time.monotonic()
    with store.write() as tx:
        tx.execute("INSERT INTO endpoints (name, spec, created_at, updated_at) VALUES ('a', '{}', 0, 0)")
    assert time.monotonic() - start >= 0.3
    holder.close()


def test_a_lock_held_too_long_is_a_workspace_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "LOCK_WAIT_S", 0.3)
    monkeypatch.setattr(db, "_BUSY_TIMEOUT_MS", 50)
    store = Store(tmp_path / "ws" / "batchnb.db")
    store.migrate()
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(WorkspaceError) as info, store.write():
            pass
        assert str(store.path) in info.value.message
        assert "stayed locked" in info.value.message
        assert info.value.exit_code == 7
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_an_unusable_database_is_a_workspace_error(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "batchnb.db").write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(WorkspaceError, match=r"batchnb\.db"):
        Workspace.open(folder)
