"""``MLClient``: azure-ai-ml's client, opened on a local batchnb workspace."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError, ValidationError

EXTRA = "pip install 'batchnb[azure]'"


def _require_sdk() -> None:
    try:
        import azure.ai.ml  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"batchnb.azure builds on Microsoft's azure-ai-ml package, which is not installed: {EXTRA}"
        ) from exc


def _workspace_folder(workspace_name: str | None) -> Path | None:
    """``workspace_name`` as a workspace folder, if it names one (a ``.batchnb`` folder, or a folder
    holding one); None for an Azure workspace name, which leaves the choice to the workspace rule."""
    if not workspace_name:
        return None
    path = Path(workspace_name).expanduser()
    if (path / "batchnb.db").exists():
        return path
    if (path / ".batchnb").is_dir():
        return path / ".batchnb"
    return None


class MLClient:
    """azure-ai-ml's ``MLClient`` over batchnb: the one line an Azure notebook changes.

    The credential, subscription and resource group are accepted and ignored (nothing is
    contacted); the workspace is batchnb's, chosen by ``workspace_name`` when it names a workspace
    folder, else by batchnb's workspace rule (``$BATCHNB_WORKSPACE``, the nearest ``.batchnb/``
    folder, the per-user one). Entities, ``Input``/``Output``, constants, ``load_*`` and ``dsl``
    keep coming from ``azure.ai.ml``.
    """

    def __init__(
        self,
        credential: Any = None,
        subscription_id: str | None = None,
        resource_group_name: str | None = None,
        workspace_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        _require_sdk()
        from ..client import BatchClient
        from .operations import (
            BatchDeploymentOperations,
            BatchEndpointOperations,
            ComponentOperations,
            ComputeOperations,
            DataOperations,
            DatastoreOperations,
            EnvironmentOperations,
            JobOperations,
            ModelOperations,
        )
        from .workspaces import WorkspaceOperations

        self.subscription_id = subscription_id
        self.resource_group_name = resource_group_name
        self.workspace_name = workspace_name
        folder = _workspace_folder(workspace_name)
        self.batch_client = BatchClient(folder)
        core = self.batch_client
        self.models = ModelOperations(core, core.models)
        self.data = DataOperations(core, core.data)
        self.environments = EnvironmentOperations(core, core.environments)
        self.components = ComponentOperations(core, core.components)
        self.compute = ComputeOperations(core)
        self.datastores = DatastoreOperations(core)
        self.jobs = JobOperations(core)
        self.batch_endpoints = BatchEndpointOperations(core, self.jobs)
        self.batch_deployments = BatchDeploymentOperations(core)
        self.workspaces = WorkspaceOperations(core, workspace_name)

    @classmethod
    def from_config(
        cls,
        credential: Any = None,
        *,
        path: str | os.PathLike[str] | None = None,
        file_name: str | None = None,
        **kwargs: Any,
    ) -> MLClient:
        """As azure-ai-ml's: reads ``config.json`` (from ``path``, or the current folder and its
        parents) when there is one, for a ``workspace_name`` that names a workspace folder."""
        start = Path(path or ".").resolve()
        names = [file_name] if file_name else ["config.json", ".azureml/config.json"]
        for folder in [start, *start.parents]:
            for name in names:
                candidate = folder / str(name) if not Path(str(name)).is_absolute() else Path(str(name))
                if candidate.is_file():
                    try:
                        config = json.loads(candidate.read_text(encoding="utf-8"))
                    except (OSError, ValueError) as exc:
                        raise ValidationError(f"{candidate}: not a workspace config file ({exc})") from None
                    return cls(
                        credential,
                        config.get("subscription_id"),
                        config.get("resource_group"),
                        config.get("workspace_name"),
                    )
        return cls(credential)

    def begin_create_or_update(self, entity: Any, **kwargs: Any) -> Any:
        """Create or update any entity, as azure-ai-ml's top-level call does; returns a poller."""
        from .jobs import Poller

        kind = type(entity).__name__
        if kind in ("AmlCompute", "ComputeInstance") or "Compute" in kind:
            return self.compute.begin_create_or_update(entity)
        if kind == "BatchEndpoint":
            return self.batch_endpoints.begin_create_or_update(entity)
        if "Deployment" in kind:
            return self.batch_deployments.begin_create_or_update(entity)
        for name, ops in (("Model", self.models), ("Data", self.data), ("Environment", self.environments)):
            if kind == name:
                return Poller(ops.create_or_update(entity))
        if "Component" in kind:
            return Poller(self.components.create_or_update(entity))
        if kind.endswith("Job"):
            return Poller(self.jobs.create_or_update(entity))
        raise ValidationError(f"MLClient.begin_create_or_update: batchnb cannot create a {kind}")

    def create_or_update(self, entity: Any, **kwargs: Any) -> Any:
        """As :meth:`begin_create_or_update`, returning the entity."""
        return self.begin_create_or_update(entity).result()

    def __repr__(self) -> str:
        return f"MLClient(workspace={str(self.batch_client.workspace.root)!r})"


__all__ = ["MLClient"]
