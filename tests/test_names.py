"""Names that are nearly right are refused whole, by the Python API, the CLI and the REST API, and
nothing is created: a trailing newline (which ``$`` lets through with ``re.match``), spaces around
the name, and letters that only look like ASCII ones."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_cli import BATCHNB, _env, assert_user_error

from batchnb import BatchClient
from batchnb.errors import InvalidNameError, ValidationError

NEAR_MISSES = [
    "abc1\n",  # the trailing newline that "$" allowed
    "abc1\r\n",
    " abc1",
    "abc1 ",
    "abc1\t",
    "ab\nc1",
    "\u0430bc1",  # Cyrillic a
    "\uff41bc1",  # fullwidth a
    "abc1\u200b",  # a zero-width space
    "abc\u0661",  # Arabic-Indic digit one
]

SCORE = """
def init():
    pass

def run(mini_batch):
    return [str(f) for f in mini_batch]
"""


@pytest.fixture
def ready(client: BatchClient, tmp_path: Path, model_dir: Path, csv_inputs: Callable[..., Path]) -> dict[str, Any]:
    """A model, an endpoint with one deployment, and an input folder."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(textwrap.dedent(SCORE))
    client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    client.batch_endpoints.create_or_update({"name": "ep-names"})
    client.batch_deployments.create_or_update(
        {
            "name": "blue",
            "endpoint_name": "ep-names",
            "model": "azureml:tiny@latest",
            "code_configuration": {"code": str(code), "scoring_script": "score.py"},
        },
        set_default=True,
    )
    return {"code": code, "model": model_dir, "data": csv_inputs(2)}


def _state(client: BatchClient) -> dict[str, Any]:
    """Everything a name can be given to, as a user would list it."""
    ws = client.workspace
    return {
        "endpoints": [e["name"] for e in client.batch_endpoints.list()],
        "deployments": [d["name"] for d in client.batch_deployments.list("ep-names")],
        "models": [(m["name"], m["version"]) for m in client.models.list()],
        "model_dirs": sorted(p.name for p in ws.models_dir.iterdir()),
        "computes": [c["name"] for c in client.computes.list()],
        "datastores": [d["name"] for d in client.datastores.list()],
        "components": [c["name"] for c in client.components.list()],
        "jobs": [j["name"] for j in client.jobs.list()],
        "job_dirs": sorted(p.name for p in ws.jobs_dir.iterdir()) if ws.jobs_dir.exists() else [],
    }


@pytest.mark.parametrize("name", NEAR_MISSES, ids=repr)
def test_the_python_api_refuses_every_kind_of_near_miss_name_and_creates_nothing(
    client: BatchClient, ready: dict[str, Any], tmp_path: Path, name: str
) -> None:
    before = _state(client)
    attempts: dict[str, Callable[[], Any]] = {
        "endpoint": lambda: client.batch_endpoints.create_or_update({"name": name}),
        "deployment": lambda: client.batch_deployments.create_or_update(
            {
                "name": name,
                "endpoint_name": "ep-names",
                "model": "azureml:tiny@latest",
                "code_configuration": {"code": str(ready["code"]), "scoring_script": "score.py"},
            }
        ),
        "model": lambda: client.models.create_or_update({"name": name, "path": str(ready["model"])}),
        "version": lambda: client.models.create_or_update(
            {"name": "tiny", "version": name, "path": str(ready["model"])}
        ),
        "compute": lambda: client.computes.create_or_update({"name": name, "type": "amlcompute"}),
        "datastore": lambda: client.datastores.create_or_update({"name": name, "path": str(tmp_path / "ds")}),
        "component": lambda: client.components.create_or_update({"name": name, "type": "command", "command": "true"}),
        "job": lambda: client.jobs.invoke("ep-names", input=str(ready["data"]), job_name=name),
    }
    for kind, attempt in attempts.items():
        with pytest.raises(InvalidNameError) as info:
            attempt()
        assert repr(name) in info.value.message, (kind, info.value.message)
        assert info.value.field in ("name", "version"), kind
    assert _state(client) == before
    assert not (tmp_path / "ds").exists()


def test_pipeline_ports_and_steps_must_match_whole(client: BatchClient) -> None:
    for port in ("x\n", " x", "\u0445"):  # the last is a Cyrillic x
        with pytest.raises(ValidationError) as info:
            client.components.create_or_update(
                {"name": "comp", "type": "command", "command": "true", "inputs": {port: {"type": "string"}}}
            )
        assert repr(port) in info.value.message
    assert client.components.list() == []


def _cli(*args: str, ws: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BATCHNB, *args], cwd=cwd, env=_env(ws), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_the_cli_refuses_a_name_with_a_trailing_newline_for_every_kind(
    client: BatchClient, ready: dict[str, Any], tmp_path: Path
) -> None:
    ws = client.workspace.root
    before = _state(client)
    deployment = tmp_path / "deployment.yml"
    deployment.write_text(
        yaml.safe_dump(
            {
                "name": "green",
                "endpoint_name": "ep-names",
                "model": "azureml:tiny@latest",
                "code_configuration": {"code": str(ready["code"]), "scoring_script": "score.py"},
            }
        )
    )
    bad = "abc1\n"
    attempts = [
        ("batch-endpoint", "create", "--name", bad),
        ("batch-deployment", "create", "-f", str(deployment), "--name", bad),
        ("model", "create", "--name", bad, "--path", str(ready["model"])),
        ("compute", "create", "--name", bad, "--type", "amlcompute"),
        ("batch-endpoint", "invoke", "--name", "ep-names", "--input", str(ready["data"]), "--job-name", bad),
    ]
    for args in attempts:
        line = assert_user_error(_cli(*args, ws=ws), 2, repr(bad))
        assert "name" in line, line
    assert _state(client) == before
