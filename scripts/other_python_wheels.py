"""Download the wheels that a build with another Python version needs, for the tests to build it offline.

An environment that asks for another Python version than batchnb's own installs batchnb's worker
runtime (``batchnb.environments.build.RUNTIME_REQUIREMENTS``) into its build. The tests never
reach a package index, so this fetches those wheels (and their dependencies) once, at setup, into
``.test-tools/wheels/cpXY/`` for the first other version this machine has (see
:func:`other_python`); tests/test_environments.py builds from that folder. A second run with the
same requirements does nothing: the folder's ``requirements.txt`` records what it holds.

Usage: ``python scripts/other_python_wheels.py`` (scripts/test runs it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from batchnb.environments.build import RUNTIME_REQUIREMENTS, find_python
from batchnb.environments.spec import this_python

WHEELS = Path(__file__).resolve().parent.parent / ".test-tools" / "wheels"
# Tried in this order: the nearest versions first, whose wheels every runtime package publishes.
CANDIDATES = ("3.12", "3.13", "3.10")


def other_python() -> str | None:
    """The first of :data:`CANDIDATES` that is not batchnb's own version and is on this machine."""
    return next((v for v in CANDIDATES if v != this_python() and find_python(v)), None)


def wheel_folder(version: str) -> Path:
    """Where the wheels for Python ``X.Y`` are kept: ``.test-tools/wheels/cpXY``."""
    return WHEELS / f"cp{version.replace('.', '')}"


def main() -> int:
    """Fetch the wheels for :func:`other_python` unless they are there already."""
    version = other_python()
    if version is None:
        print(f"no other Python ({', '.join(CANDIDATES)}) on this machine: its build is not tested")
        return 0
    folder = wheel_folder(version)
    wanted = "\n".join(RUNTIME_REQUIREMENTS) + "\n"
    record = folder / "requirements.txt"
    if record.is_file() and record.read_text() == wanted:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    record.unlink(missing_ok=True)  # written last: a download stopped midway is done again
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
    command += ["--python-version", version, "--dest", str(folder), *RUNTIME_REQUIREMENTS]
    subprocess.run(command, check=True)
    record.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
