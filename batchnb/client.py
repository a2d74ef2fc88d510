"""``BatchClient``: the one Python API that the CLI, magics, REST handlers and widgets call.

Its operation groups and method names follow azure-ai-ml's ``MLClient`` where one exists
(``batch_endpoints.invoke``, ``batch_deployments.list_jobs``, ``jobs.stream``, ``jobs.download``)::

    from batchnb import BatchClient
    client = BatchClient()                       # the workspace by the rule in batchnb.workspace
    client.batch_endpoints.create_or_update({"name": "heart"})
    job = client.batch_endpoints.invoke("heart", input="data/")
    job.wait()
"""

from __future__ import annotations

import os

from .computes import ComputeOperations
from .endpoints import BatchDeploymentOperations, BatchEndpointOperations
from .jobs import JobOperations
from .pipelines.components import ComponentOperations
from .registry import (
    DataOperations,
    DatastoreOperations,
    EnvironmentOperations,
    ModelOperations,
)
from .store import Store
from .workspace import Workspace


class BatchClient:
    """A handle on one workspace and every operation on it."""

    def __init__(self, workspace: str | os.PathLike[str] | None = None) -> None:
        """Open (and create if needed) the workspace chosen by the workspace rule."""
        self.workspace = Workspace.open(workspace)
        self.store = Store(self.workspace.db_path)
        from .cloud.fs import use_workspace

        use_workspace(self.workspace.root)  # URLs under its datastores are read with their credentials
        self.models = ModelOperations(self.workspace, self.store)
        self.data = DataOperations(self.workspace, self.store)
        self.environments = EnvironmentOperations(self.workspace, self.store)
        self.components = ComponentOperations(self.workspace, self.store, self)
        self.datastores = DatastoreOperations(self.workspace, self.store)
        self.computes = ComputeOperations(self.workspace, self.store)
        self.batch_endpoints = BatchEndpointOperations(self)
        self.batch_deployments = BatchDeploymentOperations(self)
        self.jobs = JobOperations(self)

    def __repr__(self) -> str:
        return f"BatchClient(workspace={str(self.workspace.root)!r})"
