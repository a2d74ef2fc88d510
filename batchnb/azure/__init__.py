"""azure-ai-ml notebooks on a local workspace: ``from batchnb.azure import MLClient``.

An Azure ML notebook keeps every other line: entities (``BatchEndpoint``, ``ModelBatchDeployment``,
``Model``, ``AmlCompute``…), ``Input``/``Output``, ``AssetTypes``, ``load_component`` and ``dsl``
still come from ``azure.ai.ml`` (the optional extra ``batchnb[azure]`` installs it). Only the client
is batchnb's: the same operation groups and return types, working on the batchnb workspace instead
of a cloud one. Importing this package does not import azure-ai-ml; creating a client does.
"""

from __future__ import annotations

from .client import MLClient

__all__ = ["MLClient"]
