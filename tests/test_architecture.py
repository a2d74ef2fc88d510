"""The architecture contracts in pyproject.toml (import-linter), which scripts/test checks: a copy of
the package with one forbidden import added is refused, naming the contract and the import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e '.[test]')")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    skip = shutil.ignore_patterns("__pycache__", "labextension")
    shutil.copytree(ROOT / "batchnb", tmp_path / "batchnb", ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}  # a deliberate violation\n")


def test_the_package_keeps_its_contracts(tree: Path) -> None:
    done = _lint(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "edge"),
    [
        (
            "registry/code.py",
            "from ..pipelines import spec",
            "The registry imports neither pipelines, compute nor the engine",
            "batchnb.registry.code -> batchnb.pipelines.spec",
        ),
        (
            "engine/planner.py",
            "import ipywidgets",
            "The core never imports a front end",
            "batchnb.engine.planner -> ipywidgets",
        ),
        (
            "compute/base.py",
            "from ..engine import logs",
            "Compute targets never import the engine",
            "batchnb.compute.base -> batchnb.engine.logs",
        ),
    ],
)
def test_a_forbidden_import_fails_the_check(tree: Path, module: str, line: str, contract: str, edge: str) -> None:
    _add_import(tree / "batchnb" / module, line)
    done = _lint(tree)
    assert done.returncode != 0
    assert f"{contract} BROKEN" in done.stdout
    assert edge in done.stdout
