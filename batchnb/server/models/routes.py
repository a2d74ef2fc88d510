"""The REST API's route table and its JSON Schema (``GET /batchnb/api/schema``), from which the
sidebar's TypeScript types are generated (``scripts/gen_wire_types.py``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ...schemas import BatchEndpointSpec, ModelBatchDeploymentSpec, ModelSpec, PipelineComponentBatchDeploymentSpec
from .base import ErrorResponse, WorkspaceInfo
from .compare import CompareRequest, Comparison
from .endpoints import (
    BatchDeployment,
    BatchEndpoint,
    DeploymentList,
    DryRunResult,
    EndpointList,
    EndpointPatch,
    InvokeRequest,
    PipelineDryRunResult,
)
from .job_views import (
    JobFailures,
    JobLogs,
    JobOutputs,
    JobPromotion,
    JobSummary,
    JobTimeline,
    OutputPreview,
    WorkerTimeline,
)
from .jobs import AnyJob, CreatePipelineJob, Job, JobList, JobOverview, PipelineJob, StepJob
from .registry import Component, ComponentList, Compute, ComputeList, Model, ModelList

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
