"""Versioned, immutable assets: models, data assets, environments and components (the last two
have modules of their own: :mod:`batchnb.registry.environments`, :mod:`batchnb.pipelines.components`).

Every asset version is a row in ``assets``; once written it never changes. ``name@latest`` is the
most recently created version. Models are copied into the workspace, so editing the source folder
later never changes a deployment.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import entities
from ..confine import check_tree
from ..errors import ConflictError, NotFoundError, ValidationError
from ..schemas import DataSpec, ModelSpec, check_name, validate_spec
from ..specfile import AssetRef, is_url, parse_asset_ref, parse_datastore_uri, resolve_local
from ..storage import check_copyable, local_kind
from ..store import Store
from ..workspace import DEFAULT_DATASTORE, Workspace
from .mlflow_models import download_mlflow_model, is_mlflow_uri, prepare_mlflow_copy

_ENTITY: dict[str, type[entities.Entity]] = {
    "model": entities.Model,
    "data": entities.Data,
    "environment": entities.Environment,
    "component": entities.Component,
}


def _next_version(tx: sqlite3.Connection, kind: str, name: str) -> str:
    rows = tx.execute("SELECT version FROM assets WHERE kind = ? AND name = ?", (kind, name)).fetchall()
    numeric = [int(r["version"]) for r in rows if r["version"].isdigit()]
    return str(max(numeric, default=0) + 1)


class AssetOperations:
    """Create, get and list the versions of one kind of asset."""

    kind = "asset"

    def __init__(self, workspace: Workspace, store: Store) -> None:
        self._ws = workspace
        self._store = store

    # -- shared machinery ----------------------------------------------------------------------

    def _insert(self, spec: dict[str, Any], prepare: Any = None) -> entities.Entity:
        """Insert a new version inside one transaction. ``prepare(tx, version)`` may move files into
        place; it runs inside the transaction so a conflict leaves nothing behind."""
        name = spec["name"]
        with self._store.write() as tx:
            version = spec.get("version")
            if version is None:
                version = _next_version(tx, self.kind, name)
            else:
                version = str(version)
                self._refuse_taken(tx, name, version)
            spec = {**spec, "version": version}
            seq = tx.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM assets WHERE kind = ? AND name = ?", (self.kind, name)
            ).fetchone()[0]
            if prepare is not None:
                spec = prepare(spec, version)
            spec["created_at"] = time.time()
            tx.execute(
                "INSERT INTO assets (kind, name, version, seq, spec, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (self.kind, name, version, seq, json.dumps(spec), spec["created_at"]),
            )
        return self._entity(spec)

    def _refuse_taken(self, db: sqlite3.Connection, name: str, version: str) -> None:
        """Refuse a version that is not a valid name or that ``name`` already has."""
        check_name("version", version)
        exists = db.execute(
            "SELECT 1 FROM assets WHERE kind = ? AND name = ? AND version = ?", (self.kind, name, version)
        ).fetchone()
        if exists:
            raise ConflictError(
                f"{self.kind} {name} version {version} already exists; asset versions are immutable, "
                "so register a new version instead"
            )

    def _entity(self, spec: dict[str, Any]) -> entities.Entity:
        return _ENTITY[self.kind]({**spec, "id": f"azureml:{spec['name']}:{spec['version']}"})

    def get(self, name: str, version: str | None = None, label: str | None = None) -> entities.Entity:
        """Return one version; with neither ``version`` nor ``label``, the latest."""
        if version is not None and label is not None:  # the label was silently ignored; az refuses both
            raise ValidationError(f"{self.kind} {name}: give a version or a label, not both")
        with self._store.read() as db:
            if version is not None:
                row = db.execute(
                    "SELECT spec FROM assets WHERE kind = ? AND name = ? AND version = ?",
                    (self.kind, name, str(version)),
                ).fetchone()
            else:
                if label not in (None, "latest"):
                    raise ValidationError(f"{self.kind} label {label!r} is not known; only @latest is supported")
                row = db.execute(
                    "SELECT spec FROM assets WHERE kind = ? AND name = ? ORDER BY seq DESC LIMIT 1",
                    (self.kind, name),
                ).fetchone()
        if row is None:
            what = f"{self.kind} {name}" + (f" version {version}" if version is not None else "")
            raise NotFoundError(f"{what} is not registered in this workspace")
        return self._entity(json.loads(row["spec"]))

    def resolve(self, ref: str | AssetRef) -> entities.Entity:
        """Resolve ``azureml:name:version``, ``name@latest`` and the other reference forms."""
        parsed = parse_asset_ref(ref) if isinstance(ref, str) else ref
        return self.get(parsed.name, version=parsed.version, label=parsed.label)

    def list(self, name: str | None = None) -> list[entities.Entity]:
        """All versions of ``name`` (newest first), or the latest version of every name."""
        with self._store.read() as db:
            if name is not None:
                rows = db.execute(
                    "SELECT spec FROM assets WHERE kind = ? AND name = ? ORDER BY seq DESC", (self.kind, name)
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT spec FROM assets a WHERE kind = ? AND seq = "
                    "(SELECT MAX(seq) FROM assets b WHERE b.kind = a.kind AND b.name = a.name) ORDER BY name",
                    (self.kind,),
                ).fetchall()
        return [self._entity(json.loads(r["spec"])) for r in rows]


class ModelOperations(AssetOperations):
    """Models: a file or folder copied into ``artifacts/models/<name>/<version>/<basename>``."""

    kind = "model"

    def check(self, spec: ModelSpec | dict[str, Any], base_dir: Path | None = None) -> tuple[ModelSpec, Path | None]:
        """The checks :meth:`create_or_update` makes before it copies anything: the model (an MLflow
        URI made an ``mlflow_model``) and its local file or folder (None for an MLflow URI).

        Raises:
            ValidationError: the path is a URL other than an MLflow URI, does not exist, cannot be
                copied, or is not the MLflow model its type says.
        """
        model = spec if isinstance(spec, ModelSpec) else validate_spec(ModelSpec, spec, "model")
        uri = is_mlflow_uri(model.path)
        if uri:
            if "type" in model.model_fields_set and model.type != "mlflow_model":
                raise ValidationError(
                    f"model path {model.path!r} is an MLflow URI, which registers an mlflow_model; "
                    f"type {model.type} does not fit it",
                    field="type",
                )
            model = model.model_copy(update={"type": "mlflow_model"})
        elif is_url(model.path):
            raise ValidationError(
                f"model path {model.path!r}: only local files and folders and MLflow runs:/ and models:/ "
                "URIs can be registered",
                field="path",
            )
        source: Path | None = None
        if not uri:
            source = resolve_local(model.path, base_dir, "path", what="model path")
            if not source.exists():
                raise ValidationError(f"model path {model.path!r} does not exist (resolved to {source})", field="path")
            # The model is copied: a loop inside it would copy without end, a device forever.
            if local_kind(source, model.path, "model path") == "uri_folder":
                check_copyable(source, model.path, "model path")
            if model.type == "mlflow_model" and not (source.is_dir() and (source / "MLmodel").is_file()):
                raise ValidationError(
                    f"model path {model.path!r} is not an MLflow model: an mlflow_model must be a folder "
                    f"with an MLmodel file, and {source} has none",
                    field="path",
                )
            if source.is_dir():
                check_tree(source, "path")  # copied with its symlinks followed
        return model, source

    def create_or_update(
        self, spec: ModelSpec | dict[str, Any], base_dir: Path | None = None, *, trust_types: bool = False
    ) -> entities.Entity:
        """Register a new model version from a local file or folder, or an MLflow URI.

        Args:
            spec: The model YAML as a mapping or a :class:`ModelSpec`. ``path`` is a local file or
                folder, or ``runs:/<run>/<path>``, ``models:/<name>/<version>`` or
                ``models:/<name>@<alias>``, resolved against the configured MLflow tracking URI
                (``MLFLOW_TRACKING_URI`` or ``mlflow.set_tracking_uri``); a URI implies
                ``type: mlflow_model``.
            base_dir: Where a relative ``path`` resolves (the YAML file's folder).
            trust_types: Trust the types a skops-serialized model needs (``--trust-types``); see
                :mod:`batchnb.registry.mlflow_models`.

        Either way the model is copied into the workspace (an MLflow URI is pinned: the version keeps
        working if the run or registry entry goes away). An ``mlflow_model`` is checked (pyfunc
        flavor, skops trust) on that copy before the version is recorded: a refusal records nothing.
        """
        model, source = self.check(spec, base_dir)
        # Copy (or download) outside the transaction (it may be large); move into place inside it.
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self._ws.models_dir))
        try:
            if source is None:
                target = download_mlflow_model(model.path, staging)
            else:
                target = staging / source.name
                if source.is_dir():
                    shutil.copytree(source, target, symlinks=False)
                else:
                    shutil.copy2(source, target)
            extra: dict[str, Any] = {"source_path": model.path if source is None else str(source)}
            if model.type == "mlflow_model":
                extra["mlflow"] = prepare_mlflow_copy(target, trust_types, model.path)

            def place(record: dict[str, Any], version: str) -> dict[str, Any]:
                final = self._ws.models_dir / model.name / version
                final.parent.mkdir(parents=True, exist_ok=True)
                if final.exists():  # left by a crash between rename and commit: the row never landed
                    shutil.rmtree(final)
                staging.rename(final)
                return {**record, "path": str(final / target.name), "model_dir": str(final), **extra}

            return self._insert(model.model_dump(mode="json", exclude_none=True), prepare=place)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


class DataOperations(AssetOperations):
    """Data assets: pointers to a local path, a datastore path or an fsspec URL. Nothing is copied."""

    kind = "data"

    def create_or_update(self, spec: DataSpec | dict[str, Any], base_dir: Path | None = None) -> entities.Entity:
        """Register a new data asset version. Local paths must exist and match the type."""
        data = spec if isinstance(spec, DataSpec) else validate_spec(DataSpec, spec, "data")
        path = data.path
        datastore = parse_datastore_uri(path)
        if datastore is not None and datastore[0] != DEFAULT_DATASTORE:
            with self._store.read() as db:
                if db.execute("SELECT 1 FROM datastores WHERE name = ?", (datastore[0],)).fetchone() is None:
                    raise NotFoundError(
                        f"data path {path!r}: datastore {datastore[0]} does not exist in this workspace"
                    )
        if datastore is None and not is_url(path):
            local = resolve_local(path.removeprefix("file://"), base_dir, "path", what="data path")
            if not local.exists():
                raise ValidationError(f"data path {path!r} does not exist (resolved to {local})", field="path")
            kind = local_kind(local, path, "data path")
            if data.type == "uri_folder" and kind != "uri_folder":
                raise ValidationError(f"data path {path!r} is a file, but type is uri_folder", field="type")
            if data.type == "uri_file" and kind != "uri_file":
                raise ValidationError(f"data path {path!r} is a folder, but type is uri_file", field="type")
            path = str(local)
        return self._insert({**data.model_dump(mode="json", exclude_none=True), "path": path})
