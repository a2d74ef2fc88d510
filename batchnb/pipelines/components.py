"""Components (command and pipeline), registered as versioned assets of the workspace.

Registering one resolves it (:mod:`batchnb.pipelines.resolve`): a concept of pipelines kept here, so
that the registry below knows nothing of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import entities
from ..errors import ValidationError
from ..registry.assets import AssetOperations
from ..store import Store
from ..workspace import Workspace
from .resolve import Resolver


class ComponentOperations(AssetOperations):
    """Components (command and pipeline): stored as validated mappings; run by the pipeline runner."""

    kind = "component"

    def __init__(self, workspace: Workspace, store: Store, client: Any) -> None:
        super().__init__(workspace, store)
        self._client = client  # resolving a component reads models, components and the code store

    def create_or_update(self, spec: dict[str, Any] | Any, base_dir: Path | None = None) -> entities.Entity:
        """Register a new component version from Azure's command or pipeline component YAML, or from
        a function decorated with :func:`batchnb.component` or :func:`batchnb.pipeline`.

        The component is resolved before it is recorded: its code folder is snapshotted, the
        components its steps use (files or ``azureml:`` references) are inlined at the versions
        they have now, and every binding is checked, so a registered pipeline never changes.
        """
        source = "component"
        if hasattr(spec, "to_component_spec"):  # a decorated function
            spec, base_dir = spec.to_component_spec(), None
            source = f"component {spec.get('name')}"
        if not isinstance(spec, dict):
            raise ValidationError(f"a component is a YAML mapping or a decorated function, not {type(spec).__name__}")
        if not spec.get("name"):
            raise ValidationError("component: name is required to register a component", field="name")
        if spec.get("version") is not None:
            # Refused before its code folder is copied (which would stay); checked again as the
            # version is recorded.
            with self._store.read() as db:
                self._refuse_taken(db, str(spec["name"]), str(spec["version"]))
        resolver = Resolver(self._client)
        record = resolver.resolve(dict(spec), base_dir, source)
        resolver.place_code()
        return self._insert(record)
