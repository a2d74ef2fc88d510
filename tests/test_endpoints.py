"""Batch endpoints and their deployments: defaults, deletes, references, script checks, snapshots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from batchnb import BatchClient
from batchnb.errors import ConflictError, InvalidNameError, InvalidStateError, NotFoundError, ValidationError

SCRIPT = """\
def init():
    pass


def run(mini_batch):
    return mini_batch
"""


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """A code folder with a valid score.py and a helper module next to it."""
    folder = tmp_path / "src" / "code"
    folder.mkdir(parents=True)
    (folder / "score.py").write_text(SCRIPT)
    (folder / "helper.py").write_text("VALUE = 1\n")
    return folder


@pytest.fixture
def ready(client: BatchClient, model_dir: Path) -> BatchClient:
    """The client with a model ``tiny`` registered and an endpoint ``ep-test`` created."""
    client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    client.batch_endpoints.create_or_update({"name": "ep-test"})
    return client


def _dep(name: str, code: Path, **extra: object) -> dict:
    return {
        "name": name,
        "endpoint_name": "ep-test",
        "model": "azureml:tiny@latest",
        "code_configuration": {"code": str(code), "scoring_script": "score.py"},
        **extra,
    }


def _default(client: BatchClient, endpoint: str = "ep-test") -> str | None:
    return client.batch_endpoints.get(endpoint)["defaults"].get("deployment_name")


def _tree(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, without SQLite's own files."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.startswith("batchnb.db"))


def _cli(*args: str, cwd: Path, workspace: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCHNB_WORKSPACE": str(workspace)}
    return subprocess.run(
        [sys.executable, "-m", "batchnb", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


# --- endpoints -----------------------------------------------------------------------------------


def test_endpoint_create_show_list(client: BatchClient) -> None:
    created = client.batch_endpoints.create_or_update({"name": "heart", "description": "d", "tags": {"a": "b"}})
    assert (created.name, created.description, created.tags) == ("heart", "d", {"a": "b"})
    assert created.auth_mode == "aad_token"
    assert created.deployments == []
    assert created.defaults == {}
    assert [e.name for e in client.batch_endpoints.list()] == ["heart"]
    with pytest.raises(NotFoundError, match="batch endpoint nope does not exist"):
        client.batch_endpoints.get("nope")


@pytest.mark.parametrize("name", ["../x", "a", "1abc", "abc_def", "a" * 33])
def test_bad_endpoint_name_is_refused_and_nothing_written(client: BatchClient, name: str) -> None:
    before = _tree(client.workspace.root.parent)
    with pytest.raises(InvalidNameError) as info:
        client.batch_endpoints.create_or_update({"name": name})
    assert "3 to 32 characters: letters, digits and hyphens, starting with a letter" in info.value.message
    assert client.batch_endpoints.list() == []
    assert _tree(client.workspace.root.parent) == before


@pytest.mark.parametrize("name", ["../x", "a", "1abc", "abc_def", "a" * 33])
def test_bad_deployment_name_is_refused_and_nothing_written(ready: BatchClient, code: Path, name: str) -> None:
    with pytest.raises(InvalidNameError, match="a deployment name must be 3 to 32 characters"):
        ready.batch_deployments.create_or_update(_dep(name, code))
    before = _tree(ready.workspace.root.parent)
    with pytest.raises(InvalidNameError):
        ready.batch_deployments.create_or_update(_dep(name, code, model={"path": str(code)}))
    assert ready.batch_deployments.list("ep-test") == []
    assert _tree(ready.workspace.root.parent) == before


# --- defaults ------------------------------------------------------------------------------------


def test_first_deployment_becomes_the_default(ready: BatchClient, code: Path) -> None:
    blue = ready.batch_deployments.create_or_update(_dep("blue", code))
    green = ready.batch_deployments.create_or_update(_dep("green", code))
    assert (blue.is_default, green.is_default) == (True, False)
    assert _default(ready) == "blue"
    assert ready.batch_endpoints.get("ep-test").deployments == ["blue", "green"]
    assert [(d.name, d.is_default) for d in ready.batch_deployments.list("ep-test")] == [
        ("blue", True),
        ("green", False),
    ]


def test_set_default_on_create(ready: BatchClient, code: Path) -> None:
    ready.batch_deployments.create_or_update(_dep("blue", code))
    green = ready.batch_deployments.create_or_update(_dep("green", code), set_default=True)
    assert green.is_default is True
    assert _default(ready) == "green"
    assert ready.batch_deployments.get("blue", "ep-test").is_default is False


def test_update_switches_the_default(ready: BatchClient, code: Path) -> None:
    ready.batch_deployments.create_or_update(_dep("blue", code))
    ready.batch_deployments.create_or_update(_dep("green", code))
    updated = ready.batch_endpoints.update("ep-test", ["defaults.deployment_name=green"])
    assert updated.defaults == {"deployment_name": "green"}
    assert ready.batch_deployments.get("green", "ep-test").is_default is True
    ready.batch_endpoints.set_default("ep-test", "blue")
    assert _default(ready) == "blue"


def test_default_must_be_an_existing_deployment(ready: BatchClient, code: Path) -> None:
    ready.batch_deployments.create_or_update(_dep("blue", code))
    with pytest.raises(ValidationError) as info:
        ready.batch_endpoints.update("ep-test", ["defaults.deployment_name=nope"])
    assert "'nope'" in info.value.message
    assert info.value.field == "defaults.deployment_name"
    assert _default(ready) == "blue"
    with pytest.raises(ValidationError, match="'nope'"):
        ready.batch_endpoints.create_or_update({"name": "ep-test", "defaults": {"deployment_name": "nope"}})
    assert _default(ready) == "blue"


def test_endpoint_cannot_be_renamed_by_update(ready: BatchClient) -> None:
    with pytest.raises(ValidationError, match="cannot be renamed"):
        ready.batch_endpoints.update("ep-test", ["name=other-name"])
    assert [e.name for e in ready.batch_endpoints.list()] == ["ep-test"]


def test_applying_the_endpoint_yaml_again_keeps_the_default(ready: BatchClient, code: Path) -> None:
    ready.batch_deployments.create_or_update(_dep("blue", code))
    updated = ready.batch_endpoints.create_or_update({"name": "ep-test", "description": "new text"})
    assert updated.description == "new text"
    assert _default(ready) == "blue"


# --- deletes -------------------------------------------------------------------------------------


def test_default_deployment_cannot_be_deleted_while_others_exist(ready: BatchClient, code: Path) -> None:
    ready.batch_deployments.create_or_update(_dep("blue", code))
    ready.batch_deployments.create_or_update(_dep("green", code))
    with pytest.raises(InvalidStateError) as info:
        ready.batch_deployments.delete("blue", "ep-test")
    assert "blue is the default deployment of ep-test" in info.value.message
    assert "defaults.deployment_name=green" in info.value.message  # tells how to move on
    assert ready.batch_endpoints.get("ep-test").deployments == ["blue", "green"]
    ready.batch_deployments.delete("green", "ep-test")
    ready.batch_deployments.delete("blue", "ep-test")  # the last one may go
    assert ready.batch_endpoints.get("ep-test").deployments == []
    assert _default(ready) is None
    with pytest.raises(NotFoundError, match="has no deployment named blue"):
        ready.batch_deployments.get("blue", "ep-test")
    # The next deployment becomes the default again.
    ready.batch_deployments.create_or_update(_dep("red", code))
    assert _default(ready) == "red"


def test_delete_unknown_deployment(ready: BatchClient) -> None:
    with pytest.raises(NotFoundError, match="has no deployment named nope"):
        ready.batch_deployments.delete("nope", "ep-test")
    with pytest.raises(NotFoundError, match="batch endpoint other does not exist"):
        ready.batch_deployments.delete("nope", "other")


def test_deleting_an_endpoint_deletes_its_deployments_and_keeps_its_jobs(ready: BatchClient, code: Path) -> None:
    ready.batch_deployments.create_or_update(_dep("blue", code))
    ready.batch_deployments.create_or_update(_dep("green", code))
    ready.batch_endpoints.create_or_update({"name": "other-ep"})
    ready.batch_deployments.create_or_update(_dep("blue", code, endpoint_name="other-ep"))
    job_dir = ready.workspace.job_dir("batchjob-kept")
    spec = {
        "input": {"type": "uri_folder", "given": "data"},
        "output": {"dir": "out", "file_name": "predictions.csv"},
        "settings": {},
        "instance_count": 1,
        "workers": 1,
        "job_dir": str(job_dir),
        "experiment_name": "ep-test",
    }
    now = time.time()
    with ready.store.write() as tx:
        tx.execute(
            "INSERT INTO jobs (name, kind, endpoint, deployment, status, spec, created_at, started_at, ended_at) "
            "VALUES ('batchjob-kept', 'batch', 'ep-test', 'blue', 'Completed', ?, ?, ?, ?)",
            (json.dumps(spec), now, now, now),
        )

    ready.batch_endpoints.delete("ep-test")

    assert [e.name for e in ready.batch_endpoints.list()] == ["other-ep"]
    with pytest.raises(NotFoundError):
        ready.batch_deployments.list("ep-test")
    with ready.store.read() as db:
        rows = db.execute("SELECT endpoint, name FROM deployments").fetchall()
    assert [tuple(r) for r in rows] == [("other-ep", "blue")]
    jobs = ready.batch_endpoints.list_jobs("ep-test")
    assert [(j.name, j.status, j.endpoint_name) for j in jobs] == [("batchjob-kept", "Completed", "ep-test")]
    with pytest.raises(NotFoundError, match="batch endpoint ep-test does not exist"):
        ready.batch_endpoints.delete("ep-test")


# --- references ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"model": "azureml:nope:1"}, "model: model nope version 1 is not registered"),
        ({"model": "azureml:nope@latest"}, "model: model nope is not registered"),
        ({"compute": "azureml:gpu-cluster"}, "compute: compute gpu-cluster does not exist"),
        ({"environment": "azureml:no-env@latest"}, "environment: environment no-env is not registered"),
    ],
)
def test_unknown_reference_is_not_found_naming_it(ready: BatchClient, code: Path, extra: dict, named: str) -> None:
    with pytest.raises(NotFoundError) as info:
        ready.batch_deployments.create_or_update(_dep("blue", code, **extra), source="deployment.yml")
    assert info.value.message == f"deployment.yml: {named} in this workspace"
    assert ready.batch_deployments.list("ep-test") == []
    assert _default(ready) is None


def test_refused_deployment_with_inline_model_registers_nothing(
    ready: BatchClient, code: Path, model_dir: Path
) -> None:
    inline = {"name": "inline-model", "path": str(model_dir)}
    with pytest.raises(NotFoundError, match="compute nope"):
        ready.batch_deployments.create_or_update(_dep("blue", code, model=inline, compute="azureml:nope"))
    (code / "score.py").write_text("def init(:\n")
    with pytest.raises(ValidationError, match="syntax error"):
        ready.batch_deployments.create_or_update(_dep("blue", code, model=inline))
    assert [m.name for m in ready.models.list()] == ["tiny"]
    assert sorted(p.name for p in ready.workspace.models_dir.iterdir()) == ["tiny"]


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ({"path": "sklearn-only", "type": "mlflow_model"}, ValidationError),  # no pyfunc flavor: seen on the copy
        ({"name": "tiny", "version": "1", "path": "model"}, ConflictError),  # taken: seen in the transaction
    ],
)
def test_refused_inline_model_registers_no_inline_environment(
    ready: BatchClient, code: Path, model_dir: Path, model: dict, error: type[Exception]
) -> None:
    (model_dir.parent / "sklearn-only").mkdir()
    (model_dir.parent / "sklearn-only" / "MLmodel").write_text("flavors:\n  sklearn: {}\n")
    dep = _dep("blue", code, model=model, environment={"image": "python:3.11"})
    with pytest.raises(error):
        ready.batch_deployments.create_or_update(dep, base_dir=model_dir.parent)
    assert ready.environments.list() == []
    assert [m.name for m in ready.models.list()] == ["tiny"]
    assert ready.batch_deployments.list("ep-test") == []


@pytest.mark.parametrize(
    ("model", "why"),
    [
        ({"path": "no-such-model"}, "does not exist"),
        ({"path": "model", "type": "mlflow_model"}, "not an MLflow model"),
        ({"path": "https://example.com/model.pkl"}, "only local files and folders"),
    ],
)
def test_refused_inline_model_is_refused_before_the_code_folder_is_copied(
    ready: BatchClient, code: Path, model_dir: Path, model: dict, why: str
) -> None:
    with pytest.raises(ValidationError, match=why):
        ready.batch_deployments.create_or_update(_dep("blue", code, model=model), base_dir=model_dir.parent)
    assert list(ready.workspace.code_dir.iterdir()) == []
    assert [m.name for m in ready.models.list()] == ["tiny"]


def test_a_refused_inline_environment_leaves_no_code_copied(ready: BatchClient, code: Path, tmp_path: Path) -> None:
    dep = _dep("blue", code, environment={"conda_file": "no-such-conda.yml"})
    with pytest.raises(ValidationError, match="no-such-conda"):
        ready.batch_deployments.create_or_update(dep, base_dir=tmp_path)
    assert list(ready.workspace.code_dir.iterdir()) == []
    assert ready.environments.list() == []


def test_inline_model_is_registered(ready: BatchClient, code: Path, model_dir: Path) -> None:
    dep = ready.batch_deployments.create_or_update(_dep("blue", code, model={"path": str(model_dir)}))
    assert dep.resolved["model"] == "ep-test-blue-model:1"
    assert ready.models.get("ep-test-blue-model").model_dir == dep.resolved["model_dir"]


def test_references_resolve_to_exact_versions(ready: BatchClient, code: Path, model_dir: Path) -> None:
    ready.environments.create_or_update({"name": "batch-env", "image": "python:3.11"})
    ready.computes.create_or_update({"name": "batch-cluster", "type": "amlcompute", "max_instances": 2})
    dep = ready.batch_deployments.create_or_update(
        _dep("blue", code, environment="azureml:batch-env@latest", compute="azureml:batch-cluster")
    )
    assert dep.resolved["model"] == "tiny:1"
    assert dep.resolved["environment"] == "batch-env:1"
    assert dep.resolved["compute"] == "batch-cluster"
    # A later model version does not move an existing deployment.
    ready.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    assert ready.batch_deployments.get("blue", "ep-test").resolved["model"] == "tiny:1"
    with pytest.raises(InvalidStateError, match="used by deployment"):
        ready.computes.delete("batch-cluster")


def test_deployment_needs_an_existing_endpoint(ready: BatchClient, code: Path) -> None:
    with pytest.raises(NotFoundError, match="batch endpoint nope-ep does not exist"):
        ready.batch_deployments.create_or_update(_dep("blue", code, endpoint_name="nope-ep"))
    with pytest.raises(ValidationError, match="endpoint_name is required"):
        ready.batch_deployments.create_or_update({**_dep("blue", code), "endpoint_name": None})


def test_endpoint_name_argument_overrides_the_yaml(ready: BatchClient, code: Path) -> None:
    dep = ready.batch_deployments.create_or_update(
        _dep("blue", code, endpoint_name="wrong-one"), endpoint_name="ep-test"
    )
    assert dep.endpoint_name == "ep-test"


def test_custom_model_needs_a_scoring_script(ready: BatchClient) -> None:
    with pytest.raises(ValidationError, match="code_configuration is required for a custom_model model"):
        ready.batch_deployments.create_or_update({"name": "blue", "endpoint_name": "ep-test", "model": "tiny:1"})


# --- the scoring script --------------------------------------------------------------------------


def test_syntax_error_in_the_scoring_script_names_file_and_line(ready: BatchClient, code: Path) -> None:
    (code / "score.py").write_text("def init():\n    pass\n\n\ndef run(mini_batch)\n    return mini_batch\n")
    with pytest.raises(ValidationError) as info:
        ready.batch_deployments.create_or_update(_dep("blue", code))
    assert "score.py" in info.value.message
    assert "line 5" in info.value.message
    assert "--skip-script-validation" in info.value.message
    assert ready.batch_deployments.list("ep-test") == []
    dep = ready.batch_deployments.create_or_update(_dep("blue", code), skip_script_validation=True)
    assert (Path(dep.resolved["code_dir"]) / "score.py").read_text().startswith("def init")


def test_scoring_script_without_run_is_refused(ready: BatchClient, code: Path) -> None:
    (code / "score.py").write_text("def init():\n    pass\n")
    with pytest.raises(ValidationError, match=r"score.py does not define run\(\)"):
        ready.batch_deployments.create_or_update(_dep("blue", code))


@pytest.mark.parametrize(
    ("script", "message"),
    [("missing.py", "is not a file"), ("../outside.py", "is outside the code folder")],
)
def test_scoring_script_must_be_a_file_in_the_code_folder(
    ready: BatchClient, code: Path, script: str, message: str
) -> None:
    (code.parent / "outside.py").write_text(SCRIPT)
    dep = _dep("blue", code)
    dep["code_configuration"]["scoring_script"] = script
    with pytest.raises(ValidationError, match=message):
        ready.batch_deployments.create_or_update(dep)


def test_code_folder_is_snapshotted(ready: BatchClient, code: Path) -> None:
    dep = ready.batch_deployments.create_or_update(_dep("blue", code))
    snapshot = Path(dep.resolved["code_dir"])
    assert snapshot.parent == ready.workspace.code_dir
    assert sorted(p.name for p in snapshot.iterdir()) == ["helper.py", "score.py"]
    (code / "score.py").write_text(SCRIPT + "\n# edited after create\n")
    (code / "helper.py").unlink()
    (code / "new.py").write_text("x = 1\n")
    shown = ready.batch_deployments.get("blue", "ep-test")
    assert shown.resolved["code_dir"] == str(snapshot)
    assert (snapshot / "score.py").read_text() == SCRIPT
    assert sorted(p.name for p in snapshot.iterdir()) == ["helper.py", "score.py"]


def test_update_creates_a_revision_on_the_same_code(ready: BatchClient, code: Path) -> None:
    first = ready.batch_deployments.create_or_update(_dep("blue", code))
    updated = ready.batch_deployments.update("blue", "ep-test", ["settings.mini_batch_size=5"])
    assert (first.revision, updated.revision) == (1, 2)
    assert updated.settings["mini_batch_size"] == 5
    assert updated.resolved["code_dir"] == first.resolved["code_dir"]
    assert updated.is_default is True
    with pytest.raises(ValidationError, match="cannot be renamed"):
        ready.batch_deployments.update("blue", "ep-test", ["name=other"])


# --- pipeline deployments ------------------------------------------------------------------------


def test_pipeline_deployment_is_validated_and_stored(client: BatchClient, tmp_path: Path) -> None:
    (tmp_path / "pipe").mkdir()
    component = {"$schema": "x", "type": "pipeline", "name": "hello", "jobs": {"step": {"type": "command"}}}
    (tmp_path / "pipe" / "pipeline.yml").write_text(yaml.safe_dump(component))
    client.batch_endpoints.create_or_update({"name": "hello-batch"})
    spec = {"name": "hello-dpl", "endpoint_name": "hello-batch", "type": "pipeline", "component": "pipe/pipeline.yml"}
    with pytest.raises(ValidationError, match=r"jobs\.step\.component: required key is missing"):
        client.batch_deployments.create_or_update(spec, base_dir=tmp_path)
    component["jobs"]["step"]["component"] = {"command": "echo hello"}
    (tmp_path / "pipe" / "pipeline.yml").write_text(yaml.safe_dump(component))
    dep = client.batch_deployments.create_or_update(spec, base_dir=tmp_path)
    shown = client.batch_deployments.get("hello-dpl", "hello-batch")
    assert shown == dep
    assert shown.type == "pipeline"
    assert shown.component == "pipe/pipeline.yml"
    assert shown.resolved["component_ref"] == "hello"
    assert shown.resolved["component"]["jobs"]["step"]["component"]["command"] == "echo hello"
    assert shown.resolved["component"]["order"] == ["step"]
    assert shown.is_default is True
    with pytest.raises(ValidationError, match=r"component file 'missing\.yml' does not exist"):
        client.batch_deployments.create_or_update(
            {"name": "other-dpl", "endpoint_name": "hello-batch", "type": "pipeline", "component": "missing.yml"},
            base_dir=tmp_path,
        )


# --- paths relative to the YAML file, through the CLI --------------------------------------------


def test_yaml_paths_resolve_against_the_yaml_folder_not_the_cwd(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "model").mkdir(parents=True)
    (project / "model" / "weights.json").write_text('{"w": 1}')
    (project / "code").mkdir()
    (project / "code" / "score.py").write_text(SCRIPT)
    (project / "endpoint.yml").write_text("name: rel-ep\n")
    (project / "deployment.yml").write_text(
        textwrap.dedent(
            """\
            name: rel-dep
            endpoint_name: rel-ep
            model:
              name: rel-model
              path: model
            code_configuration:
              code: code
              scoring_script: score.py
            """
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ws = tmp_path / "ws"
    created = _cli(
        "batch-endpoint", "create", "-f", "../project/endpoint.yml", "-o", "none", cwd=elsewhere, workspace=ws
    )
    assert created.returncode == 0, created.stderr
    result = _cli("batch-deployment", "create", "-f", "../project/deployment.yml", cwd=elsewhere, workspace=ws)
    assert result.returncode == 0, result.stderr
    dep = json.loads(result.stdout)
    assert dep["resolved"]["code_source"] == str((project / "code").resolve())
    assert (Path(dep["resolved"]["code_dir"]) / "score.py").read_text() == SCRIPT
    model = BatchClient(ws).models.get("rel-model")
    assert model.source_path == str((project / "model").resolve())
    assert (Path(model.path) / "weights.json").is_file()


def test_set_default_keeps_a_yaml_looking_name_a_string(client, deploy) -> None:
    deploy("def init():\n    pass\ndef run(mini_batch):\n    return mini_batch\n", name="blue")
    deploy("def init():\n    pass\ndef run(mini_batch):\n    return mini_batch\n", name="yes")
    endpoint = client.batch_endpoints.set_default("ep-test", "yes")
    assert endpoint["defaults"]["deployment_name"] == "yes"
