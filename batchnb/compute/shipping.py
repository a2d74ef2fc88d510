"""Folders shipped to Dask workers that do not share a filesystem with the agent.

A Dask cluster's workers may run on machines that cannot see the agent's files (a Slurm or
Kubernetes cluster, a hosted Dask service). What a job needs there, its code snapshot and its
model, is shipped once per content: the folder is packed into an archive named by the SHA-256 of
its content (:func:`pack`), and the archive is registered on the cluster as a worker plugin
(:class:`FolderPlugin`, named ``batchnb-folder-<digest>``). The scheduler hands every plugin to
every worker, the ones that join later included, and each worker unpacks it once into its cache
(:func:`worker_cache`), where every later job with the same content finds it. A worker whose
setup failed unpacks it on first use from the plugin it holds (:func:`unpacked`).

Whether the workers see the agent's files is asked, never assumed (:func:`sees_folder`): a file
with a random token is written into the job's folder, and each worker is asked to read it back.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tarfile
import threading
import uuid
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

PLUGIN_PREFIX = "batchnb-folder-"
# Archives packed by this agent, by folder: a model or a code snapshot is packed once per content
# (its files' names, sizes and modification times tell when it changed).
_packed: dict[str, tuple[tuple[Any, ...], str, bytes]] = {}
_packed_lock = threading.Lock()


def worker_cache() -> Path:
    """Where a worker keeps what was shipped to it: ``BATCHNB_WORKER_CACHE``, else the user's
    cache folder (``~/.cache/batchnb/dask`` on Linux)."""
    chosen = os.environ.get("BATCHNB_WORKER_CACHE")
    if chosen:
        return Path(chosen)
    import platformdirs

    return Path(platformdirs.user_cache_dir("batchnb")) / "dask"


def _signature(folder: Path) -> tuple[Any, ...]:
    entries = []
    for path in sorted(folder.rglob("*")):
        st = path.stat()
        entries.append((str(path.relative_to(folder)), st.st_size, st.st_mtime_ns, path.is_dir()))
    return tuple(entries)


def pack(folder: str) -> tuple[str, bytes]:
    """``folder`` as an uncompressed tar archive and the SHA-256 of that archive (its content:
    entries are sorted, owners and times left out, so equal folders give equal digests)."""
    root = Path(folder)
    signature = _signature(root)
    with _packed_lock:
        known = _packed.get(folder)
    if known is not None and known[0] == signature:
        return known[1], known[2]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue  # a snapshot holds files and folders; nothing else is shipped
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_file():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    with _packed_lock:
        _packed[folder] = (signature, digest, data)
    return digest, data


def unpack(digest: str, data: bytes) -> Path:
    """The folder of archive ``digest`` in this worker's cache, unpacked from ``data`` unless it is
    there already. Unpacked under a temporary name and renamed, so two workers of one host never
    see half a folder."""
    final = worker_cache() / digest
    if final.is_dir():
        return final
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(f"the shipped archive {digest[:12]} arrived damaged")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{digest}.{uuid.uuid4().hex}.tmp")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not another worker of this host that was first
                raise
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return final


class FolderPlugin(WorkerPlugin):
    """A Dask worker plugin that unpacks one shipped folder into the worker's cache at setup."""

    # Registered again under the same name (another job, another agent): the scheduler keeps it.
    idempotent = True

    def __init__(self, digest: str, data: bytes) -> None:
        self.digest = digest
        self.data = data

    def setup(self, worker: Any) -> None:
        """Unpack the folder (nothing to do if this host's cache has it)."""
        unpack(self.digest, self.data)

    def teardown(self, worker: Any) -> None:
        """Nothing: the unpacked folder stays in the cache for later jobs."""


def plugin_name(digest: str) -> str:
    """The name a shipped folder is registered under on the cluster."""
    return PLUGIN_PREFIX + digest


def ship(client: Any, folder: str) -> tuple[str, bool]:
    """Make ``folder`` reach every worker of ``client``'s cluster; return its digest and whether it
    was sent now. A folder the scheduler already holds (an earlier job's, or another agent's) is
    not sent again."""
    digest, data = pack(folder)
    name = plugin_name(digest)

    def plugin_names(dask_scheduler: Any = None) -> list[str]:
        # A closure, so that it is sent by value: the scheduler need not have batchnb.
        return list(getattr(dask_scheduler, "worker_plugins", {}))

    if name in client.run_on_scheduler(plugin_names):
        return digest, False
    client.register_plugin(FolderPlugin(digest, data), name=name)
    return digest, True


def unpacked(digest: str) -> Path:
    """On a worker: the folder shipped as ``digest``. Unpacked from the plugin the worker holds
    if its setup did not (it failed, or the cache was cleared since).

    Raises:
        FileNotFoundError: This worker holds no such folder.
    """
    final = worker_cache() / digest
    if final.is_dir():
        return final
    from distributed import get_worker

    plugin: Any = get_worker().plugins.get(plugin_name(digest))
    if plugin is None:
        raise FileNotFoundError(f"the shipped folder {digest[:12]} never reached this worker")
    return unpack(digest, plugin.data)


def sees_folder(client: Any, folder: str) -> dict[str, bool]:
    """Whether each worker of ``client``'s cluster sees ``folder`` as this machine does: a token
    written here is read back there."""
    token = uuid.uuid4().hex
    probe = Path(folder) / f".batchnb-probe-{token}"
    probe.write_text(token)

    def reads_token(path: str) -> bool:
        # A closure, so that it is sent by value: a worker with another batchnb must still answer.
        try:
            with open(path, encoding="utf-8") as fh:
                return bool(fh.read() == token)
        except OSError:
            return False

    try:
        return dict(client.run(reads_token, str(probe)))
    finally:
        probe.unlink(missing_ok=True)
