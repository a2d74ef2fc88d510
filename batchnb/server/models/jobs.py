"""Jobs: a batch job, a pipeline job and its step jobs (told apart by ``type``), their listings, and
``POST jobs`` (a pipeline job from Azure's YAML).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, RootModel

from ...pipelines.spec import PipelineJobSpec
from .base import JobStatus, StepStatus, _Response


class CreatePipelineJob(PipelineJobSpec):
    """``POST jobs``: start a pipeline job from Azure's ``pipelineJob`` YAML (as JSON), as ``job create -f``.

    Relative paths resolve against the Jupyter server's root folder; every path must lie inside it,
    a registered datastore or the server's ``allowed_paths``. ``set`` applies az-style overrides to
    the body before it is checked.
    """

    set: list[str] | None = Field(
        default=None, description="az-style overrides, e.g. 'inputs.input_data.path=data/unlabeled'."
    )


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
