"""The REST API (jupyter_server extension), end to end through a real Jupyter server (pytest-jupyter).

pytest-jupyter's fixtures are imported into this module rather than registered with
``pytest_plugins``: a plugin registered from a test module is global, and its autouse fixtures
(a new event loop and a ``ServerApp`` cleanup around every test) and its ``pytest_pyfunc_call`` hook
would then run for every other test module too. Imported here, they serve this module only, and
the tests are plain functions that drive the server's loop through :func:`api`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.web
from engine_helpers import reaping, wait_until
from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.utils import JupyterServerAuthWarning
from pytest_jupyter.jupyter_server import *  # noqa: F403 - the fixtures, scoped to this module (see above)

from batchnb import BatchClient
from batchnb.server import handlers, models

USER = "ada-lovelace"

SCRIPT = """
import pandas as pd

def init():
    pass

def run(mini_batch):
    frame = pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
    frame["dep"] = "{dep}"
    return frame
"""


class FixedUserIdentityProvider(IdentityProvider):
    """Token authentication as usual, but the token's user has a fixed name (instead of a random one)."""

    def generate_anonymous_user(self, handler: Any) -> User:
        return User(username=USER, name="Ada")


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """pytest-jupyter's event loop fixture, replaced: a new loop per test, whatever ran before.

    Playwright's sync API (the browser tests, session-scoped) leaves its loop marked as running in
    the main thread while the session lasts; pytest-jupyter's own fixture would pick that loop up
    and fail with "This event loop is already running". The mark is lifted for the test and put back.
    """
    leaked = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        loop.close()
        asyncio.set_event_loop(None)
        asyncio._set_running_loop(leaked)


@pytest.fixture
def extra_config() -> dict[str, Any]:
    """More server configuration; tests parametrize it."""
    return {}


@pytest.fixture
def jp_server_config(extra_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {
            # pytest-jupyter adds the terminals extension unless told; it is not needed here.
            "jpserver_extensions": {"batchnb": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
            "reraise_server_extension_failures": True,
            "identity_provider_class": FixedUserIdentityProvider,
        },
        **extra_config,
    }


@pytest.fixture
def ws_dir(jp_root_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace marker folder in the server's root folder: the server finds it by the workspace rule."""
    monkeypatch.delenv("BATCHNB_WORKSPACE", raising=False)
    folder = jp_root_dir / ".batchnb"
    folder.mkdir()
    return folder


@pytest.fixture
def store(ws_dir: Path) -> BatchClient:
    """A client on the server's workspace, to check what the server wrote."""
    return BatchClient(ws_dir)


Api = Callable[..., tuple[int, Any]]


@pytest.fixture
def api(jp_fetch: Any, jp_asyncio_loop: Any, ws_dir: Path) -> Api:
    """api(method, "endpoints", name, body=..., params=..., headers=..., raw=...) -> (status, JSON or None)."""

    def call(
        method: str,
        *path: str,
        body: Any = None,
        raw: str | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        response: list[Any] | None = None,
    ) -> tuple[int, Any]:
        payload: str | None = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if payload is None and method in ("POST", "PATCH", "PUT"):
            payload = ""
        resp = jp_asyncio_loop.run_until_complete(
            jp_fetch(
                "batchnb", "api", *path, method=method, body=payload, params=params, headers=headers, raise_error=False
            )
        )
        if response is not None:
            response.append(resp)
        text = resp.body.decode() if resp.body else ""
        return resp.code, json.loads(text) if text else None

    return call


def wait_for_job(api: Api, name: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, job = api("GET", "jobs", name)
        assert code == 200, job
        if job["status"] in ("Completed", "Failed", "Canceled", "Interrupted"):
            return job
        assert time.monotonic() < deadline, f"job {name} still {job['status']} after {timeout} s"
        time.sleep(0.2)


def output_rows(job: dict[str, Any]) -> list[str]:
    score = job["outputs"]["score"]
    return (Path(score["path"]) / score["file_name"]).read_text().splitlines()


@pytest.fixture
def project(jp_root_dir: Path) -> Path:
    """Files under the server's root folder: model/, code-blue/, code-green/ and data/ (4 CSV files)."""
    (jp_root_dir / "model").mkdir()
    (jp_root_dir / "model" / "weights.json").write_text('{"w": 3}')
    for dep in ("blue", "green"):
        (jp_root_dir / f"code-{dep}").mkdir()
        (jp_root_dir / f"code-{dep}" / "score.py").write_text(textwrap.dedent(SCRIPT.format(dep=dep)))
    (jp_root_dir / "data").mkdir()
    for i in range(4):
        (jp_root_dir / "data" / f"f{i:03d}.csv").write_text(f"x\n{i}\n")
    return jp_root_dir


def deployment_spec(name: str) -> dict[str, Any]:
    # Relative paths: they resolve against the server's root folder.
    return {
        "name": name,
        "model": "azureml:tiny@latest",
        "code_configuration": {"code": f"code-{name}", "scoring_script": "score.py"},
        "settings": {"mini_batch_size": 2, "max_concurrency_per_instance": 1},
    }


@pytest.fixture
def deployed(api: Api, project: Path) -> dict[str, Any]:
    """Through REST: the model 'tiny', the endpoint 'ep-rest' and its deployment 'blue' (the default)."""
    code, model = api("POST", "models", body={"name": "tiny", "path": "model"})
    assert code == 201, model
    code, endpoint = api("POST", "endpoints", body={"name": "ep-rest", "description": "REST test"})
    assert code == 201, endpoint
    code, dep = api("POST", "endpoints", "ep-rest", "deployments", body=deployment_spec("blue"))
    assert code == 201, dep
    return {"model": model, "endpoint": endpoint, "deployment": dep}


# --- the happy path --------------------------------------------------------------------------------


def test_create_invoke_and_follow_a_job_through_rest(api: Api, deployed: dict[str, Any], store: BatchClient) -> None:
    models.Model.model_validate(deployed["model"])
    endpoint = models.BatchEndpoint.model_validate(deployed["endpoint"])
    assert endpoint.scoring_uri.endswith("/batchnb/api/endpoints/ep-rest/jobs")
    dep = models.BatchDeployment.model_validate(deployed["deployment"])
    assert dep.is_default and dep.revision == 1
    # What REST created is in the workspace the rule finds from the server's root folder.
    assert [e["name"] for e in store.batch_endpoints.list()] == ["ep-rest"]

    code, listing = api("GET", "endpoints")
    assert code == 200 and [e.name for e in models.EndpointList.model_validate(listing).endpoints] == ["ep-rest"]
    code, ep = api("GET", "endpoints", "ep-rest")
    assert code == 200 and ep["defaults"]["deployment_name"] == "blue" and ep["deployments"] == ["blue"]
    code, deps = api("GET", "endpoints", "ep-rest", "deployments")
    assert code == 200 and [d.name for d in models.DeploymentList.model_validate(deps).deployments] == ["blue"]
    code, one = api("GET", "endpoints", "ep-rest", "deployments", "blue")
    assert code == 200 and one["resolved"]["scoring_script"] == "score.py"

    responses: list[Any] = []
    code, job = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data"}, response=responses)
    assert code == 201, job
    models.Job.model_validate(job)
    assert job["status"] in ("Queued", "Preparing", "Running")
    assert job["deployment_name"] == "blue"
    assert job["invoked_by"] == USER
    assert responses[0].headers["Location"].endswith(f"/batchnb/api/jobs/{job['name']}")

    done = wait_for_job(api, job["name"])
    assert done["status"] == "Completed", done["error"]
    assert sorted(output_rows(done)) == ["0 blue", "1 blue", "2 blue", "3 blue"]
    assert done["progress"]["mini_batches"]["done"] == 2
    assert done["progress"]["items"] == {"total": 4, "succeeded": 4, "failed": 0}

    code, jobs = api("GET", "jobs", params={"endpoint": "ep-rest", "status": "Completed", "limit": "5"})
    assert code == 200 and [j.name for j in models.JobList.model_validate(jobs).jobs] == [job["name"]]
    code, jobs = api("GET", "endpoints", "ep-rest", "jobs", params={"deployment": "blue"})
    assert code == 200 and [j["name"] for j in jobs["jobs"]] == [job["name"]]
    code, jobs = api("GET", "jobs", params={"status": "Running"})
    assert code == 200 and jobs["jobs"] == []

    code, logs = api("GET", "jobs", job["name"], "logs", params={"lines": "3"})
    assert code == 200, logs
    models.JobLogs.model_validate(logs)
    assert set(logs["files"]) == {"job_result.txt", "user/error.txt", "sys/master_role.txt"}
    assert logs["files"]["job_result.txt"]["exists"] and logs["files"]["job_result.txt"]["lines"]
    master = logs["files"]["sys/master_role.txt"]
    assert len(master["lines"]) == 3 and master["truncated"]
    assert master["lines"] == Path(master["path"]).read_text().splitlines()[-3:]
    assert not logs["files"]["user/error.txt"]["exists"]

    code, outputs = api("GET", "jobs", job["name"], "outputs")
    assert code == 200, outputs
    models.JobOutputs.model_validate(outputs)
    out_file = Path(done["outputs"]["score"]["path"]) / "predictions.csv"
    assert outputs["files"] == [{"name": "predictions.csv", "size": out_file.stat().st_size}]
    assert outputs["total_size"] == out_file.stat().st_size and outputs["output"] == "score"
    code, err = api("GET", "jobs", job["name"], "outputs", params={"output": "scores"})
    assert code == 400 and "has no output 'scores'; its outputs are: score" in err["message"], err

    # The job is in the store with the Jupyter identity.
    assert store.jobs.get(job["name"])["invoked_by"] == USER


def test_invoked_by_is_the_jupyter_user_the_server_reports(
    api: Api, deployed: dict[str, Any], jp_fetch: Any, jp_asyncio_loop: Any
) -> None:
    me = jp_asyncio_loop.run_until_complete(jp_fetch("api", "me"))
    username = json.loads(me.body)["identity"]["username"]
    assert username == USER
    code, job = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "job_name": "who-ran-it"})
    assert code == 201, job
    assert job["invoked_by"] == username
    wait_for_job(api, "who-ran-it")


def test_patching_the_default_routes_the_same_url_to_the_new_deployment(api: Api, deployed: dict[str, Any]) -> None:
    code, green = api("POST", "endpoints", "ep-rest", "deployments", body=deployment_spec("green"))
    assert code == 201 and not green["is_default"]
    code, before = api("GET", "endpoints", "ep-rest")

    code, after = api("PATCH", "endpoints", "ep-rest", body={"defaults": {"deployment_name": "green"}})
    assert code == 200, after
    assert after["defaults"]["deployment_name"] == "green"
    assert after["scoring_uri"] == before["scoring_uri"]  # the invocation URL never changes
    code, dep = api("GET", "endpoints", "ep-rest", "deployments", "green")
    assert dep["is_default"]

    code, job = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data"})
    assert code == 201, job
    assert job["deployment_name"] == "green"
    done = wait_for_job(api, job["name"])
    assert done["status"] == "Completed", done["error"]
    assert sorted(output_rows(done)) == ["0 green", "1 green", "2 green", "3 green"]

    # A deployment named explicitly still wins over the default.
    code, job = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "deployment_name": "blue"})
    assert code == 201 and job["deployment_name"] == "blue"
    wait_for_job(api, job["name"])


def test_patch_set_and_repost_update_the_endpoint(api: Api, deployed: dict[str, Any]) -> None:
    code, ep = api("PATCH", "endpoints", "ep-rest", body={"set": ["description=nightly", "tags.team=ml"]})
    assert code == 200, ep
    assert ep["description"] == "nightly" and ep["tags"] == {"team": "ml"}
    assert ep["defaults"]["deployment_name"] == "blue"
    # POST of an existing endpoint updates it (200), keeping its default.
    code, ep = api("POST", "endpoints", body={"name": "ep-rest", "description": "again"})
    assert code == 200 and ep["description"] == "again" and ep["defaults"]["deployment_name"] == "blue"
    # POST of an existing deployment is a new revision (200).
    code, dep = api("POST", "endpoints", "ep-rest", "deployments", body=deployment_spec("blue"))
    assert code == 200 and dep["revision"] == 2


def test_dry_run_scores_one_mini_batch_in_a_child_process_and_records_no_job(
    api: Api, deployed: dict[str, Any], store: BatchClient
) -> None:
    code, result = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "dry_run": True})
    assert code == 200, result
    models.DryRunResult.model_validate(result)
    assert result["status"] == "ok", result.get("error")
    assert result["n_items"] == 2 and result["n_results"] == 2
    assert "blue" in result["preview"]
    assert store.jobs.list() == []
    # A batchnb error in the child comes back as the same error.
    code, err = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "missing", "dry_run": True})
    assert code == 400 and err["error"] == "ValidationError" and err["field"] == "input"


def test_deletes_answer_204_and_keep_jobs(api: Api, deployed: dict[str, Any], store: BatchClient) -> None:
    code, job = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data"})
    assert code == 201
    wait_for_job(api, job["name"])
    code, _ = api("POST", "endpoints", "ep-rest", "deployments", body=deployment_spec("green"))
    code, err = api("DELETE", "endpoints", "ep-rest", "deployments", "blue")
    assert code == 409 and err["error"] == "InvalidStateError"  # the default, with another one left
    code, body = api("DELETE", "endpoints", "ep-rest", "deployments", "green")
    assert code == 204 and body is None
    code, body = api("DELETE", "endpoints", "ep-rest")
    assert code == 204
    assert store.batch_endpoints.list() == []
    code, jobs = api("GET", "jobs", params={"endpoint": "ep-rest"})
    assert [j["name"] for j in jobs["jobs"]] == [job["name"]]


def test_models_and_computes(api: Api, project: Path) -> None:
    assert api("POST", "models", body={"name": "tiny", "path": "model"})[0] == 201
    code, second = api("POST", "models", body={"name": "tiny", "path": "model", "description": "v2"})
    assert code == 201 and second["version"] == "2"
    code, latest = api("GET", "models")
    assert code == 200 and [(m.name, m.version) for m in models.ModelList.model_validate(latest).models] == [
        ("tiny", "2")
    ]
    code, versions = api("GET", "models", "tiny")
    assert code == 200 and [m["version"] for m in versions["models"]] == ["2", "1"]
    code, computes = api("GET", "computes")
    assert code == 200 and models.ComputeList.model_validate(computes).computes[0].name == "local"
    code, err = api("POST", "models", body={"name": "tiny", "path": "nowhere"})
    assert code == 400 and err["field"] == "path"


# --- errors ----------------------------------------------------------------------------------------


def test_unauthenticated_requests_are_refused_and_create_nothing(api: Api, project: Path, store: BatchClient) -> None:
    no_token = {"Authorization": ""}
    code, err = api("POST", "endpoints", body={"name": "ep-rest"}, headers=no_token)
    assert code == 403, err
    assert err["error"] == "Forbidden"  # a POST without a token fails the XSRF check first, as it should
    code, err = api("POST", "models", body={"name": "tiny", "path": "model"}, headers=no_token)
    assert code == 403
    code, err = api("GET", "endpoints", headers=no_token)
    assert code == 403 and err["error"] == "Forbidden" and "authenticated" in err["message"]
    code, _ = api("GET", "schema", headers=no_token)
    assert code == 403
    assert store.batch_endpoints.list() == []
    assert store.models.list() == []
    # A wrong token is no better than none.
    code, _ = api("POST", "endpoints", body={"name": "ep-rest"}, headers={"Authorization": "token not-the-token"})
    assert code == 403
    assert store.batch_endpoints.list() == []


def test_unauthenticated_invoke_starts_no_job(api: Api, deployed: dict[str, Any], store: BatchClient) -> None:
    code, _ = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data"}, headers={"Authorization": ""})
    assert code == 403
    assert store.jobs.list() == []


def test_malformed_json_is_a_400_naming_the_problem(api: Api, ws_dir: Path, store: BatchClient) -> None:
    code, err = api("POST", "endpoints", raw='{"name": "ep-rest",')
    assert code == 400, err
    assert err["error"] == "UsageError" and "not valid JSON" in err["message"]
    code, err = api("POST", "endpoints", raw='["ep-rest"]')
    assert code == 400 and "JSON object" in err["message"] and "array" in err["message"]
    code, err = api("PATCH", "endpoints", "ep-rest", raw="{nope")
    assert code == 400 and err["error"] == "UsageError"
    assert store.batch_endpoints.list() == []


def test_bodies_and_invocations_that_used_to_crash_are_refused_and_record_nothing(
    api: Api, deployed: dict[str, Any], store: BatchClient, project: Path
) -> None:
    for depth in (150, 100_000):  # past the bound, and past what the JSON decoder's recursion survives
        code, err = api("POST", "endpoints", raw='{"name": "ep-deep", "tags": ' + "[" * depth + "]" * depth + "}")
        assert code == 400, err
        assert "nested deeper than 100 levels" in err["message"]
    assert [e["name"] for e in store.batch_endpoints.list()] == ["ep-rest"]
    invoke = ("POST", "endpoints", "ep-rest", "jobs")
    code, err = api(*invoke, body={"input": "data", "instance_count": 5000})
    assert code == 400 and "instance_count" in err["message"] and "1024" in err["message"], err
    code, err = api(*invoke, body={"input": "data", "set": ["retry_settings.timeout=10000000000"]})
    assert code == 400 and "timeout: must be between 1 and 259200" in err["message"], err
    if importlib.util.find_spec("s3fs") is None:
        code, err = api(*invoke, body={"input": "s3://bucket/in"})
        assert code == 501 and err["error"] == "MissingDependencyError", err
        assert "pip install 'batchnb[s3]'" in err["message"]
    os.mkfifo(project / "pipe")
    code, err = api(*invoke, body={"input": "pipe", "input_type": "uri_file"})
    assert code == 400 and "is a named pipe (FIFO), not a regular file" in err["message"], err
    assert store.jobs.list() == []


def test_invalid_names_and_fields_are_400s_naming_the_field(api: Api, deployed: dict[str, Any]) -> None:
    code, err = api("POST", "endpoints", body={"name": "9-not_valid!"})
    assert code == 400, err
    assert err["error"] == "InvalidNameError" and err["field"] == "name"
    assert "endpoint name" in err["message"]

    code, err = api("POST", "endpoints", "ep-rest", "deployments", body={**deployment_spec("blue"), "name": "x"})
    assert code == 400 and err["error"] == "InvalidNameError" and err["field"] == "name"

    code, err = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "mini_batch_sise": 3})
    assert code == 400 and err["field"] == "mini_batch_sise" and "unknown key" in err["message"]
    code, err = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "instance_count": 0})
    assert code == 400 and err["field"] == "instance_count"
    code, err = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "job_name": "bad name!"})
    assert code == 400 and err["error"] == "InvalidNameError"
    code, err = api("POST", "endpoints", "ep-rest", "jobs", body={})
    assert code == 400 and err["field"] == "input"
    code, err = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "set": ["compute=big"]})
    assert code == 400 and err["field"] == "compute"

    code, err = api("PATCH", "endpoints", "ep-rest", body={"defaultz": {"deployment_name": "blue"}})
    assert code == 400 and err["field"] == "defaultz"
    code, err = api("PATCH", "endpoints", "ep-rest", body={})
    assert code == 400 and "nothing to change" in err["message"]
    code, err = api("PATCH", "endpoints", "ep-rest", body={"defaults": {"deployment_name": "purple"}})
    assert code == 400 and err["field"] == "defaults.deployment_name"
    code, err = api("PATCH", "endpoints", "ep-rest", body={"set": ["no-equals-sign"]})
    assert code == 400 and err["error"] == "UsageError"
    code, err = api("PATCH", "endpoints", "ep-rest", body={"set": ["name=other"]})
    assert code == 400 and err["field"] == "name"

    body = {**deployment_spec("green"), "endpoint_name": "another"}
    code, err = api("POST", "endpoints", "ep-rest", "deployments", body=body)
    assert code == 400 and err["field"] == "endpoint_name"
    code, err = api("POST", "endpoints", "ep-rest", "deployments", body=deployment_spec("green"),
                    params={"set_default": "maybe"})  # fmt: skip
    assert code == 400 and err["field"] == "set_default"

    code, err = api("GET", "jobs", params={"limit": "0"})
    assert code == 400 and err["field"] == "limit"
    code, err = api("GET", "jobs", params={"limit": "ten"})
    assert code == 400 and err["field"] == "limit"
    code, err = api("GET", "jobs", params={"status": "Done"})
    assert code == 400 and err["field"] == "status"


def test_unknown_things_are_404s(api: Api, deployed: dict[str, Any]) -> None:
    for path in (
        ("endpoints", "nope"),
        ("endpoints", "nope", "deployments"),
        ("endpoints", "nope", "jobs"),
        ("endpoints", "ep-rest", "deployments", "nope"),
        ("models", "nope"),
        ("jobs", "nope"),
        ("jobs", "nope", "logs"),
        ("jobs", "nope", "outputs"),
    ):
        code, err = api("GET", *path)
        assert code == 404, (path, err)
        assert err["error"] == "NotFoundError", (path, err)
    code, err = api("POST", "endpoints", "nope", "jobs", body={"input": "data"})
    assert code == 404 and err["error"] == "NotFoundError"
    code, err = api("PATCH", "endpoints", "nope", body={"set": ["description=x"]})
    assert code == 404
    code, err = api("DELETE", "endpoints", "nope")
    assert code == 404
    code, err = api("POST", "jobs", "nope", "cancel")
    assert code == 404
    code, err = api("POST", "endpoints", "nope", "deployments", body=deployment_spec("green"))
    assert code == 404 and err["error"] == "NotFoundError"
    # An unknown deployment named in an invoke.
    code, err = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "deployment_name": "purple"})
    assert code == 404
    # A verb a route does not have.
    code, err = api("DELETE", "jobs")
    assert code == 405 and err["error"] == "MethodNotAllowed"


def test_job_actions_on_the_wrong_state_are_409s(api: Api, deployed: dict[str, Any]) -> None:
    code, job = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data"})
    assert code == 201
    done = wait_for_job(api, job["name"])
    assert done["status"] == "Completed"
    for action, words in (
        ("cancel", "already ended Completed"),
        ("resume", "only Interrupted or Canceled jobs"),
        ("rerun-failed", "no failed items"),
    ):
        code, err = api("POST", "jobs", job["name"], action)
        assert code == 409, (action, err)
        assert err["error"] == "InvalidStateError" and words in err["message"], (action, err)
    code, err = api("GET", "jobs", job["name"], "logs", params={"lines": "-1"})
    assert code == 400 and err["field"] == "lines"


def test_cancel_then_resume_through_rest(api: Api, deployed: dict[str, Any], project: Path) -> None:
    # A slow deployment, so the job is still running when it is canceled.
    slow = project / "code-slow"
    slow.mkdir()
    (slow / "score.py").write_text(
        textwrap.dedent(SCRIPT.format(dep="slow")).replace(
            "def run(mini_batch):", "def run(mini_batch):\n    import time; time.sleep(0.5)"
        )
    )
    spec = {**deployment_spec("slow"), "settings": {"mini_batch_size": 1, "max_concurrency_per_instance": 1}}
    code, _ = api("POST", "endpoints", "ep-rest", "deployments", body=spec)
    assert code == 201
    code, job = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "deployment_name": "slow"})
    assert code == 201
    code, canceled = api("POST", "jobs", job["name"], "cancel")
    assert code == 200 and canceled["status"] in ("CancelRequested", "Canceled")
    ended = wait_for_job(api, job["name"])
    assert ended["status"] == "Canceled"
    code, resumed = api("POST", "jobs", job["name"], "resume")
    assert code == 200, resumed
    done = wait_for_job(api, job["name"])
    assert done["status"] == "Completed", done["error"]
    assert sorted(output_rows(done)) == ["0 slow", "1 slow", "2 slow", "3 slow"]


# --- pipeline jobs, their steps, and components ---------------------------------------------------------


def pipeline_body(**extra: Any) -> dict[str, Any]:
    """A pipelineJob as JSON: ``count`` lists the data folder (relative: the server's root) into
    the output ``counted``; ``copy`` (after it) copies that into ``final``."""
    return {
        "type": "pipeline",
        "display_name": "count then copy",
        "inputs": {"data": {"type": "uri_folder", "path": "data"}},
        "outputs": {"counted": {"type": "uri_folder"}, "final": {"type": "uri_folder"}},
        "jobs": {
            "count": {
                "component": {
                    "command": "ls ${{inputs.d}} | wc -l > ${{outputs.o}}/n; echo counted",
                    "inputs": {"d": {"type": "uri_folder"}},
                    "outputs": {"o": {"type": "uri_folder"}},
                },
                "inputs": {"d": "${{parent.inputs.data}}"},
                "outputs": {"o": "${{parent.outputs.counted}}"},
            },
            "copy": {
                "component": {
                    "command": "sleep ${{inputs.pause}}; cp ${{inputs.i}}/n ${{outputs.o}}/n",
                    "inputs": {"i": {"type": "uri_folder"}, "pause": {"type": "number", "default": 0}},
                    "outputs": {"o": {"type": "uri_folder"}},
                },
                "inputs": {"i": "${{parent.jobs.count.outputs.o}}"},
                "outputs": {"o": "${{parent.outputs.final}}"},
            },
        },
        **extra,
    }


def test_a_pipeline_job_through_rest_with_its_steps_outputs_and_logs(api: Api, project: Path) -> None:
    responses: list[Any] = []
    with reaping():
        code, job = api("POST", "jobs", body=pipeline_body(set=["display_name=from REST"]), response=responses)
        assert code == 201, job
        models.PipelineJob.model_validate(job)
        assert job["type"] == "pipeline" and job["invoked_by"] == USER and job["display_name"] == "from REST"
        assert responses[0].headers["Location"].endswith(f"/batchnb/api/jobs/{job['name']}")
        assert [s["name"] for s in job["steps"]] == ["count", "copy"]
        assert job["inputs"]["data"]["resolved"] == str(project / "data")  # relative to the server's root
        done = wait_for_job(api, job["name"])
    assert done["status"] == "Completed", done["error"]
    assert done["progress"]["steps"] == {
        "total": 2, "completed": 2, "running": 0, "failed": 0, "canceled": 0, "not_started": 0
    }  # fmt: skip
    assert (Path(done["outputs"]["final"]["path"]) / "n").read_text().strip() == "4"

    # Listed with the other jobs (a discriminated union by type); its steps only with ?parent=.
    code, listing = api("GET", "jobs")
    assert code == 200 and [type(j).__name__ for j in models.JobList.model_validate(listing).jobs] == ["PipelineJob"]
    code, steps = api("GET", "jobs", params={"parent": job["name"]})
    assert code == 200 and [s["step"] for s in steps["jobs"]] == ["count", "copy"]
    step = models.AnyJob.model_validate(steps["jobs"][0]).root
    assert isinstance(step, models.StepJob) and step.parent_job_name == job["name"]
    assert "ls " in step.command and step.std_log.endswith("user_logs/std_log.txt")
    code, waiting = api("GET", "jobs", params={"parent": job["name"], "status": "NotStarted"})
    assert code == 200 and waiting["jobs"] == []

    # A named output; with two outputs, one must be named.
    code, out = api("GET", "jobs", job["name"], "outputs", params={"output": "final"})
    assert code == 200, out
    assert models.JobOutputs.model_validate(out).output == "final" and [f["name"] for f in out["files"]] == ["n"]
    code, err = api("GET", "jobs", job["name"], "outputs")
    assert code == 400 and err["field"] == "output"
    assert "its outputs are: counted, final" in err["message"] and "?output=" in err["message"]
    code, out = api("GET", "jobs", step.name, "outputs")  # a step's only output needs no name
    assert code == 200 and out["output"] == "o" and out["exists"]

    # Logs: the runner's events for the pipeline, the command's output for a step.
    code, logs = api("GET", "jobs", job["name"], "logs")
    assert code == 200
    assert any("step copy" in line and "Completed" in line for line in logs["files"]["sys/master_role.txt"]["lines"])
    code, logs = api("GET", "jobs", step.name, "logs")
    assert code == 200 and "counted" in logs["files"]["user_logs/std_log.txt"]["lines"]


def test_pipeline_job_mistakes_are_400s_and_actions_follow_its_state(api: Api, project: Path) -> None:
    code, err = api("POST", "jobs", body={"type": "pipeline", "display_name": "no steps"})
    assert code == 400 and "needs either 'component:'" in err["message"], err
    code, err = api("POST", "jobs", body=pipeline_body(set="display_name=x"))
    assert code == 400 and err["field"] == "set"
    code, err = api("POST", "jobs", body=pipeline_body(set=["inputs.data.path=nowhere"]))
    assert code == 400 and "nowhere" in err["message"], err
    code, err = api("GET", "jobs", params={"parent": "nope"})
    assert code == 404, err
    code, listing = api("GET", "jobs")
    assert listing["jobs"] == []  # nothing was started

    with reaping():
        body = pipeline_body()
        body["jobs"]["copy"]["inputs"]["pause"] = 60
        code, job = api("POST", "jobs", body=body)
        assert code == 201, job
        wait_until(
            lambda: api("GET", "jobs", f"{job['name']}-copy")[1]["status"] == "Running", 30, "step copy to start"
        )
        code, err = api("POST", "jobs", f"{job['name']}-copy", "cancel")
        assert code == 409 and "cancel the pipeline job instead" in err["message"]
        code, canceled = api("POST", "jobs", job["name"], "cancel")
        assert code == 200 and canceled["type"] == "pipeline", canceled
        ended = wait_for_job(api, job["name"])
    assert ended["status"] == "Canceled"
    assert {s["name"]: s["status"] for s in ended["steps"]}["copy"] == "Canceled"
    code, err = api("POST", "jobs", job["name"], "rerun-failed")
    assert code == 409 and err["error"] == "InvalidStateError"


def test_components_are_listed_and_shown(api: Api, store: BatchClient) -> None:
    echo = {"name": "echoer", "type": "command", "command": "echo ${{inputs.v}}", "inputs": {"v": {"type": "integer"}}}
    store.components.create_or_update(echo)
    store.components.create_or_update({**echo, "command": "echo again ${{inputs.v}}"})
    code, listing = api("GET", "components")
    assert code == 200
    [component] = models.ComponentList.model_validate(listing).components
    assert (component.name, component.version, component.type) == ("echoer", "2", "command")
    code, versions = api("GET", "components", "echoer")
    assert code == 200 and [c["version"] for c in versions["components"]] == ["2", "1"]
    assert versions["components"][1]["command"] == "echo ${{inputs.v}}"
    code, err = api("GET", "components", "ghost")
    assert code == 404 and "component ghost is not registered" in err["message"]


def test_a_pipeline_deployment_is_invoked_and_dry_run_through_rest(api: Api, project: Path) -> None:
    component = {k: v for k, v in pipeline_body().items() if k not in ("display_name",)}
    component["inputs"] = {"data": {"type": "uri_folder"}}
    code, _ = api("POST", "endpoints", body={"name": "ep-pipes"})
    assert code == 201
    code, dep = api(
        "POST", "endpoints", "ep-pipes", "deployments", params={"set_default": "true"},
        body={"name": "counting", "type": "pipeline", "component": component},
    )  # fmt: skip
    assert code == 201, dep
    code, plan = api("POST", "endpoints", "ep-pipes", "jobs", body={"input": "data", "dry_run": True})
    assert code == 200, plan
    models.PipelineDryRunResult.model_validate(plan)
    assert [s["name"] for s in plan["steps"]] == ["count", "copy"] and str(project / "data") in plan["steps"][0][
        "command"
    ]
    with reaping():
        code, job = api("POST", "endpoints", "ep-pipes", "jobs", body={"input": "data"})
        assert code == 201, job
        assert models.AnyJob.model_validate(job).root.type == "pipeline"
        done = wait_for_job(api, job["name"])
    assert done["status"] == "Completed" and done["endpoint_name"] == "ep-pipes", done["error"]


def test_a_locked_database_stalls_only_the_writing_request(
    api: Api, ws_dir: Path, store: BatchClient, jp_fetch: Any, jp_asyncio_loop: Any
) -> None:
    assert api("GET", "endpoints")[0] == 200  # the server has opened its workspace
    holder = sqlite3.connect(ws_dir / "batchnb.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    async def scenario() -> tuple[Any, float, Any, bool]:
        post = asyncio.ensure_future(
            jp_fetch("batchnb", "api", "endpoints", method="POST", body=json.dumps({"name": "ep-locked"}))
        )
        await asyncio.sleep(0.5)
        started = time.monotonic()
        status = await jp_fetch("api", "status")  # the server's own API
        listing = await jp_fetch("batchnb", "api", "endpoints")  # a read: WAL readers are not blocked
        elapsed = time.monotonic() - started
        still_waiting = not post.done()
        holder.execute("COMMIT")
        return status, elapsed, (listing, await post), still_waiting

    try:
        status, elapsed, (listing, created), still_waiting = jp_asyncio_loop.run_until_complete(scenario())
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    assert status.code == 200 and listing.code == 200
    assert elapsed < 2.0, f"the event loop was blocked for {elapsed:.1f} s"
    assert still_waiting, "the write should have waited for the lock"
    assert created.code == 201
    assert [e["name"] for e in store.batch_endpoints.list()] == ["ep-locked"]


# --- the workspace, the schema, the extension ------------------------------------------------------


def test_the_workspace_is_found_from_the_servers_root_dir(api: Api, ws_dir: Path) -> None:
    code, info = api("GET", "workspace")
    assert code == 200, info
    assert models.WorkspaceInfo.model_validate(info).source == "marker"
    assert Path(info["root"]) == ws_dir.resolve()


def test_batchnb_workspace_overrides_the_marker(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHNB_WORKSPACE", str(tmp_path / "from-env"))
    code, info = api("GET", "workspace")
    assert code == 200 and info["source"] == "env"
    assert Path(info["root"]) == (tmp_path / "from-env").resolve()


@pytest.mark.parametrize("extra_config", [{"BatchnbServer": {"workspace": "configured-ws"}}])
def test_the_config_trait_overrides_everything(
    api: Api, jp_root_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHNB_WORKSPACE", str(tmp_path / "from-env"))
    code, info = api("GET", "workspace")
    assert code == 200 and info["source"] == "config"
    assert Path(info["root"]) == (jp_root_dir / "configured-ws").resolve()  # relative to root_dir


def test_a_broken_workspace_is_a_json_500_not_a_crash(api: Api, ws_dir: Path) -> None:
    (ws_dir / "batchnb.db").write_text("this is not a database")
    code, err = api("GET", "endpoints")
    assert code == 500
    assert err["error"] == "WorkspaceError" and "batchnb.db" in err["message"]


def test_an_emptied_workspace_database_is_refused_not_recreated(api: Api, ws_dir: Path, model_dir: Path) -> None:
    client = BatchClient(ws_dir)
    client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    client.batch_endpoints.create_or_update({"name": "ep-kept"})
    client.store.close()
    (ws_dir / "batchnb.db").write_bytes(b"")
    code, err = api("GET", "endpoints")
    assert code == 500 and err["error"] == "WorkspaceError"
    assert str(ws_dir / "batchnb.db") in err["message"] and "is empty (0 bytes)" in err["message"]
    assert "Restore a backup" in err["message"]
    assert (ws_dir / "batchnb.db").stat().st_size == 0


def test_schema_describes_every_route_and_model(api: Api, ws_dir: Path) -> None:
    code, schema = api("GET", "schema")
    assert code == 200
    for name in ("InvokeRequest", "EndpointPatch", "BatchEndpointSpec", "Job", "JobLogs", "ErrorResponse"):
        assert name in schema["$defs"], name
    assert schema["$defs"]["InvokeRequest"]["additionalProperties"] is False
    # One name per model, as TypeScript types will be named (no "-Input"/"-Output" twins).
    assert not [name for name in schema["$defs"] if name.endswith(("-Input", "-Output"))]
    for route in schema["routes"]:
        for key in ("request", "response"):
            assert route[key] is None or route[key] in schema["$defs"], route
    # The table and the handlers agree: every documented verb exists, every verb is documented.
    documented = {(r["method"], r["path"]) for r in schema["routes"]}
    served = set()
    for pattern, handler in handlers.ROUTES:
        choice = re.search(r"\(\?P<action>([^)]+)\)", pattern)
        path = pattern.replace(choice.group(0), "{action}") if choice else pattern
        for group in ("endpoint", "deployment", "model", "component", "job"):
            path = path.replace(f"(?P<{group}>[^/]+)", "{" + group + "}")
        for verb in ("get", "post", "put", "patch", "delete"):
            if verb in vars(handler):
                for action in choice.group(1).split("|") if choice else ("",):
                    served.add((verb.upper(), path.replace("{action}", action)))
    assert documented == served


def _code_of(decorator: Callable[[Any], Any]) -> Any:
    def dummy(self: Any) -> None:
        pass

    return decorator(dummy).__code__


def test_every_handler_verb_is_authenticated_and_authorized() -> None:
    authenticated_code = _code_of(tornado.web.authenticated)
    authorized_code = _code_of(authorized)
    checked = 0
    for _, handler in handlers.ROUTES:
        assert handler.auth_resource == "batchnb"
        for verb in ("get", "head", "post", "put", "patch", "delete"):
            method = vars(handler).get(verb)
            if method is None:
                continue
            chain = [method]
            while hasattr(chain[-1], "__wrapped__"):
                chain.append(chain[-1].__wrapped__)
            codes = [f.__code__ for f in chain]
            assert codes[0] is authenticated_code, f"{handler.__name__}.{verb} is not @tornado.web.authenticated"
            assert codes[1] is authorized_code, f"{handler.__name__}.{verb} is not @authorized under it"
            checked += 1
    assert checked == 37


def test_the_server_loads_the_extension_with_authentication_required(
    jp_configurable_serverapp: Any, ws_dir: Path
) -> None:
    # As the template's check_auth.py: an undecorated verb of an extension is a JupyterServerAuthWarning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app = jp_configurable_serverapp(
            config={
                "ServerApp": {
                    "jpserver_extensions": {"batchnb": True, "jupyter_server_terminals": False},
                    "allow_unauthenticated_access": False,
                    "reraise_server_extension_failures": True,
                }
            }
        )
    auth_warnings = [w for w in caught if issubclass(w.category, JupyterServerAuthWarning)]
    assert not [w for w in auth_warnings if "batchnb" in str(w.message)], [str(w.message) for w in auth_warnings]
    assert app.extension_manager.extensions["batchnb"].enabled
    assert "batchnb" in app.web_app.settings


def test_import_batchnb_does_not_import_the_server() -> None:
    code = (
        "import sys, batchnb; pts = batchnb._jupyter_server_extension_points(); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tornado', 'jupyter_server') "
        "or m.startswith('batchnb.server')); print(pts, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip() == "[{'module': 'batchnb'}] []", out.stdout + out.stderr


def test_the_extension_is_enabled_by_the_shipped_config() -> None:
    root = Path(__file__).resolve().parents[1]
    config = json.loads((root / "jupyter-config" / "server-config" / "batchnb.json").read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"batchnb": True}}}
    pyproject = (root / "pyproject.toml").read_text()
    assert '"jupyter-config/server-config" = "etc/jupyter/jupyter_server_config.d"' in pyproject


def test_a_job_shows_its_lineage_and_its_invocation_written_out_through_rest(
    api: Api, deployed: dict[str, Any]
) -> None:
    code, job = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "set": ["error_threshold=4"]})
    assert code == 201, job
    done = wait_for_job(api, job["name"])
    lineage = models.Job.model_validate(done).lineage
    assert lineage is not None and (lineage.deployment, lineage.deployment_revision) == ("blue", 1)
    code, promoted = api("GET", "jobs", job["name"], "promote", params={"as": "cli"})
    assert code == 200, promoted
    models.JobPromotion.model_validate(promoted)
    assert promoted["text"].startswith("batchnb batch-endpoint invoke --name ep-rest --deployment-name blue")
    assert "error_threshold=4" in promoted["text"]
    code, err = api("GET", "jobs", job["name"], "promote", params={"as": "bash"})
    assert code == 400 and "--as 'bash'" in err["message"], err


def test_failed_items_and_a_rerun_on_the_latest_revision_through_rest(
    api: Api, deployed: dict[str, Any], project: Path
) -> None:
    broken = "import pandas as pd\n\ndef init():\n    pass\n\ndef run(mini_batch):\n" + (
        "    if any(f.endswith('f002.csv') for f in mini_batch):\n        raise ValueError('bad file')\n"
        "    return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)\n"
    )
    (project / "code-blue" / "score.py").write_text(broken)
    spec = deployment_spec("blue")
    spec["settings"]["retry_settings"] = {"max_retries": 1, "timeout": 30}
    code, dep = api("POST", "endpoints", "ep-rest", "deployments", body=spec)
    assert code == 200, dep
    code, job = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data"})
    assert code == 201, job
    assert wait_for_job(api, job["name"])["status"] == "Completed"

    code, failed = api("GET", "jobs", job["name"], "failures")
    assert code == 200, failed
    listed = models.JobFailures.model_validate(failed)
    assert [(Path(f.item).name, f.why, f.error_type) for f in listed.items] == [("f002.csv", "raised", "ValueError")]

    (project / "code-blue" / "score.py").write_text(textwrap.dedent(SCRIPT.format(dep="blue")))
    code, dep = api("POST", "endpoints", "ep-rest", "deployments", body=spec)  # the fix: a new revision
    assert code == 200, dep
    code, rerun = api("POST", "jobs", job["name"], "rerun-failed", params={"latest": "true"})
    # One row per file, in input order; only f002's was scored again, by the fixed revision.
    assert code == 200, rerun
    done = wait_for_job(api, job["name"])
    assert done["status"] == "Completed" and output_rows(done) == ["0", "1", "2 blue", "3"]
    assert api("GET", "jobs", job["name"], "failures")[1]["items"] == []
