"""Reading a job's files for the REST API: the tails of its logs, the listing of its output folder,
a file of either (confined to its folder), and a preview of an output table."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, ValidationError
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


def resolve_in(folder: str, relative: str, field: str) -> Path:
    """``relative`` (a '/'-separated path) as a file inside ``folder``, after ``..`` and symlinks.

    Raises:
        ValidationError: naming ``field`` when it leads outside the folder, is not a file, or the
            folder is a URL (only local folders are served).
    """
    if is_url(folder):
        raise ValidationError(f"{field}: {folder} is not a local folder; download it instead", field=field)
    root = Path(folder).resolve()
    target = (root / relative.lstrip("/")).resolve()
    if not target.is_relative_to(root):
        raise ValidationError(f"{field}: {relative!r} is outside {folder}", field=field)
    if not target.is_file():
        raise NotFoundError(f"{field}: {relative!r} is not a file in {folder}")
    return target


def first_table(folder: str, preferred: str | None) -> str | None:
    """The output file to preview first: ``preferred`` if it exists, else the first CSV or Parquet
    file (by name), else the first file; None for an empty or missing folder."""
    listing = list_outputs(folder)["files"]
    names = [f["name"] for f in listing]
    if preferred and preferred in names:
        return preferred
    tables = [n for n in names if n.lower().endswith(PREVIEWED_TABLES)]
    return (tables or names or [None])[0]


PREVIEWED_TABLES = (".csv", ".tsv", ".parquet", ".pq")
_SNIFF_BYTES = 64 * 1024


def preview(path: Path, rows: int, append_row: bool = False) -> dict[str, Any]:
    """The first ``rows`` rows of a CSV or Parquet file (column names and values), or the first
    lines of any other file. A CSV's delimiter and header row are sniffed, except for a batch job's
    own ``append_row`` file (``append_row``): space-separated rows with no header."""
    size = path.stat().st_size
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        batch = next(parquet.iter_batches(batch_size=rows), None)
        columns = parquet.schema_arrow.names
        data = batch.to_pylist() if batch is not None else []
        total = parquet.metadata.num_rows
        return {
            "format": "parquet",
            "size": size,
            "columns": columns,
            "rows": [[_cell(r[c]) for c in columns] for r in data[:rows]],
            "total_rows": total,
            "header": True,
            "truncated": total > rows,
        }
    with open(path, "rb") as fh:
        sample = fh.read(_SNIFF_BYTES).decode("utf-8", errors="replace")
    lines = sample.splitlines()
    if (name.endswith((".csv", ".tsv")) or append_row) and lines:
        dialect: Any
        if append_row:
            dialect, header = _SpaceSeparated, False
        else:
            whole_lines = sample if len(sample) < _SNIFF_BYTES else sample[: sample.rfind("\n")]
            try:
                dialect = csv.Sniffer().sniff(whole_lines, delimiters=",;\t| ")
            except csv.Error:
                dialect = csv.excel_tab if name.endswith(".tsv") else csv.excel
            try:
                header = csv.Sniffer().has_header(whole_lines)
            except csv.Error:
                header = False
        parsed = list(csv.reader(lines[: rows + 1], dialect))
        columns = parsed[0] if header else [f"column {i + 1}" for i in range(max(len(r) for r in parsed))]
        body = parsed[1:] if header else parsed[:rows]
        return {
            "format": "csv",
            "size": size,
            "columns": columns,
            "rows": body[:rows],
            "total_rows": None,
            "header": header,
            "truncated": len(lines) > len(body) + int(header) or len(sample) >= _SNIFF_BYTES,
        }
    return {
        "format": "text",
        "size": size,
        "columns": ["line"],
        "rows": [[line] for line in lines[:rows]],
        "total_rows": None,
        "header": False,
        "truncated": len(lines) > rows or len(sample) >= _SNIFF_BYTES,
    }


class _SpaceSeparated(csv.Dialect):
    """What append_row writes (``to_csv(sep=" ")``): space-separated, double-quoted where needed."""

    delimiter = " "
    quotechar = '"'
    doublequote = True
    skipinitialspace = False
    lineterminator = "\n"
    quoting = csv.QUOTE_MINIMAL


def _cell(value: Any) -> Any:
    """A Parquet value as JSON can carry it (dates, decimals and bytes as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
