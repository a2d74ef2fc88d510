"""Execution targets behind one small interface: something that hands out a
``concurrent.futures``-style executor of ``n`` worker processes.

``local`` (and ``amlcompute``, accepted so Azure scripts run) is a loky pool on this machine.
The engine never depends on which pool it got: it submits, waits and, after a crash, asks again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import ComputeTarget
from .local import LocalPool

if TYPE_CHECKING:
    from ..store import Store


def get_target(
    compute: dict[str, Any], store: Store | None = None, workspace_root: Path | None = None, job: str = ""
) -> ComputeTarget:
    """Return the execution target for a compute record (``local`` needs the workspace; ``ssh`` the
    store, workspace and job)."""
    kind = compute.get("type", "local")
    if kind in ("local", "amlcompute") and workspace_root is not None:
        return LocalPool(workspace_root)
    if kind == "ssh" and store is not None and workspace_root is not None:
        from .ssh import SSHClusterTarget

        return SSHClusterTarget(compute, store, workspace_root, job)
    from ..errors import ValidationError

    raise ValidationError(f"compute {compute.get('name')}: type {kind!r} cannot run jobs here", field="compute")


__all__ = ["ComputeTarget", "LocalPool", "get_target"]
