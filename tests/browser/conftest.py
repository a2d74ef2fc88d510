"""A real JupyterLab server on localhost and Debian's Chromium driven by Playwright.

Browsers cannot be downloaded here, so Playwright launches the system Chromium (``apt-get install
chromium``) through ``executable_path``. Without it the browser tests are skipped locally and fail
under CI (``CI`` set), where .ci/run installs it.

JupyterLab loads the sidebar built from the batchnb under test (``batchnb/labextension`` next to the
imported package, written by ``jlpm build:prod``) ahead of any copy installed in the environment
(first on ``JUPYTER_PATH``): a tree tested through ``PYTHONPATH`` is tested with its own build.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchnb

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    skip = pytest.mark.skip(reason="Debian chromium is not installed (apt-get install -y chromium)")
    for item in items:
        if "browser" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


def _own_labextension(root: Path) -> str:
    """A JUPYTER_PATH entry whose ``labextensions/batchnb`` is the extension built in the tree that
    ``batchnb`` is imported from (``jlpm build:prod`` writes ``batchnb/labextension``), ahead of the
    copy installed in the environment: JupyterLab takes the first ``batchnb`` on its extension path,
    so a worktree's tests run its own build and never need to overwrite the shared installed copy.
    Empty (the installed copy) when this tree has no build."""
    built = Path(batchnb.__file__).resolve().parent / "labextension"
    if not (built / "package.json").exists():
        return ""
    folder = root / ".jupyter-path"
    (folder / "labextensions").mkdir(parents=True, exist_ok=True)
    link = folder / "labextensions" / "batchnb"
    if not link.exists():
        link.symlink_to(built, target_is_directory=True)
    return str(folder)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    """A running ``jupyter lab`` with its own root folder and batchnb workspace."""

    def __init__(self, root: Path, workspace: Path, url: str, proc: subprocess.Popen[bytes]) -> None:
        self.root, self.workspace, self.url, self.proc = root, workspace, url, proc


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The JupyterLab most browser tests share (one start per session)."""
    with _running_lab(tmp_path_factory.mktemp("labroot")) as running:
        yield running


@pytest.fixture
def empty_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A JupyterLab of its own whose workspace has nothing in it yet."""
    with _running_lab(tmp_path_factory.mktemp("emptylab")) as running:
        yield running


@contextlib.contextmanager
def _running_lab(root: Path) -> Iterator[Lab]:
    workspace = root / ".batchnb"
    port = _free_port()
    env = {
        **os.environ,
        "BATCHNB_WORKSPACE": str(workspace),
        "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
    }
    own = _own_labextension(root)
    if own:
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (own, os.environ.get("JUPYTER_PATH", "")) if p)
    log = open(root / "lab.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            "--allow-root",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            # window.jupyterapp, for the tests that switch the theme with its command.
            "--LabApp.expose_app_in_browser=True",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            raise RuntimeError(f"jupyter lab did not start:\n{(root / 'lab.log').read_text()[-3000:]}")
        time.sleep(0.3)
    try:
        yield Lab(root, workspace, url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
