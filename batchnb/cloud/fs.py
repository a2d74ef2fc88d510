"""From a storage URL to an fsspec filesystem that can read it, with the right credentials.

Every read or write of remote data (planning a job, a worker reading its files, the merge of the
output, ``datastore check``, ``job download``) opens its URL here, in whichever process it runs.
The URL forms:

* ``https://<account>.blob.core.windows.net/<container>/<path>`` (or ``.dfs.``), as Azure's
  examples invoke endpoints, and the path-style ``http://127.0.0.1:10000/<account>/<container>/<path>``
  of an emulator (Azurite) or a private endpoint, when that blob endpoint is the one of
  ``AZURE_STORAGE_CONNECTION_STRING`` or of a registered datastore;
* ``wasb[s]://<container>@<account>.blob.core.windows.net/<path>`` and
  ``abfs[s]://<filesystem>@<account>.dfs.core.windows.net/<path>``, and adlfs's ``az://`` and ``abfs://``;
* ``s3://<bucket>/<path>`` and ``gs://<bucket>/<path>``; any other protocol fsspec knows, as it is.

Credentials are never in the URL nor in the job's record. A URL inside a registered cloud
datastore (same account and container, or same bucket) is opened with that datastore's
credentials, read from the workspace's secrets file (:mod:`batchnb.cloud.secrets`) where the
job runs; any other is opened as the library finds credentials in the environment. The workspace
is the one given, else the one set by :func:`use_workspace` (by a BatchClient, a compute's agent
and its workers), else the one ``BATCHNB_WORKSPACE`` names. A worker that cannot read the workspace
(a shipped job's, on a host that shares no filesystem with the agent) is given the datastores that
hold its mini-batch's URLs instead, with their credentials (:func:`shipped_datastores`,
:func:`use_datastores`): they travel with the task, in memory, never written on that host.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import ValidationError
from . import datastores as stores
from . import secrets

_AZURE_HOST = re.compile(r"(?P<account>[a-z0-9]{3,24})\.(?P<service>blob|dfs)\.(?P<suffix>[^/:]+)(:\d+)?$")
_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
# Protocols whose files live inside one Python process: a job's supervisor and workers are others.
IN_PROCESS_PROTOCOLS = ("memory",)


@dataclass(frozen=True)
class Location:
    """Where a cloud URL points: the fsspec protocol, the path that protocol takes
    (``<container or bucket>/<path>``), the container or bucket, and the Azure account if named."""

    protocol: str
    path: str
    root: str
    account: str | None = None


_workspace: Path | None = None
# The datastores URLs are looked up in (records with their credentials): those a shipped task
# brought, or a job's snapshot of the workspace's (snapshot_datastores); None: the workspace's, read
# at each lookup.
_given: list[dict[str, Any]] | None = None


def use_workspace(root: Path | None) -> None:
    """Make ``root`` the workspace whose datastores this process's URLs are looked up in: a
    BatchClient's (the last opened, in a kernel), or the one an agent or a worker serves."""
    global _workspace
    _workspace = root


def use_datastores(datastores: list[dict[str, Any]] | None) -> None:
    """On a worker that cannot read the workspace: look URLs up in ``datastores`` (each a
    ``{"record": ..., "secret": ...}`` from :func:`shipped_datastores`); None: in the workspace again."""
    global _given
    _given = datastores


def snapshot_datastores(root: Path) -> None:
    """For the rest of a job in this process (a worker that can read the workspace): look URLs up in
    the workspace's cloud datastores as they are now, read once, instead of a store query and a read
    of the credentials file for each of a job's thousands of input files. Whatever cannot be read
    here is read, and reported, where a URL is opened, as without a snapshot."""
    use_datastores(None)
    try:
        records = _datastore_records(root)
        kept = secrets.read_all(root) if records else {}
    except Exception:
        return
    use_datastores([{"record": r, "secret": dict(kept.get(r["name"]) or {})} for r in records])


def shipped_datastores(urls: list[str], workspace: Path | None = None) -> list[dict[str, Any]]:
    """The registered datastores that hold ``urls``, each with its credentials, for a worker that
    cannot read the workspace. Never log or record what this returns: it may hold a key."""
    found: dict[str, dict[str, Any]] = {}
    for location in {loc for loc in (parse(url, workspace) for url in urls) if loc is not None}:
        record = _datastore_for(location, workspace)
        if record is not None and record["name"] not in found:
            found[record["name"]] = {"record": record, "secret": _secret(workspace, record)}
    return [found[name] for name in sorted(found)]


def _current_workspace(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    if _workspace is not None:
        return _workspace
    env = os.environ.get("BATCHNB_WORKSPACE")
    return Path(env).expanduser() if env else None


def _connection_string_endpoint(text: str | None) -> str | None:
    """The ``BlobEndpoint`` of an Azure connection string (None if it names none)."""
    for part in (text or "").split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "blobendpoint" and value.strip():
            return value.strip().rstrip("/")
    return None


def _datastore_records(workspace: Path | None) -> list[dict[str, Any]]:
    """The workspace's cloud datastores (their store records; no credentials in them)."""
    if _given is not None:
        return [d["record"] for d in _given]
    if workspace is None or not (workspace / "batchnb.db").is_file():
        return []
    from ..store import Store

    store = Store(workspace / "batchnb.db")
    try:
        with store.read() as db:
            rows = db.execute("SELECT spec FROM datastores").fetchall()
    finally:
        store.close()
    records = (json.loads(r["spec"]) for r in rows)
    return [r for r in records if r.get("type") in stores.CLOUD_TYPES]


def _split_path_style(url: str, endpoints: list[str]) -> tuple[str, str, str] | None:
    """``(account, container, path)`` of a path-style blob URL under one of ``endpoints``."""
    for endpoint in endpoints:
        if url.startswith(endpoint + "/"):
            container, _, path = url[len(endpoint) + 1 :].partition("/")
            if container:
                return endpoint.rsplit("/", 1)[-1], container, path
    return None


def parse(url: str, workspace: Path | None = None) -> Location | None:
    """Where a cloud storage URL points; None for a URL of any other kind (or not a URL).

    Args:
        url: The URL, in one of the forms of the module docstring.
        workspace: The workspace whose datastores may name the blob endpoint of a path-style URL.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    scheme = scheme.lower()
    netloc, _, path = rest.partition("/")
    if scheme in ("wasb", "wasbs", "abfs", "abfss") and "@" in netloc:
        container, _, host = netloc.partition("@")
        match = _AZURE_HOST.match(host.lower())
        protocol = "abfs" if scheme.startswith("abfs") else "az"
        return Location(protocol, f"{container}/{path}".rstrip("/"), container, match["account"] if match else None)
    if scheme in ("az", "abfs", "abfss", "adl"):
        return Location("abfs" if scheme.startswith("abfs") else "az", rest.rstrip("/"), netloc)
    if scheme in ("s3", "s3a"):
        return Location("s3", rest.rstrip("/"), netloc)
    if scheme in ("gs", "gcs"):
        return Location("gs", rest.rstrip("/"), netloc)
    if scheme not in ("http", "https"):
        return None
    match = _AZURE_HOST.match(netloc.lower())
    if match:
        container = path.partition("/")[0]
        return Location("az", path.rstrip("/"), container, match["account"]) if container else None
    endpoints = [e for e in (_connection_string_endpoint(os.environ.get(_CONNECTION_STRING_ENV)),) if e]
    for record in _datastore_records(_current_workspace(workspace)):
        if record["type"] in stores.AZURE_TYPES:
            endpoints.append(stores.blob_endpoint(record))
            endpoints.append(_connection_string_endpoint(_secret(workspace, record).get("connection_string")) or "")
    split = _split_path_style(url.rstrip("/"), [e for e in endpoints if e])
    if split is None:
        return None
    account, container, rel = split
    return Location("az", f"{container}/{rel}".rstrip("/"), container, account)


def _secret(workspace: Path | None, record: dict[str, Any]) -> dict[str, str]:
    if _given is not None:
        return next((dict(d["secret"]) for d in _given if d["record"]["name"] == record["name"]), {})
    root = _current_workspace(workspace)
    return secrets.read(root, record["name"]) if root is not None else {}


def _datastore_for(location: Location, workspace: Path | None) -> dict[str, Any] | None:
    """The registered datastore that holds ``location`` (same account and container, or bucket)."""
    for record in _datastore_records(_current_workspace(workspace)):
        ds_type = record["type"]
        if ds_type in stores.AZURE_TYPES:
            if location.protocol not in ("az", "abfs") or record[stores.AZURE_TYPES[ds_type]] != location.root:
                continue
            if location.account in (None, record["account_name"]):
                return record
        elif stores.PROTOCOLS[ds_type] == location.protocol and record["bucket"] == location.root:
            return record
    return None


def storage_options(url: str, workspace: Path | None = None) -> tuple[str, str, dict[str, Any]]:
    """The fsspec protocol, path and options (credentials included) that open ``url``.

    Never log or record what this returns: the options may hold a key.
    """
    location = parse(url, workspace)
    if location is None:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return protocol, path, dict(fs.storage_options)
    record = _datastore_for(location, workspace)
    if record is not None:
        options = stores.storage_options(record, _secret(workspace, record))
    elif location.account is not None:
        options = {"account_name": location.account}
    else:
        options = {}
    return location.protocol, location.path, options


def filesystem(url: str, workspace: Path | None = None) -> tuple[Any, str]:
    """An fsspec filesystem that can read and write ``url``, and the path within it.

    fsspec keeps one instance per protocol and options, so a worker opens one client per
    datastore however many files it reads.
    """
    import fsspec

    protocol, path, options = storage_options(url, workspace)
    if protocol == "gs" and options.get("endpoint_url"):
        # gcsfs's default filesystem first asks Google's Storage Control API (gRPC) what kind of
        # bucket it opens; an emulator or another endpoint of the JSON API does not speak it, and
        # every open would wait for that call's timeout. The JSON API's own filesystem serves them.
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(**options), path
    return fsspec.filesystem(protocol, **options), path


def protocol_of(url: str, workspace: Path | None = None) -> str:
    """The fsspec protocol that reads ``url`` (``az`` for an Azure blob URL, ``s3``, ...)."""
    location = parse(url, workspace)
    return location.protocol if location is not None else url.partition("://")[0].lower()


def check_not_in_process(url: str, what: str) -> None:
    """Refuse a URL whose files live inside this process, where a job's processes cannot see them.

    Raises:
        ValidationError: naming the field and the reason.
    """
    protocol = url.partition("://")[0].lower()
    if protocol in IN_PROCESS_PROTOCOLS:
        raise ValidationError(
            f"{what} {url!r}: {protocol}:// files live inside one Python process, and a job runs in "
            "other processes (its compute's agent and workers), which cannot see them; use a folder or a "
            "storage URL (s3://, gs://, an Azure blob URL or a datastore)",
            field=what,
        )


def child_url(root_url: str, root_path: str, found: str) -> str:
    """The URL of ``found`` (a path a listing of ``root_path`` returned), in ``root_url``'s form."""
    rel = found.strip("/")[len(root_path.strip("/")) :].strip("/")
    return root_url.rstrip("/") + ("/" + rel if rel else "")


def open_input(
    path: str, workspace: Path | None = None, block_size: int | None = None, read_ahead: bool = True
) -> IO[bytes]:
    """Open a local path or a storage URL for reading, in binary (the caller closes it).

    A remote file is read with range requests as it is sought and read: a Parquet footer and
    row groups, a CSV chunk, fetch only what they need. A reader that asks for exactly the bytes
    it needs, as Arrow does for a Parquet file's footer and column chunks, passes
    ``read_ahead=False``: fsspec's read-ahead would add a block to every read (50 MiB on s3fs),
    which is another mini-batch's row groups, fetched twice over a job.
    """
    from .. import specfile

    if not specfile.is_url(path):
        return open(path, "rb")
    fs, remote_path = filesystem(path, workspace)
    options: dict[str, Any] = {"block_size": block_size} if block_size else {}
    if not read_ahead:
        options["cache_type"] = "none"
    return fs.open(remote_path, "rb", **options)  # type: ignore[no-any-return]


def range_reader(path: str, workspace: Path | None = None) -> Callable[[int, int], bytes]:
    """A function that returns the bytes of ``path`` from ``start`` to ``end``: one range request
    each for a storage URL, a seek and a read for a local file."""
    from .. import specfile

    if not specfile.is_url(path):

        def read_local(start: int, end: int) -> bytes:
            with open(path, "rb") as fh:
                fh.seek(start)
                return fh.read(end - start)

        return read_local
    fs, remote_path = filesystem(path, workspace)

    def read_remote(start: int, end: int) -> bytes:
        return bytes(fs.cat_file(remote_path, start=start, end=end))

    return read_remote


def download(items: list[str], folder: Path) -> list[str]:
    """Local paths for ``items``: a local path as it is, a file behind a URL copied into ``folder``
    first (once: a copy already there is reused, as a retried mini-batch finds it).

    The files of one filesystem are fetched with one ``get`` call, which an asynchronous
    filesystem (adlfs, s3fs, gcsfs) runs concurrently: a mini-batch of small files waits about
    one round trip rather than one per file. Each copy is made under a temporary name and renamed
    into place, so a copy that exists is whole.
    """
    from .. import specfile

    paths: list[str] = []
    wanted: dict[int, tuple[Any, list[str], list[Path]]] = {}
    for item in items:
        if not specfile.is_url(item):
            paths.append(item)
            continue
        fs, remote = filesystem(item)
        local = folder / uuid.uuid5(uuid.NAMESPACE_URL, item).hex / Path(remote).name
        paths.append(str(local))
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            group = wanted.setdefault(id(fs), (fs, [], []))
            group[1].append(remote)
            group[2].append(local)
    for fs, remotes, locals_ in wanted.values():
        temporary = [local.with_name(f".{local.name}.{os.getpid()}.tmp") for local in locals_]
        try:
            fs.get(remotes, [str(t) for t in temporary])
            for tmp, local in zip(temporary, locals_, strict=True):
                os.replace(tmp, local)
        finally:
            for tmp in temporary:
                tmp.unlink(missing_ok=True)
    return paths
