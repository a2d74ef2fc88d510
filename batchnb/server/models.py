"""The wire models of the REST API: request bodies (validated on every request) and responses (documented).

Request bodies are parsed with these models, so an unknown or mistyped key is a 400 that names it.
Spec bodies (``POST endpoints``, ``POST .../deployments``, ``POST models``) are Azure's YAML as
JSON and are validated by the core's own models (:mod:`batchnb.schemas`), which this module
re-exports for the schema.

Responses are the core's records passed through unchanged; the response models here describe them
for ``GET /batchnb/api/schema`` (from which the sidebar's TypeScript types are generated) and the
tests check real responses against them. They allow extra keys, so a field added by the core is
not an error, only undocumented until it is added here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator
from pydantic.json_schema import models_json_schema

from ..pipelines.spec import PipelineJobSpec
from ..schemas import (
    MAX_INSTANCE_COUNT,
    BatchEndpointSpec,
    DeploymentName,
    ModelBatchDeploymentSpec,
    ModelSpec,
    PipelineComponentBatchDeploymentSpec,
)

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
InputType = Literal["uri_folder", "uri_file"]

# --- requests -------------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class CreatePipelineJob(PipelineJobSpec):
    """``POST jobs``: start a pipeline job from Azure's ``pipelineJob`` YAML (as JSON), as ``job create -f``.

    Relative paths resolve against the Jupyter server's root folder; every path must lie inside it,
    a registered datastore or the server's ``allowed_paths``. ``set`` applies az-style overrides to
    the body before it is checked.
    """

    set: list[str] | None = Field(
        default=None, description="az-style overrides, e.g. 'inputs.input_data.path=data/unlabeled'."
    )


# --- responses ------------------------------------------------------------------------------------


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorResponse(_Response):
    """Every error: ``error`` is the batchnb error class (or the HTTP reason), ``field`` the offending field."""

    error: str
    message: str
    field: str | None = None


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


class Compute(_Response):
    """A compute target (``local`` is built in)."""

    name: str
    type: str
    max_workers: int | None = None
    min_instances: int = 0
    max_instances: int = 1
    is_default: bool = False


class MiniBatchCounts(_Response):
    total: int
    done: int
    failed: int
    running: int
    retrying: int
    pending: int


class ItemCounts(_Response):
    total: int
    succeeded: int
    failed: int


class JobProgress(_Response):
    mini_batches: MiniBatchCounts
    items: ItemCounts
    rows_written: int
    worker_seconds: float
    rows_per_second: float
    elapsed_s: float
    eta_s: float | None = None


class JobInput(_Response):
    type: str
    path: str


class JobOutput(_Response):
    path: str
    file_name: str


class JobLineage(_Response):
    """What produced a batch job's output (recorded at invoke)."""

    endpoint: str
    deployment: str
    deployment_revision: int
    model: str | None = Field(default=None, description="The model as name:version.")
    code_hash: str | None = Field(default=None, description="sha256 of the code snapshot the job runs.")
    environment: str | None = Field(default=None, description="The declared environment: name:version, or inline.")
    environment_hash: str | None = None
    runtime: str
    row_lineage_columns: list[str] = Field(
        description="The lineage columns of every output row ([] when the output has none)."
    )
    scoring_key: str = Field(description="Equal for jobs whose rows an incremental invocation may reuse.")


class JobReuse(_Response):
    """What an incremental invocation reused from earlier jobs."""

    mini_batches_reused: int
    items_reused: int
    rows_reused: int
    mini_batches_to_score: int
    items_to_score: int
    reused_from: list[str]


class _JobHeader(_Response):
    """What every kind of job shows first."""

    name: str
    status: JobStatus
    endpoint_name: str | None = None
    deployment_name: str | None = None
    experiment_name: str | None = None
    invoked_by: str | None = Field(default=None, description="The Jupyter user name when invoked through REST.")
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    archived_at: float | None = Field(default=None, description="When the job was archived (left out of listings).")
    job_dir: str
    logs_dir: str


class Job(_JobHeader):
    """A batch job with its live counters."""

    type: Literal["batch"]
    inputs: dict[str, JobInput]
    outputs: dict[str, JobOutput]
    settings: dict[str, Any]
    deployment_revision: int | None = Field(default=None, description="The deployment's revision the job runs.")
    model: str | dict[str, Any] | None = Field(default=None, description="The model version it scores with.")
    compute: str = "local"
    instance_count: int
    workers: int
    progress: JobProgress
    metrics: dict[str, float] | None = Field(
        default=None,
        description="Each metric's last value in the job's MLflow run ({} without one); only on a single job's GET.",
    )
    lineage: JobLineage | None = Field(default=None, description="None for a job invoked before lineage was recorded.")
    incremental: JobReuse | None = Field(default=None, description="Only for an incremental invocation.")
    waiting: str | None = Field(default=None, description="Why a Queued job has not started yet.")
    auto_resumes: int = Field(default=0, description="How many times its compute's agent resumed it by itself.")


class StepCounts(_Response):
    """How many of a pipeline job's steps are in each state."""

    total: int
    completed: int
    running: int
    failed: int
    canceled: int
    not_started: int


class PipelineJobProgress(_Response):
    steps: StepCounts
    elapsed_s: float


class JobStep(_Response):
    """One step of a pipeline job; ``job_name`` is its step (child) job."""

    name: str
    job_name: str
    status: StepStatus
    needs: list[str] = Field(description="The steps whose outputs it reads: it starts when they have completed.")
    duration_s: float | None = None
    error: str | None = None
    metrics: dict[str, float] | None = Field(
        default=None, description="Each metric's last value in the step's MLflow run; only on a single job's GET."
    )


class PipelineInput(_Response):
    """A data input (``path`` as given, ``resolved`` the local path or URL) or a literal ``value``."""

    type: str
    path: str | None = None
    resolved: str | None = None
    value: Any = None


class PipelineOutput(_Response):
    type: str
    path: str


class ComponentRef(_Response):
    """The registered component a job runs (``name`` is null for steps written inline)."""

    name: str | None = None
    version: str | None = None


class PipelineJob(_JobHeader):
    """A pipeline job: its steps, in order, with their statuses, and its named outputs."""

    type: Literal["pipeline"]
    display_name: str | None = None
    inputs: dict[str, PipelineInput]
    outputs: dict[str, PipelineOutput]
    settings: dict[str, Any]
    component: ComponentRef | None = None
    steps: list[JobStep]
    progress: PipelineJobProgress
    metrics: dict[str, float] | None = Field(
        default=None,
        description="Each metric's last value in the job's MLflow run ({} without one); only on a single job's GET.",
    )


class StepJobProgress(_Response):
    elapsed_s: float


class StepJob(_JobHeader):
    """A step of a pipeline job (a child job): its command and log. Listed with ``GET jobs?parent=<job>``."""

    type: Literal["command"]
    status: StepStatus  # type: ignore[assignment]
    display_name: str | None = None
    parent_job_name: str
    step: str
    component: ComponentRef | None = None
    command: str
    compute: str
    needs: list[str]
    inputs: dict[str, PipelineInput]
    outputs: dict[str, PipelineOutput]
    progress: StepJobProgress
    std_log: str = Field(description="The command's output (stdout and stderr).")
    metrics: dict[str, float] | None = Field(
        default=None,
        description="Each metric's last value in the job's MLflow run ({} without one); only on a single job's GET.",
    )


AnyJobItem = Annotated[Job | PipelineJob | StepJob, Field(discriminator="type")]


class AnyJob(RootModel[AnyJobItem]):
    """A job of any kind, told apart by ``type``: ``batch``, ``pipeline`` or ``command`` (a pipeline's step)."""


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


class LogTail(_Response):
    """The last lines of one log file."""

    path: str
    exists: bool
    size: int = 0
    lines: list[str] = Field(default_factory=list)
    truncated: bool = Field(default=False, description="True when earlier lines were left out.")


class JobPromotion(_Response):
    """``GET jobs/<name>/promote?as=cli``: the invocation that started a batch job, written out to run it again."""

    name: str
    form: Literal["cli", "inputs-yaml", "papermill", "sdk"]
    text: str = Field(description="The command line, inputs YAML, notebook JSON or Python code.")


class JobLogs(_Response):
    """``GET jobs/<name>/logs?lines=N``: the tails of the job's main log files, by path under ``logs/``."""

    name: str
    status: StepStatus
    logs_dir: str
    lines: int
    files: dict[str, LogTail]


class OutputFile(_Response):
    name: str = Field(description="The path relative to the output folder ('/'-separated).")
    size: int


class JobOutputs(_Response):
    """``GET jobs/<name>/outputs?output=<name>``: the files of one of the job's outputs (its folder)."""

    name: str
    status: StepStatus
    output: str = Field(description="Which named output: 'score' for a batch job.")
    path: str
    exists: bool
    files: list[OutputFile]
    total_size: int
    truncated: bool = False


class WorkspaceInfo(_Response):
    """``GET workspace``: the workspace the server uses and why."""

    root: str
    db_path: str
    source: Literal["config", "env", "marker", "default"]
    version: str


class EndpointList(_Response):
    endpoints: list[BatchEndpoint]


class DeploymentList(_Response):
    deployments: list[BatchDeployment]


class JobList(_Response):
    """Jobs, newest first unless sorted otherwise; ``GET jobs`` also says how many match in all."""

    jobs: list[AnyJobItem]
    total: int | None = Field(default=None, description="How many jobs match the filters (GET jobs).")
    offset: int | None = None
    limit: int | None = None
    status_counts: dict[str, int] | None = Field(
        default=None, description="The matches of every filter but status, counted by status (GET jobs)."
    )


class JobGroup(_Response):
    """One endpoint's newest jobs and how many it has (``endpoint`` null: jobs of no endpoint)."""

    endpoint: str | None
    total: int
    active: int = Field(description="How many of them are queued or running.")
    jobs: list[AnyJobItem]


class JobOverview(_Response):
    """``GET job-overview?per_endpoint=N``: the newest N jobs of each endpoint, with counts."""

    groups: list[JobGroup]
    total: int


class TimelinePoint(_Response):
    """The job's progress when a mini-batch finished: seconds since it started, totals so far."""

    t: float
    mini_batches: int
    rows: int


class JobTimeline(_Response):
    """``GET jobs/<name>/timeline``: progress over time, one point per finished mini-batch."""

    name: str
    started_at: float | None = None
    points: list[TimelinePoint]


class FailedItem(_Response):
    """One item of a batch job that failed for good: a file, or a tabular chunk's rows."""

    item: str
    mini_batch: int
    attempts: int
    why: Literal["raised", "timeout", "crashed", "missing"]
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = Field(default=None, description="the log file that holds it, under the job's folder")
    revision: int | None = Field(default=None, description="the deployment revision that scored it")
    traceback_text: str | None = Field(
        default=None, description="the traceback itself (with ?tracebacks=true; none for a timeout, crash or missing)"
    )


class JobFailures(_Response):
    """``GET jobs/<name>/failures``: the job's failed items, in input order (the first ``limit``)."""

    name: str
    items: list[FailedItem]
    total: int = Field(description="How many failed items the job has (more than items when limited).")


class WorkerAttempt(_Response):
    """One mini-batch attempt on the worker timeline: who ran it, when (seconds since the job
    started) and what came of it."""

    worker: str = Field(description="The worker process (its name in the logs), or '(lost worker)'.")
    pid: int | None = None
    mini_batch: int
    attempt: int
    items: int
    start: float
    end: float
    started_at: float = Field(description="Epoch seconds, by the worker's clock.")
    ended_at: float
    outcome: Literal["ok", "retried", "failed"]
    error: str | None = None


class WorkerTimeline(_Response):
    """``GET jobs/<name>/worker-timeline``: every mini-batch attempt of a batch job, in the order they started."""

    name: str
    started_at: float | None = None
    workers: list[str] = Field(description="The worker processes, in the order of their first attempt.")
    attempts: list[WorkerAttempt]


class OutputPreview(_Response):
    """``GET jobs/<name>/preview``: the first rows of an output file (CSV or Parquet) or its first lines."""

    name: str
    output: str
    file: str = Field(description="The path relative to the output folder ('/'-separated).")
    format: Literal["csv", "parquet", "text"]
    size: int
    columns: list[str]
    rows: list[list[Any]]
    total_rows: int | None = Field(default=None, description="Rows in the whole file, when known cheaply.")
    header: bool = Field(default=True, description="False when the CSV has no header row (columns are numbered).")
    truncated: bool


class JobSummary(_Response):
    """``GET jobs/<name>/summary``: the job's summary card, as the notebook shows it once a job ends."""

    name: str
    status: StepStatus
    html: str
    text: str


class PipelineDryRunResult(_Response):
    """``POST endpoints/<name>/jobs`` with ``dry_run: true`` on a pipeline deployment: each step's
    command with its paths filled in, nothing run."""

    dry_run: Literal[True]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    steps: list[dict[str, Any]]


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


class ModelList(_Response):
    models: list[Model]


class ComputeList(_Response):
    computes: list[Compute]


# --- comparing two deployments --------------------------------------------------------------------


class CompareRequest(_Request):
    """``POST endpoints/<name>/compare``: score one input with two deployments and compare the outputs.

    The two jobs run one after the other; the answer comes when both have ended and their outputs
    are joined (see ``batchnb batch-endpoint compare``).
    """

    deployments: Annotated[list[DeploymentName], Field(min_length=2, max_length=2)] = Field(
        description="The two deployments, A and B."
    )
    input: str | InputRef = Field(description="The input, as an invocation takes it.")
    input_type: InputType | None = None
    sample: int | None = Field(default=None, ge=1, description="Score only the first N items (files, or rows).")
    max_disagreements: int = Field(default=50, ge=0, le=10_000, description="How many disagreements to list.")


class DifferenceHistogram(_Response):
    """The absolute differences of a numeric column where A and B differ, binned from 0 to the largest."""

    zero: int = Field(description="Rows whose values are equal (not in the bins).")
    edges: list[float]
    counts: list[int]


class LabelPair(_Response):
    """One (A, B) pair of values of a column of labels and how many rows have it."""

    a: str
    b: str
    rows: int


class ColumnAgreement(_Response):
    """How A and B agree on one column."""

    equal: float = Field(description="The share of joined rows whose values are equal.")
    mean_abs_diff: float | None = None
    max_abs_diff: float | None = None
    histogram: DifferenceHistogram | None = None
    pairs: list[LabelPair] | None = Field(default=None, description="Labels: the most frequent pairs.")


class Disagreement(_Response):
    """A row where A and B differ on a column (``column`` "(row)": the row is in one output only); the
    two values are under the deployments' names."""

    source_file: str | None
    source_row: int | None
    column: str


class ComparisonThroughput(_Response):
    """One deployment's job in the comparison and its pace."""

    job: str
    items: int
    rows: int
    elapsed_s: float
    items_per_second: float | None
    rows_per_second: float | None


class Comparison(_Response):
    """The comparison of two deployments on one input."""

    endpoint: str
    deployments: list[str]
    input: str
    sample: int | None
    rows: dict[str, int] = Field(description="Each output's rows, the joined rows, the rows only one side has.")
    agreement: float = Field(description="The share of joined rows equal on every column.")
    columns: dict[str, ColumnAgreement]
    columns_only_in: dict[str, list[str]]
    rows_disagreeing: int
    disagreements: list[Disagreement]
    throughput: dict[str, ComparisonThroughput]
    outputs: dict[str, str]


# --- the route table and the schema ---------------------------------------------------------------

# (method, path under /batchnb/api/, request body model, response model, success status, query parameters)
ROUTES: list[tuple[str, str, str | None, str | None, int, dict[str, str]]] = [
    ("GET", "endpoints", None, "EndpointList", 200, {}),
    ("POST", "endpoints", "BatchEndpointSpec", "BatchEndpoint", 201, {}),
    ("GET", "endpoints/{endpoint}", None, "BatchEndpoint", 200, {}),
    ("PATCH", "endpoints/{endpoint}", "EndpointPatch", "BatchEndpoint", 200, {}),
    ("DELETE", "endpoints/{endpoint}", None, None, 204, {}),
    ("GET", "endpoints/{endpoint}/deployments", None, "DeploymentList", 200, {}),
    (
        "POST",
        "endpoints/{endpoint}/deployments",
        "ModelBatchDeploymentSpec",
        "BatchDeployment",
        201,
        {
            "set_default": "true: make it the endpoint's default deployment",
            "skip_script_validation": "true: do not check that the scoring script parses",
        },
    ),
    ("GET", "endpoints/{endpoint}/deployments/{deployment}", None, "BatchDeployment", 200, {}),
    ("DELETE", "endpoints/{endpoint}/deployments/{deployment}", None, None, 204, {}),
    (
        "GET",
        "endpoints/{endpoint}/jobs",
        None,
        "JobList",
        200,
        {"deployment": "only this deployment's jobs", "status": "only jobs in this status", "limit": "at most N"},
    ),
    ("POST", "endpoints/{endpoint}/jobs", "InvokeRequest", "AnyJob", 201, {}),
    ("POST", "endpoints/{endpoint}/compare", "CompareRequest", "Comparison", 200, {}),
    ("GET", "models", None, "ModelList", 200, {}),
    ("POST", "models", "ModelSpec", "Model", 201, {}),
    ("GET", "models/{model}", None, "ModelList", 200, {}),
    ("GET", "computes", None, "ComputeList", 200, {}),
    ("GET", "components", None, "ComponentList", 200, {}),
    ("GET", "components/{component}", None, "ComponentList", 200, {}),
    (
        "GET",
        "jobs",
        None,
        "JobList",
        200,
        {
            "endpoint": "only this endpoint's jobs",
            "deployment": "only this deployment's jobs",
            "status": "only jobs in this status (or any of several, comma-separated)",
            "limit": "at most N (default: all)",
            "offset": "skip the first N",
            "sort": "created_at, started_at, name, status, endpoint, deployment or duration; - for descending "
            "(default -created_at)",
            "search": "a substring of the name, endpoint, deployment or who invoked it",
            "since": "created at or after (ISO 8601 date or date-time, or epoch seconds)",
            "until": "created before",
            "archived": "exclude (default), only or include archived jobs",
            "parent": "the step jobs of this pipeline job instead, in step order",
        },
    ),
    ("POST", "jobs", "CreatePipelineJob", "PipelineJob", 201, {}),
    ("GET", "jobs/{job}", None, "AnyJob", 200, {}),
    ("POST", "jobs/{job}/cancel", None, "AnyJob", 200, {}),
    ("POST", "jobs/{job}/resume", None, "AnyJob", 200, {}),
    (
        "POST",
        "jobs/{job}/rerun-failed",
        None,
        "AnyJob",
        200,
        {"latest": "true: score them on the deployment's current revision (default false)"},
    ),
    (
        "GET",
        "jobs/{job}/failures",
        None,
        "JobFailures",
        200,
        {"limit": "only the first N", "tracebacks": "true: each item's traceback_text too"},
    ),
    ("GET", "jobs/{job}/worker-timeline", None, "WorkerTimeline", 200, {}),
    ("GET", "jobs/{job}/logs", None, "JobLogs", 200, {"lines": "how many last lines of each file (default 100)"}),
    (
        "GET",
        "jobs/{job}/promote",
        None,
        "JobPromotion",
        200,
        {"as": "cli (default), inputs-yaml, papermill or sdk"},
    ),
    (
        "GET",
        "jobs/{job}/outputs",
        None,
        "JobOutputs",
        200,
        {"output": "which named output (default: 'score', or a pipeline job's only output)"},
    ),
    (
        "GET",
        "job-overview",
        None,
        "JobOverview",
        200,
        {"per_endpoint": "how many newest jobs of each endpoint (default 8)"},
    ),
    ("DELETE", "jobs/{job}", None, None, 204, {}),
    ("POST", "jobs/{job}/archive", None, "AnyJob", 200, {}),
    ("POST", "jobs/{job}/restore", None, "AnyJob", 200, {}),
    ("GET", "jobs/{job}/timeline", None, "JobTimeline", 200, {}),
    ("GET", "jobs/{job}/summary", None, "JobSummary", 200, {}),
    (
        "GET",
        "jobs/{job}/file",
        None,
        None,
        200,
        {
            "log": "a file under the job's logs/ folder (e.g. job_result.txt)",
            "path": "or a file of its output, relative to the output folder",
            "output": "which named output (default: score)",
            "download": "true: as an attachment",
        },
    ),
    (
        "GET",
        "jobs/{job}/preview",
        None,
        "OutputPreview",
        200,
        {
            "output": "which named output (default: score)",
            "path": "the file, relative to the output folder (default: the output file, or the first table)",
            "rows": "how many first rows (default 20)",
        },
    ),
    ("GET", "workspace", None, "WorkspaceInfo", 200, {}),
    ("GET", "schema", None, None, 200, {}),
]

REQUEST_MODELS: list[type[BaseModel]] = [
    BatchEndpointSpec,
    EndpointPatch,
    ModelBatchDeploymentSpec,
    PipelineComponentBatchDeploymentSpec,
    ModelSpec,
    InvokeRequest,
    CreatePipelineJob,
    CompareRequest,
]
RESPONSE_MODELS: list[type[BaseModel]] = [
    ErrorResponse,
    BatchEndpoint,
    EndpointList,
    BatchDeployment,
    DeploymentList,
    Model,
    ModelList,
    Compute,
    ComputeList,
    Job,
    PipelineJob,
    StepJob,
    AnyJob,
    JobList,
    DryRunResult,
    PipelineDryRunResult,
    Component,
    ComponentList,
    JobLogs,
    JobPromotion,
    JobOutputs,
    JobOverview,
    JobTimeline,
    JobFailures,
    WorkerTimeline,
    OutputPreview,
    JobSummary,
    WorkspaceInfo,
    Comparison,
]


def api_schema(version: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of every wire model under ``$defs``, plus the route table."""
    _, top = models_json_schema(
        [(m, "validation") for m in REQUEST_MODELS] + [(m, "serialization") for m in RESPONSE_MODELS],
        ref_template="#/$defs/{model}",
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "batchnb REST API",
        "description": (
            "Routes are under <base_url>batchnb/api/. Errors are ErrorResponse with the HTTP status of "
            "the batchnb error (400 bad request; 403 unauthenticated, not permitted (the code-running verbs "
            "need the execute permission), or a path outside the server's root folder, its allowed_paths and "
            "the datastores; 404 unknown, 409 conflict or wrong state, 500 unexpected). "
            "POST endpoints/{endpoint}/deployments also accepts Azure's pipeline and legacy deployment "
            "forms, and answers 200 for a new revision of an existing one; "
            "POST endpoints answers 200 when it updates an existing endpoint; an invoke with dry_run "
            "answers 200 with a DryRunResult (a PipelineDryRunResult for a pipeline deployment). A job is "
            "a Job (type batch), a PipelineJob or a StepJob (type command, a pipeline's step)."
        ),
        "version": version,
        "routes": [
            {
                "method": method,
                "path": path,
                "request": request,
                "response": response,
                "status": status,
                "query": query,
            }
            for method, path, request, response, status, query in ROUTES
        ],
        "$defs": top.get("$defs", {}),
    }
