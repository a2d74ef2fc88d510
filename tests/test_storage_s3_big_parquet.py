"""Tabular mode over a 1 GiB Parquet file in S3 (moto's server on loopback) fetches the file's row
groups with range requests, each once, and nothing else but its footer: the datastore's endpoint is a
recording proxy in front of the server, which counts the bytes of every response."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from engine_helpers import minibatches, output_file
from recording_proxy import recording_proxy
from storage_servers import S3Server, new_root, require_module

from batchnb import BatchClient

require_module("s3fs", "batchnb[s3]")

ROW_BYTES = 64 << 10  # one row: 64 KiB of random bytes
ROWS_PER_GROUP = 1024  # 64 MiB row groups
GROUPS = 16  # 1 GiB of row groups, and a footer
GROUPS_PER_MINI_BATCH = 4  # four mini-batches, over two workers
# pyarrow opens a Parquet file by reading its last 64 KiB (its default footer read), which holds the
# footer (a few KiB here) and the end of the last row group.
FOOTER_READ = 64 << 10

# One line per row: the length and CRC-32 of its bytes, as the worker read them. The rows' bytes are
# random, so these lines (almost surely) tell the rows apart: a row scored twice, or not at all, shows.
SCORE = """
import zlib
def init():
    pass
def run(mini_batch):
    return [f"{len(b)} {zlib.crc32(b)}" for b in mini_batch.blob]
"""


def _write_parquet(path: Path) -> list[str]:
    """Write the 1 GiB file one row group at a time (uncompressed random bytes, so that its size on
    disk is its size in memory); return the lines the scoring script should write for its rows.

    One column, so one range request per row group: moto reads the whole object for each request
    it answers (half a second for 1 GiB), which makes the number of requests the test's cost."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(22)
    offsets = pa.py_buffer(np.arange(0, (ROWS_PER_GROUP + 1) * ROW_BYTES, ROW_BYTES, dtype=np.int32))
    schema = pa.schema([("blob", pa.binary())])
    expected = []
    with pq.ParquetWriter(path, schema, compression="none", use_dictionary=False, write_statistics=False) as writer:
        for _ in range(GROUPS):
            data = rng.bytes(ROWS_PER_GROUP * ROW_BYTES)
            blob = pa.BinaryArray.from_buffers(pa.binary(), ROWS_PER_GROUP, [None, offsets, pa.py_buffer(data)])
            writer.write_table(pa.table([blob], schema=schema), row_group_size=ROWS_PER_GROUP)
            view = memoryview(data)
            for r in range(ROWS_PER_GROUP):
                expected.append(f"{ROW_BYTES} {zlib.crc32(view[r * ROW_BYTES : (r + 1) * ROW_BYTES])}")
    return expected


def _row_group_spans(path: Path) -> list[tuple[int, int]]:
    """``(start, end)`` of each row group's bytes in the file: its column chunks, which lie end to end."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    spans = []
    for g in range(meta.num_row_groups):
        chunks = [meta.row_group(g).column(c) for c in range(meta.num_columns)]
        start = min(c.dictionary_page_offset or c.data_page_offset for c in chunks)
        spans.append((start, start + sum(c.total_compressed_size for c in chunks)))
    return spans


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """``(start, end)`` (end exclusive) of a ``Range: bytes=a-b`` header, clipped to the file."""
    unit, _, spec = header.partition("=")
    assert unit == "bytes" and "," not in spec, header
    first, _, last = spec.partition("-")
    return int(first), min(int(last) + 1, size)


def test_tabular_mode_fetches_only_the_row_groups_of_a_1_gib_parquet_file(
    client: BatchClient, deploy: Any, s3_server: S3Server, tmp_path: Path
) -> None:
    local = tmp_path / "big.parquet"
    fs = s3_server.filesystem()
    bucket = new_root(fs, "b")
    key = f"{bucket}/in/big.parquet"
    try:
        expected = _write_parquet(local)
        size = local.stat().st_size
        spans = _row_group_spans(local)
        assert size >= 1 << 30
        # One PUT: moto takes twice as long over a multipart upload of this size.
        fs.put_file(str(local), key, chunksize=size)
    finally:
        local.unlink(missing_ok=True)
    try:
        with recording_proxy(s3_server.endpoint_url) as proxy:
            client.datastores.create_or_update(
                {
                    "name": "lake",
                    "type": "s3",
                    "bucket": bucket,
                    "endpoint_url": proxy.url,
                    "credentials": {"access_key_id": "testing", "secret_access_key": "testing"},
                }
            )
            deploy(
                SCORE,
                mini_batch_mode="tabular",
                mini_batch_size=GROUPS_PER_MINI_BATCH * ROWS_PER_GROUP,
                max_concurrency_per_instance=2,
            )
            job = client.batch_endpoints.invoke("ep-test", input="azureml://datastores/lake/paths/in").wait(timeout=240)
            requests = proxy.requests_for(f"/{key}")
    finally:
        fs.rm(key)
    assert job["status"] == "Completed", job["error"]

    # Every row was scored once, with the bytes that were written.
    assert sorted(output_file(job).read_text().splitlines()) == sorted(expected)
    batches = [json.loads(mb["items"])[0]["row_groups"] for mb in minibatches(client, job["name"])]
    assert batches == [list(range(g, g + GROUPS_PER_MINI_BATCH)) for g in range(0, GROUPS, GROUPS_PER_MINI_BATCH)]

    # The object was read with range requests only, never whole.
    gets = [r for r in requests if r.method == "GET"]
    assert gets and all(r.range is not None and r.status == 206 for r in gets), gets
    ranges = [_byte_range(r.range or "", size) for r in gets]
    assert [r.body_bytes for r in gets] == [end - start for start, end in ranges]
    # In all, the file's size and a footer read by the planner and by each mini-batch.
    fetched = sum(r.body_bytes for r in gets)
    assert fetched <= size + (1 + len(batches)) * FOOTER_READ <= 1.01 * size, (fetched, size)

    # Each request lay within the row groups of one mini-batch (or was a footer read), and each
    # mini-batch fetched its row groups' bytes exactly once.
    footer_reads = [(s, e) for s, e in ranges if e == size and e - s <= FOOTER_READ]
    assert len(footer_reads) == 1 + len(batches), footer_reads
    fetched_by_batch = [0] * len(batches)
    for start, end in ranges:
        if (start, end) in footer_reads:
            continue
        owners = [b for b, groups in enumerate(batches) if spans[groups[0]][0] <= start and end <= spans[groups[-1]][1]]
        assert len(owners) == 1, f"bytes {start}-{end} cross the row groups of mini-batches"
        fetched_by_batch[owners[0]] += end - start
    own_bytes = [spans[groups[-1]][1] - spans[groups[0]][0] for groups in batches]
    assert fetched_by_batch == own_bytes
