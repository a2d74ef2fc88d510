"""``-o table`` as a person reads it: a few columns per kind, within 100 columns when piped, one line a
record, human times; the machine formats keep ISO 8601. Real ``batchnb`` subprocesses, one workspace."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from engine_helpers import wait_until
from test_cli import BATCHNB

from batchnb.cli.humanize import duration, when

LONG_EP = "tables-endpoint-with-a-long-name"  # 32 characters, the longest name Azure allows
LONG_DEP = "a-deployment-whose-init-fails-xy"
HUMAN_TIME = re.compile(r"just now|\d+ min ago|\d\d-\d\d \d\d:\d\d|\d{4}-\d\d-\d\d \d\d:\d\d")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
JOB_COLUMNS = ["Name", "Status", "Endpoint/Deployment", "Progress", "Started", "Duration"]
FAILING_INIT = """
def init():
    raise RuntimeError(
        "the model could not be loaded: " + "a very long reason " * 10 + "\\nand a second line of the message"
    )


def run(mini_batch):
    return mini_batch
"""


def cli(ws: Path, *args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    """``batchnb args`` piped (not a terminal), with ``$COLUMNS`` only if given."""
    env = {k: v for k, v in os.environ.items() if k not in ("BATCHNB_WORKSPACE", "COLUMNS", "LINES")}
    env["BATCHNB_WORKSPACE"] = str(ws)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [*BATCHNB, *args], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def ok(ws: Path, *args: str, columns: int | None = None) -> str:
    done = cli(ws, *args, columns=columns)
    assert done.returncode == 0, f"batchnb {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def _deployment(folder: Path, endpoint: str, name: str, script: str) -> Path:
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "weights.json").write_text('{"w": 3}')
    (folder / "code").mkdir()
    (folder / "code" / "score.py").write_text(script)
    spec = {
        "name": name,
        "endpoint_name": endpoint,
        "type": "model",
        "model": {"name": f"{name}-model", "path": "model"},
        "code_configuration": {"code": "code", "scoring_script": "score.py"},
    }
    (folder / "deployment.yml").write_text(yaml.safe_dump(spec))
    return folder / "deployment.yml"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a completed job, a job failed with a multi-line traceback on an endpoint and a
    deployment with long names, and one asset of each other kind."""
    root = tmp_path_factory.mktemp("tables")
    ws = root / "ws"
    data = root / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n")
    ok(ws, "batch-endpoint", "create", "-n", "tables-ok", "-o", "none")
    ok(ws, "batch-endpoint", "create", "-n", LONG_EP, "-o", "none")
    good = _deployment(root / "good", "tables-ok", "fine", "def init():\n    pass\n\n\ndef run(mb):\n    return mb\n")
    ok(ws, "batch-deployment", "create", "-f", str(good), "-o", "none")
    ok(ws, "batch-deployment", "create", "-f", str(_deployment(root / "bad", LONG_EP, LONG_DEP, FAILING_INIT)))
    jobs = [
        ok(ws, "batch-endpoint", "invoke", "-n", endpoint, "--input", str(data), "--query", "name", "-o", "tsv").strip()
        for endpoint in ("tables-ok", LONG_EP)
    ]
    ok(ws, "data", "create", "-n", "tables-data", "--path", str(data), "--type", "uri_folder", "-o", "none")
    ok(ws, "environment", "create", "-n", "tables-env", "--image", "python:3.12-slim", "-o", "none")
    (root / "hello.yml").write_text("name: hello\ntype: command\ncommand: echo hi\ndescription: greets\n")
    ok(ws, "component", "create", "-f", str(root / "hello.yml"), "-o", "none")

    def ended() -> bool:
        return sorted(json.loads(ok(ws, "job", "list", "--query", "[].status"))) == ["Completed", "Failed"]

    wait_until(ended, timeout=180, what=f"jobs {jobs} to end", interval=0.5)
    return ws


def _rows(table: str) -> tuple[list[str], list[str]]:
    """The header line's column titles (by the dashes under them) and the rows of a table."""
    lines = table.splitlines()
    assert set(lines[1]) <= {"-", " "}, table
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    return [lines[0][a:b].strip() for a, b in spans], lines[2:]


def _cells(line: str, rule: str) -> list[str]:
    """A row's cells, cut where the dashes under the headers are."""
    return [line[a:b].strip() for a, b in (m.span() for m in re.finditer(r"-+", rule))]


def test_job_list_fits_100_columns_with_one_line_per_job(ws: Path) -> None:
    table = ok(ws, "job", "list", "-o", "table")
    lines = table.splitlines()
    assert all(len(line) <= 100 for line in lines), "\n".join(lines)
    assert "\x1b" not in table  # piped: plain text
    assert "Traceback" not in table and "File " not in table
    headers, rows = _rows(table)
    assert headers == JOB_COLUMNS
    assert len(rows) == 2  # one line per job, whatever its error
    cells = {c[1]: c for c in (_cells(row, lines[1]) for row in rows)}
    failed, completed = cells["Failed"], cells["Completed"]
    assert completed[2] == "tables-ok/fine"
    assert completed[3] == "1/1"  # one mini-batch of one file
    # The long endpoint/deployment is cut with an ellipsis; the job's name never is.
    assert failed[2].startswith(LONG_EP[:10]) and failed[2].endswith("…")
    assert failed[0].startswith("batchjob-") and "…" not in failed[0]
    for job in (failed, completed):
        assert HUMAN_TIME.fullmatch(job[4]), job
        assert re.fullmatch(r"\d+\.\ds|\d+s|\d+m \d\ds", job[5]), job


def test_a_wider_terminal_shows_more_and_a_narrower_one_less(ws: Path) -> None:
    wide = ok(ws, "job", "list", "-o", "table", columns=160)
    assert f"{LONG_EP}/{LONG_DEP}" in wide
    narrow = ok(ws, "job", "list", "-o", "table", columns=72).splitlines()
    assert all(len(line) <= 72 for line in narrow)
    assert narrow[0].split() == JOB_COLUMNS


def test_json_yaml_and_tsv_keep_iso_8601(ws: Path) -> None:
    jobs = json.loads(ok(ws, "job", "list"))
    assert all(ISO.fullmatch(job[key]) for job in jobs for key in ("created_at", "started_at", "ended_at"))
    assert all(ISO.fullmatch(job["started_at"]) for job in yaml.safe_load(ok(ws, "job", "list", "-o", "yaml")))
    tsv = ok(ws, "job", "list", "--query", "[].[name, started_at]", "-o", "tsv").splitlines()
    assert all(ISO.fullmatch(line.split("\t")[1]) for line in tsv)


def test_tsv_is_one_line_per_job_with_the_traceback_escaped_and_plain_values_unchanged(ws: Path) -> None:
    jobs = json.loads(ok(ws, "job", "list"))
    failed = next(job for job in jobs if job["status"] == "Failed")
    assert "Traceback" in failed["error"] and "\n" in failed["error"]
    lines = ok(ws, "job", "list", "-o", "tsv").splitlines()
    assert len(lines) == len(jobs) == 2
    fields = {}
    for job, line in zip(jobs, lines, strict=True):
        scalars = [key for key, value in job.items() if not isinstance(value, dict | list)]
        fields[job["status"]] = dict(zip(scalars, line.split("\t"), strict=True))  # no stray tab in a field
        assert fields[job["status"]]["name"] == job["name"]
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
    unescaped = re.sub(r"\\(.)", lambda m: escapes[m[1]], fields["Failed"]["error"])
    assert unescaped == failed["error"]
    assert ok(ws, "job", "list", "--query", "[].name", "-o", "tsv") == "".join(f"{job['name']}\n" for job in jobs)


def test_show_of_a_failed_job_is_a_key_value_table_with_the_error_in_one_line(ws: Path) -> None:
    name = ok(ws, "job", "list", "--status", "Failed", "--query", "[0].name", "-o", "tsv").strip()
    full_error = json.loads(ok(ws, "job", "show", "-n", name))["error"]
    assert "Traceback" in full_error and len(full_error.splitlines()) > 4
    table = ok(ws, "job", "show", "-n", name, "-o", "table")
    lines = table.splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert "Traceback" not in table and not any(line.startswith(" ") for line in lines)
    pairs = dict(line.split(None, 1) for line in lines)
    assert pairs["name"] == name
    assert pairs["status"] == "Failed"
    assert HUMAN_TIME.fullmatch(pairs["started"]) and HUMAN_TIME.fullmatch(pairs["created_at"])
    # The error's first line says where, then comes the exception (why), cut to fit.
    assert pairs["error"].startswith("init() of the scoring script failed in ")
    assert pairs["error"].endswith("…")
    wide = ok(ws, "job", "show", "-n", name, "-o", "table", columns=200).splitlines()
    error = next(line for line in wide if line.startswith("error "))
    assert "process" in error and "RuntimeError: the model could not be loaded: a very long reason" in error
    assert len(wide) == len(lines) and all(len(line) <= 200 for line in wide)
    assert pairs["settings.mini_batch_size"] == "10"


def test_a_query_chooses_the_columns(ws: Path) -> None:
    table = ok(ws, "job", "list", "--query", "[].{Job:name, State:status, Created:created_at}", "-o", "table")
    headers, rows = _rows(table)
    assert headers == ["Job", "State", "Created"]
    assert sorted(row.split()[1] for row in rows) == ["Completed", "Failed"]
    assert all(HUMAN_TIME.search(row) for row in rows)
    columns = ok(ws, "batch-endpoint", "list", "--query", "[].[name, auth_mode]", "-o", "table").splitlines()
    assert columns[0].split() == ["Column1", "Column2"]
    assert [line.split() for line in columns[2:]] == [[LONG_EP, "aad_token"], ["tables-ok", "aad_token"]]
    # A query of one record keeps az's one-row table.
    one = ok(ws, "batch-endpoint", "show", "-n", "tables-ok", "--query", "{name:name, auth:auth_mode}", "-o", "table")
    assert one.splitlines()[0].split() == ["Name", "Auth"]


@pytest.mark.parametrize(
    ("command", "headers", "first"),
    [
        (["batch-endpoint", "list"], ["Name", "Default deployment", "Deployments", "Created", "Description"], LONG_EP),
        (
            ["batch-deployment", "list", "-e", "tables-ok"],
            ["Name", "Endpoint", "Default", "Model/Component", "Compute", "Updated"],
            "fine",
        ),
        (["model", "list"], ["Name", "Version", "Type", "Created", "Source"], f"{LONG_DEP}-model"),
        (["data", "list"], ["Name", "Version", "Type", "Created", "Path"], "tables-data"),
        (["environment", "list"], ["Name", "Version", "Created", "Image"], "tables-env"),
        (["component", "list"], ["Name", "Version", "Type", "Created", "Description"], "hello"),
        (["compute", "list"], ["Name", "Type", "Default", "Instances", "Workers", "Agent", "Hosts"], "local"),
        (["datastore", "list"], ["Name", "Type", "Default", "Path"], "workspaceblobstore"),
    ],
)
def test_each_kind_has_its_columns(ws: Path, command: list[str], headers: list[str], first: str) -> None:
    table = ok(ws, *command, "-o", "table")
    assert all(len(line) <= 100 for line in table.splitlines())
    found, rows = _rows(table)
    assert found == headers
    assert first in [row.split()[0] for row in rows]


def test_human_times_and_durations() -> None:
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
    assert when(now - dt.timedelta(seconds=20), now) == "just now"
    assert when(now - dt.timedelta(minutes=3, seconds=50), now) == "3 min ago"
    two_hours = now - dt.timedelta(hours=2)
    assert when(two_hours, now) == two_hours.astimezone().strftime("%m-%d %H:%M")
    last_year = now - dt.timedelta(days=400)
    assert when(last_year, now) == last_year.astimezone().strftime("%Y-%m-%d %H:%M")
    assert [duration(s) for s in (4.21, 42, 83, 7500, 200000, None)] == ["4.2s", "42s", "1m 23s", "2h 05m", "2d 7h", ""]
