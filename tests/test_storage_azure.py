"""Cloud datastores against a real Azure Storage emulator (Azurite on loopback): the heart sample's
data uploaded to a blob container and scored by datastore URI, by blob URL and as a data asset; tabular
mode over Parquet and CSV blobs; keys kept out of the store and out of ``show``; a wrong key refused
by ``datastore check`` with the service's own words."""

from __future__ import annotations

import io
import json
import stat
from typing import Any

import pytest
from cli_helpers import error_line, run_cli
from engine_helpers import minibatches
from heart_helpers import HEART_FILES, heart_files_scored, output_rows, upload_heart
from storage_servers import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, new_root, require_module

from batchnb import BatchClient

require_module("adlfs", "batchnb[azure-storage]")


@pytest.fixture
def container(azurite: Azurite) -> str:
    """A new, empty blob container, its name."""
    return new_root(azurite.filesystem(), "c")


@pytest.fixture
def emulator_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Azurite:
    """AZURE_STORAGE_CONNECTION_STRING names Azurite, as Azure's tools read it (jobs inherit it)."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())
    return azurite


def test_the_heart_sample_scores_blobs_by_datastore_uri_by_url_and_as_a_data_asset(
    client: BatchClient, heart: str, emulator_env: Azurite, container: str
) -> None:
    upload_heart(emulator_env.filesystem(), f"{container}/heart")
    # Azure's YAML with only the account and the container: the connection string finds Azurite.
    ds = client.datastores.create_or_update(
        {"name": "blobs", "type": "azure_blob", "account_name": AZURITE_ACCOUNT, "container_name": container}
    )
    assert ds["credential_kind"] == "environment"
    assert "AZURE_STORAGE_CONNECTION_STRING" in ds["credentials_used"]
    assert client.datastores.check("blobs")["listed"] == ["heart"]

    by_uri = client.batch_endpoints.invoke(heart, input="azureml://datastores/blobs/paths/heart").wait(timeout=180)
    assert by_uri["status"] == "Completed", by_uri["error"]
    assert heart_files_scored(output_rows(by_uri)) == HEART_FILES
    # Workers read the blobs themselves: each mini-batch names its blob URLs, none a local copy.
    items = [item for mb in minibatches(client, by_uri["name"]) for item in json.loads(mb["items"])]
    assert all(item.startswith(f"wasbs://{container}@{AZURITE_ACCOUNT}.blob.") for item in items), items

    url = f"{emulator_env.blob_endpoint}/{container}/heart"
    by_url = client.batch_endpoints.invoke(heart, input=url).wait(timeout=180)
    assert by_url["status"] == "Completed", by_url["error"]
    assert heart_files_scored(output_rows(by_url)) == HEART_FILES

    client.data.create_or_update(
        {"name": "heart-blobs", "type": "uri_folder", "path": "azureml://datastores/blobs/paths/heart"}
    )
    as_asset = client.batch_endpoints.invoke(heart, input="azureml:heart-blobs@latest").wait(timeout=180)
    assert as_asset["status"] == "Completed", as_asset["error"]
    assert heart_files_scored(output_rows(as_asset)) == HEART_FILES


def test_an_account_key_is_kept_out_of_the_store_and_show_and_jobs_read_with_it(
    client: BatchClient,
    heart: str,
    azurite: Azurite,
    container: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    upload_heart(azurite.filesystem(), f"{container}/in")
    spec = {
        "name": "keyed",
        "type": "azure_blob",
        "account_name": AZURITE_ACCOUNT,
        "container_name": container,
        "endpoint": azurite.blob_endpoint,
        "protocol": "http",
        "credentials": {"account_key": AZURITE_KEY},
    }
    ws = client.workspace.root
    yml = ws.parent / "keyed.yml"
    yml.write_text(json.dumps(spec))
    code, out, err = run_cli("datastore", "create", "-f", str(yml), ws=ws)
    assert code == 0, err
    code, shown, err = run_cli("datastore", "show", "-n", "keyed", ws=ws)
    assert code == 0, err
    assert AZURITE_KEY not in out + shown
    record = json.loads(shown)
    assert record["credentials"] == {"account_key": "********"}
    assert record["credential_kind"] == "account_key"
    assert "secrets file" in record["credentials_used"]

    job = client.batch_endpoints.invoke(
        heart, input="azureml://datastores/keyed/paths/in", output_path="azureml://datastores/keyed/paths/out"
    ).wait(timeout=180)
    assert job["status"] == "Completed", job["error"]
    written = azurite.filesystem().cat_file(f"{container}/out/predictions.csv").decode().splitlines()
    assert heart_files_scored(written) == HEART_FILES

    # Nowhere in the store's files (the database and its write-ahead log), whatever a job recorded.
    for path in ws.glob("batchnb.db*"):
        assert AZURITE_KEY.encode() not in path.read_bytes(), path
    secrets_file = ws / "secrets" / "datastores.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_file.parent.stat().st_mode) == 0o700
    assert json.loads(secrets_file.read_text())["keyed"] == {"account_key": AZURITE_KEY}


def test_a_wrong_account_key_fails_datastore_check_with_the_service_s_message(
    client: BatchClient,
    azurite: Azurite,
    container: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    wrong = AZURITE_KEY.replace("Eby8", "Xby8")
    ws = client.workspace.root
    code, _, err = run_cli(
        "datastore", "create", "-n", "wrong", "--type", "azure_blob", "--set", f"account_name={AZURITE_ACCOUNT}",
        f"container_name={container}", f"endpoint={azurite.blob_endpoint}", "protocol=http",
        f"credentials.account_key={wrong}", ws=ws,
    )  # fmt: skip
    assert code == 0, err
    result = run_cli("datastore", "check", "-n", "wrong", ws=ws)
    line = error_line(result, "datastore wrong", "Server failed to authenticate the request", "AuthorizationFailure")
    assert result[0] == 9, line
    assert wrong not in line


def test_a_sas_token_reads_the_container_it_was_made_for(
    client: BatchClient,
    azurite: Azurite,
    container: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    azurite.filesystem().pipe_file(f"{container}/a.txt", b"hello")
    expiry = datetime.now(timezone.utc) + timedelta(hours=1)
    permission = ContainerSasPermissions(read=True, list=True)
    sas = generate_container_sas(
        AZURITE_ACCOUNT, container, account_key=AZURITE_KEY, permission=permission, expiry=expiry
    )
    client.datastores.create_or_update(
        {"name": "sas", "type": "azure_blob", "account_name": AZURITE_ACCOUNT, "container_name": container,
         "endpoint": azurite.blob_endpoint, "protocol": "http", "credentials": {"sas_token": sas}}
    )  # fmt: skip
    assert client.datastores.get("sas")["credentials"] == {"sas_token": "********"}
    assert client.datastores.check("sas")["listed"] == ["a.txt"]


def _parquet(rows: int, row_group: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(
        pa.table({"id": list(range(rows)), "x": [i * 0.5 for i in range(rows)]}), buf, row_group_size=row_group
    )
    return buf.getvalue()


def test_tabular_mode_reads_parquet_row_groups_and_csv_row_chunks_from_blobs(
    client: BatchClient, deploy: Any, emulator_env: Azurite, container: str
) -> None:
    fs = emulator_env.filesystem()
    fs.pipe_file(f"{container}/table/part.parquet", _parquet(100, 10))
    lines = ["id,text"] + [f'{i},"row {i}"' for i in range(50)]
    lines[8] = '7,"two\nlines"'  # a quoted newline: one row, not two
    fs.pipe_file(f"{container}/csv/rows.csv", ("\n".join(lines) + "\n").encode())
    client.datastores.create_or_update(
        {"name": "tables", "type": "azure_blob", "account_name": AZURITE_ACCOUNT, "container_name": container}
    )
    deploy(
        """
        def init():
            pass
        def run(mini_batch):
            return [str(i) for i in mini_batch.id]
        """,
        mini_batch_mode="tabular",
        mini_batch_size=25,
    )
    parquet = client.batch_endpoints.invoke("ep-test", input="azureml://datastores/tables/paths/table").wait(
        timeout=180
    )
    assert parquet["status"] == "Completed", parquet["error"]
    assert sorted(map(int, output_rows(parquet))) == list(range(100))
    chunks = [json.loads(mb["items"])[0] for mb in minibatches(client, parquet["name"])]
    assert [c["row_groups"] for c in chunks] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]

    csv = client.batch_endpoints.invoke("ep-test", input="azureml://datastores/tables/paths/csv").wait(timeout=180)
    assert csv["status"] == "Completed", csv["error"]
    assert sorted(map(int, output_rows(csv))) == list(range(50))
    assert [mb["n_items"] for mb in minibatches(client, csv["name"])] == [25, 25]
    assert csv["progress"]["items"] == {"total": 50, "succeeded": 50, "failed": 0}


def test_memory_urls_are_refused_at_invoke_with_the_reason(client: BatchClient, heart: str) -> None:
    from batchnb.errors import ValidationError

    with pytest.raises(ValidationError, match="memory:// files live inside one Python process"):
        client.batch_endpoints.invoke(heart, input="memory://data/in")
    assert client.jobs.list() == []


def test_datastore_fields_of_another_type_and_mixed_credentials_are_refused(client: BatchClient) -> None:
    from batchnb.errors import ValidationError

    base = {"name": "bad", "type": "azure_blob", "account_name": "acct", "container_name": "data"}
    with pytest.raises(ValidationError, match="bucket is not a field of a azure_blob datastore"):
        client.datastores.create_or_update({**base, "bucket": "b"})
    with pytest.raises(ValidationError, match="credentials mixes account_key and sas_token"):
        client.datastores.create_or_update({**base, "credentials": {"account_key": "k", "sas_token": "s"}})
    with pytest.raises(ValidationError, match="container_name is required for type azure_blob"):
        client.datastores.create_or_update({"name": "bad", "type": "azure_blob", "account_name": "acct"})
    assert [d["name"] for d in client.datastores.list()] == ["workspaceblobstore"]
    assert not (client.workspace.root / "secrets" / "datastores.json").exists()


def test_a_malformed_credential_is_refused_without_echoing_its_value(client: BatchClient) -> None:
    from batchnb.errors import ValidationError

    spec = {"name": "bad", "type": "azure_blob", "account_name": "acct", "container_name": "data"}
    with pytest.raises(ValidationError) as caught:
        client.datastores.create_or_update({**spec, "credentials": {"account_key": 987654321}})
    assert "credentials.account_key is required for account_key" in caught.value.message
    assert "987654321" not in caught.value.message
