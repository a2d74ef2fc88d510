"""What every area of the REST API's wire models shares: the two base classes, the job statuses, the
error body and the workspace.

A request model forbids unknown keys (a mistyped key is a 400 that names it); a response model
allows them (a field the core adds is only undocumented until it is added to its model).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

JobStatus = Literal[
    "Queued",
    "Preparing",
    "Running",
    "Finalizing",
    "Completed",
    "Failed",
    "CancelRequested",
    "Canceled",
    "Interrupted",
]
# A pipeline's step (a child job of kind command) waits as NotStarted until the steps it needs end.
StepStatus = Literal[JobStatus, "NotStarted"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorResponse(_Response):
    """Every error: ``error`` is the batchnb error class (or the HTTP reason), ``field`` the offending field."""

    error: str
    message: str
    field: str | None = None


class WorkspaceInfo(_Response):
    """``GET workspace``: the workspace the server uses and why."""

    root: str
    db_path: str
    source: Literal["config", "env", "marker", "default"]
    version: str
