"""GCS datastores and gs:// URLs against a real server of Google Cloud Storage's JSON API
(gcp-storage-emulator on loopback, read anonymously): the heart sample's data scored by datastore
URI and by gs:// URL, its output written to the bucket, and ``datastore check`` listing the root."""

from __future__ import annotations

import pytest
from heart_helpers import HEART_FILES, heart_files_scored, output_rows, upload_heart
from storage_servers import GcsServer, new_root, require_module

from batchnb import BatchClient

require_module("gcsfs", "batchnb[gcs]")


@pytest.fixture
def bucket(gcs_server: GcsServer) -> str:
    """A new, empty bucket, its name."""
    return new_root(gcs_server.filesystem(), "b")


def test_the_heart_sample_scores_a_gcs_bucket_by_datastore_uri_and_by_gs_url(
    client: BatchClient, heart: str, gcs_server: GcsServer, bucket: str
) -> None:
    storage = gcs_server.filesystem()
    upload_heart(storage, f"{bucket}/heart")
    ds = client.datastores.create_or_update(
        {"name": "gcsdata", "type": "gcs", "bucket": bucket, "endpoint_url": gcs_server.endpoint_url,
         "credentials": "none"}
    )  # fmt: skip
    assert (ds["path"], ds["credential_kind"]) == (f"gs://{bucket}", "none")
    assert client.datastores.check("gcsdata")["listed"] == ["heart"]

    by_uri = client.batch_endpoints.invoke(
        heart, input="azureml://datastores/gcsdata/paths/heart", output_path="azureml://datastores/gcsdata/paths/out"
    ).wait(timeout=180)
    assert by_uri["status"] == "Completed", by_uri["error"]
    written = storage.cat_file(f"{bucket}/out/predictions.csv").decode().splitlines()
    assert heart_files_scored(written) == HEART_FILES

    # A gs:// URL inside the datastore's bucket is read with the datastore's endpoint and credentials.
    by_url = client.batch_endpoints.invoke(heart, input=f"gs://{bucket}/heart").wait(timeout=180)
    assert by_url["status"] == "Completed", by_url["error"]
    assert sorted(output_rows(by_url)) == sorted(written)
    assert client.datastores.check("gcsdata")["listed"] == ["heart", "out"]
