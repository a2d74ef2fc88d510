"""The package as users get it: the sdist and wheel that `python -m build` makes, installed into a
fresh venv, and the Binder configuration run for real.

The wheel is built from the sdist (as pip does for a user without a wheel) with a trapped `node` on
PATH, so the test fails if building from the sdist needs node. The fresh venv gets only the wheel
(`pip install --no-deps --no-index`); the dependencies come from this test's venv through a `.pth`
file, which does not process that venv's own `.pth` files, so the editable install of the checkout
stays invisible and `import batchnb` must resolve to the wheel. `python -m build --no-isolation` uses the
build backend (hatchling, hatch-jupyter-builder, jupyter-builder) installed by the [test] extra, so
the test needs no package index.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import stat
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VERSION = importlib.metadata.version("batchnb")  # this checkout's, from its (editable) install
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _run(args: list[str | Path], *, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 600) -> str:
    """Run a command; return its stdout and stderr (ANSI colours removed); fail with both if it fails."""
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )
    out = ANSI.sub("", proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{out[-8000:]}"
    return out


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path
    node_calls: Path  # written by the trapped node if anything ran it while building the wheel


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist of this checkout, and a wheel built from that sdist with node unusable."""
    work = tmp_path_factory.mktemp("dists")
    out = work / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--outdir", out, ROOT])
    (sdist,) = out.glob("batchnb-*.tar.gz")

    with tarfile.open(sdist) as tar:
        tar.extractall(work / "unpacked", filter="data")
    trap = work / "trap"
    trap.mkdir()
    calls = work / "node-calls.txt"
    for name in ("node", "nodejs", "npm", "yarn"):
        script = trap / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit 1\n')
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{trap}{os.pathsep}{os.environ['PATH']}"}
    unpacked = work / "unpacked" / sdist.name.removesuffix(".tar.gz")
    _run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", out, unpacked], env=env)
    (wheel,) = out.glob("batchnb-*.whl")
    return Dists(sdist, wheel, calls)


def make_venv(path: Path) -> Path:
    """A venv with no packages of its own that sees this venv's packages (not its editable batchnb),
    with `jupyter`, `jupyter-labextension` and `jupyter-server` scripts running its own Python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "zz-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    scripts = {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")}
    for name in ("jupyter", "jupyter-labextension", "jupyter-server"):
        module, func = scripts[name].value.split(":")
        script = path / "bin" / name
        script.write_text(f"#!{python}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n")
        script.chmod(0o755)
    return path


def venv_env(venv: Path, home: Path) -> dict[str, str]:
    """The environment of a user of `venv` whose home is `home`: nothing of this session's venv,
    Jupyter or batchnb settings."""
    own_bin = str(Path(sys.prefix) / "bin")
    drop = ("JUPYTER", "BATCHNB_", "XDG_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p != own_bin]
    env.update(HOME=str(home), PATH=os.pathsep.join([str(venv / "bin"), *path]))
    return env


def config_block(listing: str, config_dir: Path) -> str:
    """The part of `jupyter server extension list` output under `Config dir: <config_dir>`."""
    blocks = {b.split("\n", 1)[0].strip(): b for b in listing.split("Config dir: ")[1:]}
    assert str(config_dir) in blocks, f"no 'Config dir: {config_dir}' in:\n{listing}"
    return blocks[str(config_dir)]


def test_sdist_carries_the_sidebar_sources_and_its_build(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    sources = {
        "labextension/package.json",
        "labextension/yarn.lock",
        "labextension/tsconfig.json",
        "labextension/install.json",
        "labextension/src/index.ts",
        "labextension/style/index.css",
        "jupyter-config/server-config/batchnb.json",
    }
    assert sources <= names, f"missing from the sdist: {sorted(sources - names)}"
    built = {"batchnb/labextension/package.json", "batchnb/labextension/static/style.js"}
    assert built <= names, "the sdist must carry the built sidebar, so building it needs no node"
    assert any(re.fullmatch(r"batchnb/labextension/static/remoteEntry\.\w+\.js", n) for n in names)
    assert not [n for n in names if "node_modules/" in n or n.startswith((".venv/", "labextension/lib/"))]


def test_wheel_from_the_sdist_needs_no_node_and_carries_both_extensions(dists: Dists) -> None:
    assert not dists.node_calls.exists(), f"building the wheel from the sdist ran: {dists.node_calls.read_text()}"
    data = f"batchnb-{VERSION}.data/data/"
    names = set(zipfile.ZipFile(dists.wheel).namelist())
    assert {
        f"{data}etc/jupyter/jupyter_server_config.d/batchnb.json",
        f"{data}share/jupyter/labextensions/batchnb/package.json",
        f"{data}share/jupyter/labextensions/batchnb/install.json",
        f"{data}share/jupyter/labextensions/batchnb/static/style.js",
        "batchnb/samples/heart-classifier/deployment.yml",
    } <= names


def test_the_wheel_installed_alone_enables_the_lab_and_server_extensions(dists: Dists, tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "fresh")
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", dists.wheel])
    env = venv_env(venv, tmp_path / "home")

    where = _run([python, "-c", "import batchnb; print(batchnb.__file__)"], env=env, cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv), f"batchnb imported from {where} instead of the wheel"

    labext = _run([venv / "bin" / "jupyter", "labextension", "list"], env=env, cwd=tmp_path)
    assert str(venv / "share" / "jupyter" / "labextensions") in labext, labext
    assert re.search(rf"batchnb v{re.escape(VERSION)} enabled OK \(python, batchnb\)", labext), labext

    server = _run([venv / "bin" / "jupyter", "server", "extension", "list"], env=env, cwd=tmp_path)
    block = config_block(server, venv / "etc" / "jupyter")
    assert re.search(r"batchnb enabled", block), server
    assert re.search(rf"batchnb {re.escape(VERSION)} OK", block), server

    cli = _run([venv / "bin" / "batchnb", "--help"], env=env, cwd=tmp_path)
    assert "batch-endpoint" in cli


def test_binder_environment_pins_what_the_build_needs() -> None:
    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    deps = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "conda-forge" in env["channels"]
    python = next(d for d in deps if d.startswith("python"))
    minimum = importlib.metadata.metadata("batchnb")["Requires-Python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split("."))), python
    # The sidebar's bundler (Rspack) needs node ^20.19 or >=22.12; repo2docker's base image is older.
    assert any(re.fullmatch(r"nodejs >=20\.19,<23", d) for d in deps), deps
    assert any(d.startswith("jupyterlab >=4") for d in deps), deps
    # With binder/ present, repo2docker reads only that folder; environment.yml wins over requirements.txt.
    assert not (ROOT / "binder" / "requirements.txt").exists()


def test_binder_postbuild_installs_and_prepares_the_workspace(tmp_path: Path) -> None:
    """Run binder/postBuild as repo2docker does (from the repository root, as a user whose home is
    fresh), with a fresh venv's Python and jupyter first on PATH."""
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & stat.S_IXUSR, "binder/postBuild must be executable"
    venv = make_venv(tmp_path / "binder-env")
    home = tmp_path / "home"
    home.mkdir()
    had_marker = (ROOT / ".batchnb").exists()
    # Offline, as every test: the dependencies and the build backend come from this test's venv
    # (PIP_NO_BUILD_ISOLATION=0 is pip's spelling of --no-build-isolation).
    env = {**venv_env(venv, home), "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0"}
    out = _run([post_build], env=env, cwd=ROOT)

    assert re.search(rf"batchnb v{re.escape(VERSION)} enabled OK", out), out
    assert (venv / "share" / "jupyter" / "labextensions" / "batchnb" / "package.json").is_file()
    assert (venv / "etc" / "jupyter" / "jupyter_server_config.d" / "batchnb.json").is_file()
    assert (ROOT / ".batchnb").exists() == had_marker, "postBuild must not make a workspace in the checkout"

    from batchnb import BatchClient

    client = BatchClient(home / ".local" / "share" / "batchnb" / "workspace")
    endpoint = client.batch_endpoints.get("heart-classifier")
    assert endpoint["defaults"]["deployment_name"] == "classifier-json"
    (job,) = client.batch_endpoints.list_jobs("heart-classifier")
    assert job["status"] == "Completed"
    rows = Path(job["outputs"]["score"]["path"], job["outputs"]["score"]["file_name"]).read_text().splitlines()
    assert len(rows) == 30
