"""``ml_client.workspaces``: the one local workspace, as azure-ai-ml's ``Workspace``.

Azure notebooks read a workspace for one thing that matters locally: its MLflow tracking URI
(``mlflow.set_tracking_uri(ml_client.workspaces.get(name).mlflow_tracking_uri)``), before they log
runs and register models from them. Here that is the tracking URI the user configured
(``MLFLOW_TRACKING_URI`` or ``mlflow.set_tracking_uri``), else a store in the workspace folder, so
runs, the models registered from them and the jobs that score them stay together.
"""

from __future__ import annotations

import builtins
import os
from typing import Any

from ..engine.tracking import capture_tracking_uri
from ..engine.tracking_store import allow_file_store, workspace_uri


class WorkspaceOperations:
    """``ml_client.workspaces``: ``get`` and ``list`` over the workspace the client opened."""

    def __init__(self, client: Any, name: str | None) -> None:
        self._client = client
        self._name = name

    def tracking_uri(self) -> str:
        """The configured MLflow tracking URI, else the workspace's own store, where jobs whose
        scripts log with mlflow log (:mod:`batchnb.engine.tracking_store`)."""
        uri = capture_tracking_uri() or workspace_uri(self._client.workspace.root)
        # MLflow 3 opens a file store only when told to; the notebook asked for this one.
        os.environ.update(allow_file_store(uri))
        return uri

    def get(self, name: str | None = None, **kwargs: Any) -> Any:
        """The workspace, by any name (an Azure name stands for the local workspace, as in the client).

        Returns:
            azure-ai-ml's ``Workspace``, with ``mlflow_tracking_uri`` and the workspace folder as its
            ``description``.
        """
        from azure.ai.ml.entities import Workspace

        root = self._client.workspace.root
        workspace = Workspace(name=name or self._name or root.name, description=f"batchnb workspace {root}")
        # Azure fills it in from the service; azure-ai-ml's entity has no setter for it.
        workspace._mlflow_tracking_uri = self.tracking_uri()
        return workspace

    def list(self, **kwargs: Any) -> builtins.list[Any]:
        """The one workspace."""
        return [self.get()]


__all__ = ["WorkspaceOperations"]
