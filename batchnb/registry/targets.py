"""Datastores (named data roots) and computes (where jobs run). Both are named, not versioned.

The default datastore ``workspaceblobstore`` (the workspace's ``datastores/workspaceblobstore``
folder) and the default compute ``local`` (a loky pool on this machine) always exist.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .. import entities
from ..errors import ConflictError, InvalidStateError, NotFoundError, ValidationError
from ..schemas import ComputeSpec, DatastoreSpec, validate_spec
from ..specfile import is_url, parse_datastore_uri, resolve_local
from ..store import Store
from ..workspace import DEFAULT_DATASTORE, Workspace

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


class ComputeOperations:
    """Compute targets. ``local`` and ``amlcompute`` both mean this machine's loky pool."""

    def __init__(self, workspace: Workspace, store: Store) -> None:
        self._ws = workspace
        self._store = store

    def _default(self) -> entities.Compute:
        return entities.Compute(
            name=DEFAULT_COMPUTE,
            type="local",
            max_workers=os.cpu_count() or 1,
            min_instances=0,
            max_instances=1,
            is_default=True,
        )

    def create_or_update(self, spec: ComputeSpec | dict[str, Any]) -> entities.Compute:
        """Create or replace a compute. ``amlcompute`` is accepted so Azure's scripts run unchanged."""
        compute = spec if isinstance(spec, ComputeSpec) else validate_spec(ComputeSpec, spec, "compute")
        if compute.name == DEFAULT_COMPUTE:
            raise ConflictError(f"'{DEFAULT_COMPUTE}' is the built-in compute and cannot be replaced")
        if compute.min_instances > compute.max_instances:
            raise ValidationError(
                f"compute {compute.name}: min_instances ({compute.min_instances}) is above "
                f"max_instances ({compute.max_instances})",
                field="min_instances",
            )
        record = {**compute.model_dump(mode="json", exclude_none=True), "is_default": False}
        now = time.time()
        with self._store.write() as tx:
            tx.execute(
                "INSERT INTO computes (name, spec, created_at, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                (compute.name, json.dumps(record), now, now),
            )
        return entities.Compute(record)

    def get(self, name: str) -> entities.Compute:
        """Return one compute."""
        if name == DEFAULT_COMPUTE:
            return self._default()
        with self._store.read() as db:
            row = db.execute("SELECT spec FROM computes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"compute {name} does not exist in this workspace")
        return entities.Compute(json.loads(row["spec"]))

    def list(self) -> list[entities.Compute]:
        """All computes, the built-in ``local`` first."""
        with self._store.read() as db:
            rows = db.execute("SELECT spec FROM computes ORDER BY name").fetchall()
        return [self._default(), *(entities.Compute(json.loads(r["spec"])) for r in rows)]

    def delete(self, name: str) -> None:
        """Delete a compute that no deployment uses."""
        if name == DEFAULT_COMPUTE:
            raise InvalidStateError(f"'{DEFAULT_COMPUTE}' is the built-in compute and cannot be deleted")
        with self._store.write() as tx:
            users = [
                f"{r['endpoint']}/{r['name']}"
                for r in tx.execute("SELECT endpoint, name, spec FROM deployments").fetchall()
                if json.loads(r["spec"]).get("resolved", {}).get("compute") == name
            ]
            if users:
                raise InvalidStateError(f"compute {name} is used by deployment(s) {', '.join(users)}")
            if tx.execute("DELETE FROM computes WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError(f"compute {name} does not exist in this workspace")

    def check(self, name: str) -> dict[str, Any]:
        """Reach every host of an ssh compute; report Python and package versions against ours."""
        compute = self.get(name)
        if compute.get("type") != "ssh":
            raise ValidationError(
                f"compute {name} is {compute.get('type')}: only ssh computes have hosts to check", field="type"
            )
        from ..compute.check import check_compute

        return check_compute(dict(compute))

    def stop(self, name: str) -> dict[str, Any]:
        """Stop a warm SSH cluster now (its keeper shuts it down within a second)."""
        self.get(name)
        with self._store.write() as tx:
            changed = tx.execute("UPDATE clusters SET state = 'stopping' WHERE compute = ?", (name,)).rowcount
        return {"name": name, "stopping": bool(changed)}

    def resolve(self, ref: str | None) -> entities.Compute:
        """Resolve a deployment's ``compute`` (``azureml:<name>`` or ``<name>``); None means ``local``."""
        if not ref:
            return self.get(DEFAULT_COMPUTE)
        return self.get(ref.removeprefix("azureml:"))
