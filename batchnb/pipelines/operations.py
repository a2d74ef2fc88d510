"""Pipeline jobs as the job API sees them: create (``job create -f``), invoke a pipeline deployment,
show a pipeline or step job, and find a named output. :mod:`batchnb.jobs` calls in here for
every job whose kind is not ``batch``."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine import state
from ..errors import InvalidStateError, NotFoundError, ValidationError
from ..schemas import validate_spec
from ..specfile import apply_set, parse_asset_ref, parse_set
from .resolve import Resolver
from .spec import LITERAL_TYPES, PipelineJobSettings, PipelineJobSpec
from .submit import NOT_STARTED, Submitter

if TYPE_CHECKING:
    from ..client import BatchClient
    from ..store import Store


def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _declare(values: dict[str, Any], outputs: bool) -> dict[str, Any]:
    """Declarations for a pipeline job written with ``jobs:`` inline (its inputs are its values)."""
    ports = {}
    for name, value in values.items():
        if isinstance(value, dict):
            ports[name] = {"type": value.get("type", "uri_folder")}
        elif outputs:
            ports[name] = {"type": "uri_folder"}
        else:
            ports[name] = {"type": _literal_type(value)}
    return ports


def create_job(
    client: BatchClient,
    spec: dict[str, Any],
    *,
    base_dir: Path | None = None,
    set_values: list[str] | None = None,
    name: str | None = None,
    experiment_name: str | None = None,
    invoked_by: str | None = None,
    source: str = "pipeline job",
) -> str:
    """Submit a pipeline job from Azure's ``pipelineJob`` YAML (already loaded); return its name."""
    data = apply_set(spec, parse_set(set_values))
    job: PipelineJobSpec = validate_spec(PipelineJobSpec, data, source)
    resolver = Resolver(client)
    if job.component is not None:
        graph = resolver.load(job.component, base_dir, f"{source}: component")
        if graph.get("type") != "pipeline":
            raise ValidationError(
                f"{source}: component: a pipeline job runs a pipeline component, got a {graph.get('type')} component",
                field="component",
            )
    else:
        component = {
            "type": "pipeline",
            "inputs": _declare(job.inputs, outputs=False),
            "outputs": _declare(job.outputs, outputs=True),
            "jobs": {k: v.model_dump(mode="json", exclude_none=True) for k, v in (job.jobs or {}).items()},
        }
        graph = resolver.pipeline(component, base_dir, source)
    settings = job.settings.model_dump(mode="json", exclude_none=True)
    if job.compute and not settings.get("default_compute"):
        settings["default_compute"] = job.compute
    return Submitter(client).submit(
        graph,
        inputs=job.inputs,
        outputs=job.outputs,
        settings=settings,
        job_name=name or job.name,
        experiment_name=experiment_name or job.experiment_name,
        display_name=job.display_name,
        description=job.description,
        base_dir=base_dir,
        invoked_by=invoked_by,
        source=source,
        place_code=resolver.place_code,
    )


def invoke_deployment(
    client: BatchClient,
    endpoint: str,
    deployment: dict[str, Any],
    *,
    input: Any = None,
    input_type: str | None = None,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    output_path: str | None = None,
    set_values: list[str] | None = None,
    job_name: str | None = None,
    experiment_name: str | None = None,
    base_dir: Path | None = None,
    invoked_by: str | None = None,
    dry_run: bool = False,
    refused: dict[str, Any] | None = None,
) -> str | dict[str, Any]:
    """Start a job of a pipeline deployment (``batch-endpoint invoke --file inputs.yml``); return its
    name, or with ``dry_run`` the plan (every step's command and paths) without running anything."""
    for flag, value in (refused or {}).items():
        if value is not None:
            raise ValidationError(
                f"{flag} applies to model deployments; deployment {deployment['name']} is a pipeline "
                "deployment, whose per-job settings are its inputs, outputs and experiment name",
                field=flag.lstrip("-").replace("-", "_"),
            )
    graph = deployment["resolved"]["component"]
    given_in = dict(inputs or {})
    given_out = dict(outputs or {})
    # az's --set inputs.x.path=... / outputs.y.path=...; any other key is not per-job for a pipeline.
    for key, value in parse_set(set_values):
        head, _, rest = key.partition(".")
        if head in ("inputs", "outputs") and rest:
            target = given_in if head == "inputs" else given_out
            port, _, field = rest.partition(".")
            if field:
                entry = target.get(port)
                entry = dict(entry) if isinstance(entry, dict) else {}
                target[port] = apply_set(entry, [(field, value)])
            else:
                target[port] = value
        else:
            raise ValidationError(
                f"--set {key}: a pipeline deployment's jobs take inputs.<name>... and outputs.<name>... only",
                field=key,
            )
    data_inputs = [n for n, p in graph["inputs"].items() if p["type"] not in LITERAL_TYPES]
    if input is not None:
        if len(data_inputs) != 1:
            raise ValidationError(
                f"--input names one input, but the pipeline has {len(data_inputs)} data inputs "
                f"({', '.join(data_inputs) or 'none'}); give them with --file inputs.yml "
                "or --set inputs.<name>.path=...",
                field="input",
            )
        given_in[data_inputs[0]] = {"type": input_type, "path": input} if isinstance(input, str) else input
    if output_path is not None:
        if len(graph["outputs"]) != 1:
            raise ValidationError(
                "--output-path names one output, but the pipeline has "
                f"{len(graph['outputs'])}; use outputs.<name>.path in --file or --set",
                field="output_path",
            )
        given_out[next(iter(graph["outputs"]))] = {"path": output_path}
    settings = dict(deployment.get("settings") or {})
    settings = validate_spec(PipelineJobSettings, settings, "settings").model_dump(mode="json", exclude_none=True)
    return Submitter(client).submit(
        graph,
        inputs=given_in,
        outputs=given_out,
        settings=settings,
        job_name=job_name,
        experiment_name=experiment_name or endpoint,
        endpoint=endpoint,
        deployment=deployment["name"],
        base_dir=base_dir,
        invoked_by=invoked_by,
        source=f"deployment {deployment['name']}",
        dry_run=dry_run,
    )


def graph_from_job(client: BatchClient, ref: str, where: str) -> dict[str, Any]:
    """``job_definition: azureml:<job>``: the pipeline a finished job ran, as a component whose
    inputs default to the values that job was given (Azure builds the component from the job)."""
    name = parse_asset_ref(ref).name if ref.startswith("azureml:") else ref
    with client.store.read() as db:
        row = db.execute("SELECT kind, spec FROM jobs WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFoundError(f"{where}: job {name} does not exist in this workspace")
    if row["kind"] != "pipeline":
        raise ValidationError(
            f"{where}: job {name} is a {row['kind']} job; a deployment needs a pipeline job", field=where
        )
    spec = json.loads(row["spec"])
    graph = copy.deepcopy(spec["graph"])
    for port_name, value in spec["inputs"].items():
        port = graph["inputs"][port_name]
        default = value.get("value") if port["type"] in LITERAL_TYPES else value.get("path")
        if default is not None:
            port["default"] = default
    graph["name"] = graph.get("name") or f"{name}-component"
    graph["created_from_job"] = name
    return graph


# -- views -------------------------------------------------------------------------------------


# Step statuses that a pipeline's end leaves nothing to happen to: shown Canceled once it has ended.
UNSETTLED = (NOT_STARTED, state.RUNNING, state.INTERRUPTED)


def job_record(store: Store, row: Any, metrics: bool = False) -> dict[str, Any]:
    """A pipeline job (with its steps) or a step job, as the job API shows it; with ``metrics``,
    each one's metrics from its MLflow run (see :meth:`batchnb.jobs.JobOperations.get`)."""
    from ..engine.records import job_header, run_metrics

    moved = state.check_interrupted(store, row) != row["status"]
    with store.read() as db:
        if moved:
            row = db.execute("SELECT * FROM jobs WHERE name = ?", (row["name"],)).fetchone()
        children = (
            db.execute("SELECT * FROM jobs WHERE parent = ?", (row["name"],)).fetchall()
            if row["kind"] == "pipeline"
            else []
        )
    changed = any(state.check_interrupted(store, c) != c["status"] for c in children)  # a lost runner's steps
    if row["status"] in state.TERMINAL and any(c["status"] in UNSETTLED for c in children):
        # The pipeline ended without its runner settling them (canceled while queued or interrupted).
        why = f"not run: the pipeline job ended {row['status']}"
        with store.write() as tx:
            tx.execute(
                f"UPDATE jobs SET status = ?, error = ?, ended_at = COALESCE(ended_at, ?) "
                f"WHERE parent = ? AND status IN ({', '.join('?' * len(UNSETTLED))})",
                (state.CANCELED, why, time.time(), row["name"], *UNSETTLED),
            )
        changed = True
    if changed:
        with store.read() as db:
            children = db.execute("SELECT * FROM jobs WHERE parent = ?", (row["name"],)).fetchall()
    spec = json.loads(row["spec"])
    started, ended = row["started_at"], row["ended_at"]
    elapsed = ((ended or time.time()) - started) if started else 0.0
    record: dict[str, Any] = {
        **job_header(row, spec),
        "display_name": spec.get("display_name") or spec.get("step"),
        "inputs": {n: _shown(v) for n, v in spec["inputs"].items()},
        "outputs": {n: {"type": o["type"], "path": o["path"]} for n, o in spec["outputs"].items()},
        "job_dir": spec["job_dir"],
        "logs_dir": str(Path(spec["job_dir"]) / "logs"),
    }
    if row["kind"] == "pipeline":
        by_step = {c["step"]: c for c in children}
        steps = [
            {
                "name": step,
                "job_name": by_step[step]["name"],
                "status": by_step[step]["status"],
                "needs": spec["steps"][step]["needs"],
                "duration_s": round((by_step[step]["ended_at"] or time.time()) - by_step[step]["started_at"], 3)
                if by_step[step]["started_at"]
                else None,
                "error": by_step[step]["error"],
            }
            for step in spec["order"]
            if step in by_step
        ]
        if metrics:
            for entry in steps:
                entry["metrics"] = run_metrics(json.loads(by_step[entry["name"]]["spec"]))
        counts = {
            s: sum(1 for x in steps if x["status"] == s)
            for s in (NOT_STARTED, state.RUNNING, state.COMPLETED, state.FAILED, state.CANCELED)
        }
        record.update(
            settings=spec["settings"],
            component=spec.get("component"),
            steps=steps,
            progress={
                "steps": {
                    "total": len(steps),
                    "completed": counts[state.COMPLETED],
                    "running": counts[state.RUNNING],
                    "failed": counts[state.FAILED],
                    "canceled": counts[state.CANCELED],
                    "not_started": counts[NOT_STARTED],
                },
                "elapsed_s": round(elapsed, 3),
            },
        )
    else:
        record.update(
            parent_job_name=row["parent"],
            step=row["step"],
            component=spec["component"],
            command=spec["command"],
            compute=spec["compute"],
            needs=spec["needs"],
            progress={"elapsed_s": round(elapsed, 3)},
            std_log=str(Path(spec["job_dir"]) / "logs" / "user_logs" / "std_log.txt"),
        )
    if metrics:
        record["metrics"] = run_metrics(spec)
    return record


def _shown(value: dict[str, Any]) -> dict[str, Any]:
    if "path" in value:
        return {"type": value["type"], "path": value.get("given", value["path"]), "resolved": value["path"]}
    return {"type": value["type"], "value": value.get("value")}


def output_location(job: dict[str, Any], output_name: str) -> str:
    """The folder (or file) of one named output of a pipeline or step job, once it is complete."""
    outputs = job["outputs"]
    if output_name not in outputs:
        raise ValidationError(
            f"job {job['name']} has no output {output_name!r}; its outputs are: {', '.join(outputs) or 'none'}",
            field="output_name",
        )
    if job["type"] == "pipeline" and job["status"] != state.COMPLETED:
        producer = next(
            (s for s in job["steps"] if s["status"] == state.COMPLETED and _produces(job, s["name"], output_name)),
            None,
        )
        if producer is None:
            raise InvalidStateError(
                f"job {job['name']} is {job['status']} and the step that writes {output_name} has not completed"
            )
    elif job["type"] == "command" and job["status"] != state.COMPLETED:
        raise InvalidStateError(f"job {job['name']} is {job['status']}; its outputs are complete only once Completed")
    return str(outputs[output_name]["path"])


def _produces(job: dict[str, Any], step: str, output_name: str) -> bool:
    path = job["outputs"][output_name]["path"]
    return any(o for o in _step_outputs(job, step) if o == path)


def _step_outputs(job: dict[str, Any], step: str) -> list[str]:
    ops = job._ops()  # type: ignore[attr-defined]
    child = next(s["job_name"] for s in job["steps"] if s["name"] == step)
    return [o["path"] for o in ops._peek(child)["outputs"].values()]


__all__ = ["create_job", "graph_from_job", "invoke_deployment", "job_record", "output_location"]
