"""The ``batchnb`` command run in this process (for tests that run it hundreds of times), and a
snapshot of a workspace (its store's rows and its files) to show that a refused command left nothing."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from batchnb import errors
from batchnb.cli import main


def _error_classes(cls: type[errors.BatchnbError]) -> list[type[errors.BatchnbError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _error_classes(sub))]


# Every exit code a user's mistake may end with: those of batchnb's error classes, but the base
# class's 1, which only an internal error (a bug) uses.
USER_ERROR_CODES = {cls.exit_code for cls in _error_classes(errors.BatchnbError)} - {1}


def run_cli(*args: str, ws: Path) -> tuple[int, str, str]:
    """``batchnb args --workspace ws`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--workspace", str(ws)])
    return code, out.getvalue(), err.getvalue()


def error_line(result: tuple[int, str, str], *needles: str) -> str:
    """The one ``ERROR:`` line of a refused command (no traceback, no internal error, a documented code)."""
    code, out, err = result
    lines = err.strip().splitlines()
    assert code in USER_ERROR_CODES, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("ERROR: "), err
    assert "internal error" not in err and "Traceback" not in err, err
    assert out == "", out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(ws: Path) -> dict[str, Any]:
    """Every row of every table of the workspace's store, and every file (path and size) under it
    but the store's own files."""
    rows: dict[str, Any] = {}
    db = ws / "batchnb.db"
    if db.exists():
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in sorted(tables):
                rows[table] = sorted(map(repr, conn.execute(f'SELECT * FROM "{table}"')))
        finally:
            conn.close()
    files = sorted(
        (str(p.relative_to(ws)), p.stat().st_size)
        for p in ws.rglob("*")
        if p.is_file() and not p.name.startswith("batchnb.db")
    )
    return {"rows": rows, "files": files}


def make_project(root: Path, endpoint: str, deployment: dict[str, Any]) -> Path:
    """In ``root``: a model folder, a scoring script that echoes its mini-batch, three one-row CSV
    inputs, ``deployment.yml`` (``deployment``, whose paths are these), and a workspace ``ws`` with
    ``endpoint`` and that deployment created through the CLI. Returns ``root``."""
    (root / "model").mkdir()
    (root / "model" / "weights.json").write_text('{"w": 3}')
    (root / "code").mkdir()
    (root / "code" / "score.py").write_text("def init():\n    pass\n\n\ndef run(batch):\n    return batch\n")
    (root / "data").mkdir()
    for i in range(3):
        (root / "data" / f"f{i}.csv").write_text(f"x\n{i}\n")
    (root / "deployment.yml").write_text(yaml.safe_dump(deployment, sort_keys=False))
    ws = root / "ws"
    assert run_cli("batch-endpoint", "create", "-n", endpoint, "-o", "none", ws=ws)[0] == 0
    created = run_cli("batch-deployment", "create", "-f", str(root / "deployment.yml"), "-o", "none", ws=ws)
    assert created[0] == 0, created
    return root
