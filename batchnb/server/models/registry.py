"""The registry's assets as the API lists them: models, components and computes.

``POST models`` takes Azure's model YAML as JSON, validated by :class:`batchnb.schemas.ModelSpec`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import _Response


class Model(_Response):
    """A registered model version (copied into the workspace)."""

    id: str
    name: str
    version: str
    path: str
    type: str
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    model_dir: str | None = None
    source_path: str | None = None
    created_at: float


class ModelList(_Response):
    models: list[Model]


class Component(_Response):
    """A registered component version (command or pipeline), resolved when it was registered."""

    id: str
    name: str
    version: str
    type: Literal["command", "pipeline"]
    display_name: str | None = None
    description: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    command: str | None = Field(default=None, description="A command component's command.")
    jobs: dict[str, Any] | None = Field(default=None, description="A pipeline component's steps.")
    order: list[str] | None = Field(default=None, description="A pipeline component's steps in run order.")
    created_at: float


class ComponentList(_Response):
    components: list[Component]


class Compute(_Response):
    """A compute target (``local`` is built in)."""

    name: str
    type: str
    max_workers: int | None = None
    min_instances: int = 0
    max_instances: int = 1
    is_default: bool = False


class ComputeList(_Response):
    computes: list[Compute]
