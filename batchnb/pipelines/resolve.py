"""Turn component and pipeline YAML (files, ``azureml:`` references, inline mappings) into self-contained records.

A *resolved command component* is what a step runs::

    {type: command, name, version, display_name, description, command, code_dir (a content-addressed
     snapshot, or None), environment, environment_variables, inputs: {name: port}, outputs: {name: port}}

A *resolved pipeline* (a registered pipeline component, a pipeline job's graph, a pipeline
deployment's component) holds its steps with their components inlined and pinned, so a later
``component create`` of a new version never changes a registered pipeline or a deployment::

    {type: pipeline, name, version, ..., inputs, outputs,
     jobs: {step: {component: <resolved command>, inputs: {name: binding}, outputs: {name: binding},
                   compute, environment_variables}},
     order: [steps, dependencies first]}

Input bindings are ``{"parent_input": x}``, ``{"step_output": [step, y]}``, ``{"literal": v}`` or
``{"data": {"type": t, "path": p}}`` (``p`` an absolute local path, a URI or an ``azureml:``
reference, resolved when a job is submitted); output bindings are ``{"parent_output": z}``,
``{"path": p}`` or ``{}`` (the default location). Every check that can be made without data is
made here, so a mistake is reported at ``component create`` or ``job create``, naming the file,
step and field, before anything runs.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError, ValidationError
from ..registry.code import Snapshot, plan_snapshot
from ..schemas import validate_spec
from ..specfile import is_asset_ref, is_url, load_yaml, parse_datastore_uri, resolve_local
from .spec import (
    LITERAL_TYPES,
    OPTIONAL_GROUP,
    CommandComponentSpec,
    PipelineComponentSpec,
    PipelineStep,
    command_refs,
    parent_ref,
)

if TYPE_CHECKING:
    from ..client import BatchClient


def coerce_literal(value: Any, type_: str, where: str) -> Any:
    """Check and convert a literal input's value to its declared type (``--set`` gives strings)."""
    try:
        if type_ == "integer":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if type_ == "number":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if type_ == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "false"):
                return text == "true"
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: {value!r} is not a valid {type_}", field=where) from None
    if isinstance(value, dict | list):
        raise ValidationError(f"{where}: expected a string, got a {type(value).__name__}", field=where)
    return str(value)


def _absolute(path: str, base_dir: Path | None, field: str) -> str:
    """A local path made absolute against the YAML's folder; references and URIs as they are."""
    if is_asset_ref(path) or is_url(path) or parse_datastore_uri(path) is not None:
        return path
    return str(resolve_local(path.removeprefix("file://"), base_dir, field))


class Resolver:
    """Resolves components for one client (its registry and code store)."""

    def __init__(self, client: BatchClient) -> None:
        self._client = client
        self._snapshots: list[Snapshot] = []

    def place_code(self) -> None:
        """Copy the code folders of the components resolved so far into the workspace. The caller
        calls it once nothing is left to refuse: a refused component or job leaves no copy behind."""
        for snapshot in self._snapshots:
            snapshot.place()

    # -- components -----------------------------------------------------------------------------

    def load(self, ref: str | dict[str, Any], base_dir: Path | None, where: str) -> dict[str, Any]:
        """Resolve a ``component:`` value: an ``azureml:`` reference, a YAML file, or an inline mapping."""
        if isinstance(ref, dict):
            data = dict(ref)
            return self.resolve(data, base_dir, where)
        if is_asset_ref(ref):
            try:
                record = self._client.components.resolve(ref)
            except NotFoundError as exc:
                raise NotFoundError(f"{where}: {exc.message}") from None
            resolved = copy.deepcopy(dict(record))
            resolved.pop("id", None)
            return resolved
        path = resolve_local(ref, base_dir, where)
        if not path.is_file():
            raise ValidationError(f"{where}: component file {ref!r} does not exist (resolved to {path})", field=where)
        data, folder = load_yaml(path)
        return self.resolve(data, folder, str(path.name))

    def resolve(self, data: dict[str, Any], base_dir: Path | None, source: str) -> dict[str, Any]:
        """Resolve a component mapping of either type."""
        kind = data.get("type", "command")
        if kind == "command":
            return self.command(data, base_dir, source)
        if kind == "pipeline":
            return self.pipeline(data, base_dir, source)
        raise ValidationError(f"{source}: component type {kind!r} is not supported (command or pipeline)", field="type")

    def command(self, data: dict[str, Any], base_dir: Path | None, source: str) -> dict[str, Any]:
        spec: CommandComponentSpec = validate_spec(CommandComponentSpec, data, source)
        command = " ".join(spec.command.split()) if "\n" in spec.command else spec.command.strip()
        # Every ${{...}} must name a declared port; optional inputs only inside $[[ ]].
        declared = {"inputs": spec.inputs, "outputs": spec.outputs}
        for kind, name in command_refs(command):
            if name not in declared[kind]:
                have = ", ".join(declared[kind]) or "none"
                raise ValidationError(
                    f"{source}: command uses ${{{{{kind}.{name}}}}}, but the component's {kind} are: {have}",
                    field="command",
                )
        outside = OPTIONAL_GROUP.sub("", command)
        for kind, name in command_refs(outside):
            port = declared[kind][name]
            if kind == "inputs" and port.optional and port.default is None:
                raise ValidationError(
                    f"{source}: input {name} is optional, so the command must use it inside $[[ ... ]] "
                    "(dropped when the input is not given)",
                    field="command",
                )
        code_dir = None
        if spec.code is not None:
            folder = resolve_local(spec.code, base_dir, f"{source}: code")
            if not folder.is_dir():
                raise ValidationError(
                    f"{source}: code folder {spec.code!r} does not exist (resolved to {folder})", field="code"
                )
            snapshot = plan_snapshot(folder, self._client.workspace.code_dir, f"{source}: code")
            self._snapshots.append(snapshot)
            code_dir = str(snapshot.path)
        record = spec.model_dump(mode="json", exclude_none=True, by_alias=False)
        record.pop("schema_url", None)
        record.pop("code", None)
        record.update(
            command=command,
            code_dir=code_dir,
            version=None if spec.version is None else str(spec.version),
            inputs={n: p.model_dump(mode="json", exclude_none=True) for n, p in spec.inputs.items()},
            outputs={n: p.model_dump(mode="json", exclude_none=True) for n, p in spec.outputs.items()},
        )
        for name, port in record["inputs"].items():
            if port.get("default") is not None and port["type"] in LITERAL_TYPES:
                port["default"] = coerce_literal(port["default"], port["type"], f"{source}: inputs.{name}.default")
        return record

    def pipeline(self, data: dict[str, Any], base_dir: Path | None, source: str) -> dict[str, Any]:
        spec: PipelineComponentSpec = validate_spec(PipelineComponentSpec, data, source)
        record = spec.model_dump(mode="json", exclude_none=True)
        record.pop("schema_url", None)
        record["version"] = None if spec.version is None else str(spec.version)
        record["inputs"] = {n: p.model_dump(mode="json", exclude_none=True) for n, p in spec.inputs.items()}
        record["outputs"] = {n: p.model_dump(mode="json", exclude_none=True) for n, p in spec.outputs.items()}
        for name, port in record["inputs"].items():
            if port.get("default") is not None:
                port["default"] = (
                    coerce_literal(port["default"], port["type"], f"{source}: inputs.{name}.default")
                    if port["type"] in LITERAL_TYPES
                    else _absolute(str(port["default"]), base_dir, f"{source}: inputs.{name}.default")
                )
        record["jobs"] = {step: self._step(step, body, record, base_dir, source) for step, body in spec.jobs.items()}
        self._check_outputs_bound(record, source)
        record["order"] = _order(record["jobs"], source)
        return record

    # -- steps ----------------------------------------------------------------------------------

    def _step(
        self, step: str, body: PipelineStep, parent: dict[str, Any], base_dir: Path | None, source: str
    ) -> dict[str, Any]:
        where = f"{source}: jobs.{step}"
        if body.type == "pipeline":
            raise ValidationError(
                f"{where}: a pipeline step (type: pipeline) inside a pipeline is not supported yet; "
                "inline its steps in this pipeline",
                field=f"jobs.{step}.type",
            )
        component = self.load(body.component, base_dir, f"{where}.component")
        if component.get("type") != "command":
            raise ValidationError(
                f"{where}.component: a step of type command needs a command component, got {component.get('type')}",
                field=f"jobs.{step}.component",
            )
        inputs: dict[str, Any] = {}
        for name, value in body.inputs.items():
            port = component["inputs"].get(name)
            if port is None:
                have = ", ".join(component["inputs"]) or "none"
                raise ValidationError(
                    f"{where}.inputs.{name}: the component has no input {name} (its inputs: {have})",
                    field=f"jobs.{step}.inputs.{name}",
                )
            inputs[name] = self._input_binding(value, port, parent, f"{where}.inputs.{name}", base_dir)
        for name, port in component["inputs"].items():
            if name not in inputs and not port.get("optional") and port.get("default") is None:
                raise ValidationError(
                    f"{where}: input {name} ({port['type']}) is required by the component but not bound",
                    field=f"jobs.{step}.inputs.{name}",
                )
        outputs: dict[str, Any] = {}
        for name, value in body.outputs.items():
            if name not in component["outputs"]:
                have = ", ".join(component["outputs"]) or "none"
                raise ValidationError(
                    f"{where}.outputs.{name}: the component has no output {name} (its outputs: {have})",
                    field=f"jobs.{step}.outputs.{name}",
                )
            outputs[name] = self._output_binding(value, parent, f"{where}.outputs.{name}", base_dir)
        return {
            "component": component,
            "inputs": inputs,
            "outputs": outputs,
            "compute": body.compute,
            "environment_variables": dict(body.environment_variables),
            "display_name": body.display_name,
            "timeout": body.limits.timeout,
        }

    def _input_binding(
        self, value: Any, port: dict[str, Any], parent: dict[str, Any], where: str, base_dir: Path | None
    ) -> dict[str, Any]:
        if isinstance(value, dict) and set(value) <= {"path", "type", "mode"} and "path" in value:
            inner = value["path"]
            if parent_ref(inner) is None:
                path = _absolute(str(inner), base_dir, where)
                return {"data": {"type": value.get("type", port["type"]), "path": path}}
            value = inner
        ref = parent_ref(value)
        if ref is None:
            if isinstance(value, str) and "${{" in value:
                raise ValidationError(
                    f"{where}: {value!r} is not a binding batchnb understands; use ${{{{parent.inputs.<name>}}}} "
                    "or ${{parent.jobs.<step>.outputs.<name>}}",
                    field=where,
                )
            if port["type"] in LITERAL_TYPES:
                return {"literal": coerce_literal(value, port["type"], where)}
            return {"data": {"type": port["type"], "path": _absolute(str(value), base_dir, where)}}
        kind, name, output = ref
        if kind == "inputs":
            if name not in parent["inputs"]:
                have = ", ".join(parent["inputs"]) or "none"
                raise ValidationError(
                    f"{where}: ${{{{parent.inputs.{name}}}}} names no input of the pipeline (its inputs: {have})",
                    field=where,
                )
            return {"parent_input": name}
        if kind == "jobs":
            if name not in parent["jobs"]:
                raise ValidationError(f"{where}: step {name} does not exist in this pipeline", field=where)
            return {"step_output": [name, output]}
        raise ValidationError(f"{where}: an input cannot bind to the pipeline's outputs", field=where)

    def _output_binding(self, value: Any, parent: dict[str, Any], where: str, base_dir: Path | None) -> dict[str, Any]:
        if isinstance(value, dict):
            value = value.get("path")
        if value in (None, ""):
            return {}
        ref = parent_ref(value)
        if ref is None:
            return {"path": _absolute(str(value), base_dir, where)}
        kind, name, _ = ref
        if kind != "outputs":
            raise ValidationError(
                f"{where}: a step output binds only to ${{{{parent.outputs.<name>}}}} or a path", field=where
            )
        if name not in parent["outputs"]:
            have = ", ".join(parent["outputs"]) or "none"
            raise ValidationError(
                f"{where}: ${{{{parent.outputs.{name}}}}} names no output of the pipeline (its outputs: {have})",
                field=where,
            )
        return {"parent_output": name}

    @staticmethod
    def _check_outputs_bound(record: dict[str, Any], source: str) -> None:
        producers: dict[str, list[str]] = {name: [] for name in record["outputs"]}
        for step, body in record["jobs"].items():
            for out, binding in body["outputs"].items():
                if "parent_output" in binding:
                    producers[binding["parent_output"]].append(f"{step}.{out}")
            # Step-output references must name a declared output of that step.
            for name, binding in body["inputs"].items():
                if "step_output" in binding:
                    other, out = binding["step_output"]
                    declared = record["jobs"][other]["component"]["outputs"]
                    if out not in declared:
                        raise ValidationError(
                            f"{source}: jobs.{step}.inputs.{name}: step {other} has no output {out} "
                            f"(its outputs: {', '.join(declared) or 'none'})",
                            field=f"jobs.{step}.inputs.{name}",
                        )
        for name, steps in producers.items():
            if not steps:
                raise ValidationError(
                    f"{source}: pipeline output {name} is not produced by any step "
                    f"(bind a step output to ${{{{parent.outputs.{name}}}}})",
                    field=f"outputs.{name}",
                )
            if len(steps) > 1:
                raise ValidationError(
                    f"{source}: pipeline output {name} is bound by more than one step output: {', '.join(steps)}",
                    field=f"outputs.{name}",
                )


def _order(jobs: dict[str, Any], source: str) -> list[str]:
    """Steps in dependency order (Kahn's algorithm, ties in declaration order); refuse a cycle."""
    needs = {
        step: sorted({b["step_output"][0] for b in body["inputs"].values() if "step_output" in b})
        for step, body in jobs.items()
    }
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(jobs):
        ready = [s for s in jobs if s not in done and all(n in done for n in needs[s])]
        if not ready:
            stuck = [s for s in jobs if s not in done]
            raise ValidationError(
                f"{source}: the steps {', '.join(stuck)} depend on each other in a cycle", field="jobs"
            )
        for step in ready:
            order.append(step)
            done.add(step)
    for step, body in jobs.items():
        body["needs"] = needs[step]
    return order


__all__ = ["Resolver", "coerce_literal"]
