"""The workspace registry: models, data assets, environments, datastores and computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchnb import BatchClient
from batchnb.errors import ConflictError, InvalidNameError, InvalidStateError, NotFoundError, ValidationError


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- models --------------------------------------------------------------------------------------


def test_model_from_a_folder_is_copied_under_its_basename(client: BatchClient, model_dir: Path) -> None:
    model = client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    assert (model.name, model.version, model.type) == ("tiny", "1", "custom_model")
    assert model.id == "azureml:tiny:1"
    # AZUREML_MODEL_DIR layout: <model_dir>/<basename of what was registered>
    model_root = Path(model.model_dir)
    assert model_root == client.workspace.models_dir / "tiny" / "1"
    assert Path(model.path) == model_root / "model"
    assert _files(model_root) == ["model", "model/weights.json"]
    assert json.loads((model_root / "model" / "weights.json").read_text()) == {"w": 3}


def test_model_from_a_file(client: BatchClient, tmp_path: Path) -> None:
    file = tmp_path / "clf.pkl"
    file.write_bytes(b"\x80\x04pickled")
    model = client.models.create_or_update({"name": "clf", "path": str(file)})
    assert Path(model.path) == Path(model.model_dir) / "clf.pkl"
    assert Path(model.path).read_bytes() == b"\x80\x04pickled"
    assert _files(Path(model.model_dir)) == ["clf.pkl"]


def test_relative_model_path_resolves_against_base_dir(client: BatchClient, model_dir: Path) -> None:
    model = client.models.create_or_update({"name": "tiny", "path": "model"}, base_dir=model_dir.parent)
    assert model.source_path == str(model_dir.resolve())


def test_versions_auto_increment_and_latest_resolves(client: BatchClient, model_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.bin"
    other.write_text("v2")
    v1 = client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    v2 = client.models.create_or_update({"name": "tiny", "path": str(other)})
    v3 = client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    assert [v1.version, v2.version, v3.version] == ["1", "2", "3"]
    for ref, version in [
        ("tiny@latest", "3"),
        ("azureml:tiny@latest", "3"),
        ("tiny", "3"),
        ("tiny:2", "2"),
        ("azureml:tiny:2", "2"),
        ("azureml:tiny:1", "1"),
    ]:
        assert client.models.resolve(ref).version == version, ref
    assert client.models.resolve("tiny:2").path.endswith("other.bin")
    assert [m.version for m in client.models.list(name="tiny")] == ["3", "2", "1"]
    assert [(m.name, m.version) for m in client.models.list()] == [("tiny", "3")]


def test_explicit_version_then_auto_version_continues(client: BatchClient, model_dir: Path) -> None:
    assert client.models.create_or_update({"name": "tiny", "path": str(model_dir), "version": "5"}).version == "5"
    assert client.models.create_or_update({"name": "tiny", "path": str(model_dir)}).version == "6"


def test_a_registered_model_is_a_copy(client: BatchClient, model_dir: Path) -> None:
    model = client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    (model_dir / "weights.json").write_text(json.dumps({"w": 99}))
    (model_dir / "extra.txt").write_text("added later")
    registered = Path(model.path)
    assert json.loads((registered / "weights.json").read_text()) == {"w": 3}
    assert not (registered / "extra.txt").exists()
    # A new registration picks up the edit; the old version still does not.
    v2 = client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    assert json.loads((Path(v2.path) / "weights.json").read_text()) == {"w": 99}
    assert json.loads((Path(client.models.get("tiny", version="1").path) / "weights.json").read_text()) == {"w": 3}


def test_explicit_version_conflict_is_refused_and_leaves_nothing(
    client: BatchClient, model_dir: Path, tmp_path: Path
) -> None:
    client.models.create_or_update({"name": "tiny", "path": str(model_dir), "version": "1"})
    other = tmp_path / "other.bin"
    other.write_text("should not land")
    before = _files(client.workspace.models_dir)
    with pytest.raises(ConflictError, match="model tiny version 1 already exists"):
        client.models.create_or_update({"name": "tiny", "path": str(other), "version": "1"})
    assert _files(client.workspace.models_dir) == before  # no copy, no staging folder left behind
    assert [m.version for m in client.models.list(name="tiny")] == ["1"]
    assert json.loads((Path(client.models.get("tiny", version="1").path) / "weights.json").read_text()) == {"w": 3}


def test_missing_model_path_is_refused_naming_it(client: BatchClient, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        client.models.create_or_update({"name": "tiny", "path": str(tmp_path / "nope")})
    assert "nope" in info.value.message and "does not exist" in info.value.message
    assert info.value.field == "path"
    assert client.models.list() == []
    assert _files(client.workspace.models_dir) == []


def test_mlflow_model_without_mlmodel_is_refused_naming_the_path(client: BatchClient, model_dir: Path) -> None:
    with pytest.raises(ValidationError) as info:
        client.models.create_or_update({"name": "flow", "type": "mlflow_model", "path": str(model_dir)})
    assert str(model_dir) in info.value.message
    assert "MLmodel" in info.value.message
    assert client.models.list() == []


def test_mlflow_model_with_mlmodel_is_accepted(client: BatchClient, model_dir: Path) -> None:
    (model_dir / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    model = client.models.create_or_update({"name": "flow", "type": "mlflow_model", "path": str(model_dir)})
    assert model.type == "mlflow_model"
    assert (Path(model.path) / "MLmodel").is_file()


def test_bad_model_names_and_versions_are_refused(client: BatchClient, model_dir: Path) -> None:
    with pytest.raises(InvalidNameError, match="invalid asset name"):
        client.models.create_or_update({"name": "../escape", "path": str(model_dir)})
    with pytest.raises(InvalidNameError, match="invalid version name"):
        client.models.create_or_update({"name": "tiny", "path": str(model_dir), "version": "../1"})
    assert client.models.list() == []
    assert _files(client.workspace.models_dir) == []


def test_unknown_model_and_label(client: BatchClient, model_dir: Path) -> None:
    with pytest.raises(NotFoundError, match="model nope is not registered"):
        client.models.resolve("azureml:nope@latest")
    client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    with pytest.raises(NotFoundError, match="model tiny version 7 is not registered"):
        client.models.resolve("azureml:tiny:7")
    with pytest.raises(ValidationError, match="only @latest"):
        client.models.resolve("tiny@production")


# --- data assets ---------------------------------------------------------------------------------


def test_data_asset_folder_and_file(client: BatchClient, csv_inputs) -> None:
    folder = csv_inputs(2)
    as_folder = client.data.create_or_update({"name": "heart-data", "path": str(folder), "type": "uri_folder"})
    as_file = client.data.create_or_update({"name": "one-file", "path": str(folder / "f000.csv"), "type": "uri_file"})
    assert (as_folder.version, as_folder.path) == ("1", str(folder.resolve()))
    assert as_file.type == "uri_file"
    assert client.data.resolve("azureml:heart-data@latest").path == str(folder.resolve())
    # A data asset is a pointer: nothing is copied into the workspace.
    assert not (client.workspace.root / "artifacts" / "data").exists()


def test_data_asset_type_defaults_to_uri_folder(client: BatchClient, csv_inputs) -> None:
    assert client.data.create_or_update({"name": "d", "path": str(csv_inputs(1))}).type == "uri_folder"


@pytest.mark.parametrize(
    ("kind", "target", "message"),
    [
        ("uri_file", "folder", "is a folder, but type is uri_file"),
        ("uri_folder", "file", "is a file, but type is uri_folder"),
        ("uri_folder", "missing", "does not exist"),
    ],
)
def test_data_asset_path_must_exist_and_match_its_type(
    client: BatchClient, csv_inputs, kind: str, target: str, message: str
) -> None:
    folder = csv_inputs(1)
    path = {"folder": folder, "file": folder / "f000.csv", "missing": folder / "nope"}[target]
    with pytest.raises(ValidationError, match=message):
        client.data.create_or_update({"name": "d", "path": str(path), "type": kind})
    assert client.data.list() == []


def test_data_asset_on_a_datastore_uri_resolves(client: BatchClient) -> None:
    uri = "azureml://datastores/workspaceblobstore/paths/x"
    asset = client.data.create_or_update({"name": "on-store", "path": uri, "type": "uri_folder"})
    assert asset.path == uri  # kept as given
    assert client.datastores.resolve_uri(uri) == str(client.workspace.default_datastore_root / "x")
    assert client.datastores.resolve_uri("azureml://datastores/workspaceblobstore/paths/") == str(
        client.workspace.default_datastore_root
    )


def test_datastore_uri_refuses_parent_folders(client: BatchClient) -> None:
    with pytest.raises(ValidationError, match=r"may not contain '\.\.'"):
        client.datastores.resolve_uri("azureml://datastores/workspaceblobstore/paths/../../etc")


def test_datastore_uri_of_unknown_datastore(client: BatchClient) -> None:
    with pytest.raises(NotFoundError, match="datastore nostore does not exist"):
        client.datastores.resolve_uri("azureml://datastores/nostore/paths/x")


# --- environments --------------------------------------------------------------------------------


def test_environment_keeps_the_conda_file_content(client: BatchClient, tmp_path: Path) -> None:
    (tmp_path / "conda.yaml").write_text("name: env\ndependencies:\n  - python=3.11\n")
    env = client.environments.create_or_update(
        {"name": "batch-env", "image": "mcr.microsoft.com/azureml/minimal:latest", "conda_file": "conda.yaml"},
        base_dir=tmp_path,
    )
    assert env.conda_file == {"name": "env", "dependencies": ["python=3.11"]}
    assert client.environments.resolve("azureml:batch-env@latest").image == "mcr.microsoft.com/azureml/minimal:latest"


def test_environment_with_a_missing_conda_file_is_refused(client: BatchClient, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"conda_file 'conda\.yaml' does not exist"):
        client.environments.create_or_update({"name": "env", "conda_file": "conda.yaml"}, base_dir=tmp_path)


# --- datastores and computes ---------------------------------------------------------------------


def test_default_datastore_exists(client: BatchClient) -> None:
    default = client.datastores.get_default()
    assert default.name == "workspaceblobstore"
    assert default.is_default is True
    assert Path(default.path).is_dir()
    assert client.datastores.get("workspaceblobstore") == default
    assert [d.name for d in client.datastores.list()] == ["workspaceblobstore"]


def test_custom_datastore_over_a_folder(client: BatchClient, tmp_path: Path) -> None:
    ds = client.datastores.create_or_update({"name": "my_store", "path": "stores/mine"}, base_dir=tmp_path)
    assert Path(ds.path) == (tmp_path / "stores" / "mine").resolve()
    assert Path(ds.path).is_dir()
    assert client.datastores.resolve_uri("azureml://datastores/my_store/paths/a/b.csv") == str(
        Path(ds.path) / "a" / "b.csv"
    )
    assert [d.name for d in client.datastores.list()] == ["workspaceblobstore", "my_store"]


def test_default_datastore_cannot_be_replaced(client: BatchClient, tmp_path: Path) -> None:
    with pytest.raises(ConflictError, match="default datastore"):
        client.datastores.create_or_update({"name": "workspaceblobstore", "path": str(tmp_path)})


def test_default_compute_local_exists(client: BatchClient) -> None:
    local = client.computes.get("local")
    assert (local.name, local.type, local.is_default) == ("local", "local", True)
    assert local.max_workers >= 1
    assert client.computes.resolve(None).name == "local"
    assert client.computes.resolve("azureml:local").name == "local"
    assert [c.name for c in client.computes.list()] == ["local"]


def test_amlcompute_is_accepted(client: BatchClient) -> None:
    compute = client.computes.create_or_update(
        {"name": "batch-cluster", "type": "amlcompute", "min_instances": 0, "max_instances": 5}
    )
    assert (compute.type, compute.min_instances, compute.max_instances) == ("amlcompute", 0, 5)
    assert client.computes.resolve("azureml:batch-cluster").max_instances == 5
    # Created again with new sizes: replaced, not duplicated.
    client.computes.create_or_update({"name": "batch-cluster", "type": "amlcompute", "max_instances": 2})
    assert [c.name for c in client.computes.list()] == ["local", "batch-cluster"]
    assert client.computes.get("batch-cluster").max_instances == 2


def test_compute_rules(client: BatchClient) -> None:
    with pytest.raises(ValidationError, match=r"min_instances \(3\) is above max_instances \(2\)"):
        client.computes.create_or_update({"name": "cpu", "min_instances": 3, "max_instances": 2})
    with pytest.raises(ConflictError, match="built-in compute"):
        client.computes.create_or_update({"name": "local"})
    with pytest.raises(InvalidStateError, match="cannot be deleted"):
        client.computes.delete("local")
    with pytest.raises(NotFoundError, match="compute nope does not exist"):
        client.computes.delete("nope")
    with pytest.raises(ValidationError, match="type"):
        client.computes.create_or_update({"name": "k8s", "type": "kubernetes"})
    assert [c.name for c in client.computes.list()] == ["local"]


def test_data_asset_on_an_unknown_datastore_is_refused_at_registration(client: BatchClient) -> None:
    with pytest.raises(NotFoundError, match="datastore nostore does not exist"):
        client.data.create_or_update({"name": "d", "path": "azureml://datastores/nostore/paths/x"})
    assert client.data.list() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def init():\n    pass\n\n\ndef run(mini_batch):\n    return mini_batch\n", False),
        ("def shutdown():\n    pass\n", True),
        ("from helpers import shutdown\n", True),
        ("shutdown = print\n", True),
        ("from helpers import *\n", True),  # cannot tell: assume it may
        ("def broken(:\n", True),  # cannot tell: assume it may
    ],
)
def test_may_define_tells_when_a_script_surely_has_no_shutdown(tmp_path: Path, source: str, expected: bool) -> None:
    from batchnb.registry.code import may_define

    script = tmp_path / "score.py"
    script.write_text(source)
    assert may_define(script, "shutdown") is expected
