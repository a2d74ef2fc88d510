"""A job's output built while the job runs: committed parts appended in input order.

A job's output is its parts concatenated in input order (:func:`batchnb.engine.output_location.merge`).
Merged only at the end, the job would wait while one thread reads every part again and writes the
output, every worker idle. So while the job runs, :class:`OutputStream` appends each part to a file
in the job's folder as soon as every mini-batch before it in input order has settled (committed, or
failed for good). At the end only the parts still missing are appended, and the merge puts the file
in place by its usual rules (it never replaces a file the job did not write).

The stream is a shortcut, never the record: the parts and the store are. Anything out of the
ordinary ends it, and the end merges from the parts as before: a mini-batch split to isolate bad
items (the order changes), a part whose schema differs from the first one's (the merge unifies
them), an output behind a URL or on another filesystem than the job's folder, any error. At the end
it is used only if the parts it holds are exactly the first of those the merge would take.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..specfile import is_url
from . import output

# The most the dispatch loop spends appending parts at a time (a resumed job catches up over several
# turns of the loop), so that its workers are never left waiting for their next mini-batch.
APPEND_BUDGET_S = 0.05


def _device(folder: Path) -> int:
    """The device of ``folder``, or of its nearest existing ancestor (where it will be made)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.stat(folder).st_dev


class OutputStream:
    """Appends a job's committed parts, in input order, to ``<job folder>/output.stream``.

    Args:
        job_dir: The job's folder; its parts are in ``parts/``.
        fmt: ``parquet`` or ``text`` (see :func:`batchnb.engine.output.part_format`).
        order: The job's mini-batches in input order, each ``(idx, rows)``: ``rows`` is the number
            of rows its committed part holds (0: no part), or None while it is not settled.
        drop: Parquet columns left out of the output (the lineage columns, when not wanted).
    """

    def __init__(self, job_dir: Path, fmt: str, order: Sequence[tuple[int, int | None]], drop: Sequence[str]) -> None:
        self.path = job_dir / "output.stream"
        self._parts_dir = job_dir / "parts"
        self._fmt = fmt
        self._order = [idx for idx, _ in order]
        self._rows: dict[int, int | None] = dict(order)
        self._drop = set(drop)
        self._cursor = 0
        self._appended: list[Path] = []
        self._count = 0  # rows (Parquet) or bytes (text) written
        self._out: Any = None  # the open file (text) or ParquetWriter
        self._schema: Any = None
        self.alive = True

    @classmethod
    def open(cls, spec: dict[str, Any], order: Sequence[tuple[int, int | None]]) -> OutputStream | None:
        """A stream for the job ``spec``, or None where its output cannot be built this way."""
        settings = spec["settings"]
        if settings["output_action"] != "append_row" or is_url(spec["output"]["path"]):
            return None
        job_dir = Path(spec["job_dir"])
        try:  # the finished file is put in place by a link or a rename: one filesystem
            if _device(job_dir) != _device(Path(spec["output"]["path"]).parent):
                return None
        except OSError:
            return None
        drop = () if output.lineage_enabled(settings) else output.LINEAGE_COLUMNS
        stream = cls(job_dir, output.part_format(settings["output_file_name"]), order, drop)
        stream.path.unlink(missing_ok=True)  # an earlier run's, never finished
        return stream

    def settled(self, idx: int, rows: int) -> None:
        """Mini-batch ``idx`` is committed with ``rows`` rows in its part (0: none), or failed for good."""
        self._rows[idx] = rows

    def advance(self) -> None:
        """Append the parts whose turn has come, for at most :data:`APPEND_BUDGET_S`."""
        deadline = time.monotonic() + APPEND_BUDGET_S
        while self.alive and self._cursor < len(self._order) and time.monotonic() < deadline:
            rows = self._rows.get(self._order[self._cursor])
            if rows is None:
                return  # not settled yet: the parts after it wait for it
            if rows:
                self._append(output.part_path(self._parts_dir, self._order[self._cursor], self._fmt))
            self._cursor += 1

    def _append(self, part: Path) -> None:
        try:
            if self._fmt == "parquet":
                self._append_parquet(part)
            else:
                if self._out is None:
                    self._out = open(self.path, "wb")  # noqa: SIM115 (closed in finish or abandon)
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, self._out, 1 << 20)
                self._count += part.stat().st_size
        except Exception:  # the merge at the end does it from the parts, and says what fails
            self.abandon()
            return
        if self.alive:
            self._appended.append(part)

    def _append_parquet(self, part: Path) -> None:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(part).read()
        table = table.drop_columns([c for c in table.column_names if c in self._drop])
        if self._out is None:
            self._schema = table.schema
            self._out = pq.ParquetWriter(
                self.path, self._schema, use_dictionary=output.dictionary_columns(self._schema)
            )
        elif not table.schema.equals(self._schema, check_metadata=False):
            self.abandon()  # the merge unifies the parts' schemas; the stream does not guess
            return
        self._out.write_table(table)
        self._count += len(table)

    def abandon(self) -> None:
        """Stop here and delete the file: the end merges from the parts."""
        self.alive = False
        if self._out is not None:
            with contextlib.suppress(Exception):
                self._out.close()
            self._out = None
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def finish(self, parts: Sequence[Path]) -> tuple[Path, int] | None:
        """Append what is missing of ``parts`` (the merge's, in its order) and close the file.

        Returns:
            The finished file and its rows (Parquet) or bytes (text); None if the stream does not
            hold the first of ``parts`` exactly, or holds none (then it is deleted).
        """
        if not self.alive or not self._appended or list(parts[: len(self._appended)]) != self._appended:
            self.abandon()
            return None
        for part in parts[len(self._appended) :]:
            self._append(part)
        if not self.alive:
            return None
        try:
            if self._fmt == "parquet":
                self._out.close()
            else:
                self._out.flush()
                os.fsync(self._out.fileno())
                self._out.close()
        except Exception:
            self.abandon()
            return None
        self._out = None
        self.alive = False
        return self.path, self._count
