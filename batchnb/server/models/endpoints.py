"""Endpoints, their deployments and invoking them: ``endpoints``, ``endpoints/<name>/deployments`` and
``POST endpoints/<name>/jobs`` (a job, or with ``dry_run`` the first mini-batch scored).

The endpoint and deployment specs a client posts are Azure's YAML as JSON, validated by the core's
own models (:mod:`batchnb.schemas`); the models here are the patch, the invocation and the answers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...schemas import MAX_INSTANCE_COUNT, DeploymentName
from .base import _Request, _Response

InputType = Literal["uri_folder", "uri_file"]


class EndpointDefaultsPatch(_Request):
    """``defaults`` in ``PATCH endpoints/<name>``."""

    deployment_name: DeploymentName = Field(description="The deployment that serves invocations naming none.")


class EndpointPatch(_Request):
    """``PATCH endpoints/<name>``: a new default deployment, az-style ``--set`` changes, or both.

    Changing the default never changes the endpoint's invocation URL.
    """

    defaults: EndpointDefaultsPatch | None = None
    set: list[str] | None = Field(
        default=None, description="az-style assignments, e.g. 'description=nightly scoring' or 'tags.team=ml'."
    )

    @model_validator(mode="after")
    def _something(self) -> EndpointPatch:
        if self.defaults is None and not self.set:
            raise ValueError("nothing to change: give 'defaults' and/or 'set'")
        return self


class InputRef(BaseModel):
    """An input given as ``{type, path}``, as in Azure's ``inputs.yml``."""

    model_config = ConfigDict(extra="allow")

    type: InputType | None = None
    path: str


class OutputRef(BaseModel):
    """An output given as ``{type, path}``, as in Azure's ``inputs.yml`` (``outputs.score``)."""

    model_config = ConfigDict(extra="allow")

    type: InputType | None = None
    path: str | None = None


class InvokeRequest(_Request):
    """``POST endpoints/<name>/jobs``: invoke the endpoint (its default deployment unless one is named).

    Relative paths (``input``, ``output_path``, paths in ``inputs``/``outputs``) resolve against the
    Jupyter server's root folder; every path must lie inside it, a registered datastore or the
    server's ``allowed_paths``.
    """

    input: str | InputRef | None = Field(
        default=None,
        description="A path, azureml:<data>@latest, azureml://datastores/<ds>/paths/<p>, or an fsspec URL.",
    )
    input_type: InputType | None = None
    deployment_name: str | None = Field(default=None, description="Default: the endpoint's default deployment.")
    inputs: dict[str, str | InputRef] | None = Field(
        default=None, description="Named inputs (Azure's inputs.yml); a model deployment takes exactly one."
    )
    outputs: dict[str, str | OutputRef] | None = Field(
        default=None, description="Named outputs; 'score' sets the output location."
    )
    output_path: str | None = None
    job_name: str | None = None
    mini_batch_size: int | str | None = None
    instance_count: int | None = Field(default=None, ge=1, le=MAX_INSTANCE_COUNT)
    set: list[str] | None = Field(
        default=None, description="Per-job overrides, e.g. 'error_threshold=5', 'retry_settings.timeout=60'."
    )
    experiment_name: str | None = None
    dry_run: bool = Field(
        default=False,
        description="Score only the first mini-batch, in a separate process, and return its result (no job).",
    )
    incremental: bool = Field(
        default=False,
        description="Skip the input files an earlier incremental job of the same deployment revision, model and "
        "settings scored, reusing their rows.",
    )


class BatchEndpointDefaults(_Response):
    deployment_name: str | None = None


class BatchEndpoint(_Response):
    """A batch endpoint. ``scoring_uri`` is its invocation URL (``POST``), stable across default changes."""

    name: str
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    auth_mode: str = "aad_token"
    defaults: BatchEndpointDefaults = Field(default_factory=BatchEndpointDefaults)
    deployments: list[str]
    scoring_uri: str
    provisioning_state: str
    created_at: float
    updated_at: float


class BatchDeployment(_Response):
    """A deployment of a batch endpoint (the stored spec plus what was resolved when it was created)."""

    name: str
    endpoint_name: str
    type: Literal["model", "pipeline"]
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    model: str | dict[str, Any] | None = None
    code_configuration: dict[str, Any] | None = None
    compute: str | None = None
    resources: dict[str, Any] | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    resolved: dict[str, Any] = Field(default_factory=dict)
    revision: int
    is_default: bool
    provisioning_state: str
    created_at: float
    updated_at: float


class EndpointList(_Response):
    endpoints: list[BatchEndpoint]


class DeploymentList(_Response):
    deployments: list[BatchDeployment]


class DryRunResult(_Response):
    """``POST endpoints/<name>/jobs`` with ``dry_run: true``: the first mini-batch scored, no job recorded."""

    dry_run: Literal[True]
    endpoint: str
    deployment: str
    files_in_input: int
    items: list[Any]
    n_items: int
    status: Literal["ok", "failed"]
    stage: str | None = None
    error: str | None = None
    n_results: int | None = None
    preview: str | None = None
    duration: float


class PipelineDryRunResult(_Response):
    """``POST endpoints/<name>/jobs`` with ``dry_run: true`` on a pipeline deployment: each step's
    command with its paths filled in, nothing run."""

    dry_run: Literal[True]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    steps: list[dict[str, Any]]
