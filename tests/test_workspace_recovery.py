"""A lost or damaged workspace database: refused by every front end, found by ``workspace check``,
brought back by ``workspace backup`` / ``restore``. Real SQLite files, real job processes, the real CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from engine_helpers import HOLD, reaping, supervisor_pid, wait_until
from test_cli import run

from batchnb import BatchClient, WorkspaceError

ECHO = """
def init():
    pass

def run(mini_batch):
    return [str(p) for p in mini_batch]
"""


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    with reaping():
        yield


def _finished_job(client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path]) -> str:
    """An endpoint 'ep-test' with deployment 'blue' and one Completed job, its supervisor gone."""
    deploy(ECHO, set_default=True)
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(3))).wait()
    assert job["status"] == "Completed"
    pid = supervisor_pid(client, job["name"])
    wait_until(lambda: not psutil.pid_exists(pid), 30, "the agent to exit")
    client.store.close()
    return str(job["name"])


def _one_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The exit code, and the ``ERROR:`` line that ends stderr."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: "), result.stderr
    assert "Traceback" not in result.stderr
    return last


def test_an_emptied_database_is_refused_by_the_cli_and_the_python_api(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path]
) -> None:
    _finished_job(client, deploy, csv_inputs)
    ws = client.workspace.root
    db = ws / "batchnb.db"
    db.write_bytes(b"")

    for args in (("batch-endpoint", "list"), ("job", "list"), ("model", "create", "-n", "m2", "--path", str(db))):
        line = _one_error(run(*args, ws=ws), 7)
        assert str(db) in line and "is empty (0 bytes)" in line, line
        assert "job folders: 1" in line and "batchnb workspace restore" in line, line
    with pytest.raises(WorkspaceError, match=r"is empty \(0 bytes\).*Restore a backup"):
        BatchClient(ws)
    assert db.stat().st_size == 0  # nothing was written into it


def test_a_missing_database_is_refused_but_a_new_workspace_is_created(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path], tmp_path: Path
) -> None:
    _finished_job(client, deploy, csv_inputs)
    ws = client.workspace.root
    (ws / "batchnb.db").unlink()
    line = _one_error(run("batch-endpoint", "list", ws=ws), 7)
    assert "batchnb.db is missing" in line
    assert not (ws / "batchnb.db").exists()

    fresh = tmp_path / "fresh"
    result = run("batch-endpoint", "list", ws=fresh)
    assert (result.returncode, json.loads(result.stdout)) == (0, [])
    assert run("workspace", "check", ws=fresh).returncode == 0


def test_garbage_in_the_database_is_refused_with_the_message(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path]
) -> None:
    _finished_job(client, deploy, csv_inputs)
    ws = client.workspace.root
    (ws / "batchnb.db").write_bytes(b"not sqlite at all " * 500)

    line = _one_error(run("job", "list", ws=ws), 7)
    assert "is not a readable SQLite database (file is not a database)" in line
    assert "Restore a backup" in line
    with pytest.raises(WorkspaceError, match="not a readable SQLite database"):
        BatchClient(ws)
    check = run("workspace", "check", ws=ws)
    assert _one_error(check, 7).endswith("is not a readable SQLite database (file is not a database)")
    assert json.loads(check.stdout)["healthy"] is False


def test_backup_then_truncate_then_restore_brings_everything_back(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path], tmp_path: Path
) -> None:
    name = _finished_job(client, deploy, csv_inputs)
    ws = client.workspace.root
    backup_file = tmp_path / "backup.db"
    made = json.loads(run("workspace", "backup", "--file", str(backup_file), ws=ws).stdout)
    assert made["jobs"] == 1 and backup_file.is_file()
    # An existing backup is never overwritten.
    assert "already exists" in _one_error(run("workspace", "backup", "--file", str(backup_file), ws=ws), 4)

    (ws / "batchnb.db").write_bytes(b"")
    assert _one_error(run("workspace", "check", ws=ws), 7).endswith("is empty (0 bytes)")
    # Another process (a kernel, say) has the file open: restore names it, as it would keep using the old file.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(1, flush=True); "
         "sys.stdin.read()", str(ws / "batchnb.db")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "1\n"
    result = run("workspace", "restore", "--file", str(backup_file), ws=ws)
    holder.communicate("", timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"WARNING: process {holder.pid} (python" in result.stderr and "restart it" in result.stderr
    restored = json.loads(result.stdout)
    damaged = Path(restored["damaged_kept_as"])
    assert damaged.name.startswith("batchnb.db.damaged-") and damaged.stat().st_size == 0

    assert run("batch-endpoint", "list", "--query", "[].name", "-o", "tsv", ws=ws).stdout == "ep-test\n"
    assert run("batch-deployment", "list", "-e", "ep-test", "--query", "[].name", "-o", "tsv", ws=ws).stdout == "blue\n"
    assert run("job", "show", "-n", name, "--query", "status", "-o", "tsv", ws=ws).stdout == "Completed\n"
    check = run("workspace", "check", ws=ws)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["jobs"] == {"records": 1, "folders": 1}

    # The same backup moves the records to a new folder; the job's folder did not come with them.
    moved = tmp_path / "moved"
    assert _one_error(run("workspace", "check", ws=moved), 7).endswith(f"the workspace folder {moved} does not exist")
    assert run("workspace", "restore", "--file", str(backup_file), ws=moved).returncode == 0
    assert run("batch-endpoint", "list", "--query", "[].name", "-o", "tsv", ws=moved).stdout == "ep-test\n"
    check = run("workspace", "check", ws=moved)
    assert "1 started jobs have no folder" in _one_error(check, 7)
    assert json.loads(check.stdout)["records_without_folders"] == [name]


def test_restore_refuses_a_file_that_is_not_a_batchnb_database(client: BatchClient, tmp_path: Path) -> None:
    ws = client.workspace.root
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    line = _one_error(run("workspace", "restore", "--file", str(other), ws=ws), 2)
    assert str(other) in line and "is not a batchnb database" in line
    line = _one_error(run("workspace", "restore", "--file", str(tmp_path / "nope.db"), ws=ws), 2)
    assert "nope.db: it is missing" in line
    assert not list(ws.glob("batchnb.db.damaged-*"))  # the workspace's own file was not touched


def test_check_finds_job_folders_without_records_and_a_damaged_page(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path]
) -> None:
    name = _finished_job(client, deploy, csv_inputs)
    ws = client.workspace.root
    (ws / "jobs" / "batchjob-from-elsewhere" / "logs").mkdir(parents=True)
    check = run("workspace", "check", ws=ws)
    assert "1 job folders have no record in the database" in _one_error(check, 7)
    assert json.loads(check.stdout)["folders_without_records"] == ["batchjob-from-elsewhere"]

    # Overwrite the jobs table's first page: the schema stays readable, the table does not.
    db = ws / "batchnb.db"
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'jobs'").fetchone()[0]
    conn.close()
    with open(db, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xff" * page_size)
    check = run("workspace", "check", ws=ws)
    assert "SQLite's integrity check" in _one_error(check, 7)
    assert json.loads(check.stdout)["integrity"]
    line = _one_error(run("job", "show", "-n", name, ws=ws), 7)
    assert "is damaged" in line and "batchnb workspace restore" in line


def test_backup_runs_beside_a_job_and_restore_waits_for_it(
    client: BatchClient, deploy: Callable[..., dict], csv_inputs: Callable[..., Path], tmp_path: Path
) -> None:
    release = tmp_path / "release"
    deploy(HOLD, set_default=True, environment_variables={"RELEASE": str(release)}, retry_settings={"timeout": 600})
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2)))
    name = job["name"]
    wait_until(lambda: client.jobs.get(name)["status"] == "Running", 60, "the job to run")
    ws = client.workspace.root

    backup_file = tmp_path / "during.db"
    result = run("workspace", "backup", "--file", str(backup_file), ws=ws)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(backup_file) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT status FROM jobs WHERE name = ?", (name,)).fetchone()[0] == "Running"
    conn.close()

    refused = _one_error(run("workspace", "restore", "--file", str(backup_file), ws=ws), 4)
    assert "the agent of compute local" in refused and "compute stop" in refused
    assert not list(ws.glob("batchnb.db.damaged-*"))

    release.touch()
    assert client.jobs.wait(name, timeout=120)["status"] == "Completed"
    pid = supervisor_pid(client, name)
    wait_until(lambda: not psutil.pid_exists(pid), 30, "the agent to exit")
    client.store.close()
    result = run("workspace", "restore", "--file", str(backup_file), ws=ws)
    assert result.returncode == 0, result.stderr
    # The backup was taken while the job ran: its agent is gone now, so the job shows Interrupted
    # (``job resume`` finishes it).
    assert run("job", "show", "-n", name, "--query", "status", "-o", "tsv", ws=ws).stdout == "Interrupted\n"
