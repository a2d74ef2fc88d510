"""A job's log folder, in Azure's layout so that Azure habits carry over.

::

    logs/readme.txt                      this layout
    logs/job_progress_overview.txt       mini-batches created / processed / failed, rewritten live
    logs/job_result.txt                  the final result and, on failure, where to look
    logs/sys/master_role.txt             the supervisor's events (plan, retries, crashes, finalize)
    logs/sys/supervisor.txt              the supervisor process's own stdout and stderr
    logs/sys/node/<host>/<process>.txt   one line per mini-batch attempt: items, succeeded, failed, duration
    logs/user/error.txt                  one line per failed attempt, pointing at the full traceback
    logs/user/error/<process>.txt        full tracebacks from init() and run(), with the mini-batch's items
    logs/user/stdout/<process>.stdout.txt   print() and logging from the scoring script
    logs/user/stderr/<process>.stderr.txt
    logs/user/entry_script_log/<process>.log.txt   EntryScript().logger
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes

README = __doc__.split("::", 1)[1].strip("\n") + "\n"


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


class JobLogs:
    """Writes one job's ``logs/`` folder. Used by the supervisor only (workers write their own files)."""

    def __init__(self, job_dir: Path) -> None:
        self.root = job_dir / "logs"
        self.host = socket.gethostname()
        for sub in ("sys", f"sys/node/{self.host}", "user/error", "user/stdout", "user/stderr"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        readme = self.root / "readme.txt"
        if not readme.exists():
            atomic_write_bytes(readme, ("The layout of this folder:\n\n" + README).encode())

    def _append(self, relative: str, line: str) -> None:
        with open(self.root / relative, "a", encoding="utf-8") as fh:
            fh.write(line if line.endswith("\n") else line + "\n")

    def event(self, message: str) -> None:
        """Record a supervisor event in ``sys/master_role.txt``."""
        self._append("sys/master_role.txt", f"{_stamp()} {message}")

    def user_error(self, message: str) -> None:
        """Record a failed attempt in ``user/error.txt``."""
        self._append("user/error.txt", f"{_stamp()} {message}")

    def minibatch(self, record: dict[str, Any]) -> None:
        """Record one mini-batch attempt under ``sys/node/<host>/<process>.txt``."""
        worker = record.get("worker") or "supervisor"
        self._append(f"sys/node/{self.host}/{worker}.txt", json.dumps(record, default=str))

    def minibatches(self, records: list[dict[str, Any]]) -> None:
        """Record several attempts, opening each worker's file once (tiny mini-batches come fast)."""
        by_worker: dict[str, list[str]] = {}
        for record in records:
            by_worker.setdefault(record.get("worker") or "supervisor", []).append(json.dumps(record, default=str))
        for worker, lines in by_worker.items():
            self._append(f"sys/node/{self.host}/{worker}.txt", "\n".join(lines))

    def progress(self, text: str) -> None:
        """Rewrite ``job_progress_overview.txt``: without an fsync, being rewritten every second from
        the store, which holds the progress for good."""
        atomic_write_bytes(self.root / "job_progress_overview.txt", text.encode(), durable=False)

    def result(self, text: str) -> None:
        """Write ``job_result.txt``."""
        atomic_write_bytes(self.root / "job_result.txt", text.encode())


def mark_requeued(job_dir: Path, action: str) -> None:
    """Say in ``job_result.txt`` that the job runs again (``resume`` or ``rerun-failed``), so the
    result of its previous run (``Canceled``, ``Interrupted``) is not read as the current one; the
    job's supervisor rewrites the file when this run ends."""
    path = job_dir / "logs" / "job_result.txt"
    if path.parent.is_dir():
        note = f"Running again ({action}, {_stamp()}); the result is written here when it ends.\n"
        atomic_write_bytes(path, note.encode())


def read_from(path: Path, offset: int) -> tuple[str, int]:
    """What was appended to ``path`` since ``offset``, and the new offset (for following a log)."""
    if not path.exists():
        return "", offset
    with open(path, encoding="utf-8") as fh:
        fh.seek(offset)
        return fh.read(), fh.tell()
