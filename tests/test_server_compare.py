"""``POST endpoints/<ep>/compare`` through a real Jupyter server: two deployments whose scoring scripts
differ on known rows, compared on the server's data; the workspace lies outside the server's root
folder (the comparison's scratch folder is the workspace's own, not a path the caller named).
"""

# ruff: noqa: F811 - the fixtures imported from test_server are, as pytest wants, parameters of the same name

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 - pytest-jupyter's fixtures, for this module
from test_server import (  # noqa: F401 - the REST tests' fixtures, used by name
    Api,
    api,
    deployed,
    jp_asyncio_loop,
    jp_server_config,
    project,
    ws_dir,
)

from batchnb.server import models

# One row per file: x and its parity; FLIP (in green) names the x whose parity it gets wrong.
PARITY = """
import pandas as pd
FLIP = {flip}
def init():
    pass
def run(mini_batch):
    frame = pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
    frame["parity"] = ["odd" if (x % 2) != (x in FLIP) else "even" for x in frame["x"]]
    return frame
"""


@pytest.fixture
def extra_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {"BatchnbServer": {"workspace": str(tmp_path_factory.mktemp("elsewhere") / ".batchnb")}}


@pytest.fixture
def two(api: Api, project: Path, deployed: dict[str, Any]) -> None:
    """ep-rest with blue (right) and green (wrong on x=1 and x=2), Parquet outputs."""
    for dep, flip in (("blue", "set()"), ("green", "{1, 2}")):
        (project / f"code-{dep}" / "score.py").write_text(textwrap.dedent(PARITY.format(flip=flip)))
        spec = {
            "name": dep,
            "model": "azureml:tiny@latest",
            "code_configuration": {"code": f"code-{dep}", "scoring_script": "score.py"},
            "settings": {"mini_batch_size": 2, "output_file_name": "out.parquet"},
        }
        code, body = api("POST", "endpoints", "ep-rest", "deployments", body=spec)
        assert code in (200, 201), body


def test_compare_answers_the_comparison_of_the_two_outputs(api: Api, two: None, project: Path) -> None:
    code, body = api(
        "POST", "endpoints", "ep-rest", "compare", body={"deployments": ["blue", "green"], "input": "data"}
    )
    assert code == 200, body
    comparison = models.Comparison.model_validate(body)
    assert comparison.rows == {"blue": 4, "green": 4, "joined": 4, "only_blue": 0, "only_green": 0}
    assert comparison.agreement == 0.5
    found = {(Path(d.source_file or "").name, d.column, d.blue, d.green) for d in comparison.disagreements}  # type: ignore[attr-defined]
    assert found == {("f001.csv", "parity", "odd", "even"), ("f002.csv", "parity", "even", "odd")}
    parity = comparison.columns["parity"]
    assert parity.equal == 0.5 and parity.pairs is not None
    pairs = {(p.a, p.b, p.rows) for p in parity.pairs}
    assert pairs == {("even", "even", 1), ("odd", "odd", 1), ("odd", "even", 1), ("even", "odd", 1)}
    assert comparison.columns["x"].histogram is not None and comparison.columns["x"].histogram.zero == 4
    assert set(comparison.throughput) == {"blue", "green"}
    assert all(t.items == 4 for t in comparison.throughput.values())

    # On a sample: its first three files, copied into the workspace (outside the root folder).
    code, body = api(
        "POST", "endpoints", "ep-rest", "compare", body={"deployments": ["blue", "green"], "input": "data", "sample": 3}
    )
    assert code == 200, body
    assert body["rows"]["joined"] == 3 and body["rows_disagreeing"] == 2
    assert {Path(d["source_file"]).name for d in body["disagreements"]} == {"f001.csv", "f002.csv"}


def test_compare_refuses_a_bad_request_in_one_line(api: Api, two: None, tmp_path: Path) -> None:
    code, body = api("POST", "endpoints", "ep-rest", "compare", body={"deployments": ["blue"], "input": "data"})
    assert code == 400 and body["error"] == "ValidationError" and "deployments" in body["message"]
    code, body = api("POST", "endpoints", "ep-rest", "compare", body={"deployments": ["blue", "blue"], "input": "data"})
    assert code == 400 and "two different deployments" in body["message"]
    outside = tmp_path / "secret"
    outside.mkdir()
    code, body = api(
        "POST", "endpoints", "ep-rest", "compare", body={"deployments": ["blue", "green"], "input": str(outside)}
    )
    assert code == 403 and body["field"] == "input", body
    code, body = api("POST", "endpoints", "nope", "compare", body={"deployments": ["blue", "green"], "input": "data"})
    assert code == 404, body
