"""The REST API stays inside the server's folders, code-running verbs need ``execute``, names match whole.

Through a real Jupyter server (pytest-jupyter, the fixtures of ``test_server``): every path a request
names must resolve, after ``..`` and symlinks, inside the server's root folder, a registered
datastore or ``c.BatchnbServer.allowed_paths``; anything else is a 403 naming the field, and nothing
is written. A restricted authorizer can grant read and write without ``execute``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import test_server
from engine_helpers import reaping
from jupyter_server.auth.authorizer import Authorizer
from pytest_jupyter.jupyter_server import *  # noqa: F403 - the fixtures, scoped to this module (see test_server)
from test_server import SCRIPT, Api, FixedUserIdentityProvider, deployment_spec, pipeline_body, wait_for_job

from batchnb import BatchClient

# test_server's fixtures, served to this module's tests by name.
api, deployed, jp_asyncio_loop, project, store, ws_dir = (
    test_server.api,
    test_server.deployed,
    test_server.jp_asyncio_loop,
    test_server.project,
    test_server.store,
    test_server.ws_dir,
)


class NoExecuteAuthorizer(Authorizer):
    """Read and write, never execute: what an admin grants a user who may look and edit but not run code."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action != "execute"


@pytest.fixture
def outside(tmp_path: Path, jp_root_dir: Path) -> Path:
    """A folder beside the server's root folder (not under it): data/, model/, code/, a secret and a component."""
    folder = tmp_path / "outside"
    assert not folder.is_relative_to(jp_root_dir)
    (folder / "data").mkdir(parents=True)
    for i in range(2):
        (folder / "data" / f"f{i}.csv").write_text(f"x\n{i}\n")
    (folder / "model").mkdir()
    (folder / "model" / "weights.json").write_text('{"w": 3}')
    (folder / "code").mkdir()
    (folder / "code" / "score.py").write_text(SCRIPT.format(dep="outside"))
    (folder / "secret.txt").write_text("the server's secret\n")
    component = {
        "type": "command",
        "command": "echo ${{inputs.d}}",
        "inputs": {"d": {"type": "uri_folder"}},
    }
    (folder / "component.yml").write_text(json.dumps(component))
    return folder


@pytest.fixture
def extra_config(request: pytest.FixtureRequest, outside: Path) -> dict[str, Any]:
    """``allow``: the outside folder is in ``c.BatchnbServer.allowed_paths``; ``no-execute``: a
    restricted authorizer."""
    mode = getattr(request, "param", None)
    if mode == "allow":
        return {"BatchnbServer": {"allowed_paths": [str(outside)]}}
    if mode == "allow-url":  # port 9 (discard): nothing listens, so nothing is ever fetched
        return {"BatchnbServer": {"allowed_paths": ["http://127.0.0.1:9/shared"]}}
    if mode == "no-execute":
        return {"ServerApp": {"authorizer_class": NoExecuteAuthorizer}}
    return {}


@pytest.fixture
def jp_server_config(extra_config: dict[str, Any]) -> dict[str, Any]:
    server = {
        "jpserver_extensions": {"batchnb": True, "jupyter_server_terminals": False},
        "allow_unauthenticated_access": False,
        "reraise_server_extension_failures": True,
        "identity_provider_class": FixedUserIdentityProvider,
        **extra_config.get("ServerApp", {}),
    }
    return {**extra_config, "ServerApp": server}


def refused(result: tuple[int, Any], field: str, path: str, why: str = "the folders this server may use") -> None:
    """A 403 whose JSON names the field and the path."""
    code, err = result
    assert code == 403, (code, err)
    assert err["error"] == "PathNotAllowedError" and err["field"] == field, err
    assert path in err["message"] and why in err["message"], err


REMOTE = "not under a registered datastore or a URL in this server's allowed_paths"


def test_each_path_outside_the_root_is_refused_naming_its_field(
    api: Api, deployed: dict[str, Any], outside: Path, project: Path, store: BatchClient
) -> None:
    data, out = str(outside / "data"), str(outside / "out")
    invoke = ("POST", "endpoints", "ep-rest", "jobs")
    # The reported escape: an empty input folder and /etc as the output, then listing /etc's files.
    (project / "empty").mkdir()
    refused(api(*invoke, body={"input": "empty", "output_path": "/etc"}), "output_path", "/etc")
    refused(api(*invoke, body={"input": data}), "input", data)
    refused(api(*invoke, body={"input": "../outside/data"}), "input", "../outside/data")
    refused(api(*invoke, body={"input": {"type": "uri_folder", "path": data}}), "input", data)
    refused(api(*invoke, body={"inputs": {"heart": {"type": "uri_folder", "path": data}}}), "inputs.heart", data)
    refused(api(*invoke, body={"input": "data", "output_path": out}), "output_path", out)
    refused(api(*invoke, body={"input": "data", "outputs": {"score": {"path": out}}}), "outputs.score", out)
    refused(api(*invoke, body={"input": data, "dry_run": True}), "input", data)
    # fsspec URLs that reach this machine's files are local paths in disguise.
    refused(api(*invoke, body={"input": f"local://{data}"}), "input", f"local://{data}")
    refused(api(*invoke, body={"input": f"file://{data}"}), "input", data)
    refused(api(*invoke, body={"input": f"zip://f0.csv::local://{data}.zip"}), "input", "zip://f0.csv::local://")
    assert store.jobs.list() == [] and not (outside / "out").exists()

    secret = str(outside / "secret.txt")
    refused(api("POST", "models", body={"name": "leak", "path": secret}), "path", secret)
    assert [m["name"] for m in store.models.list()] == ["tiny"]
    assert not list(store.workspace.models_dir.rglob("secret.txt"))

    deps = ("POST", "endpoints", "ep-rest", "deployments")
    code_dir = str(outside / "code")
    spec = {**deployment_spec("green"), "code_configuration": {"code": code_dir, "scoring_script": "score.py"}}
    refused(api(*deps, body=spec), "code_configuration.code", code_dir)
    model_dir = str(outside / "model")
    refused(api(*deps, body={**deployment_spec("green"), "model": {"path": model_dir}}), "model.path", model_dir)
    assert [d["name"] for d in store.batch_deployments.list("ep-rest")] == ["blue"]
    assert len(list(store.workspace.code_dir.iterdir())) == 1  # blue's code; nothing copied for green
    assert [m["name"] for m in store.models.list()] == ["tiny"]

    # A pipeline job's fields are named as its other mistakes are: after the source ("request body").
    component = str(outside / "component.yml")
    body = pipeline_body(inputs={"data": {"type": "uri_folder", "path": data}})
    refused(api("POST", "jobs", body=body), "request body: inputs.data", data)
    body = pipeline_body(outputs={"counted": {"type": "uri_folder", "path": out}, "final": {"type": "uri_folder"}})
    refused(api("POST", "jobs", body=body), "outputs.counted", out)
    body = pipeline_body()
    body["jobs"]["count"]["component"] = component
    refused(api("POST", "jobs", body=body), "request body: jobs.count.component", component)
    assert store.jobs.list() == [] and not (outside / "out").exists()


def test_a_symlink_inside_the_root_that_leads_out_is_refused(
    api: Api, deployed: dict[str, Any], outside: Path, project: Path, store: BatchClient
) -> None:
    (project / "shortcut").symlink_to(outside / "data")
    refused(api("POST", "endpoints", "ep-rest", "jobs", body={"input": "shortcut"}), "input", "shortcut")
    (project / "results").symlink_to(outside)
    refused(
        api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "output_path": "results/run1"}),
        "output_path",
        "results/run1",
    )
    # A folder inside the root with a symlink inside it: copying it would copy the outside file.
    (project / "model2").mkdir()
    (project / "model2" / "weights.json").symlink_to(outside / "secret.txt")
    refused(api("POST", "models", body={"name": "leak", "path": "model2"}), "path", "weights.json")
    (project / "code-leak").mkdir()
    (project / "code-leak" / "score.py").write_text(SCRIPT.format(dep="leak"))
    (project / "code-leak" / "notes.txt").symlink_to(outside / "secret.txt")
    spec = {**deployment_spec("green"), "code_configuration": {"code": "code-leak", "scoring_script": "score.py"}}
    refused(api("POST", "endpoints", "ep-rest", "deployments", body=spec), "code_configuration.code", "notes.txt")
    assert store.jobs.list() == [] and not list(outside.rglob("predictions.csv"))
    assert [m["name"] for m in store.models.list()] == ["tiny"]
    assert [d["name"] for d in store.batch_deployments.list("ep-rest")] == ["blue"]


def test_inside_paths_and_registered_datastores_still_work(
    api: Api, deployed: dict[str, Any], outside: Path, project: Path, store: BatchClient
) -> None:
    # An admin registered a datastore over the outside folder: requests may name paths under it.
    store.datastores.create_or_update({"name": "shared", "path": str(outside)})
    with reaping():
        code, job = api(
            "POST", "endpoints", "ep-rest", "jobs",
            body={"input": "azureml://datastores/shared/paths/data", "output_path": "results/here"},
        )  # fmt: skip
        assert code == 201, job
        done = wait_for_job(api, job["name"])
    assert done["status"] == "Completed", done["error"]
    assert sorted((Path(done["outputs"]["score"]["path"]) / "predictions.csv").read_text().splitlines()) == [
        "0 blue",
        "1 blue",
    ]
    assert Path(done["outputs"]["score"]["path"]) == project / "results" / "here"
    # A symlink inside the datastore that leads out of it is refused all the same.
    (outside / "data" / "escape").symlink_to("/etc")
    refused(
        api("POST", "endpoints", "ep-rest", "jobs", body={"input": "azureml://datastores/shared/paths/data/escape"}),
        "input",
        "data/escape",
    )


@pytest.mark.parametrize("extra_config", ["allow"], indirect=True)
def test_an_allow_listed_folder_outside_the_root_may_be_named(
    api: Api, deployed: dict[str, Any], outside: Path, store: BatchClient
) -> None:
    code, model = api("POST", "models", body={"name": "outside-model", "path": str(outside / "model")})
    assert code == 201, model
    with reaping():
        code, job = api(
            "POST", "endpoints", "ep-rest", "jobs",
            body={"input": str(outside / "data"), "output_path": str(outside / "out")},
        )  # fmt: skip
        assert code == 201, job
        done = wait_for_job(api, job["name"])
    assert done["status"] == "Completed", done["error"]
    assert sorted((outside / "out" / "predictions.csv").read_text().splitlines()) == ["0 blue", "1 blue"]
    # Still nothing beyond it.
    refused(api("POST", "endpoints", "ep-rest", "jobs", body={"input": "/etc"}), "input", "/etc")


def test_a_remote_url_is_refused_unless_an_allowed_path_or_datastore_is_its_prefix(
    api: Api, deployed: dict[str, Any], store: BatchClient
) -> None:
    invoke = ("POST", "endpoints", "ep-rest", "jobs")
    metadata = "http://169.254.169.254/latest/meta-data/"  # refused before anything would fetch it
    refused(api(*invoke, body={"input": metadata}), "input", metadata, REMOTE)
    refused(
        api(*invoke, body={"input": "https://127.0.0.1:9/in", "dry_run": True}),
        "input",
        "https://127.0.0.1:9/in",
        REMOTE,
    )
    body = {"inputs": {"heart": {"type": "uri_folder", "path": "http://127.0.0.1:9/in"}}}
    refused(api(*invoke, body=body), "inputs.heart", "http://127.0.0.1:9/in", REMOTE)
    refused(
        api(*invoke, body={"input": "data", "output_path": "http://127.0.0.1:9/out"}),
        "output_path",
        "http://127.0.0.1:9/out",
        REMOTE,
    )
    body = {"input": "data", "outputs": {"score": {"path": "http://127.0.0.1:9/out"}}}
    refused(api(*invoke, body=body), "outputs.score", "http://127.0.0.1:9/out", REMOTE)
    assert store.jobs.list() == []
    # An admin registered a datastore at a URL: its URLs pass the check (and the dry run goes to read them).
    store.datastores.create_or_update({"name": "web", "path": "http://127.0.0.1:9/web"})
    for given in ("azureml://datastores/web/paths/in", "http://127.0.0.1:9/web/in"):
        code, err = api(*invoke, body={"input": given, "dry_run": True})
        assert err["error"] == "DryRunError" and "Cannot connect to host 127.0.0.1:9" in err["message"], (code, err)
    refused(api(*invoke, body={"input": "http://127.0.0.1:9/webx"}), "input", "http://127.0.0.1:9/webx", REMOTE)


@pytest.mark.parametrize("extra_config", ["allow-url"], indirect=True)
def test_a_url_prefix_in_allowed_paths_lets_its_urls_through_and_no_other(
    api: Api, deployed: dict[str, Any], store: BatchClient
) -> None:
    invoke = ("POST", "endpoints", "ep-rest", "jobs")
    code, err = api(*invoke, body={"input": "http://127.0.0.1:9/shared/in", "dry_run": True})
    # Past the check: the dry run went to read it, and nothing listens there.
    assert err["error"] == "DryRunError" and "Cannot connect to host 127.0.0.1:9" in err["message"], (code, err)
    for outside in (
        "http://127.0.0.1:9/shared-not",
        "http://127.0.0.1:9/shared/../x",
        "http://127.0.0.1:9/shared/%2e%2e/x",
    ):
        refused(api(*invoke, body={"input": outside}), "input", outside, REMOTE)


@pytest.mark.parametrize("extra_config", ["no-execute"], indirect=True)
def test_without_execute_the_code_running_verbs_are_403s_and_the_rest_works(
    api: Api, project: Path, store: BatchClient
) -> None:
    # Reading and writing are allowed: models, endpoints, lists, cancelling.
    code, model = api("POST", "models", body={"name": "tiny", "path": "model"})
    assert code == 201, model
    code, ep = api("POST", "endpoints", body={"name": "ep-rest"})
    assert code == 201, ep
    code, ep = api("PATCH", "endpoints", "ep-rest", body={"set": ["description=read and write only"]})
    assert code == 200 and ep["description"] == "read and write only"
    code, jobs = api("GET", "jobs")
    assert code == 200 and jobs["jobs"] == [] and jobs["total"] == 0
    code, err = api("POST", "jobs", "ghost", "cancel")
    assert code == 404, err

    # The deployment exists (made by someone who may execute), so an invocation would run its code.
    store.batch_deployments.create_or_update(
        {**deployment_spec("blue"), "endpoint_name": "ep-rest"}, base_dir=project, set_default=True
    )
    verbs: list[tuple[tuple[str, ...], Any]] = [
        (("endpoints", "ep-rest", "deployments"), deployment_spec("green")),
        (("endpoints", "ep-rest", "jobs"), {"input": "data"}),
        (("endpoints", "ep-rest", "jobs"), {"input": "data", "dry_run": True}),
        (("endpoints", "ep-rest", "compare"), {"deployments": ["blue", "green"], "input": "data"}),
        (("jobs",), pipeline_body()),
        (("jobs", "ghost", "resume"), None),
        (("jobs", "ghost", "rerun-failed"), None),
    ]
    for path, body in verbs:
        code, err = api("POST", *path, body=body)
        assert code == 403, (path, code, err)
        assert err["message"] == "User is not authorized to execute on resource: batchnb.", err
    assert store.jobs.list() == []
    assert [d["name"] for d in store.batch_deployments.list("ep-rest")] == ["blue"]


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["abc1\n", " abc1", "\u0430bc1"], ids=repr)
def test_a_near_miss_name_is_a_400_and_creates_nothing(
    api: Api, deployed: dict[str, Any], store: BatchClient, name: str
) -> None:
    # "abc1\n" used to pass the name check, be stored, then fail in the Location header: a 500 after the write.
    attempts: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        (("endpoints",), {"name": name}),
        (("endpoints", "ep-rest", "deployments"), {**deployment_spec("blue"), "name": name}),
        (("models",), {"name": name, "path": "model"}),
        (("endpoints", "ep-rest", "jobs"), {"input": "data", "job_name": name}),
        (("jobs",), pipeline_body(name=name)),
    ]
    for path, body in attempts:
        code, err = api("POST", *path, body=body)
        assert code == 400, (path, code, err)
        assert err["error"] == "InvalidNameError" and err["field"] == "name" and repr(name) in err["message"], err
    assert [e["name"] for e in store.batch_endpoints.list()] == ["ep-rest"]
    assert [d["name"] for d in store.batch_deployments.list("ep-rest")] == ["blue"]
    assert [m["name"] for m in store.models.list()] == ["tiny"]
    assert store.jobs.list() == []
