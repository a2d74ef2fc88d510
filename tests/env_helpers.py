"""Tiny wheels built in a test, for environments that must be built without a package index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any


def tiny_wheel(name: str, version: str, wheels: Path) -> Path:
    """Build ``name==version`` (one module whose ``VERSION`` is ``version``) into ``wheels`` with
    ``pip wheel``, offline (hatchling from this interpreter, no build isolation); return the wheel."""
    source = wheels.parent / f"src-{name}-{version}"
    (source / name).mkdir(parents=True)
    (source / name / "__init__.py").write_text(f"VERSION = {version!r}\n")
    (source / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"
            [project]
            name = "{name}"
            version = "{version}"
            """
        )
    )
    offline = ["--no-build-isolation", "--no-deps", "--no-index"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", *offline, "-w", str(wheels), str(source)], check=True)
    (wheel,) = wheels.glob(f"{name}-{version}-*.whl")
    return wheel


def conda_file(
    folder: Path, wheels: Path, *pip: str, name: str = "conda.yaml", extra: str = "", python: str | None = None
) -> Path:
    """A conda environment file whose ``pip:`` section finds packages among ``wheels`` (by a
    relative path, as a user's file next to its wheels would), asking for Python ``python``
    (``X.Y``; batchnb's own by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    links = os.path.relpath(wheels, folder)
    lines = "".join(f"      - {line}\n" for line in (f"--find-links {links}", *pip))
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    path = folder / name
    path.write_text(
        f"name: test-env\nchannels: [conda-forge]\ndependencies:\n  - python={python}\n  - pip\n{extra}"
        f"  - pip:\n{lines}"
    )
    return path


def job_spec(client: Any, name: str) -> dict[str, Any]:
    """The spec a job was recorded with (what its supervisor and workers read)."""
    with client.store.read() as db:
        return json.loads(db.execute("SELECT spec FROM jobs WHERE name = ?", (name,)).fetchone()["spec"])  # type: ignore[no-any-return]


def printed_by(python: str, code: str) -> str:
    """What ``python -c code`` prints (it must succeed)."""
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
