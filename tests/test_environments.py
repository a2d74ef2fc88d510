"""Built environments: real uv builds from wheels built in the test, offline (see conftest).

A deployment's scoring script imports a package that only its environment has; two environments
hold two versions of one package side by side; a package that cannot be found fails
``environment create`` naming it; show, delete and ``workspace gc`` do what they say.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pty
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import error_line, run_cli, snapshot
from engine_helpers import lines, output_file
from env_helpers import conda_file, job_spec, printed_by, tiny_wheel

from batchnb import BatchClient
from batchnb.errors import ConflictError, InvalidStateError

# Returns, for each file, the version of tinypkg that init() imported.
SCORE = """
import tinypkg

def init():
    global version
    version = tinypkg.VERSION

def run(mini_batch):
    return [f"{version} {p}" for p in mini_batch]
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with tinypkg 1.0 and 2.0, a package batchnb's own environment does not have."""
    folder = tmp_path_factory.mktemp("wheels") / "wheels"
    for version in ("1.0", "2.0"):
        tiny_wheel("tinypkg", version, folder)
    assert importlib.util.find_spec("tinypkg") is None
    return folder


@pytest.fixture(autouse=True)
def _uv_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "uv-cache"))


def _env(client: BatchClient, tmp_path: Path, wheels: Path, name: str, *pip: str) -> dict:
    conda = conda_file(tmp_path / name, wheels, *pip)
    return client.environments.create_or_update(
        {"name": name, "image": "mcr.microsoft.com/azureml/minimal:latest", "conda_file": str(conda)}
    )


@pytest.fixture
def deploy_in(client: BatchClient, model_dir: Path, tmp_path: Path):
    """deploy_in(name, environment, base_dir=None, script=SCORE) -> the deployment of ``script`` on
    ep-test in that environment."""
    client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    client.batch_endpoints.create_or_update({"name": "ep-test"})

    def make(name: str, environment: str | dict, base_dir: Path | None = None, script: str = SCORE) -> dict:
        code = tmp_path / f"code-{name}"
        code.mkdir(exist_ok=True)
        (code / "score.py").write_text(script)
        spec = {
            "name": name,
            "endpoint_name": "ep-test",
            "model": "azureml:tiny:1",
            "code_configuration": {"code": str(code), "scoring_script": "score.py"},
            "environment": environment,
            "settings": {"mini_batch_size": 2},
        }
        return client.batch_deployments.create_or_update(spec, base_dir=base_dir)

    return make


def _dry_run(client: BatchClient, deployment: str, data: Path) -> dict:
    result = client.batch_endpoints.invoke("ep-test", deployment, input=str(data), dry_run=True)
    assert result["status"] == "ok", result.get("error")
    return result


def test_a_deployment_scores_with_a_package_only_its_environment_has(client, deploy_in, csv_inputs, tmp_path, wheels):
    env = _env(client, tmp_path, wheels, "tiny-env", "tinypkg==1.0")
    deploy_in("blue", "azureml:tiny-env@latest")
    data = csv_inputs(3)
    result = _dry_run(client, "blue", data)
    assert result["n_results"] == 2
    assert [row.split()[0] for row in result["preview"].splitlines()] == ["1.0", "1.0"]
    # The REST API's dry run (a child of the server) runs it there too.
    from batchnb.server import dryrun

    served = dryrun.run(
        client.workspace.root, "ep-test", {"deployment_name": "blue", "input": str(data)}, tmp_path, 120
    )
    assert (served["status"], served["preview"]) == ("ok", result["preview"])

    # The job records the environment and the interpreter its workers start with, and scores there.
    job = client.batch_endpoints.invoke("ep-test", "blue", input=str(data))
    spec = job_spec(client, job.name)
    assert spec["environment"] == "tiny-env:1"
    assert spec["python"] == str(client.workspace.root / "envs" / env["build"]["hash"] / "bin" / "python")
    job = client.jobs.wait(job.name, timeout=120)
    assert job.status == "Completed", job.error
    assert [line.split()[0] for line in lines(output_file(job))] == ["1.0"] * 3
    # That interpreter has the deployment's package, and batchnb's worker runtime through the layer.
    assert printed_by(spec["python"], "import tinypkg, batchnb.engine.worker, pandas; print(tinypkg.VERSION)") == "1.0"


def test_two_versions_of_one_package_live_side_by_side(client, deploy_in, csv_inputs, tmp_path, wheels):
    one = _env(client, tmp_path, wheels, "tiny-one", "tinypkg==1.0")
    two = _env(client, tmp_path, wheels, "tiny-two", "tinypkg==2.0")
    assert one["build"]["hash"] != two["build"]["hash"]
    deploy_in("blue", "azureml:tiny-one@latest")
    deploy_in("green", "azureml:tiny-two@latest")
    data = csv_inputs(1)
    assert _dry_run(client, "blue", data)["preview"].startswith("1.0 ")
    assert _dry_run(client, "green", data)["preview"].startswith("2.0 ")
    # Real jobs, one after the other on one agent: each deployment's workers are its environment's.
    client.computes.create_or_update({"name": "kept", "type": "amlcompute", "idle_time_before_scale_down": 30})
    for name, version in (("blue", "1.0"), ("green", "2.0"), ("blue", "1.0")):
        client.batch_deployments.update(name, "ep-test", ["compute=azureml:kept"])
        job = client.batch_endpoints.invoke("ep-test", name, input=str(data)).wait(timeout=120)
        assert job.status == "Completed", job.error
        assert [line.split()[0] for line in lines(output_file(job))] == [version]
    client.computes.stop("kept")
    assert "tinypkg==1.0" in client.environments.show("tiny-one")["build"]["packages"]
    assert "tinypkg==2.0" in client.environments.show("tiny-two")["build"]["packages"]


def test_environments_with_the_same_specification_share_one_build(client, tmp_path, wheels):
    first = _env(client, tmp_path, wheels, "same-a", "tinypkg==2.0")
    second = _env(client, tmp_path, wheels, "same-b", "tinypkg==2.0")
    assert first["build"]["hash"] == second["build"]["hash"]
    assert [p.name for p in (client.workspace.root / "envs").iterdir()] == [first["build"]["hash"]]


def test_an_inline_environment_of_a_deployment_is_registered_and_built(client, deploy_in, csv_inputs, tmp_path, wheels):
    conda = conda_file(tmp_path / "inline", wheels, "tinypkg==2.0")
    deploy_in("blue", {"image": "python:3.11", "conda_file": "conda.yaml"}, base_dir=conda.parent)
    assert client.batch_deployments.get("blue", "ep-test")["resolved"]["environment"] == "ep-test-blue-env:1"
    assert _dry_run(client, "blue", csv_inputs(1))["preview"].startswith("2.0 ")


def test_a_package_that_cannot_be_found_fails_environment_create_naming_it(tmp_path, wheels):
    ws = tmp_path / "ws"
    assert run_cli("workspace", "show", ws=ws)[0] == 0
    before = snapshot(ws)
    conda = conda_file(tmp_path / "broken", wheels, "tinypkg==1.0", "batchnb-no-such-package==1.0")
    result = run_cli("environment", "create", "-n", "broken", "--conda-file", str(conda), ws=ws)
    line = error_line(result, "environment broken: the build failed", "batchnb-no-such-package")
    assert result[0] == 2, line
    assert snapshot(ws) == before  # nothing recorded, no build left behind


def test_a_version_already_taken_is_refused_before_the_build(client, tmp_path, wheels):
    taken = _env(client, tmp_path, wheels, "taken", "tinypkg==1.0")
    before = snapshot(client.workspace.root)
    conda = conda_file(tmp_path / "again", wheels, "tinypkg==2.0")
    with pytest.raises(ConflictError, match="environment taken version 1 already exists"):
        client.environments.create_or_update({"name": "taken", "version": "1", "conda_file": str(conda)})
    assert snapshot(client.workspace.root) == before  # nothing recorded, nothing built
    assert [p.name for p in (client.workspace.root / "envs").iterdir()] == [taken["build"]["hash"]]


def test_a_requirements_file_is_an_environment_too(client, tmp_path, wheels):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--find-links {wheels}\ntinypkg==2.0  # the pinned one\n")
    env = client.environments.create_or_update({"name": "from-pip", "conda_file": str(requirements)})
    assert env["pip_requirements"] == [f"--find-links {wheels}", "tinypkg==2.0  # the pinned one"]
    assert client.environments.show("from-pip")["build"]["packages"] == ["tinypkg==2.0"]


def test_an_environment_batchnb_already_satisfies_needs_no_build(client, tmp_path):
    (tmp_path / "conda.yaml").write_text("dependencies:\n  - pandas\n  - pip:\n    - pyyaml\n  - cudatoolkit=11.8\n")
    env = client.environments.create_or_update({"name": "plain", "conda_file": "conda.yaml"}, base_dir=tmp_path)
    assert "build" not in env
    shown = client.environments.show("plain")["build"]
    assert shown["status"] == "Not needed"
    assert shown["provided_by_batchnb"] == ["pandas", "pyyaml"]
    assert shown["warnings"] == ["conda package cudatoolkit has no package-index equivalent: not installed"]
    assert not (client.workspace.root / "envs").exists()


def test_show_delete_and_gc(client, deploy_in, tmp_path, wheels):
    ws = client.workspace.root
    kept = _env(client, tmp_path, wheels, "kept", "tinypkg==1.0")
    gone = _env(client, tmp_path, wheels, "gone", "tinypkg==2.0")
    code, out, _ = run_cli("environment", "show", "-n", "gone", ws=ws)
    shown = json.loads(out)
    assert code == 0
    assert shown["image_used_locally"].startswith("recorded, not used locally")
    build = shown["build"]
    assert build["status"] == "Built"
    assert build["python_version"] == printed_by(build["python"], "import platform; print(platform.python_version())")
    assert build["packages"] == ["tinypkg==2.0"]
    assert build["size_on_disk"] > 0

    deploy_in("blue", "azureml:gone:1")
    with pytest.raises(InvalidStateError, match="environment gone:1 is used by deployment ep-test/blue"):
        client.environments.delete("gone", "1")
    error_line(run_cli("environment", "delete", "-n", "gone", "-v", "1", "--yes", ws=ws), "ep-test/blue")
    client.batch_deployments.delete("blue", "ep-test")
    code, out, _ = run_cli("environment", "delete", "-n", "gone", "-v", "1", "--yes", ws=ws)
    assert (code, json.loads(out)) == (0, {"deleted": "gone:1"})

    code, out, _ = run_cli("workspace", "gc", ws=ws)
    removed = json.loads(out)
    assert code == 0
    assert [r["hash"] for r in removed["removed"]] == [gone["build"]["hash"]]
    assert removed["kept"] == 1
    assert sorted(p.name for p in (ws / "envs").iterdir()) == [kept["build"]["hash"]]
    assert client.environments.show("kept")["build"]["status"] == "Built"


def test_a_python_version_not_on_this_machine_is_warned_about_naming_both(client, tmp_path, wheels):
    conda = conda_file(tmp_path / "old", wheels, "tinypkg==1.0")
    conda.write_text(re.sub(r"python=\d+\.\d+", "python=2.6", conda.read_text()))
    env = client.environments.create_or_update({"name": "old-python", "conda_file": str(conda)})
    here = ".".join(map(str, sys.version_info[:3]))
    assert env["build_warnings"] == [f"Python 2.6 was asked for but is not on this machine: built with Python {here}"]


# Returns, for each file, the Python version and the version of tinypkg its worker runs.
SCORE_PYTHON = """
import sys
import tinypkg

def init():
    pass

def run(mini_batch):
    return [f"{sys.version_info[0]}.{sys.version_info[1]} {tinypkg.VERSION} {p}" for p in mini_batch]
"""


@pytest.fixture(scope="module")
def other_python() -> tuple[str, Path]:
    """Another Python version than batchnb's on this machine, and the wheels of batchnb's worker
    runtime for it that scripts/test fetched (scripts/other_python_wheels.py)."""
    from batchnb.environments.build import RUNTIME_REQUIREMENTS

    fetcher = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "other_python_wheels.py"))
    version = fetcher["other_python"]()
    if version is None:
        pytest.skip(f"no other Python version ({', '.join(fetcher['CANDIDATES'])}) on this machine")
    folder = fetcher["wheel_folder"](version)
    record = folder / "requirements.txt"
    if not record.is_file() or record.read_text().split() != list(RUNTIME_REQUIREMENTS):
        pytest.fail(f"the wheels for Python {version} are missing: run python scripts/other_python_wheels.py")
    return version, folder


def test_a_deployment_asking_for_another_python_version_runs_in_it(
    client, deploy_in, csv_inputs, tmp_path, wheels, other_python
):
    """A conda file's python=X.Y, on this machine, is the Python its jobs' workers run: batchnb's
    worker runtime is installed into the build (here from local wheels), its package layered."""
    version, runtime_wheels = other_python
    conda = conda_file(tmp_path / "other", wheels, f"--find-links {runtime_wheels}", "tinypkg==2.0", python=version)
    env = client.environments.create_or_update({"name": "other-python", "conda_file": str(conda)})
    assert env["build_warnings"] == []
    shown = run_cli("environment", "show", "-n", "other-python", ws=client.workspace.root)
    build = json.loads(shown[1])["build"]
    assert (shown[0], build["status"]) == (0, "Built")
    assert build["python_version"].startswith(f"{version}.")
    assert build["layered_over"] == "batchnb's package (another Python version)"

    deploy_in("blue", "azureml:other-python@latest", script=SCORE_PYTHON)
    data = csv_inputs(3)
    assert _dry_run(client, "blue", data)["preview"].startswith(f"{version} 2.0 ")
    job = client.batch_endpoints.invoke("ep-test", "blue", input=str(data)).wait(timeout=180)
    assert job.status == "Completed", job.error
    rows = lines(output_file(job))
    assert len(rows) == 3
    assert {row.split()[:2] == [version, "2.0"] for row in rows} == {True}, rows


def test_a_pipeline_step_runs_in_its_components_environment(client, tmp_path, wheels):
    """A command step whose component names a registered environment runs its `python` from that
    build; a step without one (or naming an Azure curated environment) runs batchnb's own."""
    from engine_helpers import reaping

    _env(client, tmp_path, wheels, "step-env", "tinypkg==2.0")
    probe = "import importlib.util as u, sys; print(u.find_spec('tinypkg') is not None, file=open(sys.argv[1], 'w'))"
    code = tmp_path / "probe"
    code.mkdir()
    (code / "probe.py").write_text(probe)

    def step(environment: str | None) -> dict:
        component = {
            "code": str(code),
            "command": "python probe.py ${{outputs.o}}/seen.txt",
            "outputs": {"o": {"type": "uri_folder"}},
        }
        return {"component": {**component, **({"environment": environment} if environment else {})}}

    spec = {
        "type": "pipeline",
        "jobs": {
            "own": step("azureml:step-env@latest"),
            "curated": step("azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"),
            "plain": step(None),
        },
    }
    with reaping():
        job = client.jobs.create_or_update(spec).wait(timeout=180)
    assert job["status"] == "Completed", job["error"]
    steps = {c["step"]: c for c in client.jobs.list(parent_job_name=job["name"])}
    seen = {name: (Path(s["outputs"]["o"]["path"]) / "seen.txt").read_text().strip() for name, s in steps.items()}
    assert seen == {"own": "True", "curated": "False", "plain": "False"}


def test_environment_create_shows_its_progress_on_a_terminal(tmp_path, wheels):
    """On a terminal, `environment create` says what it builds while uv works (rich's status line)."""
    conda = conda_file(tmp_path / "tty", wheels, "tinypkg==1.0")
    command = [sys.executable, "-m", "batchnb", "environment", "create", "-n", "tty-env", "--conda-file", str(conda)]
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*command, "-w", str(tmp_path / "ws"), "-o", "none"], stdin=secondary, stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 4096)  # returns once the child has exited and closed its end
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    assert proc.wait(timeout=120) == 0, shown
    assert b"building environment tty-env" in shown


def test_a_loky_pool_started_by_the_environments_python_runs_its_workers_there(client, tmp_path, wheels):
    """What the worker pool relies on: a process running the build's python owns a loky pool whose
    workers have the environment's packages and batchnb's worker side."""
    env = _env(client, tmp_path, wheels, "pool-env", "tinypkg==2.0")
    python = client.workspace.root / "envs" / env["build"]["hash"] / "bin" / "python"
    code = (
        "from joblib.externals.loky import get_reusable_executor\n"
        "def probe():\n"
        "    import sys, tinypkg, batchnb.engine.worker\n"
        "    return sys.executable, tinypkg.VERSION\n"
        "pool = get_reusable_executor(max_workers=1)\n"
        "print(*pool.submit(probe).result())\n"
        "pool.shutdown()\n"
    )
    assert printed_by(str(python), code) == f"{python} 2.0"


def test_a_conda_file_becomes_package_index_requirements():
    """What a conda file asks for, as uv is asked to install it (the `pip:` lines as given)."""
    from batchnb.environments.spec import from_conda

    spec = from_conda(
        {
            "dependencies": [
                "python=3.10",
                "pip",
                "conda-forge::numpy=1.26.4=py310h",
                "pytorch=2.1",
                "py-xgboost",
                "scikit-learn>=1.3,<2",
                "cudatoolkit=11.8",
                {"pip": ["--find-links=wheels", "azureml-core", "mlflow==2.0", "tinypkg"]},
            ]
        },
        Path("/project"),
        "environment e",
    )
    assert spec.python == "3.10"
    assert spec.requirements == (
        "numpy==1.26.4.*",
        "torch==2.1.*",
        "xgboost",
        "scikit-learn>=1.3,<2",
        "--find-links /project/wheels",
        "tinypkg",
    )
    assert spec.notes == (
        "conda package cudatoolkit has no package-index equivalent: not installed",
        "azureml-core: not installed; batchnb provides azureml-core locally",
        "mlflow==2.0: not installed; batchnb provides mlflow locally",
    )


def test_two_processes_building_one_environment_at_once_share_one_build(tmp_path, wheels):
    """Two invocations that find the same environment unbuilt both get it, and one build remains."""
    ws = tmp_path / "ws"
    code = (
        "import sys\n"
        "from batchnb.environments import BuildSpec, interpreter_for\n"
        f"spec = BuildSpec(('--find-links {wheels}', 'tinypkg==1.0'))\n"
        "print(interpreter_for(spec, sys.argv[1]))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(ws)], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    pythons = {proc.communicate(timeout=120)[0].strip() for proc in procs}
    assert [proc.returncode for proc in procs] == [0, 0]
    (python,) = pythons
    assert [p.name for p in (ws / "envs").iterdir()] == [Path(python).parent.parent.name]  # no half-build left
    assert printed_by(python, "import tinypkg; print(tinypkg.VERSION)") == "1.0"
