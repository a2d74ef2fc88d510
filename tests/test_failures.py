"""Failed items as data, reruns that finish a job, and bad items isolated, with real jobs (issue 20)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from engine_helpers import output_file, reaping
from test_cli import run as cli

# One row per input file (x, and x doubled). BAD (a comma-separated list of x) makes run() raise
# on a mini-batch holding one of them; KILL makes its worker die; DROP leaves those rows out.
SCRIPT = """
import os
import signal
import pandas as pd

def _xs(name):
    return {int(x) for x in os.environ.get(name, "").split(",") if x}

BAD, KILL, DROP = _xs("BAD"), _xs("KILL"), _xs("DROP")

def init():
    pass

def run(mini_batch):
    rows = []
    for path in mini_batch:
        x = int(pd.read_csv(path)["x"][0])
        if x in BAD:
            raise ValueError(f"cannot score x={x}")
        if x in KILL:
            os.kill(os.getpid(), signal.SIGKILL)
        if x not in DROP:
            rows.append({"x": x, "double": 2 * x})
    return pd.DataFrame(rows)
"""


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


@pytest.fixture
def scorer(deploy: Callable[..., dict]) -> Callable[..., dict]:
    """scorer(bad="", kill="", drop="", **settings): deploys SCRIPT as ep-test/blue, Parquet output."""

    def make(bad: str = "", kill: str = "", drop: str = "", **settings: object) -> dict:
        env = {"BAD": bad, "KILL": kill, "DROP": drop}
        base: dict[str, object] = {
            "output_file_name": "out.parquet",
            "mini_batch_size": 5,
            "retry_settings": {"max_retries": 1, "timeout": 60},
        }
        return deploy(SCRIPT, name="blue", environment_variables=env, **{**base, **settings})

    return make


def _ended(client, job: dict) -> dict:
    return client.jobs.wait(job["name"], timeout=240)


def _xs(job: dict) -> list[int]:
    return pd.read_parquet(output_file(job))["x"].tolist()


def _file(x: int) -> str:
    return f"f{x:03d}.csv"


def test_the_failed_items_are_exactly_the_files_that_were_made_to_fail(client, scorer, csv_inputs):
    scorer(bad="3,7,12")
    job = _ended(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(20))))
    assert job["status"] == "Completed", job["error"]
    assert _xs(job) == [x for x in range(20) if x not in (3, 7, 12)]
    assert job["progress"]["items"] == {"total": 20, "succeeded": 17, "failed": 3}

    failed = client.jobs.failures(job["name"])
    assert [Path(f["item"]).name for f in failed] == [_file(3), _file(7), _file(12)]
    for f, x in zip(failed, (3, 7, 12), strict=True):
        assert (f["why"], f["error_type"], f["error"]) == ("raised", "ValueError", f"ValueError: cannot score x={x}")
        assert f["attempts"] >= 1 and f["revision"] == 1
        assert f"cannot score x={x}" in (Path(job["job_dir"]) / f["traceback"]).read_text()


def test_the_cli_shows_failed_items_as_json_tsv_and_a_csv_file(client, scorer, csv_inputs, tmp_path):
    scorer(bad="4")
    job = _ended(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(10))))
    ws = client.workspace.root

    shown = cli("job", "failures", "-n", job["name"], "-o", "json", ws=ws)
    assert shown.returncode == 0, shown.stderr
    assert [Path(f["item"]).name for f in json.loads(shown.stdout)] == [_file(4)]
    tsv = cli("job", "failures", "-n", job["name"], "-o", "tsv", ws=ws)
    assert tsv.returncode == 0 and len(tsv.stdout.splitlines()) == 1 and _file(4) in tsv.stdout
    table = cli("job", "failures", "-n", job["name"], "-o", "table", ws=ws)
    assert table.returncode == 0 and "ValueError" in table.stdout

    written = cli("job", "failures", "-n", job["name"], "--download-path", str(tmp_path / "out"), ws=ws)
    assert written.returncode == 0, written.stderr
    with open(json.loads(written.stdout)["path"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(Path(r["item"]).name, r["why"], r["error_type"]) for r in rows] == [(_file(4), "raised", "ValueError")]

    # A path ending in a slash is a folder, even one that does not exist yet (it was written as a file).
    folder = cli("job", "failures", "-n", job["name"], "--download-path", f"{tmp_path / 'new-folder'}/", ws=ws)
    assert folder.returncode == 0, folder.stderr
    assert json.loads(folder.stdout)["path"] == str(tmp_path / "new-folder" / "failures.csv")
    assert (tmp_path / "new-folder" / "failures.csv").is_file()

    missing = cli("job", "failures", "-n", "no-such-job", ws=ws)
    assert missing.returncode != 0 and missing.stderr.startswith("ERROR:") and "no-such-job" in missing.stderr


def test_fix_update_and_rerun_failed_latest_give_a_complete_output(client, scorer, csv_inputs):
    scorer(bad="2,9")
    job = _ended(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(12))))
    assert _xs(job) == [x for x in range(12) if x not in (2, 9)]

    scorer()  # the fixed script: batch-deployment update makes revision 2
    rerun = cli("job", "rerun-failed", "-n", job["name"], "--latest", ws=client.workspace.root)
    assert rerun.returncode == 0, rerun.stderr
    done = _ended(client, job)
    assert done["status"] == "Completed", done["error"]
    assert _xs(done) == list(range(12))  # one row per item, in input order
    assert done["progress"]["items"]["failed"] == 0
    assert done["progress"]["scored_by_revision"] == {"1": 10, "2": 2}
    assert client.jobs.failures(job["name"]) == []


def test_a_rerun_without_latest_scores_the_job_revision_again(client, scorer, csv_inputs):
    scorer(bad="5")
    job = _ended(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(8))))
    scorer()  # fixed, but the job keeps its revision
    client.jobs.rerun_failed(job["name"])
    again = _ended(client, job)
    assert [Path(f["item"]).name for f in client.jobs.failures(job["name"])] == [_file(5)]
    assert _xs(again) == [x for x in range(8) if x != 5]


def test_items_missing_from_a_short_result_are_failed_items_and_rerun(client, scorer, csv_inputs):
    scorer(drop="6", retry_settings={"max_retries": 0, "timeout": 60})
    job = _ended(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(10))))
    assert job["status"] == "Completed" and job["progress"]["items"]["failed"] == 1
    (failed,) = client.jobs.failures(job["name"])
    assert failed["why"] == "missing" and failed["error"] == "run() returned 4 result(s) for 5 item(s)"
    assert _file(5) in failed["item"] and _file(9) in failed["item"]

    scorer()
    client.jobs.rerun_failed(job["name"], latest=True)  # no more "no failed mini-batches to rerun"
    done = _ended(client, job)
    assert _xs(done) == list(range(10))
    assert client.jobs.failures(job["name"]) == []


def test_a_crashing_item_is_isolated_and_recorded_as_crashed(client, scorer, csv_inputs):
    scorer(kill="4", mini_batch_size=3)
    job = _ended(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(6))))
    assert job["status"] == "Completed", job["error"]
    assert _xs(job) == [0, 1, 2, 3, 5]
    (failed,) = client.jobs.failures(job["name"])
    assert (Path(failed["item"]).name, failed["why"]) == (_file(4), "crashed")


def test_one_bad_file_among_200_fails_the_job_by_name_with_error_threshold_0(client, scorer, csv_inputs):
    scorer(bad="137", mini_batch_size=50, error_threshold=0)
    job = _ended(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(200))))
    assert job["status"] == "Failed"
    assert "1 item(s) failed" in job["error"] and _file(137) in job["error"]
    assert [Path(f["item"]).name for f in client.jobs.failures(job["name"])] == [_file(137)]


def test_one_bad_file_among_200_leaves_199_rows_with_error_threshold_1(client, scorer, csv_inputs):
    scorer(bad="137", mini_batch_size=50, error_threshold=1)
    job = _ended(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(200))))
    assert job["status"] == "Completed", job["error"]
    assert _xs(job) == [x for x in range(200) if x != 137]


def test_isolation_can_be_turned_off_and_the_whole_mini_batch_fails(client, scorer, csv_inputs):
    scorer(bad="7", isolate_failures=False)
    job = _ended(client, client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(15))))
    assert job["status"] == "Completed", job["error"]
    assert _xs(job) == [x for x in range(15) if x not in range(5, 10)]
    assert [Path(f["item"]).name for f in client.jobs.failures(job["name"])] == [_file(x) for x in range(5, 10)]


def test_an_incremental_job_reuses_rescored_rows_only_under_the_revision_that_scored_them(client, scorer, csv_inputs):
    scorer(bad="7", isolate_failures=False)
    data = str(csv_inputs(10))
    first = _ended(client, client.batch_endpoints.invoke("ep-test", input=data, incremental=True))
    assert _xs(first) == [0, 1, 2, 3, 4]
    scorer(isolate_failures=False)  # revision 2
    client.jobs.rerun_failed(first["name"], latest=True)
    assert _xs(_ended(client, first)) == list(range(10))

    # On revision 2, only the mini-batch that revision 2 scored (files 5-9) is reused.
    second = _ended(client, client.batch_endpoints.invoke("ep-test", input=data, incremental=True))
    assert second["status"] == "Completed", second["error"]
    assert (second["incremental"]["items_reused"], second["incremental"]["items_to_score"]) == (5, 5)
    assert _xs(second) == list(range(10))


def test_a_failed_tabular_chunk_is_named_by_its_file_and_rows(client, deploy, tmp_path):
    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "t.csv").write_text("a\n" + "".join(f"{i}\n" for i in range(20)))
    script = (
        "def init():\n    pass\n\ndef run(frame):\n"
        "    if (frame['a'] == 13).any():\n        raise KeyError('row 13')\n"
        "    return (frame['a'] * 2).tolist()\n"
    )
    deploy(script, mini_batch_mode="tabular", mini_batch_size=5, retry_settings={"max_retries": 1, "timeout": 60})
    job = _ended(client, client.batch_endpoints.invoke("ep-test", input=str(folder)))
    assert job["status"] == "Completed", job["error"]
    assert job["progress"]["items"] == {"total": 20, "succeeded": 15, "failed": 5}
    (failed,) = client.jobs.failures(job["name"])
    assert (failed["item"], failed["why"], failed["error_type"]) == (
        f"{folder / 't.csv'} rows 10-14",
        "raised",
        "KeyError",
    )
