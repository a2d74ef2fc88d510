"""What a job's detail view reads under ``jobs/<name>/``: its logs, output files and their preview, the
invocation written out again, its progress timeline, its failed items, the worker timeline and the
summary card.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import StepStatus, _Response


class LogTail(_Response):
    """The last lines of one log file."""

    path: str
    exists: bool
    size: int = 0
    lines: list[str] = Field(default_factory=list)
    truncated: bool = Field(default=False, description="True when earlier lines were left out.")


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


class JobPromotion(_Response):
    """``GET jobs/<name>/promote?as=cli``: the invocation that started a batch job, written out to run it again."""

    name: str
    form: Literal["cli", "inputs-yaml", "papermill", "sdk"]
    text: str = Field(description="The command line, inputs YAML, notebook JSON or Python code.")


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


class JobSummary(_Response):
    """``GET jobs/<name>/summary``: the job's summary card, as the notebook shows it once a job ends."""

    name: str
    status: StepStatus
    html: str
    text: str
