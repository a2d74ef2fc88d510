"""An SSH compute whose workers run as another Unix user, who cannot read the workspace folder, over
data in Azurite: the issue's "no shared filesystem needed" test on one machine.

Design: the test creates a throwaway user (``useradd``; it needs root, as CI runs) with a home of its
own where the client key is authorized, and the compute's hosts (the test's sshd on 127.0.0.2 and
127.0.0.3) log in as that user. The workspace, the code snapshot, the registered model and the job's
folder are all under pytest's temporary folder, a root-owned folder of mode 0700: that user can read
none of it (the test checks this first). The user runs this Python and this batchnb (it can read
the repository and the virtual environment; when the Python is installed in a folder it cannot
enter, such as ``/root/.pyenv``, its installation is bind-mounted into a folder it can, for the
duration of the test). The inputs are CSV files in an Azurite container, registered as an
``azure_blob`` datastore with an account key kept in the workspace's secrets file, which that user
cannot read either; the output goes to that datastore too.

The job must still score exactly: one row per input, each scaled by the shipped model's weight by a
sibling module of the shipped script, on both hosts, and the user and its files are gone after.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from dask_helpers import deploy_shipped
from engine_helpers import reaping
from ssh_helpers import HOSTS, Sshd, no_sshd
from storage_servers import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, require_module

from batchnb import BatchClient

pytestmark = pytest.mark.skipif(no_sshd(), reason="openssh-server is not installed")
pytest.importorskip("distributed")
require_module("adlfs", "batchnb[azure-storage]")


@dataclass(frozen=True)
class Stranger:
    """A Unix user made for one test: its name, uid, and the Python wrapper it runs."""

    name: str
    uid: int
    python: str


def _as(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True, text=True, cwd="/")


def _wrapper(folder: Path, python: str, env: dict[str, str]) -> str:
    """A Python the hosts run: ``python`` with ``env`` (an SSH session passes no variables on)."""
    wrapper = folder / "python"
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    wrapper.write_text(f'#!/bin/sh\n{assignments} exec {shlex.quote(python)} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def _reachable_python(folder: Path, mounts: list[Path]) -> tuple[str, dict[str, str]]:
    """This Python and its packages, at paths another user can enter: the Python's installation
    bind-mounted under ``folder`` (recorded in ``mounts``), with this virtual environment rebuilt
    around it (its site-packages linked, not copied)."""
    base = folder / "base"
    base.mkdir()
    subprocess.run(["mount", "--bind", sys.base_prefix, str(base)], check=True, capture_output=True)
    mounts.append(base)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    # Its RUNPATH names libpython where the installation is, which that user cannot enter.
    env = {"LD_LIBRARY_PATH": str(base / "lib")}
    if sys.prefix == sys.base_prefix:
        return str(base / "bin" / version), env
    venv = folder / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(base / "bin" / version)
    (venv / "pyvenv.cfg").write_text(f"home = {base / 'bin'}\ninclude-system-site-packages = false\n")
    (venv / "lib" / version).mkdir(parents=True)
    (venv / "lib" / version / "site-packages").symlink_to(sysconfig.get_paths()["purelib"])
    return str(venv / "bin" / "python"), env


@pytest.fixture
def stranger(sshd: Sshd) -> Iterator[Stranger]:
    """A throwaway user whose ``~/.ssh/authorized_keys`` holds the test's client key, removed after
    the test with its home, its processes and its files."""
    if os.geteuid() != 0:
        pytest.skip("creating a Unix user needs root (CI runs as root)")
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("useradd and runuser (the passwd and util-linux packages) are not installed")
    name = f"bnb{uuid.uuid4().hex[:9]}"
    folder = Path(tempfile.mkdtemp(prefix="batchnb-stranger-"))
    folder.chmod(0o755)
    home = folder / "home"
    mounts: list[Path] = []
    # Password "*": no password opens it, yet the account is not locked (sshd refuses locked ones).
    subprocess.run(
        ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh", "--password", "*", name],
        check=True,
        capture_output=True,
    )
    uid = pwd.getpwnam(name).pw_uid
    try:
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700)
        shutil.copy(Path(f"{sshd.key}.pub"), ssh / "authorized_keys")
        shutil.chown(ssh, name, name)
        shutil.chown(ssh / "authorized_keys", name, name)
        env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
        python = sys.executable
        if _as(name, python, "-c", "pass").returncode != 0:
            python, more = _reachable_python(folder, mounts)
            env.update(more)
        wrapper = _wrapper(folder, python, env)
        imported = _as(name, wrapper, "-c", "import batchnb, distributed, adlfs")
        if imported.returncode != 0:
            pytest.skip(f"user {name} cannot import batchnb with this Python: {imported.stderr.strip()[-300:]}")
        yield Stranger(name, uid, wrapper)
    finally:
        for proc in psutil.process_iter(["uids"]):
            if proc.info["uids"] and proc.info["uids"].real == uid:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        for mount in mounts:
            subprocess.run(["umount", "--lazy", str(mount)], check=False, capture_output=True)
        subprocess.run(["userdel", "--force", "--remove", name], check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        # Dask's scratch folder of that user (the shared one in /tmp belongs to root).
        shutil.rmtree(Path(tempfile.gettempdir()) / f"dask-scratch-space-{uid}", ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


def test_workers_of_another_user_who_cannot_read_the_workspace_score_blobs_exactly(
    client: BatchClient,
    model_dir: Path,
    tmp_path: Path,
    sshd: Sshd,
    stranger: Stranger,
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)  # the datastore's own key only
    container = f"c{uuid.uuid4().hex[:12]}"
    blobs = azurite.filesystem()
    blobs.mkdir(container)
    for i in range(10):
        blobs.pipe_file(f"{container}/in/f{i:03d}.csv", f"x,y\n{i},{2 * i}\n".encode())
    client.datastores.create_or_update(
        {"name": "blobs", "type": "azure_blob", "account_name": AZURITE_ACCOUNT, "container_name": container,
         "endpoint": azurite.blob_endpoint, "protocol": "http", "credentials": {"account_key": AZURITE_KEY}}
    )  # fmt: skip
    client.computes.create_or_update(
        {"name": "elsewhere", "type": "ssh", "hosts": [f"{h}:{sshd.port}" for h in HOSTS], "ssh_user": stranger.name,
         "ssh_key": str(sshd.key), "known_hosts": str(sshd.known_hosts), "python": stranger.python}
    )  # fmt: skip
    code = deploy_shipped(client, model_dir, tmp_path, "elsewhere")
    # The premise: that user can read nothing of the workspace (its store, its secrets, the job's folders).
    workspace = client.workspace.root
    workspace.chmod(0o700)
    assert (workspace.stat().st_uid, workspace.stat().st_mode & 0o777) == (0, 0o700)
    for path in (workspace, workspace / "batchnb.db", tmp_path, code / "score.py", model_dir):
        assert _as(stranger.name, "test", "-r", str(path)).returncode != 0, path

    job = client.batch_endpoints.invoke(
        "ep-test", input="azureml://datastores/blobs/paths/in", output_path="azureml://datastores/blobs/paths/out"
    ).wait(timeout=300)
    assert job["status"] == "Completed", job["error"]
    rows = [line.split() for line in blobs.cat_file(f"{container}/out/predictions.csv").decode().splitlines()]
    # One row per input, in input order, each scaled by the shipped model's weight, by that user.
    assert [(r[0], r[1], r[2]) for r in rows] == [(f"f{i:03d}.csv", str(3 * i), str(stranger.uid)) for i in range(10)]
    # Both hosts scored (a worker of an SSH compute is named <host>:<port>-<i>).
    assert {r[3].split(":")[0] for r in rows} == set(HOSTS)
    log = (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert "do not see this machine's job folder" in log
