"""Shared fixtures: a fresh workspace per test, and helpers to deploy a scoring script written inline."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from heart_helpers import heart  # noqa: F401 - the heart sample deployed
from ssh_helpers import sshd  # noqa: F401 - a real sshd on loopback, for the SSH-compute tests
from storage_servers import azurite, gcs_server, s3_server  # noqa: F401 - session fixtures: real storage servers on loopback

from batchnb import BatchClient

# Environment builds (batchnb.environments) never reach a package index in tests: uv reads only its
# cache and the wheels a test builds (tests/env_helpers.py), and no uv configuration of this machine.
os.environ["UV_OFFLINE"] = "1"
os.environ["UV_NO_CONFIG"] = "1"


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchClient]:
    """A BatchClient on a new workspace under tmp_path; BATCHNB_WORKSPACE points there too.

    Afterwards, a zygote that a test's killed agent left waiting for the next agent is stopped, so
    that it does not linger into the following tests."""
    ws = tmp_path / "ws"
    monkeypatch.setenv("BATCHNB_WORKSPACE", str(ws))
    yield BatchClient(ws)
    from batchnb.compute import zygote

    for record in (ws / "run").glob("zygote-*.json") if (ws / "run").is_dir() else ():
        zygote.stop_lingering(ws, record.stem.removeprefix("zygote-"))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A tiny custom model: a folder 'model' with weights.json ({"w": 3})."""
    folder = tmp_path / "src" / "model"
    folder.mkdir(parents=True)
    (folder / "weights.json").write_text(json.dumps({"w": 3}))
    return folder


@pytest.fixture
def csv_inputs(tmp_path: Path) -> Callable[[int], Path]:
    """make(n) -> a folder of n CSV files f000.csv.. each with columns x,y and one row x=i."""

    def make(n: int, name: str = "data") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for i in range(n):
            (folder / f"f{i:03d}.csv").write_text(f"x,y\n{i},{2 * i}\n")
        return folder

    return make


@pytest.fixture
def deploy(client: BatchClient, model_dir: Path, tmp_path: Path) -> Callable[..., dict]:
    """deploy(script_source, endpoint="ep-test", name="blue", compute=None, **settings) -> the
    deployment record.

    Writes the scoring script to its own code folder, registers the model (once), creates the
    endpoint if needed and the deployment with the given settings (on ``compute``, if given).
    """
    counter = {"n": 0}

    def make(
        script: str,
        endpoint: str = "ep-test",
        name: str = "blue",
        set_default: bool = False,
        compute: str | None = None,
        **settings: object,
    ) -> dict:
        counter["n"] += 1
        code = tmp_path / f"code{counter['n']}"
        code.mkdir()
        (code / "score.py").write_text(textwrap.dedent(script))
        try:
            client.models.get("tiny")
        except Exception:
            client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
        try:
            client.batch_endpoints.get(endpoint)
        except Exception:
            client.batch_endpoints.create_or_update({"name": endpoint})
        spec = {
            "name": name,
            "endpoint_name": endpoint,
            "model": "azureml:tiny@latest",
            "code_configuration": {"code": str(code), "scoring_script": "score.py"},
            "settings": settings,
        }
        if compute:
            spec["compute"] = f"azureml:{compute}"
        return client.batch_deployments.create_or_update(spec, set_default=set_default)

    return make
