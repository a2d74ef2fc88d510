"""Planning: list a job's input and cut it into mini-batches.

File mode (Azure's): the input files, sorted by path, not recursive unless asked, in groups of
``mini_batch_size`` files; the last group may be short. Tabular mode (batchnb's): Parquet files are
cut along row groups into chunks of about ``mini_batch_size`` rows (or bytes, for a size such as
``64MB``), so one large file spreads over every worker; a CSV file is cut by rows too, at row ends
found in one streamed read (see :mod:`batchnb.engine.csv_chunks`). Of a Parquet file only the
footer is read here, with range requests for a file in cloud storage: workers read their own data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..cloud.fs import child_url, filesystem, open_input
from ..errors import ValidationError
from ..specfile import is_url
from . import csv_chunks

TABULAR_SUFFIXES = (".parquet", ".pqt", ".csv")


def check_builtin_inputs(spec: dict[str, Any], files: list[str]) -> None:
    """The built-in MLflow driver reads CSV and Parquet only: any other file fails the job at once,
    as on Azure, naming the first such file (checked where mini-batches are planned: by the
    supervisor, or at invoke for an incremental job)."""
    if spec.get("builtin_driver") != "mlflow":
        return
    from .drivers import MLFLOW_SUFFIXES

    for path in files:
        suffix = Path(path).suffix.lower()
        if suffix not in MLFLOW_SUFFIXES:
            shown = f"File type '{suffix.lstrip('.')}'" if suffix else "A file without an extension"
            raise ValidationError(
                f"Error processing input file: '{path}'. {shown} is not supported: an MLflow model "
                f"deployed without a scoring script reads {', '.join(MLFLOW_SUFFIXES)} files",
                field="input",
            )


def list_input_files(path: str, input_type: str, recursive: bool = False) -> list[str]:
    """Return the input files, sorted. Hidden files (``.name``) and ``_name`` markers are skipped.

    Raises:
        ValidationError: the input does not exist, or the folder holds no file.
    """
    if is_url(path):
        return _list_url(path, input_type, recursive)
    root = Path(path)
    if input_type == "uri_file":
        if not root.is_file():
            raise ValidationError(f"input {path!r} is not a file (input type uri_file)", field="input")
        return [str(root)]
    if not root.is_dir():
        raise ValidationError(f"input {path!r} is not a folder (input type uri_folder)", field="input")
    walker = root.rglob("*") if recursive else root.iterdir()
    files = sorted(
        str(p)
        for p in walker
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )
    if not files:
        hint = "" if recursive else " (sub-folders are not listed unless recursive: true is set)"
        raise ValidationError(f"input folder {path!r} contains no files{hint}", field="input")
    return files


def _list_url(url: str, input_type: str, recursive: bool) -> list[str]:
    fs, root = filesystem(url)
    # The filesystem is shared by this process (a kernel plans job after job): what an earlier
    # listing cached may predate files added or removed since.
    fs.invalidate_cache()
    if input_type == "uri_file":
        if not fs.isfile(root):
            raise ValidationError(f"input {url!r} is not a file (input type uri_file)", field="input")
        return [url]
    if not fs.isdir(root):
        raise ValidationError(f"input {url!r} is not a folder (input type uri_folder)", field="input")
    entries = fs.find(root) if recursive else [e["name"] for e in fs.ls(root, detail=True) if e["type"] == "file"]
    files = sorted(
        child_url(url, root, entry)
        for entry in entries
        if not any(part.startswith((".", "_")) for part in entry.strip("/")[len(root.strip("/")) :].split("/") if part)
    )
    if not files:
        hint = "" if recursive else " (sub-folders are not listed unless recursive: true is set)"
        raise ValidationError(f"input folder {url!r} contains no files{hint}", field="input")
    return files


def plan_file_minibatches(files: list[str], mini_batch_size: int) -> Iterator[list[str]]:
    """Group files into mini-batches of ``mini_batch_size`` (the last may be short)."""
    for start in range(0, len(files), mini_batch_size):
        yield files[start : start + mini_batch_size]


def plan_tabular_minibatches(files: list[str], mini_batch_size: int | str) -> Iterator[list[dict[str, Any]]]:
    """Cut tabular files into row chunks. Each mini-batch is a list with one chunk descriptor:
    ``{"path", "row_groups": [ids] | None, "rows": n}``; ``rows`` is the number of items."""
    from ..schemas import parse_size  # pydantic: a quarter second that a supervisor's start need not pay

    limit_bytes = parse_size(mini_batch_size) if isinstance(mini_batch_size, str) else None
    limit_rows = mini_batch_size if isinstance(mini_batch_size, int) else None
    for path in files:
        suffix = Path(path).suffix.lower()
        if suffix not in TABULAR_SUFFIXES:
            raise ValidationError(
                f"tabular mode reads Parquet and CSV files, and {path!r} is neither; "
                "use mini_batch_mode: file for other files",
                field="mini_batch_mode",
            )
        if suffix == ".csv":
            with open_input(path, block_size=csv_chunks.BLOCK) as fh:
                for chunk in csv_chunks.plan(path, fh, limit_rows, limit_bytes):
                    yield [chunk]
            continue
        yield from _parquet_chunks(path, limit_rows, limit_bytes)


def _parquet_chunks(path: str, limit_rows: int | None, limit_bytes: int | None) -> Iterator[list[dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        with open_input(path, read_ahead=False) as fh:
            meta = pq.ParquetFile(fh).metadata
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ValidationError(f"input file {path!r} is not a readable Parquet file: {exc}", field="input") from None
    group: list[int] = []
    rows = size = 0
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        if group and (
            (limit_rows and rows + rg.num_rows > limit_rows)
            or (limit_bytes and size + rg.total_byte_size > limit_bytes)
        ):
            yield [{"path": path, "row_groups": group, "rows": rows}]
            group, rows, size = [], 0, 0
        group.append(i)
        rows += rg.num_rows
        size += rg.total_byte_size
    if group:
        yield [{"path": path, "row_groups": group, "rows": rows}]


def minibatch_items(minibatch: list[Any]) -> int:
    """The number of items in a mini-batch: files in file mode, rows in tabular mode."""
    if minibatch and isinstance(minibatch[0], dict):
        return sum(int(chunk["rows"]) for chunk in minibatch)
    return len(minibatch)
