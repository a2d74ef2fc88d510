"""Reading a job's files for the REST API: the tails of its logs and the listing of its output folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..specfile import is_url

# The log files ``GET jobs/<name>/logs`` shows, by their path under the job's ``logs/`` folder:
# a batch job's, a pipeline job's (its runner writes master_role.txt) and a step job's (its command's output).
LOG_FILES = {
    "batch": ("job_result.txt", "user/error.txt", "sys/master_role.txt"),
    "pipeline": ("job_result.txt", "sys/master_role.txt"),
    "command": ("job_result.txt", "user_logs/std_log.txt"),
}
MAX_OUTPUT_FILES = 10_000
_BLOCK = 64 * 1024


def tail(path: Path, lines: int) -> dict[str, Any]:
    """The last ``lines`` lines of a text file, read from its end (a long log costs no more than its tail)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            pos, data = size, b""
            while pos > 0 and data.count(b"\n") <= lines:
                step = min(_BLOCK, pos)
                pos -= step
                fh.seek(pos)
                data = fh.read(step) + data
    except FileNotFoundError:
        return {"path": str(path), "exists": False, "size": 0, "lines": [], "truncated": False}
    text = data.decode("utf-8", errors="replace").splitlines()
    kept = text[-lines:]
    return {"path": str(path), "exists": True, "size": size, "lines": kept, "truncated": pos > 0 or len(text) > lines}


def job_logs(logs_dir: str, lines: int, kind: str = "batch") -> dict[str, dict[str, Any]]:
    """The tails of the :data:`LOG_FILES` of one job of this kind (``batch``, ``pipeline``, ``command``)."""
    root = Path(logs_dir)
    return {name: tail(root / name, lines) for name in LOG_FILES.get(kind, LOG_FILES["batch"])}


def list_outputs(folder: str) -> dict[str, Any]:
    """The files under an output folder (local or an fsspec URL), with sizes, sorted by name."""
    files: list[dict[str, Any]] = []
    truncated = False
    if is_url(folder):
        from ..cloud.fs import filesystem

        fs, root = filesystem(folder)
        exists = bool(fs.exists(root))
        if exists:
            base = root.rstrip("/") + "/"
            for path, info in sorted(fs.find(root, detail=True).items()):
                if len(files) >= MAX_OUTPUT_FILES:
                    truncated = True
                    break
                files.append({"name": path.removeprefix(base), "size": int(info.get("size") or 0)})
    else:
        root_path = Path(folder)
        exists = root_path.is_dir()
        if exists:
            for dirpath, dirnames, filenames in os.walk(root_path):
                dirnames.sort()
                for fname in sorted(filenames):
                    if len(files) >= MAX_OUTPUT_FILES:
                        truncated = True
                        break
                    full = Path(dirpath) / fname
                    try:
                        size = full.stat().st_size
                    except OSError:  # removed while listing (a part file being merged)
                        continue
                    files.append({"name": full.relative_to(root_path).as_posix(), "size": size})
                if truncated:
                    break
    files.sort(key=lambda f: f["name"])
    return {
        "path": folder,
        "exists": exists,
        "files": files,
        "total_size": sum(f["size"] for f in files),
        "truncated": truncated,
    }
