"""Real storage servers on loopback for the tests: Azurite (Microsoft's Azure Storage emulator, the npm
package ``azurite``), moto's S3 server and gcp-storage-emulator (Google Cloud Storage's JSON API).
Each starts once per session on a free port, and is stopped at the end.

``scripts/test`` installs Azurite into ``.test-tools/node``. A server that is missing skips its tests
on a developer's machine, and fails them under CI (``CI`` set), where everything must run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key (published in Azurite's documentation).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT_S = 60.0


def missing(what: str) -> None:
    """Skip (on a developer's machine) or fail (under CI) a test whose server is not installed."""
    message = f"{what} is not installed: bash scripts/test installs it"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must run every storage test)")
    pytest.skip(message)


def require_module(module: str, extra: str) -> None:
    """At import of a test module: skip it (or fail, under CI) if ``module`` is not installed."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed: pip install '{extra}'"
        if os.environ.get("CI"):
            raise RuntimeError(f"{message} (CI must run every storage test)")
        pytest.skip(message, allow_module_level=True)


def new_root(fs: Any, letter: str) -> str:
    """A new, empty container or bucket in ``fs``, its name (``letter`` and a random suffix)."""
    name = f"{letter}{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    return name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text() if log is not None else ""
            raise RuntimeError(f"the server exited with {proc.returncode} before listening: {text}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {START_TIMEOUT_S:g} s")


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob service."""

    port: int

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    def connection_string(self, key: str = AZURITE_KEY) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def filesystem(self):  # type: ignore[no-untyped-def]
        """An adlfs filesystem on this Azurite, for a test to put its data in place and read outputs."""
        import adlfs

        return adlfs.AzureBlobFileSystem(connection_string=self.connection_string(), skip_instance_cache=True)


def azurite_binary() -> str | None:
    local = REPO / ".test-tools" / "node" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else shutil.which("azurite-blob")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's blob service on a free loopback port, its data in a temporary folder."""
    binary = azurite_binary()
    if binary is None:
        missing("Azurite (npm package azurite)")
    assert binary is not None
    folder = tmp_path_factory.mktemp("azurite")
    port = free_port()
    log = folder / "azurite.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(folder / "data"),
             "--silent", "--skipApiVersionCheck", "--loose"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        _wait_for_port(port, proc, log)
        yield Azurite(port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server (any access key is accepted)."""

    endpoint_url: str

    def filesystem(self):  # type: ignore[no-untyped-def]
        import s3fs

        return s3fs.S3FileSystem(
            key="testing", secret="testing", endpoint_url=self.endpoint_url, skip_instance_cache=True
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server mode on a free loopback port, in a thread of this process."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        missing("moto[server]")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        _wait_for_port(port, None, None)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@dataclass(frozen=True)
class GcsServer:
    """A running gcp-storage-emulator (no credentials: it is read anonymously)."""

    endpoint_url: str

    def filesystem(self):  # type: ignore[no-untyped-def]
        # gcsfs's JSON-API filesystem, as batchnb opens a gcs datastore with an endpoint.
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(endpoint_url=self.endpoint_url, token="anon", skip_instance_cache=True)


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    """gcp-storage-emulator on a free loopback port, in a thread of this process, its data in memory."""
    try:
        from gcp_storage_emulator.server import create_server
    except ImportError:
        missing("gcp-storage-emulator")
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        _wait_for_port(port, None, None)
        yield GcsServer(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
