"""Azure's component and pipeline YAML, as pydantic models, and the ``${{...}}`` binding language.

Three files are read unchanged from Azure:

* ``commandComponent.schema.json`` (``type: command``): ``inputs``, ``outputs``, ``code``,
  ``command`` with ``${{inputs.x}}``, ``${{outputs.y}}`` and optional groups ``$[[ ... ]]``,
  ``environment`` (a registered one's build runs the step: :mod:`batchnb.environments`),
  ``environment_variables``.
* ``pipelineComponent.schema.json`` (``type: pipeline``): ``inputs`` (data, models and literals
  with defaults), ``outputs``, and ``jobs:`` whose steps bind ``${{parent.inputs.x}}``,
  ``${{parent.jobs.<step>.outputs.<y>}}`` and ``${{parent.outputs.<z>}}``.
* ``pipelineJob.schema.json``: a pipeline component to run (``component:``) or the steps inline
  (``jobs:``), with values for its inputs and places for its outputs, and ``settings``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..schemas import AssetName, PipelineDeploymentSettings, _OpenSpec

DATA_TYPES = frozenset({"uri_folder", "uri_file"})
MODEL_TYPES = frozenset({"mlflow_model", "custom_model", "triton_model"})
LITERAL_TYPES = frozenset({"string", "integer", "number", "boolean"})
PORT_TYPES = DATA_TYPES | MODEL_TYPES | LITERAL_TYPES

# Step, input and output names: Azure allows letters, digits and underscores ("replace any
# hyphens ... with underscore"); the names end up in ${{...}} expressions and folder names.
_PORT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")  # fullmatch: "$" would allow a trailing newline

# ${{inputs.x}} / ${{outputs.y}} inside a command.
COMMAND_REF = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")
# $[[ ... ]]: a part of a command dropped when an optional input inside it is not given.
OPTIONAL_GROUP = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
# A whole value that binds to the parent pipeline: ${{parent.inputs.x}} and friends.
PARENT_REF = re.compile(
    r"\s*\$\{\{\s*parent\.(?:(?P<kind>inputs|outputs)\.(?P<name>[A-Za-z0-9_]+)"
    r"|jobs\.(?P<step>[A-Za-z0-9_]+)\.outputs\.(?P<output>[A-Za-z0-9_]+))\s*\}\}\s*"
)


def check_port_name(kind: str, name: str) -> str:
    """Refuse a step, input or output name that Azure would refuse (or that could escape a folder)."""
    if not _PORT_NAME.fullmatch(name):
        raise ValueError(
            f"{kind} name {name!r} must be letters, digits and underscores, starting with a letter or "
            "underscore (Azure: replace hyphens with underscores)"
        )
    return name


class Port(_OpenSpec):
    """One declared input or output of a component."""

    type: str = "uri_folder"
    optional: bool = False
    default: Any = None
    description: str | None = None
    mode: str | None = None  # ro_mount, download, upload, ...: recorded; everything is a local path here

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in PORT_TYPES:
            known = ", ".join(sorted(PORT_TYPES))
            hint = " (mltable is not supported: use uri_folder or uri_file)" if value == "mltable" else ""
            raise ValueError(f"type {value!r} is not one of {known}{hint}")
        return value


def _check_ports(ports: dict[str, Port], kind: str) -> dict[str, Port]:
    for name in ports:
        check_port_name(kind, name)
    return ports


class _ComponentSpec(_OpenSpec):
    """What command and pipeline components share: identity and declared ports."""

    name: AssetName | None = None  # required to register; optional for a component inline in a step
    version: str | int | None = None
    display_name: str | None = None
    description: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, Port] = Field(default_factory=dict)
    outputs: dict[str, Port] = Field(default_factory=dict)

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: dict[str, Port]) -> dict[str, Port]:
        return _check_ports(value, "input")

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, value: dict[str, Port]) -> dict[str, Port]:
        return _check_ports(value, "output")


class CommandComponentSpec(_ComponentSpec):
    """``commandComponent.schema.json``."""

    type: Literal["command"] = "command"
    code: str | None = None
    command: str
    environment: str | dict[str, Any] | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict)
    is_deterministic: bool = True

    @field_validator("outputs")
    @classmethod
    def _data_outputs(cls, value: dict[str, Port]) -> dict[str, Port]:
        for name, port in value.items():
            if port.type in LITERAL_TYPES:
                raise ValueError(f"output {name}: a command component's outputs are data or models, not {port.type}")
        return value

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else value


class StepLimits(_OpenSpec):
    """``limits`` of a command step: ``timeout`` in seconds, after which the step is stopped and fails."""

    timeout: int | None = Field(default=None, ge=1)


class PipelineStep(_OpenSpec):
    """One entry of a pipeline's ``jobs:``."""

    type: Literal["command", "pipeline"] = "command"
    limits: StepLimits = Field(default_factory=StepLimits)
    component: str | dict[str, Any]
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    compute: str | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict)
    display_name: str | None = None


def _check_steps(steps: dict[str, PipelineStep]) -> dict[str, PipelineStep]:
    if not steps:
        raise ValueError("a pipeline needs at least one step under jobs:")
    for name in steps:
        check_port_name("step", name)
    return steps


class PipelineComponentSpec(_ComponentSpec):
    """``pipelineComponent.schema.json``."""

    type: Literal["pipeline"] = "pipeline"
    jobs: dict[str, PipelineStep]

    @field_validator("jobs")
    @classmethod
    def _jobs(cls, value: dict[str, PipelineStep]) -> dict[str, PipelineStep]:
        return _check_steps(value)


# A pipeline job's settings are those a pipeline deployment gives its jobs.
PipelineJobSettings = PipelineDeploymentSettings


class PipelineJobSpec(_OpenSpec):
    """``pipelineJob.schema.json``: a pipeline component to run, or its steps inline."""

    type: Literal["pipeline"] = "pipeline"
    name: str | None = None
    display_name: str | None = None
    description: str | None = None
    experiment_name: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    compute: str | None = None
    settings: PipelineJobSettings = Field(default_factory=PipelineJobSettings)
    component: str | dict[str, Any] | None = None
    jobs: dict[str, PipelineStep] | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _component_or_jobs(self) -> PipelineJobSpec:
        if (self.component is None) == (self.jobs is None):
            raise ValueError("a pipeline job needs either 'component:' (a pipeline component) or 'jobs:' (its steps)")
        if self.jobs is not None:
            _check_steps(self.jobs)
        return self


def parent_ref(value: Any) -> tuple[str, str, str | None] | None:
    """``${{parent.inputs.x}}`` → ("inputs", "x", None); ``${{parent.jobs.s.outputs.y}}`` →
    ("jobs", "s", "y"); anything else → None."""
    if not isinstance(value, str):
        return None
    match = PARENT_REF.fullmatch(value)
    if match is None:
        return None
    if match.group("step"):
        return "jobs", match.group("step"), match.group("output")
    return match.group("kind"), match.group("name"), None


def command_refs(command: str) -> list[tuple[str, str]]:
    """Every ``(inputs|outputs, name)`` a command refers to, in order."""
    return [(m.group(1), m.group(2)) for m in COMMAND_REF.finditer(command)]


__all__ = [
    "DATA_TYPES",
    "LITERAL_TYPES",
    "MODEL_TYPES",
    "CommandComponentSpec",
    "PipelineComponentSpec",
    "PipelineJobSettings",
    "PipelineJobSpec",
    "PipelineStep",
    "Port",
    "command_refs",
    "parent_ref",
]
