"""The scoring loop beyond Azure, with real jobs: lineage (of a job, and of every output row),
comparing two deployments, incremental invocations, and promoting a job to a repeatable form."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from engine_helpers import output_file, reaping
from test_cli import _env, assert_user_error
from test_cli import run as cli

# One row per input file: its x, a label and a score. LABEL_SHIFT (a comma-separated list of x)
# changes the label of those rows and adds 0.25 to their score: a deployment that differs on known
# rows; DROP (another list of x) leaves those rows out.
PER_FILE = """
import os
import pandas as pd

SHIFT = {int(x) for x in os.environ.get("LABEL_SHIFT", "").split(",") if x}
DROP = {int(x) for x in os.environ.get("DROP", "").split(",") if x}

def init():
    pass

def run(mini_batch):
    rows = []
    for path in mini_batch:
        with open(os.environ["CALLS"], "a") as fh:
            fh.write(os.path.basename(path) + "\\n")
        x = int(pd.read_csv(path)["x"][0])
        if x in DROP:
            continue
        shifted = x in SHIFT
        rows.append({"x": x, "label": f"L{(x + shifted) % 3}", "score": x * 0.5 + 0.25 * shifted})
    return pd.DataFrame(rows)
"""

# Tabular mode: keeps the odd rows, with the input frame's index (a selection).
EVERY_OTHER_ROW = """
def init():
    pass

def run(frame):
    kept = frame[frame["a"] % 2 == 1]
    return kept.assign(double=kept["a"] * 2)[["double"]]
"""


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


@pytest.fixture
def calls(tmp_path: Path) -> Path:
    return tmp_path / "calls.txt"


def _scored(calls: Path) -> list[str]:
    return calls.read_text().splitlines() if calls.exists() else []


@pytest.fixture
def per_file(deploy: Callable[..., dict], calls: Path) -> Callable[..., dict]:
    """deploy_per_file(name, shift="", **settings): PER_FILE, Parquet output, two files a mini-batch."""

    def make(name: str = "blue", shift: str = "", drop: str = "", **settings: object) -> dict:
        env = {"CALLS": str(calls), "LABEL_SHIFT": shift, "DROP": drop}
        base: dict[str, object] = {"output_file_name": "out.parquet", "mini_batch_size": 2}
        return deploy(PER_FILE, name=name, environment_variables=env, **{**base, **settings})

    return make


def _done(client, job: dict) -> dict:
    finished = client.jobs.wait(job["name"], timeout=180)
    assert finished["status"] == "Completed", finished["error"]
    return finished


# -- lineage --------------------------------------------------------------------------------------


def test_a_parquet_output_says_where_each_row_comes_from_in_input_order(client, per_file, csv_inputs):
    per_file()
    data = csv_inputs(5)
    job = _done(client, client.batch_endpoints.invoke("ep-test", input=str(data)))
    table = pd.read_parquet(output_file(job))
    assert list(table["x"]) == [0, 1, 2, 3, 4]  # input order
    assert list(table["_source_file"]) == [str(data / f"f{i:03d}.csv") for i in range(5)]
    assert list(table["_mini_batch"]) == [0, 0, 1, 1, 2]
    assert table["_source_row"].isna().all()  # a file scored as one item has no row of its own


def test_tabular_rows_keep_their_file_and_row_even_when_run_returns_a_selection(deploy, client, tmp_path):
    deploy(EVERY_OTHER_ROW, mini_batch_mode="tabular", mini_batch_size=4, output_file_name="out.parquet")
    data = tmp_path / "rows"
    data.mkdir()
    for name, start in (("a.parquet", 0), ("b.parquet", 10)):
        pq.write_table(pa.table({"a": list(range(start, start + 6))}), data / name, row_group_size=2)
    job = _done(client, client.batch_endpoints.invoke("ep-test", input=str(data)))
    table = pd.read_parquet(output_file(job))
    assert list(table["double"]) == [2, 6, 10, 22, 26, 30]
    assert [Path(f).name for f in table["_source_file"]] == ["a.parquet"] * 3 + ["b.parquet"] * 3
    assert list(table["_source_row"]) == [1, 3, 5, 1, 3, 5]


def test_lineage_columns_can_be_turned_off_and_are_refused_for_a_text_output(client, per_file, csv_inputs):
    per_file(lineage_columns=False)
    job = _done(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(3))))
    assert list(pd.read_parquet(output_file(job)).columns) == ["x", "label", "score"]
    result = cli(
        "batch-endpoint", "invoke", "-n", "ep-test", "--input", str(csv_inputs(1, name="one")),
        "--set", "output_file_name=out.csv", "lineage_columns=true", ws=client.workspace.root,
    )  # fmt: skip
    assert_user_error(result, 2, "lineage_columns", "Parquet")


def test_job_show_names_the_deployment_revision_model_code_and_environment(client, per_file, csv_inputs):
    first = per_file()
    client.batch_deployments.update("blue", "ep-test", set_values=["settings.error_threshold=3"])
    job = _done(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))))
    shown = json.loads(cli("job", "show", "-n", job["name"], ws=client.workspace.root).stdout)
    lineage = shown["lineage"]
    assert (lineage["deployment"], lineage["deployment_revision"], lineage["model"]) == ("blue", 2, "tiny:1")
    assert lineage["code_hash"] == "sha256:" + Path(first["resolved"]["code_dir"]).name
    assert lineage["row_lineage_columns"] == ["_source_file", "_source_row", "_mini_batch"]
    table = cli("job", "show", "-n", job["name"], "-o", "table", ws=client.workspace.root).stdout
    assert "lineage.model" in table and "tiny:1" in table
    assert "model tiny:1" in repr(client.jobs.get(job["name"]))


# -- incremental ----------------------------------------------------------------------------------


def _invoke_cli(client, *args: str) -> dict:
    """``batchnb batch-endpoint invoke -n ep-test … --wait``: the ended job, as JSON."""
    result = cli("batch-endpoint", "invoke", "-n", "ep-test", *args, "--wait", ws=client.workspace.root)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_incremental_twice_scores_nothing_new_and_the_output_is_still_complete(client, per_file, csv_inputs, calls):
    per_file()
    data = csv_inputs(5)
    first = _invoke_cli(client, "--input", str(data), "--incremental")
    assert sorted(_scored(calls)) == [f"f{i:03d}.csv" for i in range(5)]
    assert first["incremental"]["items_reused"] == 0
    second = _invoke_cli(client, "--input", str(data), "--incremental")
    assert len(_scored(calls)) == 5  # nothing scored again
    assert second["status"] == "Completed"
    assert second["incremental"]["items_reused"] == 5
    assert second["incremental"]["mini_batches_to_score"] == 0
    assert second["incremental"]["reused_from"] == [first["name"]]
    assert second["progress"]["items"]["succeeded"] == 5
    pd.testing.assert_frame_equal(pd.read_parquet(output_file(second)), pd.read_parquet(output_file(first)))


def test_incremental_scores_only_new_and_changed_files_and_keeps_input_order(client, per_file, csv_inputs, calls):
    per_file()
    data = csv_inputs(5)
    _invoke_cli(client, "--input", str(data), "--incremental")
    (data / "f005.csv").write_text("x,y\n5,10\n")  # a new file
    (data / "f002.csv").write_text("x,y\n20,40\n")  # a changed one: its mini-batch [f002, f003] is scored again
    calls.unlink()
    job = _invoke_cli(client, "--input", str(data), "--incremental")
    assert sorted(_scored(calls)) == ["f002.csv", "f003.csv", "f005.csv"]
    assert job["incremental"]["items_reused"] == 3
    table = pd.read_parquet(output_file(job))
    assert list(table["x"]) == [0, 1, 20, 3, 4, 5]
    assert list(table["_source_file"]) == [str(data / f"f{i:03d}.csv") for i in range(6)]
    assert list(table["_mini_batch"]) == [0, 0, 1, 1, 2, 3]


def test_incremental_reuses_files_moved_to_another_folder_and_names_them_where_they_are(
    client, per_file, csv_inputs, calls, tmp_path
):
    per_file()
    data = csv_inputs(4)
    _invoke_cli(client, "--input", str(data), "--incremental")
    moved = tmp_path / "moved"
    data.rename(moved)
    (moved / "f003.csv").rename(moved / "g003.csv")  # renamed: scored again
    job = _invoke_cli(client, "--input", str(moved), "--incremental")
    assert sorted(_scored(calls)[4:]) == ["f002.csv", "g003.csv"]
    assert job["incremental"]["items_reused"] == 2  # [f000, f001]; f002 shared its mini-batch with f003
    table = pd.read_parquet(output_file(job))
    assert list(table["x"]) == [0, 1, 2, 3]
    assert list(table["_source_file"]) == [str(moved / n) for n in ("f000.csv", "f001.csv", "f002.csv", "g003.csv")]


def test_incremental_reuses_nothing_across_a_new_deployment_revision(client, per_file, csv_inputs, calls):
    per_file()
    data = csv_inputs(3)
    _invoke_cli(client, "--input", str(data), "--incremental")
    client.batch_deployments.update("blue", "ep-test", set_values=["settings.error_threshold=3"])
    job = _invoke_cli(client, "--input", str(data), "--incremental")
    assert job["incremental"]["items_reused"] == 0
    assert len(_scored(calls)) == 6
    assert list(pd.read_parquet(output_file(job))["x"]) == [0, 1, 2]


def test_incremental_tabular_reuses_the_chunks_of_unchanged_files_in_a_text_output(deploy, client, tmp_path):
    doubles = "def init():\n    pass\n\ndef run(frame):\n    return (frame['a'] * 2).tolist()\n"
    deploy(doubles, mini_batch_mode="tabular", mini_batch_size=4)  # Azure's text output
    data = tmp_path / "rows"
    data.mkdir()
    for name, start in (("a.parquet", 0), ("b.parquet", 10)):
        pq.write_table(pa.table({"a": list(range(start, start + 6))}), data / name, row_group_size=2)
    first = _invoke_cli(client, "--input", str(data), "--incremental")
    pq.write_table(pa.table({"a": [20, 21, 22, 23]}), data / "b.parquet", row_group_size=2)  # b changed
    second = _invoke_cli(client, "--input", str(data), "--incremental")
    assert second["incremental"]["mini_batches_reused"] == 2  # a.parquet's two chunks
    assert second["incremental"]["reused_from"] == [first["name"]]
    assert second["incremental"]["items_to_score"] == 4
    assert output_file(second).read_text().split() == [str(2 * a) for a in [0, 1, 2, 3, 4, 5, 20, 21, 22, 23]]


def test_incremental_refuses_a_summary_only_deployment_in_one_line(client, per_file, csv_inputs):
    per_file(output_action="summary_only", output_file_name="out.csv")
    result = cli(
        "batch-endpoint", "invoke", "-n", "ep-test", "--input", str(csv_inputs(2)), "--incremental",
        ws=client.workspace.root,
    )  # fmt: skip
    assert_user_error(result, 2, "--incremental", "summary_only")
    assert client.jobs.list() == []


def test_a_remote_file_is_known_by_its_etag_or_its_size_and_time():
    import fsspec

    from batchnb.engine.incremental import fingerprint

    fs = fsspec.filesystem("memory")
    fs.pipe("/incr/a.csv", b"x\n1\n")
    before = fingerprint("memory://incr/a.csv")
    assert before.startswith("stat:memory://incr/a.csv:")  # the memory store gives no ETag
    fs.pipe("/incr/a.csv", b"x\n12\n")
    assert fingerprint("memory://incr/a.csv") != before


# -- promote --------------------------------------------------------------------------------------


def _values(job: dict) -> pd.DataFrame:
    return pd.read_parquet(output_file(job)).drop(columns=["_source_file"])


@pytest.fixture
def promoted(client, per_file, csv_inputs) -> dict:
    """A Completed job invoked with a per-job mini-batch size and an override, from another folder."""
    per_file()
    job = client.batch_endpoints.invoke(
        "ep-test", input=str(csv_inputs(4)), mini_batch_size=1, set_values=["error_threshold=2"]
    )
    return _done(client, job)


def _new_job(client, before: set[str]) -> dict:
    (name,) = {j["name"] for j in client.jobs.list()} - before
    return _done(client, client.jobs.get(name))


def test_the_promoted_command_line_runs_the_same_invocation_again(client, promoted, tmp_path):
    command = cli("job", "show", "-n", promoted["name"], "--as", "cli", ws=client.workspace.root).stdout
    argv = shlex.split(command)
    assert argv[:3] == ["batchnb", "batch-endpoint", "invoke"]
    assert "--mini-batch-size" in argv and "error_threshold=2" in argv
    before = {j["name"] for j in client.jobs.list()}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli(*argv[1:], ws=client.workspace.root, cwd=elsewhere)  # as pasted into a terminal
    assert result.returncode == 0, result.stderr
    again = _new_job(client, before)
    assert again["settings"]["mini_batch_size"] == 1 and again["settings"]["error_threshold"] == 2
    pd.testing.assert_frame_equal(_values(again), _values(promoted))


def test_the_promoted_inputs_file_and_sdk_code_run_the_same_invocation(client, promoted, tmp_path):
    text = client.jobs.promote(promoted["name"], "inputs-yaml")
    header, body = text.split("\n", 1)
    inputs = yaml.safe_load(body)
    assert inputs["inputs"]["input_data"]["type"] == "uri_folder"
    (tmp_path / "inputs.yml").write_text(text)
    before = {j["name"] for j in client.jobs.list()}
    result = cli(*shlex.split(header.removeprefix("# "))[1:], ws=client.workspace.root, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pd.testing.assert_frame_equal(_values(_new_job(client, before)), _values(promoted))

    code = promoted.promote("sdk")
    assert "ml_client.batch_endpoints.invoke(" in code and "{'error_threshold': '2'}" in code
    before = {j["name"] for j in client.jobs.list()}
    script = tmp_path / "rerun.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=_env(client.workspace.root), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pd.testing.assert_frame_equal(_values(_new_job(client, before)), _values(promoted))


def test_a_promoted_job_with_a_named_output_writes_there_again_once_the_old_file_is_moved(
    client, per_file, csv_inputs, tmp_path
):
    per_file()
    out = tmp_path / "out"
    job = _done(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(3)), output_path=str(out)))
    argv = shlex.split(client.jobs.promote(job["name"], "cli"))
    assert argv[argv.index("--output-path") + 1] == str(out) and "output_file_name=out.parquet" in argv
    inputs = yaml.safe_load(client.jobs.promote(job["name"], "inputs-yaml").split("\n", 1)[1])
    assert inputs["outputs"] == {"score": {"type": "uri_file", "path": str(out / "out.parquet")}}
    assert_user_error(cli(*argv[1:], ws=client.workspace.root), 4, str(out / "out.parquet"), "already exists")
    first = pd.read_parquet(out / "out.parquet")
    (out / "out.parquet").rename(tmp_path / "first.parquet")
    assert cli(*argv[1:], "--wait", ws=client.workspace.root).returncode == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "out.parquet"), first)


def test_the_promoted_notebook_is_parametrized_for_papermill_and_runs(client, promoted, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.reads(client.jobs.promote(promoted["name"], "papermill"), as_version=4)
    nbformat.validate(nb)
    (parameters,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert "deployment_name = 'blue'" in parameters.source
    before = {j["name"] for j in client.jobs.list()}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    pd.testing.assert_frame_equal(_values(_new_job(client, before)), _values(promoted))


def test_promote_refuses_an_unknown_form_in_one_line(client, promoted):
    result = cli("job", "show", "-n", promoted["name"], "--as", "bash", ws=client.workspace.root)
    assert_user_error(result, 2, "--as")


# -- compare --------------------------------------------------------------------------------------


def test_compare_finds_exactly_the_rows_two_deployments_disagree_on(client, per_file, csv_inputs):
    per_file("blue", mini_batch_size=2)
    per_file("green", shift="4,7", mini_batch_size=3)  # another mini-batch size: rows join on their lineage
    data = csv_inputs(10)
    result = cli(
        "batch-endpoint", "compare", "-n", "ep-test", "--deployments", "blue", "green", "--input", str(data),
        ws=client.workspace.root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == {"blue": 10, "green": 10, "joined": 10, "only_blue": 0, "only_green": 0}
    assert report["agreement"] == 0.8
    assert report["columns"]["label"]["equal"] == 0.8
    assert report["columns"]["score"]["max_abs_diff"] == 0.25
    assert report["columns"]["score"]["mean_abs_diff"] == pytest.approx(0.05)
    x = report["columns"]["x"]
    assert (x["equal"], x["mean_abs_diff"], x["max_abs_diff"], x["histogram"]["zero"]) == (1.0, 0.0, 0.0, 10)
    assert {(Path(d["source_file"]).name, d["column"], d["blue"], d["green"]) for d in report["disagreements"]} == {
        ("f004.csv", "label", "L1", "L2"),
        ("f004.csv", "score", 2.0, 2.25),
        ("f007.csv", "label", "L1", "L2"),
        ("f007.csv", "score", 3.5, 3.75),
    }
    assert report["rows_disagreeing"] == 2
    for side in ("blue", "green"):
        assert report["throughput"][side]["items"] == 10 and report["throughput"][side]["items_per_second"] > 0


def test_compare_on_a_sample_scores_only_its_first_items(client, per_file, csv_inputs, calls):
    per_file("blue")
    per_file("green", shift="1", drop="2", retry_settings={"max_retries": 1})
    data = csv_inputs(10)
    comparison = client.batch_endpoints.compare("ep-test", ["blue", "green"], input=str(data), sample=3)
    assert len(_scored(calls)) == 6  # three files, by each deployment
    assert comparison.rows == {"blue": 3, "green": 2, "joined": 2, "only_blue": 1, "only_green": 0}
    assert comparison.agreement == 0.5
    assert [(d["source_file"], d["column"], d["green"]) for d in comparison.disagreements] == [
        (str(data / "f001.csv"), "label", "L2"),
        (str(data / "f001.csv"), "score", 0.75),
        (str(data / "f002.csv"), "(row)", None),  # only blue has it
    ]
    assert 'data-agreement="0.5"' in comparison._repr_html_()
    table = cli(
        "batch-endpoint", "compare", "-n", "ep-test", "--deployments", "blue", "green", "--input",
        comparison.input, "--sample", "3", "-o", "table", ws=client.workspace.root,
    ).stdout  # fmt: skip
    assert "f001.csv" in table and "L2" in table


def test_compare_refuses_one_deployment_twice_in_one_line(client, per_file, csv_inputs):
    per_file("blue")
    result = cli(
        "batch-endpoint", "compare", "-n", "ep-test", "--deployments", "blue", "blue", "--input",
        str(csv_inputs(1)), ws=client.workspace.root,
    )  # fmt: skip
    assert_user_error(result, 2, "--deployments")


def test_percent_batch_compare_returns_a_card_with_a_chart_and_the_disagreements(
    client, per_file, csv_inputs, tmp_path, monkeypatch
):
    from IPython.core.interactiveshell import InteractiveShell

    per_file("blue")
    per_file("green", shift="2")
    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "batchnb")
    try:
        shell.user_ns["data"] = str(csv_inputs(4))
        comparison = shell.run_line_magic("batch", "compare -n ep-test --deployments blue green --input {data}")
    finally:
        shell.run_line_magic("unload_ext", "batchnb")
        InteractiveShell.clear_instance()
    assert comparison.agreement == 0.75
    card = comparison._repr_html_()
    assert "<svg" in card and "label: blue → green" in card
    assert "f002.csv" in card and "L0" in card  # the one disagreeing row: label L2 against L0
    assert "agreement     75.0%" in repr(comparison)
