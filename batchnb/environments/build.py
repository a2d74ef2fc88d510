"""Building an environment with uv, into ``<workspace>/envs/<hash>/``, and describing a build.

A build is a virtual environment made by ``uv venv`` and filled by ``uv pip install``. It is
*layered* over batchnb's own environment: a ``.pth`` file appends batchnb's package and
batchnb's site-packages to its ``sys.path``, after its own site-packages, so the deployment's
packages win and batchnb's worker runtime (loky, pyarrow, pandas, batchnb) is always importable.
So a build installs only what batchnb's environment does not already satisfy (another version, a
package it lacks): an environment whose every requirement is met needs no build at all, and runs,
as a deployment without an environment does, in batchnb's own interpreter.
When the environment asks for another Python version than batchnb's, that interpreter cannot load
batchnb's compiled packages, so the runtime's packages are installed into the build as well
(:data:`RUNTIME_REQUIREMENTS`) and only batchnb's own (pure-Python) package is layered.

A build is made in a staging folder and renamed into place once complete, with its record
(``batchnb-build.json``) inside: a folder named by a hash is always a whole build, and two
processes building the same hash at once both succeed (the second one's copy is discarded). uv's
own cache is shared by every build, and uv honours its own settings (``UV_OFFLINE=1`` builds from
the warm cache only; ``UV_FIND_LINKS``, ``UV_INDEX_URL``, ``UV_CACHE_DIR``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EnvironmentBuildError, MissingDependencyError
from .spec import BuildSpec, is_met, this_python

RECORD = "batchnb-build.json"
LAYER = "_batchnb_layer.pth"


def _ours(name: str) -> str:
    """A requirement of the version of ``name`` that batchnb's own environment has."""
    return f"{name}=={importlib.metadata.version(name)}"


# What batchnb's worker side imports, installed into a build of another Python version. loky (in
# joblib) and cloudpickle carry the agent's calls to its workers: the versions batchnb's own
# environment has, so both ends speak one protocol. The bounds are pyproject.toml's.
RUNTIME_REQUIREMENTS = (
    _ours("joblib"),
    _ours("cloudpickle"),
    "PyYAML>=6",
    "psutil>=5.9",
    "packaging>=23",
    "pandas>=2.0",
    "pyarrow>=14",
    "fsspec>=2023.1",
)

Progress = Callable[[str], None]


def uv_binary() -> str:
    """The uv executable: the ``uv`` package's, else one on ``PATH``.

    Raises:
        MissingDependencyError: uv is not installed; the message names the extra.
    """
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise MissingDependencyError("building environments needs uv: pip install 'batchnb[envs]'")


def choose_python(asked: str | None) -> tuple[str, str, str | None]:
    """The interpreter a build uses: ``(executable, X.Y.Z, warning)``.

    The version asked for when it is on this machine (never downloaded), else batchnb's own,
    with a warning naming both versions.
    """
    own = (sys.executable, ".".join(map(str, sys.version_info[:3])), None)
    if asked is None or asked == this_python():
        return own
    path = find_python(asked)
    if path is None:
        return (
            *own[:2],
            f"Python {asked} was asked for but is not on this machine: built with Python {own[1]}",
        )
    version = subprocess.run(
        [path, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return path, version, None


@functools.cache
def find_python(version: str) -> str | None:
    """An interpreter of Python ``X.Y`` on this machine, or None: the one uv finds, else the newest
    of pyenv's installs of it.

    pyenv's own installs are looked at because uv's search of ``PATH`` stops at the first pyenv
    shim that fails (one whose version pyenv has not selected), so uv finds none of them
    (astral-sh/uv#21047). Asked once per process: uv's search takes about half a second, and an
    agent plans every job it runs.
    """
    found = subprocess.run(
        [uv_binary(), "python", "find", "--no-python-downloads", "--system", version],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip()
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    installs = [p for p in root.glob(f"versions/{version}.*/bin/python{version}") if _patch(p) is not None]
    return str(max(installs, key=lambda p: _patch(p) or 0)) if installs else None


def _patch(python: Path) -> int | None:
    """The patch number of a pyenv install's interpreter (``versions/3.12.1/bin/python3.12``), or
    None for another kind of install there (a virtual environment, a pre-release)."""
    patch = python.parent.parent.name.split(".")[-1]
    return int(patch) if patch.isdigit() else None


def base_identity() -> str:
    """What a build is layered over: batchnb's package and environment (part of a build's hash)."""
    return json.dumps([str(_batchnb_package()), sys.prefix])


@dataclass(frozen=True)
class Plan:
    """A spec resolved against this machine: the interpreter, and what a build must install.

    Attributes:
        spec: What the environment asks for.
        interpreter: The Python a build is made with.
        version: Its version, ``X.Y.Z``.
        install: The lines a build installs: options, and every requirement batchnb's own
            environment does not already satisfy (with another Python version: all of them, and
            batchnb's runtime).
        provided: The requirements batchnb's own environment satisfies, seen through the layer.
        warnings: What could not be honoured (a Python version that is not on this machine).
    """

    spec: BuildSpec
    interpreter: str
    version: str
    install: tuple[str, ...]
    provided: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def needed(self) -> bool:
        """Whether running it needs a build: another Python, or a package batchnb's lacks."""
        return self.version.rsplit(".", 1)[0] != this_python() or any(not line.startswith("-") for line in self.install)

    @property
    def digest(self) -> str:
        """The build's folder name: a hash of what it installs, with which Python, over what."""
        text = json.dumps([list(self.install), self.version, base_identity()])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan(spec: BuildSpec) -> Plan:
    """Resolve ``spec`` against this machine (see :class:`Plan`)."""
    interpreter, version, warning = choose_python(spec.python)
    if version.rsplit(".", 1)[0] != this_python():
        install = (*spec.requirements, *RUNTIME_REQUIREMENTS)
        provided: tuple[str, ...] = ()
    else:
        install = tuple(line for line in spec.requirements if not is_met(line))
        provided = tuple(line for line in spec.requirements if is_met(line))
    return Plan(spec, interpreter, version, install, provided, (warning,) if warning else ())


def build(envs_dir: Path, planned: Plan, progress: Progress | None = None) -> dict[str, Any]:
    """Build a plan into ``envs_dir/<digest>`` unless it is built already; return its record.

    Args:
        envs_dir: The workspace's folder of builds.
        planned: What to build (:func:`plan`).
        progress: Called with each line uv reports (resolving, downloading, installing).

    Returns:
        The build's record: ``hash``, ``python`` (the executable), ``python_version``,
        ``installed`` (the lines installed), ``built_at``, ``build_seconds``.

    Raises:
        EnvironmentBuildError: uv could not install the spec; its own message names the package.
        MissingDependencyError: uv is not installed.
    """
    final = envs_dir / planned.digest
    record = read_record(final)
    if record is not None:
        return record
    envs_dir.mkdir(parents=True, exist_ok=True)
    staging = envs_dir / f".build-{planned.digest}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    started = time.time()
    source = planned.spec.source or "environment"
    try:
        _run_uv(["venv", "--quiet", "--relocatable", "--python", planned.interpreter, str(staging)], source, progress)
        if planned.install:
            listing = staging / "batchnb-requirements.txt"
            listing.write_text("\n".join(planned.install) + "\n")
            python = staging / "bin" / "python"
            _run_uv(["pip", "install", "--python", str(python), "-r", str(listing)], source, progress)
        _layer(staging, final, same_python=planned.version.rsplit(".", 1)[0] == this_python())
        record = {
            "hash": planned.digest,
            "python": str(final / "bin" / "python"),
            "python_version": planned.version,
            "installed": list(planned.install),
            "built_at": time.time(),
            "build_seconds": round(time.time() - started, 3),
        }
        (staging / RECORD).write_text(json.dumps(record, indent=1))
        if final.exists() and read_record(final) is None:  # what a `workspace gc` stopped midway left
            shutil.rmtree(final, ignore_errors=True)
        try:
            staging.rename(final)
        except OSError:  # another process finished the same build first: theirs is as good
            if read_record(final) is None:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return read_record(final) or record


def read_record(folder: Path) -> dict[str, Any] | None:
    """The record of a complete build in ``folder``, or None if there is none."""
    try:
        return json.loads((folder / RECORD).read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def building(envs_dir: Path, digest: str) -> bool:
    """Whether a live process is building ``digest`` now."""
    import psutil

    for staging in envs_dir.glob(f".build-{digest}-*"):
        pid = staging.name.rsplit("-", 1)[-1]
        if pid.isdigit() and psutil.pid_exists(int(pid)):
            return True
    return False


def freeze(folder: Path) -> list[str]:
    """The packages installed in a build itself (not those it sees through the layer)."""
    done = subprocess.run(
        [uv_binary(), "pip", "freeze", "--python", str(folder / "bin" / "python")],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.split()


def size_on_disk(folder: Path) -> int:
    """Bytes under ``folder``, symlinks not followed."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _run_uv(args: list[str], source: str, progress: Progress | None) -> None:
    """Run uv, passing each line it reports to ``progress``; its failure becomes ours, in its words."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    proc = subprocess.Popen(
        [uv_binary(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    said = []
    for line in proc.stderr:
        line = line.rstrip()
        if line and not line.startswith("Using Python"):
            said.append(line.strip())
            if progress is not None:
                progress(line.strip())
    if proc.wait() != 0:
        reason = "; ".join(said).removeprefix("error: ") or f"uv exited with code {proc.returncode}"
        raise EnvironmentBuildError(f"{source}: the build failed: {reason}", field="conda_file")


def _layer(staging: Path, final: Path, same_python: bool) -> None:
    """Make batchnb's runtime visible in the build (made in ``staging``, used from ``final``),
    after the build's own packages."""
    purelib = next(iter([*staging.glob("lib/python*/site-packages"), staging / "Lib" / "site-packages"]))
    # batchnb's package alone, through a folder of its own: in a development checkout its parent
    # holds other things than batchnb.
    (staging / "batchnb-layer").mkdir(exist_ok=True)
    (staging / "batchnb-layer" / "batchnb").symlink_to(_batchnb_package(), target_is_directory=True)
    lines = [str(final / "batchnb-layer")]
    if same_python:
        sites = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
        # addsitedir also reads the .pth files there (editable installs, namespace packages).
        lines += [f"import site; site.addsitedir({site!r})" for site in sites]
    (purelib / LAYER).write_text("\n".join(lines) + "\n")


def _batchnb_package() -> Path:
    return Path(__file__).resolve().parent.parent
