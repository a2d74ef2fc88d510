"""Reading a tabular mini-batch: its chunks (Parquet row groups, CSV byte ranges), as planned by
:func:`batchnb.engine.planner.plan_tabular_minibatches`, into the DataFrame ``run()`` is given."""

from __future__ import annotations

import contextlib
from typing import Any

from ..cloud.fs import open_input, range_reader
from ..specfile import is_url
from . import csv_chunks


def read_chunks(chunks: list[dict[str, Any]]) -> Any:
    """Read tabular chunk descriptors (Parquet ``{path, row_groups}``, or a CSV chunk of
    :mod:`batchnb.engine.csv_chunks`) into one pandas DataFrame.

    Only a chunk's own bytes are read: its Parquet row groups, its CSV byte range and header line
    (range requests, for a file in cloud storage).

    The frame's ``attrs["batchnb_sources"]`` says where its rows come from: a list of
    ``(path, first_row, count)``, one per contiguous run of rows of one file, in frame order, with
    ``first_row`` the 0-based index of the run's first row within its file, so a scoring script
    can report each row's position in its file.
    """
    import pandas as pd

    frames = []
    sources: list[tuple[str, int, int]] = []
    for chunk in chunks:
        path = chunk["path"]
        if chunk.get("format") == "csv":
            frame = csv_chunks.read(chunk, range_reader(path))
            sources.append((path, int(chunk["first_row"]), len(frame)))
        elif path.lower().endswith(".csv"):  # planned before CSV files were cut (a resumed job)
            with open_input(path) as fh:
                frame = pd.read_csv(fh)
            sources.append((path, 0, len(frame)))
        else:
            import pyarrow.parquet as pq

            # A local file is read by Arrow's own I/O, a URL through its filesystem's file object,
            # which fetches just what Arrow asks for: the footer, then the chunk's column chunks.
            with contextlib.nullcontext(path) if not is_url(path) else open_input(path, read_ahead=False) as source:
                pf = pq.ParquetFile(source)
                groups = chunk["row_groups"]
                table = pf.read() if groups is None else pf.read_row_groups(groups)
                # One block per column, built as the Arrow table is freed: pandas' default copies
                # every column once more into one 2-D block, which run() never needs and pays for
                # on each mini-batch (an operation that wants it consolidates then).
                frame = table.to_pandas(split_blocks=True, self_destruct=True)
                del table
                if groups is None:
                    sources.append((path, 0, len(frame)))
                else:
                    sources.extend(_row_group_runs(path, pf.metadata, groups))
        frames.append(frame)
    result = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    result.attrs["batchnb_sources"] = sources
    return result


def _row_group_runs(path: str, meta: Any, groups: list[int]) -> list[tuple[str, int, int]]:
    """``(path, first_row, count)`` for each contiguous run of row groups, in the order read."""
    starts, row = [], 0
    for i in range(meta.num_row_groups):
        starts.append(row)
        row += meta.row_group(i).num_rows
    runs: list[tuple[str, int, int]] = []
    for g in groups:
        start, count = starts[g], meta.row_group(g).num_rows
        if runs and runs[-1][1] + runs[-1][2] == start:
            runs[-1] = (path, runs[-1][1], runs[-1][2] + count)
        else:
            runs.append((path, start, count))
    return runs
