"""Where a worker process's (or the zygote's) output goes: files in a job's log folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def redirect_stdio(logs: Path, name: str) -> None:
    """Send this process's output to ``logs/stdout/<name>.stdout.txt`` and ``logs/stderr/…``, at
    the file-descriptor level, so C extensions and subprocesses write there too."""
    for stream, sub, fd in ((sys.stdout, "stdout", 1), (sys.stderr, "stderr", 2)):
        folder = logs / sub
        folder.mkdir(parents=True, exist_ok=True)
        target = os.open(folder / f"{name}.{sub}.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        stream.flush()
        os.dup2(target, fd)
        os.close(target)
