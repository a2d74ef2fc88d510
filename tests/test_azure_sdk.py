"""``batchnb.azure.MLClient``: azure-ai-ml's notebooks, with only the client import changed.

notebooks/azure-sdk.ipynb runs a whole notebook in that style under nbval; these tests pin what a
notebook relies on one fact at a time: errors a notebook catches, entities that round-trip, inputs
kept as given, the scoring child job, and a failed job raising as azure-ai-ml does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("azure.ai.ml")

from azure.ai.ml import Input
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import (
    AmlCompute,
    BatchEndpoint,
    CodeConfiguration,
    Model,
    ModelBatchDeployment,
    ModelBatchDeploymentSettings,
)
from azure.core.exceptions import ResourceNotFoundError

from batchnb import BatchClient
from batchnb.azure import MLClient

SCRIPT = """
import os
import pandas as pd

def init():
    pass

def run(mini_batch):
    rows = []
    for f in mini_batch:
        if "bad" in os.path.basename(f):
            raise ValueError("a bad file: " + os.path.basename(f))
        frame = pd.read_csv(f)
        rows += [f"{os.path.basename(f)},{x * 3}" for x in frame["x"]]
    return rows
"""


@pytest.fixture
def ml_client(client: BatchClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MLClient:
    monkeypatch.chdir(tmp_path)
    return MLClient(None, "<SUBSCRIPTION_ID>", "<RESOURCE_GROUP>", "<AML_WORKSPACE_NAME>")


@pytest.fixture
def endpoint(ml_client: MLClient, model_dir: Path, tmp_path: Path) -> str:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text(SCRIPT)
    model = ml_client.models.create_or_update(Model(name="tiny", path=str(model_dir), type=AssetTypes.CUSTOM_MODEL))
    ml_client.begin_create_or_update(AmlCompute(name="batch-cluster", min_instances=0, max_instances=1)).result()
    ml_client.batch_endpoints.begin_create_or_update(BatchEndpoint(name="sdk-ep")).result()
    deployment = ModelBatchDeployment(
        name="blue",
        endpoint_name="sdk-ep",
        model=model,
        code_configuration=CodeConfiguration(code="code", scoring_script="score.py"),
        compute="batch-cluster",
        settings=ModelBatchDeploymentSettings(mini_batch_size=2, max_concurrency_per_instance=2, error_threshold=0),
    )
    ml_client.batch_deployments.begin_create_or_update(deployment).result()
    endpoint = ml_client.batch_endpoints.get("sdk-ep")
    endpoint.defaults.deployment_name = "blue"
    ml_client.batch_endpoints.begin_create_or_update(endpoint).result()
    return "sdk-ep"


def test_a_registered_model_passed_back_is_a_reference_not_a_new_version(ml_client, endpoint, client) -> None:
    assert [m["version"] for m in client.models.list("tiny")] == ["1"]
    deployment = ml_client.batch_deployments.get("blue", endpoint_name=endpoint)
    assert client.batch_deployments.get("blue", endpoint)["model"] == "azureml:tiny:1"
    assert ml_client.batch_endpoints.get(endpoint).defaults.deployment_name == "blue"
    # get → modify → update: a new revision with the change, the model still version 1.
    deployment.settings.mini_batch_size = 5
    ml_client.batch_deployments.begin_create_or_update(deployment).result()
    updated = client.batch_deployments.get("blue", endpoint)
    assert (updated["settings"]["mini_batch_size"], updated["revision"]) == (5, 2)
    assert [m["version"] for m in client.models.list("tiny")] == ["1"]


def test_invoke_on_a_data_asset_then_the_child_job_and_its_download(ml_client, endpoint, csv_inputs, tmp_path) -> None:
    from azure.ai.ml.entities import Data

    csv_inputs(6)
    ml_client.data.create_or_update(Data(name="unlabeled", path="data", type=AssetTypes.URI_FOLDER))
    data = ml_client.data.get(name="unlabeled", label="latest")
    assert data.id == "azureml:unlabeled:1"
    job = ml_client.batch_endpoints.invoke(
        endpoint_name=endpoint, input=Input(type=AssetTypes.URI_FOLDER, path=data.id)
    )
    ml_client.jobs.stream(job.name)
    children = list(ml_client.jobs.list(parent_job_name=job.name))
    assert [c.name for c in children] == [f"{job.name}-batchscoring"]
    child = children[0]
    assert (child.status, child.type, child.parent_job_name) == ("Completed", "parallel", job.name)
    assert child.creation_context.last_modified_at >= child.creation_context.created_at
    ml_client.jobs.download(name=child.name, download_path="out", output_name="score")
    lines = (tmp_path / "out" / "named-outputs" / "score" / "predictions.csv").read_text().splitlines()
    assert sorted(lines) == sorted(f"f{i:03d}.csv,{i * 3}" for i in range(6))


def test_an_input_object_keeps_its_type(ml_client, endpoint, csv_inputs) -> None:
    folder = csv_inputs(3)
    job = ml_client.batch_endpoints.invoke(
        endpoint_name=endpoint, input=Input(type=AssetTypes.URI_FILE, path=str(folder / "f001.csv"))
    )
    assert job.inputs["input_data"].type == AssetTypes.URI_FILE
    ml_client.jobs.stream(job.name)
    assert ml_client.jobs.get(job.name).record["progress"]["items"]["succeeded"] == 1


def test_a_failed_job_raises_job_exception_from_stream(ml_client, endpoint, tmp_path) -> None:
    from azure.ai.ml.exceptions import JobException

    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "bad.csv").write_text("x\n1\n")
    job = ml_client.batch_endpoints.invoke(endpoint_name=endpoint, input=Input(path=str(folder)))
    with pytest.raises(JobException, match="Failed"):
        ml_client.jobs.stream(job.name)


def test_what_does_not_exist_raises_azure_cores_error(ml_client) -> None:
    with pytest.raises(ResourceNotFoundError, match="nope"):
        ml_client.compute.get("nope")
    with pytest.raises(ResourceNotFoundError):
        ml_client.batch_endpoints.get("nope")


def test_from_config_opens_the_workspace_folder_it_names(client, tmp_path, monkeypatch) -> None:
    client.batch_endpoints.create_or_update({"name": "in-that-ws"})
    elsewhere = tmp_path / "project" / "nested"
    elsewhere.mkdir(parents=True)
    (tmp_path / "project" / "config.json").write_text(
        json.dumps({"subscription_id": "s", "resource_group": "r", "workspace_name": str(client.workspace.root)})
    )
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("BATCHNB_WORKSPACE")
    ml_client = MLClient.from_config(credential=None)
    assert [e.name for e in ml_client.batch_endpoints.list()] == ["in-that-ws"]


def test_the_cli_lists_a_batch_jobs_scoring_child(ml_client, endpoint, csv_inputs) -> None:
    job = ml_client.batch_endpoints.invoke(endpoint_name=endpoint, input=Input(path=str(csv_inputs(2))))
    ml_client.jobs.stream(job.name)
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchnb",
            "job",
            "list",
            "--parent-job-name",
            job.name,
            "--query",
            "[].name",
            "-o",
            "tsv",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.split() == [f"{job.name}-batchscoring"]


def test_importing_batchnb_imports_no_azure_sdk_and_a_missing_sdk_names_the_extra(tmp_path) -> None:
    probe = (
        "import sys, batchnb, batchnb.azure; assert 'azure.ai.ml' not in sys.modules\n"
        "sys.modules['azure.ai.ml'] = None\n"
        "from batchnb.errors import MissingDependencyError\n"
        "try:\n    batchnb.azure.MLClient()\nexcept MissingDependencyError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert "pip install 'batchnb[azure]'" in done.stdout
