"""A real sshd for the SSH-compute tests, listening on two loopback addresses (127.0.0.2 and
127.0.0.3) as two hosts, with its own host key, a client key, and a known_hosts that trusts it.

Keys are authorized from a file of the fixture's (for root) and from ``~/.ssh/authorized_keys``
(for a user a test creates, who cannot read the fixture's folder)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_helpers import wait_until

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
HOSTS = ("127.0.0.2", "127.0.0.3")


def no_sshd() -> bool:
    """Whether the SSH tests must be skipped: no sshd here, and not under CI (where it must run)."""
    return not Path(SSHD).exists() and not os.environ.get("CI")


class Sshd:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.key = folder / "client"
        self.known_hosts = folder / "known_hosts"
        self.python = _host_python(folder)


def _host_python(folder: Path) -> str:
    """The Python the hosts run: this one, with this process's PYTHONPATH (an SSH session does not
    pass it on), so that the hosts run the batchnb under test."""
    path = os.environ.get("PYTHONPATH")
    if not path:
        return sys.executable
    wrapper = folder / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={shlex.quote(path)} exec {shlex.quote(sys.executable)} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    folder = tmp_path_factory.mktemp("sshd")
    port = _free_port()
    for key in ("host", "client", "other"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
    shutil.copy(folder / "client.pub", folder / "authorized_keys")
    (folder / "authorized_keys").chmod(0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                *(f"ListenAddress {h}" for h in HOSTS),
                f"HostKey {folder / 'host'}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'} .ssh/authorized_keys",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "",
            ]
        )
    )
    host_key = (folder / "host.pub").read_text().strip()
    (folder / "known_hosts").write_text("".join(f"[{h}]:{port} {host_key}\n" for h in HOSTS))
    other_key = (folder / "other.pub").read_text().strip()
    # A known_hosts that has a different key for the second host: it must be refused.
    (folder / "wrong_known_hosts").write_text(f"[{HOSTS[0]}]:{port} {host_key}\n[{HOSTS[1]}]:{port} {other_key}\n")
    subprocess.run([SSHD, "-f", str(config), "-E", str(folder / "sshd.log")], check=True)
    wait_until(lambda: (folder / "sshd.pid").exists(), 10, "sshd to start")
    try:
        yield Sshd(folder, port)
    finally:
        pid = int((folder / "sshd.pid").read_text())
        os.kill(pid, signal.SIGTERM)
