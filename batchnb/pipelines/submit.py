"""Submit a pipeline job: bind a resolved pipeline to values, record the job and its steps, start its runner.

Everything a step needs is decided here, before anything runs: each input's value (a literal, a
resolved data path, a pinned model folder, or the folder an upstream step will write), each
output's location, the command line with every ``${{...}}`` bound (see ``command``), the compute.
A missing required input, a literal of the wrong type, an output that would overwrite existing
files, a value the command cannot carry: each is refused now, naming the input or output, and
nothing is recorded.

The pipeline job is a row of kind ``pipeline``; each step is a child job of kind ``command``
(``parent`` = the pipeline job, ``step`` = the step's name), created ``NotStarted`` in the same
transaction, so ``job list --parent-job-name`` shows the whole graph at once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine import state
from ..engine.invoke import resolve_input
from ..engine.records import invoked_by_default, refuse_taken_names
from ..engine.tracking import capture_tracking_uri
from ..engine.tracking_store import job_tracking_uri, uses_mlflow
from ..errors import ConflictError, NotFoundError, ValidationError
from ..schemas import check_name
from ..specfile import is_asset_ref, is_url, parse_datastore_uri, resolve_local
from .command import render_command
from .resolve import coerce_literal
from .spec import LITERAL_TYPES, MODEL_TYPES

if TYPE_CHECKING:
    from ..client import BatchClient

NOT_STARTED = "NotStarted"
# Computes whose steps run on this machine. A Dask cluster (ssh, dask) runs mini-batches, not commands.
LOCAL_COMPUTE_TYPES = ("local", "amlcompute")


def _given_value(given: Any) -> tuple[Any, bool]:
    """A job-level input value as (value, present). Accepts a bare literal, ``{type, path}``,
    ``{type, default}`` / ``{type, value}`` (Azure's inputs.yml literal form) and ``{type}`` alone
    (a placeholder, as in Azure's pipeline-job.yml, to be filled with --set)."""
    if isinstance(given, dict):
        for key in ("path", "value", "default"):
            if given.get(key) is not None:
                return given[key], True
        return None, False
    return given, given is not None


class Submitter:
    """Creates pipeline jobs for one client."""

    def __init__(self, client: BatchClient) -> None:
        self._client = client

    def submit(
        self,
        graph: dict[str, Any],
        *,
        inputs: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        job_name: str | None = None,
        experiment_name: str | None = None,
        display_name: str | None = None,
        description: str | None = None,
        endpoint: str | None = None,
        deployment: str | None = None,
        base_dir: Path | None = None,
        invoked_by: str | None = None,
        source: str = "pipeline job",
        dry_run: bool = False,
        place_code: Callable[[], None] | None = None,
    ) -> Any:
        """Record the pipeline job and its steps and return the job's name (the caller starts its
        runner); with ``dry_run``, check and plan everything and return the plan, recording nothing.
        ``place_code`` copies the steps' code folders (see :meth:`Resolver.place_code`): called once
        everything is checked, before the job is recorded."""
        settings = dict(settings or {})
        name = check_name("job", job_name) if job_name else f"pipelinejob-{uuid.uuid4().hex[:12]}"
        given_in, given_out = dict(inputs or {}), dict(outputs or {})
        for kind, given in (("inputs", given_in), ("outputs", given_out)):
            unknown = set(given) - set(graph[kind])
            if unknown:
                raise ValidationError(
                    f"{source}: unknown {kind[:-1]}(s) {', '.join(sorted(unknown))}; the pipeline's {kind} are "
                    f"{', '.join(graph[kind]) or 'none'}",
                    field=kind,
                )
        root = self._datastore_root(settings.get("default_datastore"))
        values = {
            n: self._input_value(n, port, given_in.get(n), base_dir, source) for n, port in graph["inputs"].items()
        }
        outs = {
            n: self._output_place(n, port, given_out.get(n), root / "azureml" / name / n, base_dir, source)
            for n, port in graph["outputs"].items()
        }
        steps = self._plan_steps(name, graph, values, outs, settings, root, base_dir, source)
        if dry_run:
            return {
                "dry_run": True,
                "inputs": values,
                "outputs": outs,
                "steps": [
                    {
                        "name": s,
                        "needs": steps[s]["needs"],
                        "compute": steps[s]["compute"],
                        "command": steps[s]["command"],
                    }
                    for s in graph["order"]
                ],
            }
        names = [name, *(b["name"] for b in steps.values())]
        if place_code is not None:
            with self._client.store.read() as db:
                refuse_taken_names(db, names)  # before the copy; again as the job is recorded
            place_code()
        for body in steps.values():  # read in the code as copied, which exists only now
            body["mlflow_in_code"] = uses_mlflow(body["code_dir"], body["command_template"])
        ws = self._client.workspace
        spec = {
            "kind": "pipeline",
            "job_dir": str(ws.job_dir(name)),
            "display_name": display_name or graph.get("display_name") or graph.get("name") or name,
            "description": description or graph.get("description"),
            "experiment_name": experiment_name or endpoint or graph.get("name") or "Default",
            "component": {"name": graph.get("name"), "version": graph.get("version")},
            "graph": graph,
            "settings": settings,
            "inputs": values,
            "outputs": outs,
            "order": graph["order"],
            "steps": {s: {"job": body["name"], "needs": body["needs"]} for s, body in steps.items()},
            # Each step's MLflow run is a child of the pipeline's run in this store (pipelines/runs.py).
            "mlflow_tracking_uri": job_tracking_uri(
                capture_tracking_uri(), ws.root, any(body["mlflow_in_code"] for body in steps.values())
            ),
        }
        now = time.time()
        who = invoked_by or invoked_by_default()
        with self._client.store.write() as tx:
            refuse_taken_names(tx, names)
            tx.execute(
                "INSERT INTO jobs (name, kind, endpoint, deployment, status, spec, invoked_by, created_at, "
                "heartbeat_at) VALUES (?, 'pipeline', ?, ?, ?, ?, ?, ?, ?)",
                (name, endpoint, deployment, state.QUEUED, json.dumps(spec), who, now, now),
            )
            for step in graph["order"]:
                body = steps[step]
                tx.execute(
                    "INSERT INTO jobs (name, kind, endpoint, deployment, status, spec, invoked_by, created_at, "
                    "parent, step) VALUES (?, 'command', ?, ?, ?, ?, ?, ?, ?, ?)",
                    (body["name"], endpoint, deployment, NOT_STARTED, json.dumps(body), who, now, name, step),
                )
        for body in steps.values():  # the pipeline's own folder is made when its runner is started
            (Path(body["job_dir"]) / "logs" / "sys").mkdir(parents=True, exist_ok=True)
        return name

    # -- values ---------------------------------------------------------------------------------

    def _datastore_root(self, datastore: str | None) -> Path:
        if not datastore:
            return self._client.workspace.default_datastore_root
        # Azure's YAML (and azure-ai-ml) write it as azureml:<name>, as a compute is.
        root = str(self._client.datastores.get(datastore.removeprefix("azureml:"))["path"])
        if is_url(root):
            raise ValidationError(
                f"settings.default_datastore: datastore {datastore} is remote ({root}); pipeline steps write "
                "to local folders, so use a local datastore",
                field="settings.default_datastore",
            )
        return Path(root)

    def _input_value(self, name: str, port: dict[str, Any], given: Any, base_dir: Path | None, source: str) -> Any:
        where = f"inputs.{name}"
        value, present = _given_value(given)
        if not present:
            if port.get("default") is not None:
                value, base_dir = port["default"], None  # a default path was made absolute when resolved
            elif port.get("optional"):
                return {"type": port["type"], "value": None}
            else:
                hint = (
                    f"--set inputs.{name}=<value>"
                    if port["type"] in LITERAL_TYPES
                    else f"--set inputs.{name}.path=<path> (or inputs: in --file)"
                )
                raise ValidationError(
                    f"{source}: input {name} ({port['type']}) is required and has no default; give it with {hint}",
                    field=where,
                )
        if port["type"] in LITERAL_TYPES:
            return {"type": port["type"], "value": coerce_literal(value, port["type"], f"{source}: {where}")}
        return self.data_value(port["type"], str(value), base_dir, f"{source}: {where}")

    def data_value(self, type_: str, path: str, base_dir: Path | None, where: str) -> dict[str, Any]:
        """Resolve a data or model reference to a local path (models pinned to a version)."""
        if type_ in MODEL_TYPES:
            if is_asset_ref(path):
                try:
                    model = self._client.models.resolve(path)
                except NotFoundError as exc:
                    raise NotFoundError(f"{where}: {exc.message}") from None
                return {
                    "type": type_,
                    "path": model["path"],
                    "given": path,
                    "model": f"{model['name']}:{model['version']}",
                }
            local = resolve_local(path, base_dir, where)
            if not local.exists():
                raise ValidationError(f"{where}: model path {path!r} does not exist (resolved to {local})", field=where)
            return {"type": type_, "path": str(local), "given": path}
        # A URL is refused as remote before resolve_input would ask for its storage package.
        resolved = {"path": path} if is_url(path) else resolve_input(self._client, path, type_, base_dir, where=where)
        if is_url(resolved["path"]):
            raise ValidationError(
                f"{where}: {path!r} is remote; pipeline steps read local paths (register a local datastore)",
                field=where,
            )
        return {"type": resolved["type"], "path": resolved["path"], "given": path}

    def _output_place(
        self, name: str, port: dict[str, Any], given: Any, default: Path, base_dir: Path | None, source: str
    ) -> dict[str, Any]:
        path = given.get("path") if isinstance(given, dict) else given
        if path:
            resolved = self._client.datastores.resolve_uri(str(path)) if parse_datastore_uri(str(path)) else str(path)
            if is_url(resolved):
                raise ValidationError(
                    f"{source}: outputs.{name}: {path!r} is remote; pipeline outputs are written to local folders",
                    field=f"outputs.{name}",
                )
            target = resolve_local(resolved, base_dir, f"outputs.{name}")
        else:
            target = default
        if target.exists() and (target.is_file() or any(target.iterdir())):
            raise ConflictError(
                f"{source}: outputs.{name}: {target} already exists and is not empty; jobs never overwrite "
                "outputs, so choose another path"
            )
        return {"type": port.get("type", "uri_folder"), "path": str(target)}

    # -- steps ----------------------------------------------------------------------------------

    def _plan_steps(
        self,
        name: str,
        graph: dict[str, Any],
        values: dict[str, Any],
        outs: dict[str, Any],
        settings: dict[str, Any],
        root: Path,
        base_dir: Path | None,
        source: str,
    ) -> dict[str, dict[str, Any]]:
        ws = self._client.workspace
        planned: dict[str, dict[str, Any]] = {}
        for step in graph["order"]:
            body = graph["jobs"][step]
            component = body["component"]
            child = f"{name}-{step}"
            where = f"{source}: jobs.{step}"
            step_outs: dict[str, Any] = {}
            for out, port in component["outputs"].items():
                binding = body["outputs"].get(out, {})
                if "parent_output" in binding:
                    step_outs[out] = {"type": port["type"], "path": outs[binding["parent_output"]]["path"]}
                elif "path" in binding:
                    step_outs[out] = self._output_place(out, port, binding["path"], root, base_dir, where)
                else:
                    step_outs[out] = {"type": port["type"], "path": str(root / "azureml" / child / out)}
            step_ins: dict[str, Any] = {}
            for inp, port in component["inputs"].items():
                binding = body["inputs"].get(inp)
                if binding is None:
                    default = port.get("default")
                    step_ins[inp] = (
                        {"type": port["type"], "value": default}
                        if port["type"] in LITERAL_TYPES
                        else (
                            self.data_value(port["type"], str(default), None, f"{where}.inputs.{inp}")
                            if default is not None
                            else {"type": port["type"], "value": None}
                        )
                    )
                elif "parent_input" in binding:
                    step_ins[inp] = values[binding["parent_input"]]
                elif "step_output" in binding:
                    other, out = binding["step_output"]
                    step_ins[inp] = {**planned[other]["outputs"][out], "from": f"{other}.{out}"}
                elif "literal" in binding:
                    step_ins[inp] = {"type": port["type"], "value": binding["literal"]}
                else:
                    data = binding["data"]
                    step_ins[inp] = self.data_value(data["type"], data["path"], None, f"{where}.inputs.{inp}")
            compute = body.get("compute") or settings.get("default_compute") or "local"
            try:
                target = self._client.computes.resolve(compute)
            except NotFoundError as exc:
                raise NotFoundError(f"{where}: compute: {exc.message}") from None
            if target.get("type") not in LOCAL_COMPUTE_TYPES:
                raise ValidationError(
                    f"{where}: compute {compute} is {target.get('type')}; pipeline steps run on local or "
                    "amlcompute computes (a Dask cluster runs batch deployments' mini-batches)",
                    field=f"jobs.{step}.compute",
                )
            planned[step] = {
                "kind": "command",
                "name": child,
                "parent": name,
                "step": step,
                "job_dir": str(ws.job_dir(child)),
                "component": {k: component.get(k) for k in ("name", "version", "display_name")},
                "code_dir": component.get("code_dir"),
                "environment": component.get("environment"),
                "environment_build": self._environment_build(component.get("environment")),
                "environment_variables": {
                    **component.get("environment_variables", {}),
                    **body.get("environment_variables", {}),
                },
                "compute": target["name"],
                "inputs": step_ins,
                "outputs": step_outs,
                "needs": body["needs"],
                "timeout": body.get("timeout"),
                "command_template": component["command"],
                # shown, with the real values; the runner runs it with each value in an environment variable
                "command": render_command(component["command"], step_ins, step_outs, where).shown,
            }
        return planned

    def _environment_build(self, ref: Any) -> dict[str, Any] | None:
        """The build spec of a step's registered environment. One the workspace does not hold (an
        Azure curated environment) or an inline one runs the step in batchnb's own environment."""
        if not isinstance(ref, str) or not is_asset_ref(ref):
            return None
        try:
            return self._client.environments.resolve(ref).get("build_spec")  # type: ignore[no-any-return]
        except NotFoundError:
            return None


__all__ = ["NOT_STARTED", "Submitter"]
