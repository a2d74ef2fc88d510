"""CSV files in tabular mode: cut into chunks of whole rows at byte offsets, each read on its own.

Planning reads the file once, streamed in blocks, and records where rows end, so a worker reads
only its chunk's bytes (a range request, for a file in cloud storage) plus the header line, as
Dask's ``read_csv`` reads byte blocks cut at line ends. Unlike a cut at any newline, a newline
inside a quoted field never ends a row: a newline ends one only where the number of ``"``
characters since the row began is even (an escaped quote, ``""``, counts two). Rows end at
``\n`` (or ``\r\n``); a bare ``\r`` outside quotes ends none, unlike for pandas. Blank lines
are not rows, as pandas skips them.

A chunk: ``{"path", "format": "csv", "header": [start, end], "byte_range": [start, end],
"first_row", "rows"}``, offsets in bytes, ``first_row`` the 0-based index of its first row in
the file.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import IO, Any

from ..errors import ValidationError

BLOCK = 1 << 22
_NEWLINE, _QUOTE, _CR = 10, 34, 13


def _row_ends(fh: IO[bytes]) -> Iterator[tuple[Any, Any]]:
    """For each block of the file: the offsets just past each record's newline, and whether each
    record holds anything (a blank line does not); then, if the file does not end in a newline,
    the offset of its end as a last record."""
    import numpy as np

    offset = 0
    in_quotes = 0
    last_end = 0
    last_byte = -1  # the byte before the current block (a blank "\r\n" may straddle two blocks)
    while True:
        block = fh.read(BLOCK)
        if not block:
            break
        data = np.frombuffer(block, dtype=np.uint8)
        quotes = np.cumsum(data == _QUOTE)
        newlines = np.flatnonzero(data == _NEWLINE)
        ends = newlines[(in_quotes + quotes[newlines]) % 2 == 0]
        in_quotes = int(in_quotes + quotes[-1]) % 2
        absolute = ends + offset + 1
        starts = np.concatenate(([last_end], absolute[:-1])) if len(absolute) else absolute
        lengths = absolute - starts
        # A record of one byte is "\n"; of two, "\r\n" when its first byte is a carriage return.
        first = np.where(ends >= 1, data[np.maximum(ends - 1, 0)], last_byte)
        blank = (lengths == 1) | ((lengths == 2) & (first == _CR))
        yield absolute, ~blank
        if len(absolute):
            last_end = int(absolute[-1])
        offset += len(block)
        last_byte = int(data[-1])
    if in_quotes:
        raise ValueError("a quoted field is never closed (an odd number of quote characters)")
    if offset > last_end:
        fh.seek(last_end)
        tail = fh.read(offset - last_end)
        yield np.array([offset]), np.array([bool(tail.strip())])


def plan(path: str, fh: IO[bytes], limit_rows: int | None, limit_bytes: int | None) -> Iterator[dict[str, Any]]:
    """Cut one CSV file into chunks of at most ``limit_rows`` rows (or about ``limit_bytes`` bytes).

    Args:
        path: The file's path or URL, as recorded in each chunk.
        fh: The file, open for reading in binary.
        limit_rows: Rows per chunk, or None.
        limit_bytes: Bytes per chunk (a chunk ends at the first row end past it), or None.

    Raises:
        ValidationError: a quoted field is never closed, or the file cannot be read.
    """
    header: list[int] | None = None
    start = first_row = rows = 0
    position = 0
    try:
        for ends, data_rows in _row_ends(fh):
            for end, is_row in zip(ends.tolist(), data_rows.tolist(), strict=True):
                if not is_row:
                    position = end
                    continue
                if header is None:
                    header = [position, end]
                    start = position = end
                    continue
                rows += 1
                position = end
                if (limit_rows and rows >= limit_rows) or (limit_bytes and end - start >= limit_bytes):
                    yield _chunk(path, header, start, end, first_row, rows)
                    start, first_row, rows = end, first_row + rows, 0
    except (ValueError, OSError) as exc:
        raise ValidationError(f"input file {path!r} is not a readable CSV file: {exc}", field="input") from None
    if header is None:
        raise ValidationError(f"input file {path!r} is empty: a CSV file needs a header line", field="input")
    if rows or first_row == 0:  # a file of a header alone is one chunk of no rows
        yield _chunk(path, header, start, position, first_row, rows)


def _chunk(path: str, header: list[int], start: int, end: int, first_row: int, rows: int) -> dict[str, Any]:
    return {
        "path": path,
        "format": "csv",
        "header": header,
        "byte_range": [start, end],
        "first_row": first_row,
        "rows": rows,
    }


def read(chunk: dict[str, Any], read_range: Callable[[int, int], bytes]) -> Any:
    """Read one chunk (its header line and its rows) into a pandas DataFrame.

    Args:
        chunk: A chunk made by :func:`plan`.
        read_range: Returns the file's bytes from a start offset to an end offset (a range
            request, for a file in cloud storage).
    """
    import pandas as pd

    head = read_range(*chunk["header"])
    start, end = chunk["byte_range"]
    body = read_range(start, end) if end > start else b""
    if not head.endswith(b"\n"):
        head += b"\n"
    return pd.read_csv(io.BytesIO(head + body))
