"""The wire models of the REST API: request bodies (validated on every request) and responses (documented).

Request bodies are parsed with these models, so an unknown or mistyped key is a 400 that names it.
Spec bodies (``POST endpoints``, ``POST .../deployments``, ``POST models``) are Azure's YAML as
JSON and are validated by the core's own models (:mod:`batchnb.schemas`), which this package
re-exports for the schema.

Responses are the core's records passed through unchanged; the response models here describe them
for ``GET /batchnb/api/schema`` (from which the sidebar's TypeScript types are generated) and the
tests check real responses against them. They allow extra keys, so a field added by the core is
not an error, only undocumented until it is added here.

One module per area, every name re-exported here (``from batchnb.server import models``;
``models.Job``):

- :mod:`.base`: the request and response base classes, the job statuses, errors, the workspace
- :mod:`.endpoints`: endpoints, deployments, invoking them (and the dry run's answers)
- :mod:`.registry`: models, components, computes
- :mod:`.jobs`: batch, pipeline and step jobs and their listings
- :mod:`.job_views`: a job's logs, outputs, preview, promotion, timeline, failures, worker timeline, summary
- :mod:`.compare`: comparing two deployments
- :mod:`.routes`: the route table and :func:`api_schema`, the JSON Schema of all of the above
"""

from __future__ import annotations

from ...pipelines.spec import PipelineJobSpec
from ...schemas import (
    MAX_INSTANCE_COUNT,
    BatchEndpointSpec,
    DeploymentName,
    ModelBatchDeploymentSpec,
    ModelSpec,
    PipelineComponentBatchDeploymentSpec,
)
from .base import ErrorResponse, JobStatus, StepStatus, WorkspaceInfo
from .compare import (
    ColumnAgreement,
    CompareRequest,
    Comparison,
    ComparisonThroughput,
    DifferenceHistogram,
    Disagreement,
    LabelPair,
)
from .endpoints import (
    BatchDeployment,
    BatchEndpoint,
    BatchEndpointDefaults,
    DeploymentList,
    DryRunResult,
    EndpointDefaultsPatch,
    EndpointList,
    EndpointPatch,
    InputRef,
    InputType,
    InvokeRequest,
    OutputRef,
    PipelineDryRunResult,
)
from .job_views import (
    FailedItem,
    JobFailures,
    JobLogs,
    JobOutputs,
    JobPromotion,
    JobSummary,
    JobTimeline,
    LogTail,
    OutputFile,
    OutputPreview,
    TimelinePoint,
    WorkerAttempt,
    WorkerTimeline,
)
from .jobs import (
    AnyJob,
    AnyJobItem,
    ComponentRef,
    CreatePipelineJob,
    ItemCounts,
    Job,
    JobGroup,
    JobInput,
    JobLineage,
    JobList,
    JobOutput,
    JobOverview,
    JobProgress,
    JobReuse,
    JobStep,
    MiniBatchCounts,
    PipelineInput,
    PipelineJob,
    PipelineJobProgress,
    PipelineOutput,
    StepCounts,
    StepJob,
    StepJobProgress,
)
from .registry import Component, ComponentList, Compute, ComputeList, Model, ModelList
from .routes import REQUEST_MODELS, RESPONSE_MODELS, ROUTES, api_schema

__all__ = [
    "MAX_INSTANCE_COUNT",
    "REQUEST_MODELS",
    "RESPONSE_MODELS",
    "ROUTES",
    "AnyJob",
    "AnyJobItem",
    "BatchDeployment",
    "BatchEndpoint",
    "BatchEndpointDefaults",
    "BatchEndpointSpec",
    "ColumnAgreement",
    "CompareRequest",
    "Comparison",
    "ComparisonThroughput",
    "Component",
    "ComponentList",
    "ComponentRef",
    "Compute",
    "ComputeList",
    "CreatePipelineJob",
    "DeploymentList",
    "DeploymentName",
    "DifferenceHistogram",
    "Disagreement",
    "DryRunResult",
    "EndpointDefaultsPatch",
    "EndpointList",
    "EndpointPatch",
    "ErrorResponse",
    "FailedItem",
    "InputRef",
    "InputType",
    "InvokeRequest",
    "ItemCounts",
    "Job",
    "JobFailures",
    "JobGroup",
    "JobInput",
    "JobLineage",
    "JobList",
    "JobLogs",
    "JobOutput",
    "JobOutputs",
    "JobOverview",
    "JobProgress",
    "JobPromotion",
    "JobReuse",
    "JobStatus",
    "JobStep",
    "JobSummary",
    "JobTimeline",
    "LabelPair",
    "LogTail",
    "MiniBatchCounts",
    "Model",
    "ModelBatchDeploymentSpec",
    "ModelList",
    "ModelSpec",
    "OutputFile",
    "OutputPreview",
    "OutputRef",
    "PipelineComponentBatchDeploymentSpec",
    "PipelineDryRunResult",
    "PipelineInput",
    "PipelineJob",
    "PipelineJobProgress",
    "PipelineJobSpec",
    "PipelineOutput",
    "StepCounts",
    "StepJob",
    "StepJobProgress",
    "StepStatus",
    "TimelinePoint",
    "WorkerAttempt",
    "WorkerTimeline",
    "WorkspaceInfo",
    "api_schema",
]
