"""CSV files cut into row chunks (tabular mode): whatever the file holds, the chunks read back are the
file pandas reads, in order, each with the rows it said it had."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchnb.engine import csv_chunks
from batchnb.errors import ValidationError

_cell = st.text(alphabet=st.sampled_from(list('ab ,"\n\r1')), max_size=6)


def _chunks_read(path: Path, limit_rows: int | None, limit_bytes: int | None) -> tuple[list[dict], pd.DataFrame]:
    with open(path, "rb") as fh:
        chunks = list(csv_chunks.plan(str(path), fh, limit_rows, limit_bytes))
    data = path.read_bytes()
    frames = [csv_chunks.read(c, lambda start, end: data[start:end]) for c in chunks]
    return chunks, pd.concat(frames, ignore_index=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(_cell, _cell), min_size=1, max_size=30),
    blank_lines=st.lists(st.integers(min_value=0, max_value=30), max_size=3),
    limit=st.integers(min_value=1, max_value=7),
    block=st.integers(min_value=1, max_value=64),
    crlf=st.booleans(),
)
def test_chunks_read_back_as_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows, blank_lines, limit, block, crlf
) -> None:
    monkeypatch.setattr(csv_chunks, "BLOCK", block)  # rows and quotes straddle the blocks of the scan
    buf = io.StringIO()
    # Strings quoted: a bare carriage return ends no row here (rows end at "\n"), while pandas would end one.
    writer = csv.writer(buf, lineterminator="\r\n" if crlf else "\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(["k", "a", "b"])
    for i, (a, b) in enumerate(rows):
        writer.writerow([i, f"x{a}", f"y{b}"])  # never an empty field: pandas would read it as NaN
    end = "\r\n" if crlf else "\n"
    lines = buf.getvalue().split(end)
    for at in blank_lines:  # a blank line between two rows (never inside a quoted field)
        if 0 < at < len(lines) and end.join(lines[:at]).count('"') % 2 == 0:
            lines.insert(at, "")
    text = end.join(lines)
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    whole = pd.read_csv(path)

    chunks, read = _chunks_read(path, limit, None)
    pd.testing.assert_frame_equal(read, whole)
    assert [c["rows"] for c in chunks][:-1] == [limit] * (len(chunks) - 1)
    assert sum(c["rows"] for c in chunks) == len(whole)
    assert [c["first_row"] for c in chunks] == [sum(c["rows"] for c in chunks[:i]) for i in range(len(chunks))]


def test_blank_lines_are_not_rows_and_a_missing_last_newline_is_a_row(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"id,v\n1,a\n\n2,b\r\n\r\n3,c")
    chunks, read = _chunks_read(path, 2, None)
    assert [c["rows"] for c in chunks] == [2, 1]
    assert read.id.tolist() == [1, 2, 3]


def test_a_size_in_bytes_cuts_at_the_first_row_end_past_it(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"id\n" + b"".join(f"{i:04d}\n".encode() for i in range(10)))  # 5 bytes a row
    chunks, read = _chunks_read(path, None, 12)
    assert [c["rows"] for c in chunks] == [3, 3, 3, 1]
    assert read.id.tolist() == list(range(10))


def test_an_unclosed_quote_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b'id,v\n1,"never closed\n2,b\n')
    with pytest.raises(ValidationError, match=r"t.csv' is not a readable CSV file: a quoted field is never closed"):
        _chunks_read(path, 10, None)
