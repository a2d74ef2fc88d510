"""Where a job's mini-batches run.

``local`` (and ``amlcompute``, accepted so Azure scripts run) is this machine: its agent's worker
slots (:mod:`batchnb.compute.workers`), forked from one zygote (:mod:`batchnb.compute.zygote`).
``ssh`` is a Dask cluster over SSH hosts (:mod:`batchnb.compute.ssh`), reached through a
``concurrent.futures`` executor. The engine never depends on which it got: it submits, waits and,
after a lost worker, submits again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import ComputeTarget

if TYPE_CHECKING:
    from ..store import Store


def get_target(compute: dict[str, Any], store: Store, workspace_root: Path, job: str) -> ComputeTarget:
    """Return the executor source of a cluster compute (``ssh``) for one job."""
    kind = compute.get("type", "local")
    if kind == "ssh":
        from .ssh import SSHClusterTarget

        return SSHClusterTarget(compute, store, workspace_root, job)
    from ..errors import ValidationError

    raise ValidationError(f"compute {compute.get('name')}: type {kind!r} has no cluster to reach", field="compute")


__all__ = ["ComputeTarget", "get_target"]
