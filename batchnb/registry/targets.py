"""Datastores: named data roots, not versioned.

The default datastore ``workspaceblobstore`` (the workspace's ``datastores/workspaceblobstore``
folder) always exists. Computes, which also act on running processes, are :mod:`batchnb.computes`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .. import entities
from ..cloud import datastores as cloud_stores
from ..cloud import secrets
from ..errors import ConflictError, NotFoundError, StorageError, ValidationError
from ..schemas import DatastoreSpec, validate_spec
from ..specfile import is_url, parse_datastore_uri, resolve_local
from ..store import Store
from ..workspace import DEFAULT_DATASTORE, Workspace

# The built-in compute (a loky pool on this machine), which always exists (see batchnb.computes).
DEFAULT_COMPUTE = "local"


class DatastoreOperations:
    """Named roots, addressed as ``azureml://datastores/<name>/paths/<path>``."""

    def __init__(self, workspace: Workspace, store: Store) -> None:
        self._ws = workspace
        self._store = store

    def _default(self) -> entities.Datastore:
        return entities.Datastore(
            name=DEFAULT_DATASTORE, type="local", path=str(self._ws.default_datastore_root), is_default=True
        )

    def create_or_update(
        self, spec: DatastoreSpec | dict[str, Any], base_dir: Path | None = None
    ) -> entities.Datastore:
        """Create (or replace) a datastore: a local folder or an fsspec URL (``path``), or a
        container or bucket in cloud storage (``type: azure_blob``, ``azure_data_lake_gen2``,
        ``s3`` or ``gcs``, see :mod:`batchnb.cloud.datastores`).

        A cloud datastore's ``credentials`` are kept in the workspace's private secrets file,
        never in the store: the store records only their kind.

        Raises:
            ValidationError: a field is missing or wrong for the type, naming it.
            ConflictError: the name is the default datastore's.
        """
        ds = spec if isinstance(spec, DatastoreSpec) else validate_spec(DatastoreSpec, spec, "datastore")
        if ds.name == DEFAULT_DATASTORE:
            raise ConflictError(f"{DEFAULT_DATASTORE} is the workspace's default datastore and cannot be replaced")
        secret: dict[str, str] = {}
        if ds.type in cloud_stores.CLOUD_TYPES:
            given = ds.model_dump(mode="json", exclude_none=True, exclude_unset=True)
            record, secret = cloud_stores.make_record({**given, "type": ds.type})
        else:
            if not ds.path:
                raise ValidationError(
                    f"datastore {ds.name}: 'path' is required for type {ds.type} (a local folder or an fsspec "
                    f"URL); cloud datastores are of type {', '.join(cloud_stores.CLOUD_TYPES)}",
                    field="path",
                )
            if ds.credentials is not None:
                raise ValidationError(
                    f"datastore {ds.name}: credentials are for cloud datastores "
                    f"({', '.join(cloud_stores.CLOUD_TYPES)}), not type {ds.type}",
                    field="credentials",
                )
            record = ds.model_dump(mode="json", exclude_none=True)
            if not is_url(ds.path):
                root = resolve_local(ds.path.removeprefix("file://"), base_dir)
                root.mkdir(parents=True, exist_ok=True)
                record["path"] = str(root)
        record["is_default"] = False
        # The secrets first: a datastore whose row is written is never without its credentials.
        secrets.store(self._ws.root, ds.name, secret or None)
        with self._store.write() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO datastores (name, spec, created_at) VALUES (?, ?, ?)",
                (ds.name, json.dumps(record), time.time()),
            )
        return self._shown(record)

    def _shown(self, record: dict[str, Any]) -> entities.Datastore:
        """A datastore as users see it: a cloud one's credentials masked, their kind said."""
        if record.get("type") not in cloud_stores.CLOUD_TYPES:
            return entities.Datastore(record)
        secret = secrets.read(self._ws.root, record["name"])
        return entities.Datastore(
            {
                **record,
                "credentials": cloud_stores.masked(record, secret),
                "credentials_used": cloud_stores.describe_credentials(record),
            }
        )

    def _record(self, name: str) -> dict[str, Any]:
        if name == DEFAULT_DATASTORE:
            return dict(self._default())
        with self._store.read() as db:
            row = db.execute("SELECT spec FROM datastores WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"datastore {name} does not exist in this workspace")
        return dict(json.loads(row["spec"]))

    def get(self, name: str) -> entities.Datastore:
        """Return one datastore (a cloud one's credentials masked)."""
        if name == DEFAULT_DATASTORE:
            return self._default()
        return self._shown(self._record(name))

    def check(self, name: str) -> entities.Entity:
        """List a datastore's root, so that a wrong key or a missing container is said at once.

        Returns:
            ``{name, path, entries, listed}``: how many entries the root holds, and the first few.

        Raises:
            StorageError: the storage service refused (its own message is kept) or cannot be reached.
            MissingDependencyError: the type's fsspec package is not installed, naming the extra.
            ValidationError: a local datastore's folder is missing or unreadable.
        """
        record = self._record(name)
        root = str(record["path"])
        if not is_url(root):
            try:
                names = sorted(os.listdir(root))
            except OSError as exc:
                raise ValidationError(
                    f"datastore {name}: cannot list {root}: {exc.strerror or exc}", field="path"
                ) from None
        else:
            from ..cloud import fs as remote
            from ..storage import check_url_scheme

            check_url_scheme(root, f"datastore {name}")
            try:
                fs, path = remote.filesystem(root, self._ws.root)
                fs.invalidate_cache()  # a check asks the service, never this process's earlier listing
                names = sorted(str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False))
            except Exception as exc:  # the storage SDK's own error types: translated here, its words kept
                raise StorageError(f"datastore {name}: cannot list {root}: {storage_message(exc)}") from None
        return entities.Entity({"name": name, "path": root, "entries": len(names), "listed": names[:20]})

    def get_default(self) -> entities.Datastore:
        """The default datastore, ``workspaceblobstore``."""
        return self._default()

    def list(self) -> list[entities.Datastore]:
        """All datastores, the default first."""
        with self._store.read() as db:
            rows = db.execute("SELECT spec FROM datastores ORDER BY name").fetchall()
        return [self._default(), *(self._shown(json.loads(r["spec"])) for r in rows)]

    def resolve_uri(self, uri: str) -> str:
        """Turn ``azureml://datastores/<name>/paths/<p>`` into a local path or an fsspec URL."""
        parsed = parse_datastore_uri(uri)
        if parsed is None:
            return uri
        name, rel = parsed
        record = self._record(name)
        root = record["path"]
        rel = rel.strip("/")
        if ".." in Path(rel).parts:
            raise ValidationError(f"{uri!r}: a datastore path may not contain '..'", field="path")
        if record.get("type") in cloud_stores.CLOUD_TYPES:
            return cloud_stores.location_url(record, rel)
        if is_url(root):
            return root.rstrip("/") + ("/" + rel if rel else "")
        return str(Path(root) / rel) if rel else root


def storage_message(exc: BaseException) -> str:
    """A storage SDK's error in one line: its own words (Azure's first line and error code, S3's
    code and message), never a traceback."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    # Azure's messages carry the request's headers and an XML body after the words that matter.
    for cut in (" RequestId:", " Content:", " <?xml"):
        head, sep, _ = text.partition(cut)
        if sep:
            code = getattr(getattr(exc, "error_code", None), "value", None)
            text = head + (f" (ErrorCode: {code})" if code and str(code) not in head else "")
            break
    return text[:500]
