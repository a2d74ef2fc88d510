"""Datastores: named data roots, not versioned.

The default datastore ``workspaceblobstore`` (the workspace's ``datastores/workspaceblobstore``
folder) always exists. Computes, which also act on running processes, are :mod:`batchnb.computes`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .. import entities
from ..errors import ConflictError, NotFoundError, ValidationError
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
        """Create a datastore over a local folder or an fsspec URL (``path``)."""
        ds = spec if isinstance(spec, DatastoreSpec) else validate_spec(DatastoreSpec, spec, "datastore")
        if ds.name == DEFAULT_DATASTORE:
            raise ConflictError(f"{DEFAULT_DATASTORE} is the workspace's default datastore and cannot be replaced")
        if not ds.path:
            raise ValidationError(
                f"datastore {ds.name}: 'path' is required here (a local folder or an fsspec URL); "
                f"Azure storage accounts ({ds.type}) cannot be reached from a local workspace",
                field="path",
            )
        record = ds.model_dump(mode="json", exclude_none=True)
        if not is_url(ds.path):
            root = resolve_local(ds.path.removeprefix("file://"), base_dir)
            root.mkdir(parents=True, exist_ok=True)
            record["path"] = str(root)
        record["is_default"] = False
        with self._store.write() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO datastores (name, spec, created_at) VALUES (?, ?, ?)",
                (ds.name, json.dumps(record), time.time()),
            )
        return entities.Datastore(record)

    def get(self, name: str) -> entities.Datastore:
        """Return one datastore."""
        if name == DEFAULT_DATASTORE:
            return self._default()
        with self._store.read() as db:
            row = db.execute("SELECT spec FROM datastores WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"datastore {name} does not exist in this workspace")
        return entities.Datastore(json.loads(row["spec"]))

    def get_default(self) -> entities.Datastore:
        """The default datastore, ``workspaceblobstore``."""
        return self._default()

    def list(self) -> list[entities.Datastore]:
        """All datastores, the default first."""
        with self._store.read() as db:
            rows = db.execute("SELECT spec FROM datastores ORDER BY name").fetchall()
        return [self._default(), *(entities.Datastore(json.loads(r["spec"])) for r in rows)]

    def resolve_uri(self, uri: str) -> str:
        """Turn ``azureml://datastores/<name>/paths/<p>`` into a local path or an fsspec URL."""
        parsed = parse_datastore_uri(uri)
        if parsed is None:
            return uri
        name, rel = parsed
        root = self.get(name)["path"]
        rel = rel.strip("/")
        if ".." in Path(rel).parts:
            raise ValidationError(f"{uri!r}: a datastore path may not contain '..'", field="path")
        if is_url(root):
            return root.rstrip("/") + ("/" + rel if rel else "")
        return str(Path(root) / rel) if rel else root
