"""S3 datastores and s3:// URLs against a real S3 server (moto's server mode on loopback): a keyed
datastore read in tabular mode and written to, and a bare s3:// URL read with the environment's
credentials, as boto reads them."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import minibatches
from storage_servers import S3Server, new_root, require_module

from batchnb import BatchClient

require_module("s3fs", "batchnb[s3]")

SECRET = "moto-secret-" + uuid.uuid4().hex


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return new_root(s3_server.filesystem(), "b")


ECHO_IDS = """
def init():
    pass
def run(mini_batch):
    return [str(i) for i in mini_batch.id]
"""


def _parquet(rows: int, row_group: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    table = pa.table({"id": list(range(rows)), "x": [float(i) for i in range(rows)]})
    pq.write_table(table, buf, row_group_size=row_group)
    return buf.getvalue()


def test_an_s3_datastore_with_keys_is_read_by_row_groups_and_written_to(
    client: BatchClient, deploy: Any, s3_server: S3Server, bucket: str
) -> None:
    fs = s3_server.filesystem()
    fs.pipe_file(f"{bucket}/in/big.parquet", _parquet(120, 20))
    ds = client.datastores.create_or_update(
        {
            "name": "lake",
            "type": "s3",
            "bucket": bucket,
            "endpoint_url": s3_server.endpoint_url,
            "credentials": {"access_key_id": "testing", "secret_access_key": SECRET},
        }
    )
    assert ds["credentials"] == {"access_key_id": "********", "secret_access_key": "********"}
    assert ds["path"] == f"s3://{bucket}"
    assert client.datastores.check("lake")["listed"] == ["in"]
    deploy(ECHO_IDS, mini_batch_mode="tabular", mini_batch_size=40, max_concurrency_per_instance=2)

    job = client.batch_endpoints.invoke(
        "ep-test", input="azureml://datastores/lake/paths/in", output_path="azureml://datastores/lake/paths/out"
    ).wait(timeout=180)
    assert job["status"] == "Completed", job["error"]
    assert job["outputs"]["score"]["path"] == f"s3://{bucket}/out"
    written = fs.cat_file(f"{bucket}/out/predictions.csv").decode().split()
    assert sorted(map(int, written)) == list(range(120))
    # One large file spread over the workers: three mini-batches of two row groups each.
    chunks = [json.loads(mb["items"])[0] for mb in minibatches(client, job["name"])]
    assert [c["row_groups"] for c in chunks] == [[0, 1], [2, 3], [4, 5]]
    for path in client.workspace.root.glob("batchnb.db*"):
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_bare_s3_url_is_read_with_the_environment_s_credentials(
    client: BatchClient, deploy: Any, s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = s3_server.filesystem()
    for i in range(4):
        fs.pipe_file(f"{bucket}/files/f{i}.csv", f"id,y\n{i},{2 * i}\n".encode())
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    deploy(
        """
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            return [str(pd.read_csv(f).id[0]) for f in mini_batch]
        """,
        mini_batch_size=2,
    )
    job = client.batch_endpoints.invoke("ep-test", input=f"s3://{bucket}/files").wait(timeout=180)
    assert job["status"] == "Completed", job["error"]
    out = job["outputs"]["score"]
    assert Path(out["path"], out["file_name"]).read_text().split() == ["0", "1", "2", "3"]


def test_a_mini_batch_s_files_are_copied_in_input_order_whole_and_once(
    s3_server: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchnb.cloud.fs import download

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    fs = s3_server.filesystem()
    for i in range(3):
        fs.pipe_file(f"{bucket}/d/f{i}.txt", f"remote {i}".encode())
    here = tmp_path / "here.txt"
    here.write_text("local")
    items = [f"s3://{bucket}/d/f0.txt", str(here), f"s3://{bucket}/d/f1.txt", f"s3://{bucket}/d/f2.txt"]

    paths = download(items, tmp_path / "copies")
    assert [Path(p).read_text() for p in paths] == ["remote 0", "local", "remote 1", "remote 2"]
    # A retried mini-batch finds its copies: they are not fetched again.
    fs.rm(f"{bucket}/d/f1.txt")
    assert download(items, tmp_path / "copies") == paths
    # A file that cannot be fetched fails the call and leaves no partial copy behind.
    with pytest.raises(FileNotFoundError):
        download([f"s3://{bucket}/d/gone.txt"], tmp_path / "copies")
    left = sorted(p.name for p in (tmp_path / "copies").rglob("*") if p.is_file())
    assert left == ["f0.txt", "f1.txt", "f2.txt"]
