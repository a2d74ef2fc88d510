"""Notebook-first authoring: plain Python functions as components and pipelines.

The functions here live in a test module (not an installed package), so they are pickled by
value, as a function defined in a notebook cell is; notebooks/pipelines.ipynb runs the same
thing in a real kernel.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from engine_helpers import job_count, reaping

from batchnb import BatchClient, Input, Output, ValidationError, component, pipeline

BONUS = 1000  # a module global the step's function uses: it travels with the function


@component(name="prepare_fn", version="1", description="scale every value")
def prepare(
    data: Input("uri_folder"), prepared: Output("uri_folder"), scale: float = 1.0, note: str | None = None
) -> int:
    rows = []
    for f in sorted(Path(data).glob("*.csv")):
        with open(f) as fh:
            rows += [[float(v) * scale for v in r.values()] for r in csv.DictReader(fh)]
    (Path(prepared) / "rows.json").write_text(json.dumps({"rows": rows, "note": note}))
    return len(rows)


@component
def total(rows: Input("uri_folder"), result: Output("uri_folder"), plus_bonus: bool = False) -> None:
    data = json.loads((Path(rows) / "rows.json").read_text())
    value = sum(map(sum, data["rows"])) + (BONUS if plus_bonus else 0)
    (Path(result) / "total.json").write_text(json.dumps({"total": value, "note": data["note"]}))


@pipeline(name="scale_and_total", description="prepare, then total")
def scale_and_total(input_data: Input("uri_folder"), scale: float = 2.0, bonus: bool = False):
    prepared = prepare(data=input_data, scale=scale, note="from a pipeline")
    summed = total(rows=prepared.outputs.prepared, plus_bonus=bonus)
    return {"total": summed.outputs.result}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.csv").write_text("x,y\n1,10\n2,20\n")
    (folder / "b.csv").write_text("x,y\n3,30\n")
    return folder


def test_a_component_is_still_a_function(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert prepare(data=str(data), prepared=str(out), scale=10) == 3
    assert json.loads((out / "rows.json").read_text())["rows"] == [[10, 100], [20, 200], [30, 300]]


def test_function_components_register_as_azure_components(client: BatchClient) -> None:
    spec = prepare.to_component_spec()
    assert spec["type"] == "command" and spec["name"] == "prepare_fn"
    assert spec["inputs"] == {
        "data": {"type": "uri_folder"},
        "scale": {"type": "number", "default": 1.0},
        "note": {"type": "string", "optional": True},
    }
    assert spec["outputs"] == {"prepared": {"type": "uri_folder"}}
    assert "$[[--note ${{inputs.note}}]]" in spec["command"]
    registered = client.components.create_or_update(prepare)
    assert (registered["name"], registered["version"]) == ("prepare_fn", "1")
    assert (Path(registered["code_dir"]) / "source.py").read_text().startswith("@component(name=")
    pipe = client.components.create_or_update(scale_and_total)
    assert pipe["type"] == "pipeline" and pipe["order"] == ["prepare_fn", "total"]
    assert pipe["jobs"]["total"]["inputs"]["rows"] == {"step_output": ["prepare_fn", "prepared"]}
    assert pipe["outputs"]["total"]["type"] == "uri_folder"
    assert client.components.get("scale_and_total")["version"] == "1"


def test_a_pipeline_function_runs_as_a_pipeline_job(client: BatchClient, data: Path) -> None:
    with reaping():
        job = client.jobs.create_or_update(scale_and_total(input_data=Input(path=str(data)), scale=3, bonus=True))
        job = job.wait(timeout=90)
    assert job["status"] == "Completed", job["error"]
    assert [s["name"] for s in job["steps"]] == ["prepare_fn", "total"]
    result = json.loads((Path(job["outputs"]["total"]["path"]) / "total.json").read_text())
    assert result == {"total": 3 * (1 + 10 + 2 + 20 + 3 + 30) + BONUS, "note": "from a pipeline"}


def test_a_registered_function_pipeline_runs_from_yaml(client: BatchClient, data: Path) -> None:
    client.components.create_or_update(scale_and_total)
    spec = {"type": "pipeline", "component": "azureml:scale_and_total@latest", "inputs": {"input_data": str(data)}}
    with reaping():
        job = client.jobs.create_or_update(spec).wait(timeout=90)
    assert job["status"] == "Completed", job["error"]
    assert json.loads((Path(job["outputs"]["total"]["path"]) / "total.json").read_text())["total"] == 2 * 66


def test_a_failing_function_fails_its_step_with_the_traceback(client: BatchClient, tmp_path: Path) -> None:
    @component
    def explode(x: int = 1) -> None:
        raise RuntimeError(f"boom {x}")

    @pipeline
    def one_step(x: int = 5):
        explode(x=x)

    with reaping():
        job = client.jobs.create_or_update(one_step()).wait(timeout=60)
    assert job["status"] == "Failed"
    assert "RuntimeError: boom 5" in job["error"]


def test_authoring_mistakes_are_named(client: BatchClient) -> None:
    with pytest.raises(ValidationError, match="parameter rows has no type"):

        @component
        def untyped(rows) -> None:  # type: ignore[no-untyped-def]
            pass

    @pipeline
    def wrong_input(input_data: Input("uri_folder")):
        return {"total": total(table=input_data).outputs.result}

    with pytest.raises(
        ValidationError, match=r"total\(\) got an unexpected input 'table' \(its inputs: rows, plus_bonus\)"
    ):
        client.components.create_or_update(wrong_input)

    @pipeline
    def returns_a_string(input_data: Input("uri_folder")):
        prepare(data=input_data)
        return "done"

    with pytest.raises(ValidationError, match="returns its outputs as a mapping"):
        client.components.create_or_update(returns_a_string)

    @pipeline
    def bad_output(input_data: Input("uri_folder")):
        return {"x": prepare(data=input_data).outputs.nope}

    with pytest.raises(ValidationError, match="step prepare_fn has no output 'nope'"):
        client.components.create_or_update(bad_output)
    assert job_count(client) == 0
