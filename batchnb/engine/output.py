"""Output writers: one part file per mini-batch, merged in input order into the job's output.

Formats (``append_row``), following Azure's PRS writer:

* a DataFrame result: one line per row, values separated by spaces, no header, no index, fields
  containing a space quoted (``to_csv(sep=" ")``);
* a list result: ``str(item)`` on its own line;
* :class:`EncodedLines` (the built-in MLflow driver's result): its bytes, as they are;
* an output file name ending in ``.parquet``: Parquet, with the DataFrame's column names kept (a list
  of dicts becomes columns; any other list a ``prediction`` column).

Every file is written under a temporary name in its final folder and renamed into place, so a
reader never sees half a file and a crash leaves nothing that looks finished. The merged output
replaces no file but the job's own (:func:`file_stamp` tells them apart).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..cloud.fs import filesystem
from ..errors import ConflictError
from ..files import atomic_write_bytes
from ..specfile import is_url

# Folders a worker already made: a job's parts go to one folder, so ask the filesystem once.
_made_dirs: set[Path] = set()


def part_format(output_file_name: str) -> str:
    """``parquet`` for ``*.parquet`` outputs, else ``text``."""
    return "parquet" if output_file_name.lower().endswith((".parquet", ".pqt")) else "text"


def part_path(parts_dir: Path, idx: int, fmt: str) -> Path:
    """Where mini-batch ``idx``'s part lives. Named by index, so a retry replaces, never duplicates."""
    return parts_dir / f"mb-{idx:07d}.{'parquet' if fmt == 'parquet' else 'txt'}"


class EncodedLines(Sequence[str]):
    """Lines already formatted and encoded in UTF-8, each ending in a newline: a ``run()`` result
    written as it is. The built-in MLflow driver formats a mini-batch's lines in C (Arrow) into one
    block; 100k Python strings made from it again would cost about as much as the formatting."""

    def __init__(self, data: bytes, n_lines: int) -> None:
        self.data = data
        self.n_lines = n_lines
        self._decoded: list[str] | None = None

    def __len__(self) -> int:
        return self.n_lines

    def __getitem__(self, index: Any) -> Any:
        if self._decoded is None:  # only previews (dry runs) look at single lines
            self._decoded = self.data.decode("utf-8").split("\n")[: self.n_lines]
        return self._decoded[index]


def is_dataframe(value: Any) -> bool:
    """True for a pandas DataFrame, without importing pandas (about a second) to find out."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def _to_text(result: Any) -> bytes:
    if isinstance(result, EncodedLines):
        return result.data
    if is_dataframe(result):
        return result.to_csv(sep=" ", header=False, index=False, lineterminator="\n").encode("utf-8")
    if len(result) == 0:
        return b""
    try:  # lines that are all strings (the MLflow driver's): joined in C, 3x faster
        return ("\n".join(result) + "\n").encode("utf-8")
    except TypeError:
        return "".join(f"{item}\n" for item in result).encode("utf-8")


def _to_frame(result: Any) -> Any:
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        return result
    items = list(result)
    if items and all(isinstance(i, dict) for i in items):
        return pd.DataFrame.from_records(items)
    return pd.DataFrame({"prediction": items})


def write_part(parts_dir: Path, idx: int, result: Any, fmt: str, lineage: RowLineage | None = None) -> int:
    """Commit mini-batch ``idx``'s result as a part file. Returns the number of rows written.

    A Parquet part gets the lineage columns (:data:`LINEAGE_COLUMNS`) from ``lineage``; the merge
    keeps them or drops them by the job's ``lineage_columns`` setting.
    """
    if parts_dir not in _made_dirs:
        parts_dir.mkdir(parents=True, exist_ok=True)
        _made_dirs.add(parts_dir)
    final = part_path(parts_dir, idx, fmt)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = _to_frame(result)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if lineage is not None:
            table = lineage.add_to(table, frame, idx)
        buf = io.BytesIO()
        # A part is read once, by the merge: no dictionary encoding, whose attempt on a column of
        # distinct numbers costs twenty times the writing itself.
        pq.write_table(table, buf, use_dictionary=False)
        atomic_write_bytes(final, buf.getvalue(), durable=False)
        return len(frame)
    atomic_write_bytes(final, _to_text(result), durable=False)
    return len(result)


# The columns that say where an output row comes from: the input file (as the job was given it),
# the row's 0-based index in that file, and the mini-batch. Null where it cannot be known: the row
# of a file scored as one item; the file of a row when run() returned more rows than files.
LINEAGE_COLUMNS = ("_source_file", "_source_row", "_mini_batch")


def lineage_enabled(settings: dict[str, Any]) -> bool:
    """Whether a job's output rows carry :data:`LINEAGE_COLUMNS`: its ``lineage_columns`` setting,
    on by default for a Parquet output (a text output is Azure's format and keeps its fields)."""
    chosen = settings.get("lineage_columns")
    if chosen is not None:
        return bool(chosen)
    return settings.get("output_action", "append_row") == "append_row" and (
        part_format(settings["output_file_name"]) == "parquet"
    )


class RowLineage:
    """Where the rows of one mini-batch's result come from, worked out from what ``run()`` was given.

    Args:
        items: The mini-batch's items as planned: input paths (file mode) or chunk descriptors
            (tabular mode).
        given: What ``run()`` received: local paths (file mode; a remote file's is its local copy),
            or the DataFrame whose ``attrs["batchnb_sources"]`` says which file each run of rows is from.
    """

    def __init__(self, items: list[Any], given: Any) -> None:
        self.items = items
        self.given = given

    def _input_rows(self) -> tuple[Any, Any, list[str]] | None:
        """For a tabular mini-batch, each input row's file (a code into the list of files) and row
        in it, as numpy arrays; None in file mode. Built from the runs of rows, never row by row:
        this runs for every mini-batch of a job, on hundreds of thousands of rows."""
        import numpy as np

        if not is_dataframe(self.given):
            return None
        sources = self.given.attrs.get("batchnb_sources") or []
        if sum(count for _, _, count in sources) != len(self.given):
            return None
        names = [str(path) for path, _, _ in sources]
        counts = [count for _, _, count in sources]
        codes = np.repeat(np.arange(len(sources), dtype=np.int32), counts)
        runs = [np.arange(first, first + count, dtype=np.int64) for _, first, count in sources]
        rows = np.concatenate(runs) if runs else np.zeros(0, dtype=np.int64)
        return codes, rows, names

    def add_to(self, table: Any, frame: Any, idx: int) -> Any:
        """The Arrow ``table`` of result ``frame`` with the lineage columns appended (a column the
        result already has is kept as it is; the built-in MLflow driver names each row's file)."""
        import numpy as np
        import pandas as pd
        import pyarrow as pa

        n = len(frame)
        files: Any = pa.nulls(n, pa.string())
        rows: Any = pa.nulls(n, pa.int64())
        tabular = self._input_rows()
        if tabular is not None:
            codes, in_rows, names = tabular
            given = len(codes)
            index = frame.index
            # An index that may have been reset (0, 1, ... on fewer rows than were given) says nothing.
            reset = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and n != given
            kept = (
                n > 0 and not reset and pd.api.types.is_integer_dtype(index) and index.is_unique
                and 0 <= index.min() <= index.max() < given
            )  # fmt: skip
            positions = index.to_numpy() if kept else np.arange(n) if n == given else None
            # run() kept the input frame's index (a selection, or the frame itself), or its rows.
            if positions is not None:
                files = pa.DictionaryArray.from_arrays(pa.array(codes[positions]), pa.array(names, pa.string()))
                files = files.cast(pa.string())
                rows = pa.array(in_rows[positions], pa.int64())
            elif len(set(names)) == 1:
                files = pa.array([names[0]] * n, pa.string())
        else:
            local = {str(g): str(i) for g, i in zip(self.given, self.items, strict=False)}
            found: list[Any] = [None] * n
            if "_source_file" in frame.columns:  # a remote file's local copy, named back by its URL
                found = [local.get(str(f), f) for f in frame["_source_file"]]
            elif n == len(self.items):  # one result per file: Azure's contract for file mode
                found = [str(i) for i in self.items]
            elif len(self.items) == 1:
                found = [str(self.items[0])] * n
            files = pa.array(found, pa.string())
        names_in = table.column_names
        if "_source_file" in names_in and tabular is None:
            table = table.set_column(names_in.index("_source_file"), "_source_file", files)
        for name, values in (
            ("_source_file", files),
            ("_source_row", rows),
            ("_mini_batch", pa.array(np.full(n, idx, dtype=np.int64))),
        ):
            if name not in names_in:
                table = table.append_column(name, values)
        return table


def part_is_committed(path: Path) -> bool:
    """True if a part file the store counts as committed is really there (parts are not fsynced:
    after a power loss a resumed job scores a lost or truncated one again)."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if path.suffix == ".parquet":
        return size >= 12  # a Parquet file starts and ends with its magic bytes
    return size > 0


def preview(result: Any, limit: int = 10) -> str:
    """The first ``limit`` rows of a result as they would be written, for dry runs."""
    head = result.head(limit) if is_dataframe(result) else list(result)[:limit]
    return _to_text(head).decode("utf-8")


# Recorded before an upload, beside the stamps of the job's files: whatever is found at the
# destination later may be this job's upload whose stamp was never recorded (it stopped in between).
UPLOADING = "uploading"


def file_stamp(path: str) -> str | None:
    """What tells one written file from any other at ``path`` (None if there is none).

    Locally: its device, inode, size and modification time, which a rename or a hard link keeps,
    so a merged file stamped under its temporary name has the same stamp in place. Behind an fsspec
    URL: the filesystem's key for the file's current version.
    """
    if is_url(path):
        fs, remote = filesystem(path)
        try:
            return str(fs.ukey(remote))
        except FileNotFoundError:
            return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def is_foreign(destination: str, owned: Sequence[str]) -> bool:
    """True if a file is at ``destination`` and it is none of ``owned`` (the stamps of the files a
    job wrote there)."""
    if UPLOADING in owned:
        return False  # the job's own upload may be there, its stamp never recorded
    return file_stamp(destination) not in (None, *owned)


class ForeignOutputError(ConflictError):
    """The output file exists and is not the one this job's merge wrote: it is never replaced."""

    def __init__(self, destination: str) -> None:
        super().__init__(
            f"the output file {destination} exists and was not written by this job; "
            "batch jobs never overwrite an output"
        )
        self.destination = destination


def merge_parts(
    parts: Iterable[Path],
    destination: str,
    fmt: str,
    owned: Sequence[str] = (),
    record: Callable[[list[str]], None] | None = None,
    drop: Sequence[str] = (),
    built: tuple[Path, int] | None = None,
) -> int:
    """Concatenate part files, in the given order, into ``destination`` atomically.

    Only a file this job wrote is ever replaced: if ``destination`` exists and its
    :func:`file_stamp` is not one of ``owned`` (the stamps recorded by this job's earlier merges),
    the merge raises :class:`ForeignOutputError` and writes nothing there. ``record`` is called
    with the stamps to keep: the new file's, beside the old ones, before it is put in place (so a
    crash never leaves this job's own file unrecognised), then the new file's alone. ``destination``
    may be an fsspec URL, in which case the merged file is built locally and uploaded. ``drop``
    names Parquet columns left out of the merged file (the lineage columns, when not wanted).
    ``built`` is the merged file already written, with its count, on the destination's filesystem
    (see :mod:`batchnb.engine.merge_stream`): only put in place.

    Returns:
        The number of bytes (text) or rows (Parquet) written.
    """
    parts = list(parts)
    keep = record or (lambda stamps: None)
    if is_foreign(destination, owned):
        raise ForeignOutputError(destination)  # said before the work of merging
    if is_url(destination):
        local = Path(os.environ.get("TMPDIR", "/tmp")) / f"batchnb-{uuid.uuid4().hex}"
        try:
            count = merge_parts(parts, str(local), fmt, drop=drop)
            fs, path = filesystem(destination)
            keep([*owned, UPLOADING])
            # One upload of the whole file: object stores (a blob's staged blocks, an S3 multipart
            # upload) show the object only once it is complete, so a failed job leaves none.
            fs.put_file(str(local), path)
            keep([str(file_stamp(destination))])
        finally:
            local.unlink(missing_ok=True)
        return count
    dest = Path(destination)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = built[0] if built else dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        if built:
            count = built[1]
        elif fmt == "parquet":
            count = _merge_parquet(parts, tmp, drop)
        else:
            count = _merge_text(parts, tmp)
        new = str(file_stamp(str(tmp)))
        keep([*owned, new])
        _place(tmp, dest, owned)
        keep([new])
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _place(tmp: Path, dest: Path, owned: Sequence[str]) -> None:
    """Put the merged file in place, checking one last time that nobody else's file is there."""
    current = file_stamp(str(dest))
    if current is not None:
        if current not in owned:
            raise ForeignOutputError(str(dest))
        os.replace(tmp, dest)  # this job's own earlier output (rerun-failed)
        return
    try:
        # A hard link fails if the name exists: a file someone created since the check above is
        # never replaced (a rename would replace it silently).
        os.link(tmp, dest)
    except FileExistsError:
        raise ForeignOutputError(str(dest)) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        # A filesystem without hard links: the rename, right after the check, is the best left.
        os.replace(tmp, dest)


def _merge_text(parts: list[Path], tmp: Path) -> int:
    written = 0
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            written += part.stat().st_size
        out.flush()
        os.fsync(out.fileno())
    return written


def dictionary_columns(schema: Any) -> list[str]:
    """The columns of a job's Parquet output worth dictionary encoding: all but floating-point ones,
    whose values (predictions, scores) are rarely repeated, and on which trying a dictionary costs
    far more than writing the column plainly."""
    import pyarrow.types as pat

    return [field.name for field in schema if not pat.is_floating(field.type)]


def _merge_parquet(parts: list[Path], tmp: Path, drop: Sequence[str] = ()) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not parts:
        pq.write_table(pa.table({}), tmp)
        return 0
    # Parts may differ slightly (an all-null column in one mini-batch): write them under one schema.
    schema = pa.unify_schemas([pq.read_schema(p) for p in parts], promote_options="permissive")
    for name in drop:
        if name in schema.names:
            schema = schema.remove(schema.get_field_index(name))
    rows = 0
    with pq.ParquetWriter(tmp, schema, use_dictionary=dictionary_columns(schema)) as writer:
        for part in parts:
            table = pq.ParquetFile(part).read()
            for name in schema.names:
                if name not in table.column_names:
                    table = table.append_column(name, pa.nulls(len(table), schema.field(name).type))
            writer.write_table(table.select(schema.names).cast(schema))
            rows += len(table)
    return rows
