"""``batchnb.azure.MLClient``: azure-ai-ml's notebooks, with only the client import changed.

notebooks/azure-sdk.ipynb runs a whole notebook in that style under nbval; these tests pin what a
notebook relies on one fact at a time: errors a notebook catches, entities that round-trip, inputs
kept as given, the scoring child job, and a failed job raising as azure-ai-ml does.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("azure.ai.ml")

from azure.ai.ml import Input, load_component
from azure.ai.ml.constants import AssetTypes, BatchDeploymentOutputAction
from azure.ai.ml.dsl import pipeline
from azure.ai.ml.entities import (
    AmlCompute,
    BatchEndpoint,
    CodeConfiguration,
    Model,
    ModelBatchDeployment,
    ModelBatchDeploymentSettings,
    PipelineComponentBatchDeployment,
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

# A command component in Azure's YAML: the sum of column x over a folder of CSV files, doubled or not.
TALLY_YML = """
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: tally
version: 1
type: command
inputs:
  data:
    type: uri_folder
  double:
    type: boolean
    default: true
outputs:
  total:
    type: uri_folder
code: src
environment: azureml:tally-env@latest
command: python tally.py ${{inputs.data}} ${{inputs.double}} ${{outputs.total}}
"""

TALLY_PY = """
import pathlib, sys

data, double, out = sys.argv[1:]
total = sum(int(f.read_text().splitlines()[1].split(",")[0]) for f in pathlib.Path(data).glob("*.csv"))
pathlib.Path(out, "total.txt").write_text(str(total * 2 if double.lower() == "true" else total))
"""


def write_tally(folder: Path) -> str:
    """The tally component's files under ``folder``; returns its YAML's path."""
    (folder / "tally" / "src").mkdir(parents=True)
    (folder / "tally" / "src" / "tally.py").write_text(TALLY_PY)
    (folder / "tally" / "tally.yml").write_text(TALLY_YML)
    return "tally/tally.yml"


@pytest.fixture
def ml_client(client: BatchClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MLClient:
    monkeypatch.chdir(tmp_path)
    return MLClient(None, "<SUBSCRIPTION_ID>", "<RESOURCE_GROUP>", "<AML_WORKSPACE_NAME>")


def _deploy(
    ml_client: MLClient, model_dir: Path, endpoint: str, name: str, code: str, settings: ModelBatchDeploymentSettings
) -> None:
    """Register the tiny model, an AmlCompute that keeps no warm standby, the endpoint, and a
    deployment of the scoring script in folder ``code``, as an Azure notebook does."""
    model = ml_client.models.create_or_update(Model(name="tiny", path=str(model_dir), type=AssetTypes.CUSTOM_MODEL))
    ml_client.begin_create_or_update(
        AmlCompute(name="batch-cluster", min_instances=0, max_instances=1, idle_time_before_scale_down=0)
    ).result()
    ml_client.batch_endpoints.begin_create_or_update(BatchEndpoint(name=endpoint)).result()
    deployment = ModelBatchDeployment(
        name=name,
        endpoint_name=endpoint,
        model=model,
        code_configuration=CodeConfiguration(code=code, scoring_script="score.py"),
        compute="batch-cluster",
        settings=settings,
    )
    ml_client.batch_deployments.begin_create_or_update(deployment).result()


@pytest.fixture
def endpoint(ml_client: MLClient, model_dir: Path, tmp_path: Path) -> str:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text(SCRIPT)
    settings = ModelBatchDeploymentSettings(mini_batch_size=2, max_concurrency_per_instance=2, error_threshold=0)
    _deploy(ml_client, model_dir, "sdk-ep", "blue", "code", settings)
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


def test_a_scoring_script_writing_its_own_files_finds_the_output_folder(ml_client, model_dir, csv_inputs, tmp_path):
    # summary_only: run() writes one file per input into AZUREML_BI_OUTPUT_PATH, which Azure mounts
    # before run() is called.
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "score.py").write_text(
        "import os, pathlib\n"
        "def init():\n    global out\n    out = os.environ['AZUREML_BI_OUTPUT_PATH']\n"
        "def run(mini_batch):\n"
        "    for f in mini_batch:\n"
        "        x = int(pathlib.Path(f).read_text().splitlines()[1].split(',')[0])\n"
        "        pathlib.Path(out, pathlib.Path(f).stem + '.txt').write_text(str(x * 3))\n"
        "    return mini_batch\n"
    )
    csv_inputs(4)
    settings = ModelBatchDeploymentSettings(mini_batch_size=2, output_action=BatchDeploymentOutputAction.SUMMARY_ONLY)
    _deploy(ml_client, model_dir, "own-files", "writer", "own", settings)
    job = ml_client.batch_endpoints.invoke(
        endpoint_name="own-files", deployment_name="writer", input=Input(type=AssetTypes.URI_FOLDER, path="data")
    )
    ml_client.jobs.stream(job.name)
    (scoring_job,) = ml_client.jobs.list(parent_job_name=job.name)
    ml_client.jobs.download(name=scoring_job.name, download_path="out", output_name="score")
    written = sorted((tmp_path / "out" / "named-outputs" / "score").glob("*.txt"))
    assert {f.name: f.read_text() for f in written} == {f"f{i:03d}.txt": str(i * 3) for i in range(4)}


def test_a_registered_component_in_a_python_pipeline_job(ml_client, client, csv_inputs, tmp_path):
    csv_inputs(4)  # x = 0..3
    ml_client.components.create_or_update(load_component(source=write_tally(tmp_path)))
    tally = ml_client.components.get("tally", label="latest")  # as on Azure: a component a pipeline calls

    @pipeline()
    def totals(input_data: Input(type=AssetTypes.URI_FOLDER)):
        step = tally(data=input_data, double=False)
        return {"total": step.outputs.total}

    pipeline_job = totals(input_data=Input(type=AssetTypes.URI_FOLDER, path="data"))
    pipeline_job.settings.default_datastore = "workspaceblobstore"
    run = ml_client.jobs.create_or_update(pipeline_job, experiment_name="tallies")
    ml_client.jobs.stream(run.name)
    steps = {s.properties["azureml.moduleName"]: s for s in ml_client.jobs.list(parent_job_name=run.name)}
    assert steps["tally"].status == "Completed"
    assert client.jobs.get(steps["tally"].name)["component"]["version"] == "1"  # the registered version ran
    assert ml_client.jobs.get(run.name).experiment_name == "tallies"
    ml_client.jobs.download(name=run.name, download_path="out", output_name="total")
    # double=False stays False (azure-ai-ml writes a boolean as 0), the local folder is read as given.
    assert (tmp_path / "out" / "named-outputs" / "total" / "total.txt").read_text() == "6"


def test_pipelines_built_in_python_deploy_registered_or_inline(ml_client, csv_inputs, tmp_path):
    csv_inputs(3)  # x = 0..2
    tally = load_component(source=write_tally(tmp_path))

    @pipeline()
    def plain_total(input_data: Input(type=AssetTypes.URI_FOLDER)):
        return {"total": tally(data=input_data, double=False).outputs.total}

    @pipeline()
    def doubled_total(input_data: Input(type=AssetTypes.URI_FOLDER)):
        return {"total": tally(data=input_data, double=True).outputs.total}

    ml_client.batch_endpoints.begin_create_or_update(BatchEndpoint(name="totals")).result()
    registered = ml_client.components.create_or_update(plain_total().component)
    for name, component in (("registered", registered), ("inline", doubled_total._pipeline_builder.build())):
        deployment = PipelineComponentBatchDeployment(
            name=name, endpoint_name="totals", component=component, settings={"continue_on_step_failure": False}
        )
        ml_client.batch_deployments.begin_create_or_update(deployment).result()
    totals = {}
    for name in ("registered", "inline"):
        job = ml_client.batch_endpoints.invoke(
            endpoint_name="totals", deployment_name=name, inputs={"input_data": Input(type="uri_folder", path="data")}
        )
        ml_client.jobs.stream(name=job.name)
        ml_client.jobs.download(name=job.name, download_path=name, output_name="total")
        totals[name] = (tmp_path / name / "named-outputs" / "total" / "total.txt").read_text()
    assert totals == {"registered": "3", "inline": "6"}


def test_the_workspace_mlflow_tracking_uri_is_a_store_in_the_workspace(client, tmp_path, monkeypatch):
    # As Azure's notebooks do before they log runs; in a fresh process, where MLflow has no URI set.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    notebook = (
        "import mlflow\n"
        "from batchnb.azure import MLClient\n"
        "ml_client = MLClient(None, '<SUBSCRIPTION_ID>', '<RESOURCE_GROUP>', '<AML_WORKSPACE_NAME>')\n"
        "uri = ml_client.workspaces.get('<AML_WORKSPACE_NAME>').mlflow_tracking_uri\n"
        "mlflow.set_tracking_uri(uri)\n"
        "mlflow.set_experiment('heart-training')\n"
        "with mlflow.start_run():\n"
        "    mlflow.log_metric('auc', 0.9)\n"
        "print(uri)\n"
    )
    done = subprocess.run([sys.executable, "-c", notebook], capture_output=True, text=True, cwd=tmp_path, check=True)
    uri = done.stdout.split()[-1]
    assert uri == (client.workspace.root / "mlruns").resolve().as_uri()  # where jobs' scripts log too
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")

    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("heart-training").experiment_id])
    assert [r.data.metrics["auc"] for r in runs] == [0.9]


def test_the_workspace_mlflow_tracking_uri_is_the_one_configured(ml_client, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///tracking.db")
    workspace = ml_client.workspaces.get("<AML_WORKSPACE_NAME>")
    assert workspace.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'tracking.db'}"
    assert [w.name for w in ml_client.workspaces.list()] == ["<AML_WORKSPACE_NAME>"]
