"""Between azure-ai-ml's entities and batchnb's records.

azure-ai-ml's entities already know how to write themselves as Azure's YAML (``_to_dict()``), and
batchnb's core reads Azure's YAML: an entity goes in as that mapping. A batchnb record comes back
as the same entity class, built by the class's own YAML loader (``_load``), so it carries Azure's
validation and can be changed and passed back.

Two things Azure does server-side are done here: an entity that names a registered asset version
(a ``Model`` returned by ``models.get``) is a reference to it, not a new asset to register; and
records get the ``id`` Azure gives them (``azureml:<name>:<version>`` here), which ``Input(path=…)``
accepts.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from typing import Any

from ..specfile import is_url

# Fields the core adds to its records that azure-ai-ml's YAML schemas do not know.
_DERIVED = {
    "model": ("model_dir", "source_path", "created_at", "id", "trusted_types", "flavors", "mlflow_uri"),
    "data": ("created_at", "id"),
    "environment": ("created_at", "id"),
    "component": ("created_at", "id", "code_dir", "resolved", "jobs_resolved"),
    "compute": ("hosts", "workers_per_host", "ssh_port", "is_default", "ssh_user", "ssh_key", "known_hosts"),
    "batch-endpoint": ("deployments", "scoring_uri", "provisioning_state", "created_at", "updated_at"),
    "batch-deployment": ("created_at", "updated_at", "revision", "code_dir", "model_dir", "builtin_driver"),
}


def plain(value: Any) -> Any:
    """``value`` with every mapping a plain dict (``_to_dict`` returns OrderedDicts, tuples)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def to_spec(entity: Any) -> dict[str, Any]:
    """An azure-ai-ml entity as the Azure YAML mapping batchnb's core reads."""
    if isinstance(entity, Mapping):
        return plain(entity)
    return plain(entity._to_dict())


def reference(asset: Any, registered: Any) -> Any:
    """An inline asset mapping that names a registered version (``{name, version, …}``) becomes
    ``azureml:name:version``, as Azure treats an entity returned by ``get``; anything else as it is.

    ``registered(name, version)`` says whether that version exists.
    """
    named = isinstance(asset, Mapping) and asset.get("name") and asset.get("version")
    if named and registered(str(asset["name"]), str(asset["version"])):
        return f"azureml:{asset['name']}:{asset['version']}"
    return asset


def _local_path(port: Any) -> str | None:
    """The path of an ``Input`` that names a local file or folder, as the notebook wrote it."""
    from azure.ai.ml import Input

    # A step's port wraps its value (``_data``): an Input, a literal, or another port it is bound to.
    data = getattr(port, "_data", port)
    path = data.path if isinstance(data, Input) else None
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, str) and not path.startswith(("azureml:", "${{")) and not is_url(path):
        return path
    return None


def _restore_inputs(ports: Any, spec: Any) -> None:
    """Put back what ``_to_dict`` changed in input values: local paths, and booleans (written as 0/1)."""
    if not isinstance(spec, dict):
        return
    for name, port in (ports or {}).items():
        path = _local_path(port)
        if path is not None and isinstance(spec.get(name), dict):
            spec[name]["path"] = path
        elif isinstance(getattr(port, "_data", None), bool) and name in spec:
            spec[name] = port._data


def pipeline_spec(entity: Any, registered: Callable[[str, str], bool]) -> dict[str, Any]:
    """A ``@dsl.pipeline`` job, or its ``.component``, as the YAML mapping the core reads.

    What azure-ai-ml does before it serializes for Azure is done here: ``_to_dict`` writes a local
    input path as ``azureml:<path>`` (on Azure it is uploaded first) and a boolean literal as 0 or
    1, so the values the notebook gave are put back; and a step whose component is a registered
    version (``components.get``) names that version instead of inlining it, as Azure does.
    """
    spec = to_spec(entity)
    _restore_inputs(getattr(entity, "inputs", None), spec.get("inputs"))
    steps = spec.get("jobs") or {}
    for step_name, step in (getattr(entity, "jobs", None) or {}).items():
        node = steps.get(step_name)
        if isinstance(node, dict):
            _restore_inputs(getattr(step, "inputs", None), node.get("inputs"))
            if "component" in node:
                node["component"] = reference(node["component"], registered)
    return spec


def record_data(kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A core record reduced to what azure-ai-ml's YAML loader of that kind accepts."""
    skip = set(_DERIVED.get(kind, ()))
    return {k: v for k, v in plain(record).items() if k not in skip and v is not None}


def when(stamp: float | None) -> dt.datetime | None:
    """An epoch time as the timezone-aware datetime azure-ai-ml's entities carry."""
    return None if stamp is None else dt.datetime.fromtimestamp(stamp, tz=dt.timezone.utc)


def _drop_unknown(data: dict[str, Any], messages: Any) -> bool:
    """Remove the fields azure-ai-ml's schema reported as unknown; True if any was removed."""
    removed = False
    if not isinstance(messages, Mapping):
        return False
    for key, message in messages.items():
        if message == ["Unknown field."] and key in data:
            del data[key]
            removed = True
        elif isinstance(message, Mapping) and isinstance(data.get(key), dict):
            removed = _drop_unknown(data[key], message) or removed
    return removed


def load(cls: Any, kind: str, record: Mapping[str, Any]) -> Any:
    """Build azure-ai-ml's ``cls`` from a batchnb record, with Azure's ``id`` and creation times.

    Fields batchnb adds beyond Azure's schema (``mini_batch_mode``, revisions…) stay on the batchnb
    record: azure-ai-ml's schema names them, and they are left out of its entity.
    """
    data = record_data(kind, record)
    while True:
        try:
            entity = cls._load(data=data)
            break
        except Exception as exc:
            if not _drop_unknown(data, getattr(exc.__cause__, "messages", None)):
                raise
    if record.get("id"):
        entity._id = record["id"]
    created = when(record.get("created_at"))
    if created is not None:
        from azure.ai.ml.entities import SystemData

        modified = when(record.get("updated_at")) or created
        entity._creation_context = SystemData(created_at=created, last_modified_at=modified)
    return entity


__all__ = ["load", "pipeline_spec", "plain", "record_data", "reference", "to_spec", "when"]
