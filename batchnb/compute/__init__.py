"""Execution targets behind one small interface: something that hands out a
``concurrent.futures``-style executor of ``n`` worker processes.

``local`` (and ``amlcompute``, accepted so Azure scripts run) is a loky pool on this machine.
The engine never depends on which pool it got: it submits, waits and, after a crash, asks again.
"""

from __future__ import annotations

from .base import ComputeTarget
from .local import LocalPool


def get_target(compute: dict[str, object]) -> ComputeTarget:
    """Return the execution target for a compute record."""
    kind = compute.get("type", "local")
    if kind in ("local", "amlcompute"):
        return LocalPool()
    from ..errors import ValidationError

    raise ValidationError(f"compute {compute.get('name')}: type {kind!r} cannot run jobs here", field="compute")


__all__ = ["ComputeTarget", "LocalPool", "get_target"]
