"""MLflow models: registering them (local folders, ``runs:/``, ``models:/``), the trust policy for
skops-serialized models, deployments without a scoring script scored by the built-in driver, and
each job as one MLflow run.

Models are trained here with scikit-learn and saved or logged with MLflow to a sqlite tracking store
under a temporary folder; nothing comes from the network. One module fixture trains and logs them
once; tests that need a tracking URI set it in the environment (as a user does), so no MLflow global
state leaks into other test modules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from engine_helpers import lines, minibatches, output_file, reaping
from hypothesis import given, settings
from hypothesis import strategies as st

from batchnb import BatchClient
from batchnb.errors import ValidationError

mlflow = pytest.importorskip("mlflow")
skops_io = pytest.importorskip("skops.io")
sklearn_linear = pytest.importorskip("sklearn.linear_model")
sklearn_ensemble = pytest.importorskip("sklearn.ensemble")

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["a", "b"]
REQUIREMENTS = ["scikit-learn"]


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n).round(3), "b": rng.normal(size=n).round(3)})


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Two trained models, saved as local MLflow folders, and the logistic regression also logged
    to a sqlite tracking store and registered as ``clf`` version 1 with alias ``champion``."""
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    X = _frame(60, seed=0)
    y = (X.a + X.b > 0).astype(int)
    lr = sklearn_linear.LogisticRegression().fit(X, y)
    rf = sklearn_ensemble.RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(X, y)
    signature = infer_signature(X, lr.predict(X))
    rf_types = skops_io.get_untrusted_types(data=skops_io.dumps(rf))
    assert rf_types, "a random forest needs types skops does not trust by default"
    # Requirements given: inferring them runs the model in a subprocess, seconds per model.
    mlflow.sklearn.save_model(lr, root / "lr", signature=signature, pip_requirements=REQUIREMENTS)
    mlflow.sklearn.save_model(
        rf, root / "rf", signature=signature, skops_trusted_types=rf_types, pip_requirements=REQUIREMENTS
    )
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("training", artifact_location=(root / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.sklearn.log_model(
                lr, name="model", signature=signature, registered_model_name="clf", pip_requirements=REQUIREMENTS
            )
            mlflow.sklearn.log_model(
                rf, name="rf", signature=signature, skops_trusted_types=rf_types, pip_requirements=REQUIREMENTS
            )
        MlflowClient().set_registered_model_alias("clf", "champion", "1")
    finally:
        mlflow.set_tracking_uri(None)  # also unsets MLFLOW_TRACKING_URI, which set_tracking_uri set
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    yield SimpleNamespace(
        root=root, uri=uri, lr=lr, rf=rf, rf_types=sorted(rf_types), signature=signature, run_id=run.info.run_id
    )


@pytest.fixture
def tracking(flow: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> str:
    """MLFLOW_TRACKING_URI set for this test (the invoking process and the jobs it starts)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", flow.uri)
    return str(flow.uri)


@pytest.fixture
def no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert not mlflow.is_tracking_uri_set()


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_mlmodel(folder: Path, edit: Any) -> None:
    data = yaml.safe_load((folder / "MLmodel").read_text())
    edit(data)
    (folder / "MLmodel").write_text(yaml.safe_dump(data, sort_keys=False))


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _predict(model: Any, frame: pd.DataFrame) -> list[int]:
    return [int(v) for v in model.predict(frame[FEATURES].astype(float))]


def _expected(model: Any, files: list[Path]) -> list[str]:
    """Azure's MLflow output for these files: ``row,prediction,file_name``, one line per input row."""
    out = []
    for path in files:
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        out += [f"{i},{p},{path.name}" for i, p in enumerate(_predict(model, frame))]
    return out


def _deploy(client: BatchClient, model: str, endpoint: str = "ep-flow", **settings: Any) -> dict[str, Any]:
    client.batch_endpoints.create_or_update({"name": endpoint})
    return client.batch_deployments.create_or_update(
        {"name": "blue", "endpoint_name": endpoint, "model": model, "settings": settings}
    )


def _register_lr(client: BatchClient, flow: SimpleNamespace) -> dict[str, Any]:
    return client.models.create_or_update({"name": "lr", "path": str(flow.root / "lr"), "type": "mlflow_model"})


def _log(job: dict[str, Any], name: str) -> str:
    path = Path(job["logs_dir"]) / name
    return path.read_text() if path.exists() else ""


# -- registering ------------------------------------------------------------------------------------


def test_register_a_local_mlflow_folder_records_its_facts(client: BatchClient, flow: SimpleNamespace) -> None:
    model = _register_lr(client, flow)
    assert model.type == "mlflow_model"
    facts = model["mlflow"]
    assert facts["source"] == str(flow.root / "lr")
    assert {"python_function", "sklearn"} <= set(facts["flavors"])
    assert json.loads(facts["signature"]["inputs"])[0]["name"] == "a"
    assert facts["serialization_format"] == "skops"
    assert "trusted_types" not in facts  # a logistic regression needs nothing beyond skops's defaults
    copy = Path(model.path)
    assert copy.parent == Path(model.model_dir) and (copy / "MLmodel").is_file()
    frame = _frame(5, seed=1)
    assert _predict(mlflow.pyfunc.load_model(str(copy)), frame) == _predict(flow.lr, frame)


def test_register_from_runs_uri_is_pinned_in_the_workspace(
    client: BatchClient, flow: SimpleNamespace, tracking: str
) -> None:
    from mlflow import MlflowClient

    # A run of its own, whose artifacts this test deletes (MLflow reads MLFLOW_TRACKING_URI).
    experiment = MlflowClient().get_experiment_by_name("training").experiment_id
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(
            flow.lr, name="clf-model", signature=flow.signature, pip_requirements=REQUIREMENTS
        )
    uri = f"runs:/{run.info.run_id}/clf-model"
    model = client.models.create_or_update({"name": "pinned", "path": uri})  # the URI implies mlflow_model
    assert model.type == "mlflow_model"
    assert model["source_path"] == uri and model["mlflow"]["source"] == uri
    assert Path(model.path).name == "clf-model"

    for location in (MlflowClient(tracking).get_logged_model(info.model_id).artifact_location, run.info.artifact_uri):
        shutil.rmtree(location.removeprefix("file://"), ignore_errors=True)
    with pytest.raises(ValidationError, match="does not point at an MLflow model"):
        client.models.create_or_update({"name": "pinned", "path": uri})  # the source is gone
    assert [m.version for m in client.models.list("pinned")] == ["1"]  # the refusal recorded nothing
    frame = _frame(7, seed=2)
    assert _predict(mlflow.pyfunc.load_model(model.path), frame) == _predict(flow.lr, frame)


def test_register_from_models_uri_by_version_and_by_alias(
    client: BatchClient, flow: SimpleNamespace, tracking: str
) -> None:
    by_version = client.models.create_or_update({"name": "clf", "path": "models:/clf/1", "type": "mlflow_model"})
    by_alias = client.models.create_or_update({"name": "clf", "path": "models:/clf@champion"})
    assert (by_version.version, by_alias.version) == ("1", "2")
    assert by_alias["mlflow"]["source"] == "models:/clf@champion"
    frame = _frame(5, seed=3)
    for model in (by_version, by_alias):
        assert Path(model.path).name == "model"
        assert _predict(mlflow.pyfunc.load_model(model.path), frame) == _predict(flow.lr, frame)


def test_mlflow_uri_with_set_tracking_uri_in_the_calling_process(client: BatchClient, flow: SimpleNamespace) -> None:
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    mlflow.set_tracking_uri(flow.uri)
    try:
        model = client.models.create_or_update({"name": "clf", "path": f"runs:/{flow.run_id}/model"})
    finally:
        mlflow.set_tracking_uri(None)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    assert (Path(model.path) / "MLmodel").is_file()


def test_mlflow_uri_without_a_tracking_uri_is_refused_and_creates_no_store(
    client: BatchClient, flow: SimpleNamespace, no_tracking: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="no MLflow tracking URI is configured"):
        client.models.create_or_update({"name": "clf", "path": f"runs:/{flow.run_id}/model"})
    assert not (tmp_path / "mlflow.db").exists()
    assert client.models.list() == []


def test_unknown_run_and_wrong_type_are_refused(client: BatchClient, flow: SimpleNamespace, tracking: str) -> None:
    with pytest.raises(ValidationError, match="MLflow could not resolve it") as info:
        client.models.create_or_update({"name": "clf", "path": "runs:/0123456789abcdef/model"})
    assert "0123456789abcdef" in info.value.message
    with pytest.raises(ValidationError, match="registers an mlflow_model") as info:
        client.models.create_or_update({"name": "clf", "path": "models:/clf/1", "type": "custom_model"})
    assert info.value.field == "type"
    assert client.models.list() == []
    assert _files_under(client.workspace.models_dir) == []


def test_a_model_without_pyfunc_flavor_is_refused_naming_its_flavors(
    client: BatchClient, flow: SimpleNamespace, tmp_path: Path
) -> None:
    folder = _copy(flow.root / "lr", tmp_path / "no-pyfunc")
    _edit_mlmodel(folder, lambda d: d["flavors"].pop("python_function"))
    with pytest.raises(ValidationError) as info:
        client.models.create_or_update({"name": "np", "path": str(folder), "type": "mlflow_model"})
    assert "has flavor(s) sklearn but no python_function (pyfunc) flavor" in info.value.message
    assert client.models.list() == []
    assert _files_under(client.workspace.models_dir) == []


def test_an_mlflow_model_folder_without_mlmodel_is_refused(client: BatchClient, flow: SimpleNamespace, tmp_path):
    folder = _copy(flow.root / "lr", tmp_path / "no-mlmodel")
    (folder / "MLmodel").unlink()
    with pytest.raises(ValidationError, match="not an MLflow model") as info:
        client.models.create_or_update({"name": "nm", "path": str(folder), "type": "mlflow_model"})
    assert str(folder) in info.value.message
    assert client.models.list() == []


def test_a_deployment_without_script_rechecks_the_pyfunc_flavor(client: BatchClient, flow: SimpleNamespace) -> None:
    model = _register_lr(client, flow)
    # A record that predates the check (or a copy changed behind batchnb's back).
    _edit_mlmodel(Path(model.path), lambda d: d["flavors"].pop("python_function"))
    with pytest.raises(ValidationError, match=r"flavor\(s\) sklearn but no python_function") as info:
        _deploy(client, "azureml:lr@latest")
    assert "scoring script" in info.value.message
    assert client.batch_deployments.list("ep-flow") == []


# -- the skops trust policy -------------------------------------------------------------------------


def test_skops_types_are_refused_until_trusted_then_the_model_scores(
    client: BatchClient, flow: SimpleNamespace, tmp_path: Path
) -> None:
    source = _copy(flow.root / "rf", tmp_path / "rf")
    before = (source / "MLmodel").read_text()

    # As saved: its MLmodel declares the types trusted, but that list came with the model.
    with pytest.raises(ValidationError) as info:
        client.models.create_or_update({"name": "rf", "path": str(source), "type": "mlflow_model"})
    assert all(t in info.value.message for t in flow.rf_types)
    assert "declares them trusted" in info.value.message and "--trust-types" in info.value.message

    # Hand-edited to trust nothing: refused, listing the types.
    _edit_mlmodel(source, lambda d: d["flavors"]["sklearn"].pop("skops_trusted_types"))
    before = (source / "MLmodel").read_text()
    with pytest.raises(ValidationError) as info:
        client.models.create_or_update({"name": "rf", "path": str(source), "type": "mlflow_model"})
    assert f"not trusted by default: {', '.join(flow.rf_types)}." in info.value.message
    assert client.models.list() == []
    assert _files_under(client.workspace.models_dir) == []

    model = client.models.create_or_update(
        {"name": "rf", "path": str(source), "type": "mlflow_model"}, trust_types=True
    )
    assert model["mlflow"]["trusted_types"] == flow.rf_types
    copy = yaml.safe_load((Path(model.path) / "MLmodel").read_text())
    assert copy["flavors"]["sklearn"]["skops_trusted_types"] == flow.rf_types
    assert (source / "MLmodel").read_text() == before  # the user's folder is never changed

    data = tmp_path / "data"
    data.mkdir()
    _frame(9, seed=4).to_csv(data / "x.csv", index=False)
    _deploy(client, "azureml:rf:1", retry_settings={"max_retries": 0})
    job = client.batch_endpoints.invoke("ep-flow", input=str(data)).wait(timeout=120)
    assert job.status == "Completed", job.error
    assert lines(output_file(job)) == _expected(flow.rf, [data / "x.csv"])


def test_a_model_saved_with_another_python_scores_and_the_model_load_says_so(
    client: BatchClient, flow: SimpleNamespace, tmp_path: Path
) -> None:
    """The driver checks the model's requirements.txt and Python version itself (MLflow's check
    scans every installed distribution, 1.4 s per process) and warns where the model is loaded:
    in the worker's log. Requirements batchnb's environment meets need no build, so the model runs
    there, told about its Python."""
    source = _copy(flow.root / "lr", tmp_path / "lr")
    (source / "requirements.txt").write_text(
        "mlflow\nscikit-learn  # any version\ncolorama; sys_platform == 'win32'\n"
        "json>=99\n"  # no such distribution, but the module is there (as mlflow is, from mlflow-skinny)
    )
    _edit_mlmodel(source, lambda d: d["flavors"]["python_function"].update(python_version="3.2.1"))
    client.models.create_or_update({"name": "lr-old", "path": str(source), "type": "mlflow_model"})
    data = tmp_path / "data"
    data.mkdir()
    _frame(4, seed=5).to_csv(data / "x.csv", index=False)
    _deploy(client, "azureml:lr-old:1", max_concurrency_per_instance=1)
    job = client.batch_endpoints.invoke("ep-flow", input=str(data)).wait(timeout=120)
    assert job.status == "Completed", job.error
    assert lines(output_file(job)) == _expected(flow.lr, [data / "x.csv"])
    stdout = Path(job["logs_dir"]) / "user" / "stdout"
    (worker,) = set(stdout.glob("process*.stdout.txt"))
    log = worker.read_text()
    assert log.count("the model's dependencies do not match this environment") == 1
    assert f"python (current: {sys.version.split()[0]}, saved with: 3.2.1)" in log
    assert "mlflow (" not in log and "colorama" not in log and "scikit-learn (" not in log  # all satisfied
    assert "json (" not in log


def _deploy_lr_requiring(client: BatchClient, flow: SimpleNamespace, tmp_path: Path, name: str, extra: str) -> Path:
    """Deploy a copy of the logistic regression whose requirements.txt also asks for ``extra``,
    without an environment; return a folder with one CSV file to score."""
    source = _copy(flow.root / "lr", tmp_path / "lr")
    (source / "requirements.txt").write_text(f"mlflow\nscikit-learn\n{extra}\n")
    client.models.create_or_update({"name": name, "path": str(source), "type": "mlflow_model"})
    data = tmp_path / "data"
    data.mkdir()
    _frame(4, seed=5).to_csv(data / "x.csv", index=False)
    _deploy(client, f"azureml:{name}:1")
    return data


def test_a_model_whose_requirements_cannot_be_installed_is_refused_at_invoke_naming_the_package(
    client: BatchClient, flow: SimpleNamespace, tmp_path: Path
) -> None:
    """A model deployed without an environment gets its own requirements, as on Azure: one that
    cannot be installed stops the invocation with the resolver's message, and no job is recorded."""
    from batchnb.errors import EnvironmentBuildError

    data = _deploy_lr_requiring(client, flow, tmp_path, "lr-new", "batchnb-no-such-package>=1")
    with pytest.raises(EnvironmentBuildError, match="batchnb-no-such-package") as info:
        client.batch_endpoints.invoke("ep-flow", input=str(data))
    assert info.value.message.startswith("model lr-new:1: the build failed: ")
    assert client.jobs.list() == []


def test_a_model_without_an_environment_gets_its_own_requirements(
    client: BatchClient, flow: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package the model needs and batchnb lacks is installed into a build of the model's own;
    the job records that interpreter, and the dry run scores in it."""
    from env_helpers import job_spec, printed_by, tiny_wheel

    wheels = tmp_path / "wheels"
    tiny_wheel("tinypkg", "2.0", wheels)
    monkeypatch.setenv("UV_FIND_LINKS", str(wheels))  # a user's own wheelhouse, as uv reads it
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    data = _deploy_lr_requiring(client, flow, tmp_path, "lr-own", "tinypkg==2.0")

    dry = client.batch_endpoints.invoke("ep-flow", input=str(data), dry_run=True)
    assert dry["status"] == "ok", dry.get("error")
    assert dry["preview"].splitlines() == _expected(flow.lr, [data / "x.csv"])
    job = client.batch_endpoints.invoke("ep-flow", input=str(data)).wait(timeout=120)
    assert job.status == "Completed", job.error
    spec = job_spec(client, job.name)
    assert spec["environment"] is None
    assert spec["environment_build"]["requirements"] == ["scikit-learn", "tinypkg==2.0"]
    assert printed_by(spec["python"], "import tinypkg, sklearn; print(tinypkg.VERSION)") == "2.0"


def test_an_invocation_named_as_another_job_is_refused_before_the_models_requirements_are_built(
    client: BatchClient, flow: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from env_helpers import tiny_wheel

    from batchnb.errors import ConflictError

    wheels = tmp_path / "wheels"
    tiny_wheel("tinypkg", "2.0", wheels)
    monkeypatch.setenv("UV_FIND_LINKS", str(wheels))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    data = _deploy_lr_requiring(client, flow, tmp_path, "lr-own", "tinypkg==2.0")
    with reaping():
        other = {"type": "pipeline", "jobs": {"a": {"component": {"command": "true"}}}}
        client.jobs.create_or_update(other, name="taken").wait(timeout=60)
    assert not (client.workspace.root / "envs").exists()
    with pytest.raises(ConflictError, match="a job named taken already exists"):
        client.batch_endpoints.invoke("ep-flow", input=str(data), job_name="taken")
    assert not (client.workspace.root / "envs").exists()  # nothing built for a refused job


def test_cli_model_create_from_a_uri_with_trust_types(flow: SimpleNamespace, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BATCHNB_WORKSPACE"}
    env.update(BATCHNB_WORKSPACE=str(tmp_path / "ws"), MLFLOW_TRACKING_URI=flow.uri)
    uri = f"runs:/{flow.run_id}/rf"
    # Without the flag it is refused (the test above); one process here, as each one imports mlflow.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchnb",
            "model",
            "create",
            "-n",
            "rf",
            "--path",
            uri,
            "--type",
            "mlflow_model",
            "--trust-types",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["type"] == "mlflow_model" and record["version"] == "1"
    assert record["mlflow"]["source"] == uri and record["mlflow"]["trusted_types"] == flow.rf_types
    assert Path(record["path"]).name == "rf"


# -- no-script deployments ----------------------------------------------------------------------------


def test_csv_folder_scores_in_azure_layout_and_the_job_is_one_mlflow_run(
    client: BatchClient, flow: SimpleNamespace, tracking: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    data = tmp_path / "data"
    data.mkdir()
    for i, n in enumerate((4, 1, 6)):
        _frame(n, seed=10 + i).to_csv(data / f"part-{i}.csv", index=False)
    # Whole numbers are read as integers, which MLflow refuses for a double column: conformed.
    (data / "part-3.csv").write_text("a,b\n1,-2\n-3,1\n")
    _register_lr(client, flow)
    deployment = _deploy(client, "azureml:lr@latest", mini_batch_size=2)
    assert "code_dir" not in deployment["resolved"]  # the driver is found when a job runs

    started = time.perf_counter()
    job = client.batch_endpoints.invoke("ep-flow", input=str(data)).wait(timeout=120)
    elapsed = time.perf_counter() - started
    assert job.status == "Completed", job.error
    files = sorted(data.iterdir())
    assert lines(output_file(job)) == _expected(flow.lr, files)
    assert job.progress["rows_written"] == 13
    print(f"\ntiny MLflow job, end to end: {elapsed:.2f} s")

    with client.store.read() as db:
        spec = json.loads(db.execute("SELECT spec FROM jobs WHERE name = ?", (job.name,)).fetchone()["spec"])
    assert spec["builtin_driver"] == "mlflow" and spec["mlflow_tracking_uri"] == tracking
    tracker = MlflowClient(tracking)
    experiment = tracker.get_experiment_by_name("ep-flow")
    assert experiment is not None
    runs = tracker.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_id == spec["mlflow_run_id"] and run.info.run_name == job.name
    assert run.info.status == "FINISHED"
    assert run.data.params["endpoint"] == "ep-flow"
    assert run.data.params["deployment"] == "blue"
    assert run.data.params["model"] == "lr:1"
    assert run.data.metrics["items_succeeded"] == 4  # files, in file mode
    assert run.data.metrics["rows_written"] == 13
    assert run.data.metrics["mini_batches_failed"] == 0
    assert run.data.tags["batchnb.status"] == "Completed"
    assert f"MLflow run {run.info.run_id}" in _log(job, "sys/master_role.txt")


def test_parquet_folder_scores_without_tracking_and_mlflow_stays_out_of_the_supervisor(
    client: BatchClient, flow: SimpleNamespace, no_tracking: None, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _frame(5, seed=20).to_parquet(data / "a.parquet", index=False)
    _frame(3, seed=21).to_parquet(data / "b.pqt", index=False)
    _register_lr(client, flow)
    _deploy(client, "azureml:lr@latest", endpoint="ep-quiet", mini_batch_size=1)
    job = client.batch_endpoints.invoke("ep-quiet", input=str(data)).wait(timeout=120)
    assert job.status == "Completed", job.error
    assert lines(output_file(job)) == _expected(flow.lr, [data / "a.parquet", data / "b.pqt"])
    with client.store.read() as db:
        spec = json.loads(db.execute("SELECT spec FROM jobs WHERE name = ?", (job.name,)).fetchone()["spec"])
    assert spec["mlflow_tracking_uri"] is None and "mlflow_run_id" not in spec
    assert "mlflow" not in _log(job, "sys/master_role.txt").lower()
    assert not (Path(job["job_dir"]) / "mlflow.db").exists()  # nor MLflow's default store
    from mlflow import MlflowClient

    assert MlflowClient(flow.uri).get_experiment_by_name("ep-quiet") is None


def test_parquet_output_keeps_the_input_columns_and_a_broken_tracking_store_fails_nothing(
    client: BatchClient, flow: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("")  # a store that cannot be created: its folder is a file
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/a-file/mlflow.db")
    data = tmp_path / "data"
    data.mkdir()
    first, second = _frame(3, seed=30), _frame(2, seed=31)
    first.assign(id=["x", "y", "z"]).to_csv(data / "one.csv", index=False)  # a column the model ignores
    second.assign(id=["v", "w"]).to_csv(data / "two.csv", index=False)
    _register_lr(client, flow)
    _deploy(client, "azureml:lr@latest", mini_batch_size=1, output_file_name="predictions.parquet")
    job = client.batch_endpoints.invoke("ep-flow", input=str(data)).wait(timeout=120)
    assert job.status == "Completed", job.error
    table = pd.read_parquet(output_file(job))
    # The lineage columns (on by default for a Parquet output) say where each row comes from.
    assert list(table.columns) == [
        "a",
        "b",
        "id",
        "prediction",
        "file_name",
        "_source_file",
        "_source_row",
        "_mini_batch",
    ]
    assert table["_source_file"].tolist() == [str(data / "one.csv")] * 3 + [str(data / "two.csv")] * 2
    assert table["_source_row"].tolist() == [0, 1, 2, 0, 1]
    assert table["_mini_batch"].tolist() == [0, 0, 0, 1, 1]
    assert table["id"].tolist() == ["x", "y", "z", "v", "w"]
    assert table["prediction"].tolist() == _predict(flow.lr, first) + _predict(flow.lr, second)
    assert table["file_name"].tolist() == ["one.csv"] * 3 + ["two.csv"] * 2
    assert "MLflow tracking: could not start the job's run" in _log(job, "sys/master_role.txt")


def test_tabular_mode_numbers_rows_within_each_file(client: BatchClient, flow: SimpleNamespace, tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    big = _frame(10, seed=40)
    pq.write_table(pa.Table.from_pandas(big, preserve_index=False), data / "a.parquet", row_group_size=4)
    assert pq.ParquetFile(data / "a.parquet").metadata.num_row_groups == 3  # 4 + 4 + 2 rows
    _frame(3, seed=41).to_csv(data / "b.csv", index=False)
    _register_lr(client, flow)
    _deploy(client, "azureml:lr@latest", mini_batch_mode="tabular", mini_batch_size=8)
    job = client.batch_endpoints.invoke("ep-flow", input=str(data)).wait(timeout=120)
    assert job.status == "Completed", job.error
    chunks = [json.loads(mb["items"])[0] for mb in minibatches(client, job.name)]
    assert [(Path(c["path"]).name, c.get("row_groups")) for c in chunks] == [
        ("a.parquet", [0, 1]),
        ("a.parquet", [2]),
        ("b.csv", None),
    ]
    assert lines(output_file(job)) == _expected(flow.lr, [data / "a.parquet", data / "b.csv"])


def test_a_column_missing_from_the_signature_fails_its_mini_batch_naming_the_schema_problem(
    client: BatchClient, flow: SimpleNamespace, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _frame(3, seed=50).to_csv(data / "a-good.csv", index=False)
    _frame(2, seed=51)[["a"]].to_csv(data / "b-bad.csv", index=False)
    _register_lr(client, flow)
    _deploy(client, "azureml:lr@latest", mini_batch_size=1, retry_settings={"max_retries": 0})
    job = client.batch_endpoints.invoke("ep-flow", input=str(data)).wait(timeout=120)
    assert job.status == "Completed", job.error  # error_threshold -1: failed items are tolerated
    good, bad = minibatches(client, job.name)
    assert good["status"] == "done"
    assert bad["status"] == "failed" and bad["attempts"] == 1
    assert "Failed to enforce schema" in bad["error"] and "missing inputs ['b']" in bad["error"]
    assert lines(output_file(job)) == _expected(flow.lr, [data / "a-good.csv"])
    assert "missing inputs ['b']" in _log(job, "user/error.txt")


def test_an_unsupported_file_fails_the_job_naming_it(client: BatchClient, flow: SimpleNamespace, tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    _frame(3, seed=60).to_csv(data / "a.csv", index=False)
    (data / "notes.txt").write_text("not a table\n")
    _register_lr(client, flow)
    _deploy(client, "azureml:lr@latest")
    job = client.batch_endpoints.invoke("ep-flow", input=str(data)).wait(timeout=120)
    assert job.status == "Failed"
    assert job.error.startswith(
        f"Error processing input file: '{data / 'notes.txt'}'. File type 'txt' is not supported"
    )
    assert "system error" not in job.error and "Traceback" not in job.error
    assert minibatches(client, job.name) == []  # failed while planning: nothing ran, nothing retried
    assert "notes.txt" in _log(job, "job_result.txt")


def test_dry_run_of_a_no_script_deployment(client: BatchClient, flow: SimpleNamespace, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _frame(3, seed=70).to_csv(data / "a.csv", index=False)
    _register_lr(client, flow)
    _deploy(client, "azureml:lr@latest")
    result = client.batch_endpoints.invoke("ep-flow", input=str(data), dry_run=True)
    assert result["status"] == "ok", result.get("error")
    assert result["preview"].splitlines() == _expected(flow.lr, [data / "a.csv"])


# -- tracking ---------------------------------------------------------------------------------------


def test_a_resumed_job_reopens_its_run(flow: SimpleNamespace, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from batchnb.engine.tracking import JobRun

    spec = {
        "endpoint": "ep-resume",
        "deployment": "blue",
        "model": "lr:1",
        "input": {"given": "data/"},
        "instance_count": 1,
        "workers": 1,
        "settings": {
            "mini_batch_size": 10,
            "mini_batch_mode": "file",
            "error_threshold": -1,
            "retry_settings": {"max_retries": 3, "timeout": 30},
            "output_action": "append_row",
            "output_file_name": "predictions.csv",
        },
        "output": {"path": "/out/predictions.csv"},
        "mlflow_tracking_uri": flow.uri,
    }
    events: list[str] = []
    first = JobRun(spec, events.append)
    run_id = first.start("job-1")
    assert run_id is not None
    tracker = MlflowClient(flow.uri)
    assert tracker.get_run(run_id).info.status == "RUNNING"  # an interrupted supervisor leaves it so
    resumed = JobRun({**spec, "mlflow_run_id": run_id}, events.append)
    assert resumed.start("job-1") == run_id
    totals = {
        "mini_batches": {"total": 2, "done": 2, "failed": 0},
        "items": {"succeeded": 5, "failed": 0},
        "rows_written": 5,
        "worker_seconds": 0.5,
        "elapsed_s": 2.0,
        "rows_per_second": 2.5,
    }
    resumed.finish("Canceled", totals)
    run = tracker.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.metrics["rows_written"] == 5
    experiment = tracker.get_experiment_by_name("ep-resume")
    assert len(tracker.search_runs([experiment.experiment_id])) == 1
    assert not any("disabled" in e or "could not" in e for e in events), events


def test_captured_tracking_uris_are_absolute_and_logged_without_password(monkeypatch, tmp_path) -> None:
    from batchnb.engine.tracking import capture_tracking_uri
    from batchnb.registry.mlflow_models import redact_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    assert capture_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000")
    assert capture_tracking_uri() == "http://tracker:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert capture_tracking_uri() is None
    assert redact_uri("https://me:secret@tracker:5000/x") == "https://me:***@tracker:5000/x"


# -- import cost ------------------------------------------------------------------------------------

IMPORT_CHECK = textwrap.dedent(
    """
    import sys, time
    started = time.perf_counter()
    import batchnb
    took = time.perf_counter() - started
    assert "mlflow" not in sys.modules, "import batchnb"
    from batchnb import BatchClient
    client = BatchClient(sys.argv[1])
    client.models.list()
    with_client = time.perf_counter() - started
    assert "mlflow" not in sys.modules, "BatchClient(ws)"
    import batchnb.cli
    import batchnb.magics
    from IPython.core.interactiveshell import InteractiveShell
    InteractiveShell.instance().run_line_magic("load_ext", "batchnb")
    assert "mlflow" not in sys.modules, "%load_ext batchnb"
    print(f"{took:.3f} {with_client:.3f}")
    """
)


def test_import_batchnb_does_not_import_mlflow(tmp_path: Path, no_tracking: None) -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    took, with_client = result.stdout.split()[-2:]
    print(f"\nimport batchnb: {took} s; with BatchClient(ws): {with_client} s")


def test_a_pipeline_step_scores_with_a_registered_mlflow_model(
    client: BatchClient, flow: SimpleNamespace, tmp_path: Path
) -> None:
    """Azure's score step: ``model: {path: azureml:<name>@latest, type: mlflow_model}`` is the model's folder."""
    _register_lr(client, flow)
    frame = _frame(25, seed=7)
    (tmp_path / "data").mkdir()
    frame.to_csv(tmp_path / "data" / "part.csv", index=False)
    code = tmp_path / "score"
    code.mkdir()
    (code / "score.py").write_text(
        "import sys, pathlib, mlflow.pyfunc, pandas as pd\n"
        "model_dir, data, out = sys.argv[1:]\n"
        "model = mlflow.pyfunc.load_model(model_dir)\n"
        "frame = pd.concat(pd.read_csv(p) for p in sorted(pathlib.Path(data).glob('*.csv')))\n"
        "frame.assign(prediction=model.predict(frame)).to_csv(pathlib.Path(out) / 'scores.csv', index=False)\n"
    )
    spec = {
        "type": "pipeline",
        "inputs": {"input_data": {"type": "uri_folder", "path": str(tmp_path / "data")}},
        "outputs": {"scores": {"type": "uri_folder"}},
        "jobs": {
            "score_job": {
                "component": {
                    "code": str(code),
                    "command": "python score.py ${{inputs.model}} ${{inputs.data}} ${{outputs.scores}}",
                    "inputs": {"model": {"type": "mlflow_model"}, "data": {"type": "uri_folder"}},
                    "outputs": {"scores": {"type": "uri_folder"}},
                },
                "inputs": {
                    "data": "${{parent.inputs.input_data}}",
                    "model": {"path": "azureml:lr@latest", "type": "mlflow_model"},
                },
                "outputs": {"scores": "${{parent.outputs.scores}}"},
            }
        },
    }
    job = client.jobs.create_or_update(spec).wait(timeout=180)
    assert job["status"] == "Completed", job["error"]
    scored = pd.read_csv(Path(job["outputs"]["scores"]["path"]) / "scores.csv")
    assert scored["prediction"].tolist() == _predict(flow.lr, frame)
    step = client.jobs.get(job["steps"][0]["job_name"])
    assert "/artifacts/models/lr/1/" in step["command"]  # pinned to the version registered now


def _as_numpy_prints(values: np.ndarray, first_row: int, name: str) -> str:
    """The driver's lines as they were first written: numpy's str of each value (float32 widened)."""
    widened = values.astype(np.float64) if values.dtype.kind == "f" else values
    return "".join(f"{first_row + i},{v},{name}\n" for i, v in enumerate(widened.astype(str).tolist()))


def test_predictions_are_written_as_numpy_prints_them_for_every_number_type() -> None:
    """The driver formats numbers in C (Arrow) and mends what Arrow writes differently; the text
    must be what numpy's str gives: floats at shortest round-trip precision, float32 widened,
    whole floats with ``.0``, exponents below 1e-4 and from 1e16, ints, bools."""
    from batchnb.engine.drivers import mlflow_score

    cases = [
        np.array([0.1, np.nan, np.inf, -np.inf, -0.0, 0.0, 1e16, 5e-324, 123456789.123, 1.7976931348623157e308]),
        np.array([1.0, -3.0, 1e15, 9999999999999998.0, 1e10 + 0.5, 9999999999.5, 1e-4, 9.99e-5, 1.5e-7]),
        np.array([0.1, 1 / 3], dtype=np.float32),
        np.array([-3, 0, 2**62], dtype=np.int64),
        np.array([7, 8], dtype=np.uint8),
        np.array([True, False]),
        np.array([], dtype=np.float64),
    ]
    for values in cases:
        got = mlflow_score._lines([(pd.DataFrame(index=range(len(values))), values, "a,b.csv", 5)])
        assert len(got) == len(values)
        assert got.data.decode() == _as_numpy_prints(values, 5, '"a,b.csv"')


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1e12, 1e12), min_size=1, max_size=60),
    st.integers(0, 10**9),
)
def test_any_float_prediction_is_written_as_numpy_prints_it(values: list[float], first_row: int) -> None:
    from batchnb.engine.drivers import mlflow_score

    array = np.array(values, dtype=np.float64)
    got = mlflow_score._lines([(pd.DataFrame(index=range(len(array))), array, "x.parquet", first_row)])
    assert got.data.decode() == _as_numpy_prints(array, first_row, "x.parquet")


def test_a_mini_batch_of_every_bit_pattern_is_written_as_numpy_prints_it() -> None:
    """200k doubles drawn from their bits (every exponent, subnormals, NaN payloads) in one block."""
    from batchnb.engine.drivers import mlflow_score

    bits = np.random.default_rng(7).integers(0, 2**64, size=200_000, dtype=np.uint64)
    array = bits.view(np.float64)
    got = mlflow_score._lines([(pd.DataFrame(index=range(len(array))), array, "x.csv", 0)])
    assert got.data.decode() == _as_numpy_prints(array, 0, "x.csv")
