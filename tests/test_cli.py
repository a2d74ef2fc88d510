"""The ``batchnb`` command, run as a user runs it: a subprocess in a temporary workspace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from batchnb.samples import HEART

BIN = Path(sys.executable).parent
BATCHNB = [str(BIN / "batchnb")] if (BIN / "batchnb").exists() else [sys.executable, "-m", "batchnb"]


def _env(workspace: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BATCHNB_WORKSPACE"}
    if workspace is not None:
        env["BATCHNB_WORKSPACE"] = str(workspace)
    return {**env, **extra}


def run(
    *args: str, ws: Path | None, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``batchnb args`` with stdin closed (no TTY), the way a script or CI runs it."""
    return subprocess.run(
        [*BATCHNB, *args],
        cwd=cwd,
        env=env or _env(ws),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def ok(*args: str, ws: Path, cwd: Path | None = None) -> str:
    result = run(*args, ws=ws, cwd=cwd)
    assert result.returncode == 0, f"batchnb {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def assert_user_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """A user mistake: a non-zero exit, exactly one ``ERROR:`` line on stderr, no traceback, nothing on stdout."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ERROR: ")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with endpoint.yml, deployment.yml (type: model), a model and a scoring script."""
    folder = tmp_path / "project"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "weights.json").write_text('{"w": 3}')
    (folder / "code").mkdir()
    (folder / "code" / "score.py").write_text(
        "def init():\n    pass\n\n\ndef run(mini_batch):\n    return mini_batch\n"
    )
    (folder / "endpoint.yml").write_text("name: cli-ep\ndescription: from the CLI tests\n")
    deployment = {
        "$schema": "https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json",
        "name": "cli-dep",
        "endpoint_name": "cli-ep",
        "type": "model",
        "model": {"name": "cli-model", "path": "model"},
        "code_configuration": {"code": "code", "scoring_script": "score.py"},
        "environment": {"name": "env", "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"},
        "compute": "azureml:batch-cluster",
        "resources": {"instance_count": 1, "instance_type": "Standard_DS3_v2"},
    }
    (folder / "deployment.yml").write_text(yaml.safe_dump(deployment, sort_keys=False))
    return folder


# --- the bundled sample, end to end --------------------------------------------------------------


def test_sample_deploy_and_run_script(tmp_path: Path) -> None:
    sample = tmp_path / "heart-classifier"
    shutil.copytree(HEART, sample, ignore=shutil.ignore_patterns("outputs", "__pycache__"))
    env = _env(tmp_path / "ws", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        ["bash", str(sample / "deploy-and-run.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Completed" in result.stdout
    status_line = next(line for line in result.stdout.splitlines() if line.startswith("job "))
    assert status_line.endswith(": Completed")
    predictions = sample / "outputs" / "named-outputs" / "score" / "predictions.csv"
    lines = predictions.read_text().splitlines()
    assert len(lines) == 30  # 6 files x 5 rows, no header
    assert {line.split()[0] for line in lines} == {f"heart-unlabeled-{i}.csv" for i in range(6)}


# --- creating things, and the output formats -----------------------------------------------------


def test_create_from_yaml_and_show_keeps_azure_keys(ws: Path, project: Path) -> None:
    out = ok("compute", "create", "-n", "batch-cluster", "--type", "amlcompute", "--min-instances", "0",
             "--max-instances", "5", ws=ws)  # fmt: skip
    compute = json.loads(out)
    assert (compute["type"], compute["min_instances"], compute["max_instances"]) == ("amlcompute", 0, 5)
    assert ok("batch-endpoint", "create", "-f", str(project / "endpoint.yml"), "--query", "name", "-o", "tsv",
              ws=ws) == "cli-ep\n"  # fmt: skip
    # --endpoint is a prefix of --endpoint-name, as Azure's own scripts write it.
    ok("batch-deployment", "create", "--file", str(project / "deployment.yml"), "--endpoint", "cli-ep", "-o", "none",
       ws=ws)  # fmt: skip
    shown = yaml.safe_load(ok("batch-deployment", "show", "-n", "cli-dep", "-e", "cli-ep", "-o", "yaml", ws=ws))
    assert shown["$schema"].endswith("modelBatchDeployment.schema.json")
    assert shown["compute"] == "azureml:batch-cluster"
    assert shown["environment"]["image"] == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"
    assert shown["resources"] == {"instance_count": 1, "instance_type": "Standard_DS3_v2"}
    assert shown["settings"]["mini_batch_size"] == 10
    assert shown["settings"]["retry_settings"] == {"max_retries": 3, "timeout": 30}
    assert shown["settings"]["output_file_name"] == "predictions.csv"
    assert shown["is_default"] is True
    assert shown["resolved"]["compute"] == "batch-cluster"


def test_output_formats(ws: Path) -> None:
    as_yaml = yaml.safe_load(ok("batch-endpoint", "create", "-n", "ep-one", "-o", "yaml", ws=ws))
    assert ok("batch-endpoint", "create", "-n", "ep-two", "-o", "none", ws=ws) == ""
    as_json = json.loads(ok("batch-endpoint", "show", "-n", "ep-one", ws=ws))  # json is the default
    assert as_yaml == as_json
    assert (as_json["name"], as_json["auth_mode"]) == ("ep-one", "aad_token")
    assert as_json["created_at"].endswith("+00:00")  # ISO-8601 UTC, not an epoch float
    table = ok("batch-endpoint", "list", "-o", "table", ws=ws).splitlines()
    assert table[0].split()[:3] == ["Name", "Default", "deployment"]
    assert set(table[1]) <= {"-", " "}
    assert [line.split()[0] for line in table[2:]] == ["ep-one", "ep-two"]
    assert ok("batch-endpoint", "list", "--query", "[].[name, auth_mode]", "-o", "tsv", ws=ws) == (
        "ep-one\taad_token\nep-two\taad_token\n"
    )


def test_set_default_and_update_from_the_cli(ws: Path, project: Path) -> None:
    ok("batch-endpoint", "create", "-f", str(project / "endpoint.yml"), "-o", "none", ws=ws)
    create = ("batch-deployment", "create", "-f", str(project / "deployment.yml"), "--set", "compute=local")
    is_default = ("--query", "is_default", "-o", "tsv")
    assert ok(*create, "-n", "blue", *is_default, ws=ws) == "true\n"  # the first one becomes the default
    assert ok(*create, "-n", "green", *is_default, ws=ws) == "false\n"
    update = ("batch-endpoint", "update", "-n", "cli-ep", "--query", "defaults.deployment_name", "-o", "tsv")
    assert ok(*update, "--set", "defaults.deployment_name=green", ws=ws) == "green\n"
    assert_user_error(run(*update, "--set", "defaults.deployment_name=nope", ws=ws), 2, "'nope'")
    assert ok(*update, ws=ws) == "green\n"  # unchanged by the refused update


# --- user mistakes: one ERROR line, an exit code, no traceback -----------------------------------


def test_unknown_endpoint(ws: Path) -> None:
    assert_user_error(run("batch-endpoint", "show", "-n", "nope", ws=ws), 3, "batch endpoint nope does not exist")


def test_debug_adds_the_traceback(ws: Path) -> None:
    result = run("batch-endpoint", "show", "-n", "nope", "--debug", ws=ws)
    assert result.returncode == 3
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "ERROR: batch endpoint nope does not exist in this workspace"


def test_bad_yaml_names_file_and_line(ws: Path, tmp_path: Path) -> None:
    bad = tmp_path / "endpoint.yml"
    bad.write_text("name: heart\ndescription: a: b\n")
    line = assert_user_error(run("batch-endpoint", "create", "-f", str(bad), ws=ws), 2, str(bad), "line 2")
    assert "invalid YAML" in line
    assert json.loads(ok("batch-endpoint", "list", ws=ws)) == []


def test_typo_in_deployment_yaml_names_the_key(ws: Path, project: Path) -> None:
    dep = project / "deployment.yml"
    data = yaml.safe_load(dep.read_text())
    data["settings"] = {"mini_batch_sise": 5}
    dep.write_text(yaml.safe_dump(data))
    assert_user_error(run("batch-deployment", "create", "-f", str(dep), ws=ws), 2, str(dep), "settings.mini_batch_sise")
    assert json.loads(ok("model", "list", ws=ws)) == []  # the inline model was not registered


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("batch-deployment", "show", "-n", "blue"), "--endpoint-name/-e"),
        (("batch-endpoint", "show"), "--name/-n"),
        (("batch-endpoint", "create"), "-n/--name"),
        (("batch-endpoint", "list", "-o", "xml"), "invalid choice"),
        # An unknown status listed no job, as if none had it (statuses are Azure's: Completed, ...).
        (("job", "list", "--status", "completed"), "invalid choice: 'completed'"),
        # -1 listed every job but the oldest (a slice), 0 every job.
        (("job", "list", "--max-results", "-1"), "--max-results -1: give a number of jobs of at least 1"),
        (("job", "list", "-r", "0"), "--max-results 0: give a number of jobs of at least 1"),
        # The label was ignored: version 1 was shown, as if -l latest had not been given (az refuses both).
        (("model", "show", "-n", "cli-model", "-v", "1", "-l", "latest"), "a version or a label, not both"),
    ],
)
def test_usage_errors(ws: Path, args: tuple[str, ...], needle: str) -> None:
    assert_user_error(run(*args, ws=ws), 2, needle)


def test_bad_endpoint_name_from_the_cli(ws: Path) -> None:
    rule = "an endpoint name must be 3 to 32 characters: letters, digits and hyphens, starting with a letter"
    for name in ("../x", "abc_def"):
        assert_user_error(run("batch-endpoint", "create", "-n", name, ws=ws), 2, repr(name), rule)
    assert ok("batch-endpoint", "list", ws=ws) == "[]\n"
    assert not (ws.parent / "x").exists()


def test_delete_needs_yes_without_a_tty(ws: Path) -> None:
    ok("batch-endpoint", "create", "-n", "keep-me", "-o", "none", ws=ws)
    assert_user_error(run("batch-endpoint", "delete", "-n", "keep-me", ws=ws), 2, "pass --yes")
    assert ok("batch-endpoint", "list", "--query", "[].name", "-o", "tsv", ws=ws) == "keep-me\n"
    assert ok("batch-endpoint", "delete", "-n", "keep-me", "--yes", ws=ws) == ""
    assert json.loads(ok("batch-endpoint", "list", ws=ws)) == []


# --- which workspace -----------------------------------------------------------------------------


def _shown_path(result: subprocess.CompletedProcess[str]) -> Path:
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def test_workspace_rule(tmp_path: Path) -> None:
    project = tmp_path / "project"
    marker = project / ".batchnb"
    deep = project / "src" / "notebooks"
    deep.mkdir(parents=True)
    marker.mkdir()
    show = ("workspace", "show", "--query", "path", "-o", "tsv")

    # The nearest .batchnb/ above the current folder...
    assert _shown_path(run(*show, ws=None, cwd=deep)) == marker.resolve()
    # ...unless BATCHNB_WORKSPACE says otherwise...
    env_ws = tmp_path / "from-env"
    assert _shown_path(run(*show, ws=env_ws, cwd=deep)) == env_ws.resolve()
    # ...and --workspace wins over both.
    flag_ws = tmp_path / "from-flag"
    assert _shown_path(run(*show, "-w", str(flag_ws), ws=env_ws, cwd=deep)) == flag_ws.resolve()

    # What one command creates there, the next command started elsewhere in the project sees.
    ok("batch-endpoint", "create", "-n", "shared-ep", "-o", "none", ws=None, cwd=project)
    listed = run("batch-endpoint", "list", "--query", "[].name", "-o", "tsv", ws=None, cwd=deep)
    assert listed.stdout == "shared-ep\n"
    assert (marker / "batchnb.db").is_file()


def test_workspace_init_makes_a_marker_folder(tmp_path: Path) -> None:
    result = run("workspace", "init", str(tmp_path / "proj"), "--query", "path", "-o", "tsv", ws=None, cwd=tmp_path)
    assert _shown_path(result) == (tmp_path / "proj" / ".batchnb").resolve()
    assert (tmp_path / "proj" / ".batchnb" / "batchnb.db").is_file()
