"""Components and pipelines written as plain Python functions, for the notebook.

A function decorated with :func:`component` becomes a command component: its parameters annotated
with :class:`Input` / :class:`Output` are its data (and model) ports, parameters typed ``int``,
``float``, ``str`` or ``bool`` (or with such a default) are its literal inputs. The function is
serialized by value with cloudpickle (so a function defined in a notebook cell works, with the
globals it uses), and the component's command runs it in the step's process::

    @batchnb.component(name="prepare")
    def prepare(data: Input("uri_folder"), prepared: Output("uri_folder"), scale: float = 1.0):
        ...

A function decorated with :func:`pipeline` composes components: called while the pipeline is
being built, a component returns a step whose ``.outputs.<name>`` feed other steps; the function
returns the pipeline's outputs as a mapping::

    @batchnb.pipeline(name="heart_scoring")
    def heart_scoring(input_data: Input("uri_folder"), scale: float = 1.0):
        prep = prepare(data=input_data, scale=scale)
        scored = score(data=prep.outputs.prepared, model=Input("custom_model", path="azureml:weights@latest"))
        return {"scores": scored.outputs.scores}

Both register with ``client.components.create_or_update(fn)`` into the same kind of component as
Azure's YAML (they produce that YAML: ``fn.to_component_spec()``). Calling a pipeline function
outside a build returns a pipeline job to submit with ``client.jobs.create_or_update(...)``.
Calling a component outside a pipeline simply runs the function.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import shutil
import sys
import tempfile
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from .spec import LITERAL_TYPES, PORT_TYPES

_LITERALS = {bool: "boolean", int: "integer", float: "number", str: "string"}
PAYLOAD = "function.pkl"


class Input:
    """A data or model input (``Input("uri_folder")``), or a value for one (``Input(path=...)``)."""

    def __init__(
        self,
        type: str = "uri_folder",
        *,
        path: str | None = None,
        optional: bool = False,
        default: Any = None,
        description: str | None = None,
    ) -> None:
        if type not in PORT_TYPES:
            raise ValidationError(f"Input type {type!r} is not one of {', '.join(sorted(PORT_TYPES))}", field="type")
        self.type, self.path, self.optional, self.default, self.description = type, path, optional, default, description

    def port(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.optional:
            out["optional"] = True
        if self.default is not None:
            out["default"] = self.default
        if self.description:
            out["description"] = self.description
        return out

    def __repr__(self) -> str:
        return f"Input({self.type!r}" + (f", path={self.path!r})" if self.path else ")")


class Output:
    """A data or model output (``Output("uri_folder")``); the function receives the folder to write."""

    def __init__(self, type: str = "uri_folder", *, path: str | None = None, description: str | None = None) -> None:
        if type in LITERAL_TYPES or type not in PORT_TYPES:
            raise ValidationError(f"Output type {type!r} must be a data or model type", field="type")
        self.type, self.path, self.description = type, path, description

    def __repr__(self) -> str:
        return f"Output({self.type!r})"


# -- what a pipeline function sees while it is being built ---------------------------------------------


class _Binding:
    """A value known only when the pipeline runs: stands in for it while the graph is built."""

    def __init__(self, expression: str, type_: str) -> None:
        self.expression, self.type = expression, type_

    def __repr__(self) -> str:
        return self.expression

    def __str__(self) -> str:
        raise ValidationError(
            f"{self.expression} has no value while the pipeline is built: pass it to a component, "
            "do not compute with it in the pipeline function"
        )


class _Outputs:
    def __init__(self, step: str, ports: dict[str, Any]) -> None:
        self._step, self._ports = step, ports

    def __getattr__(self, name: str) -> _Binding:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._ports:
            raise ValidationError(
                f"step {self._step} has no output {name!r} (its outputs: {', '.join(self._ports) or 'none'})"
            )
        return _Binding(f"${{{{parent.jobs.{self._step}.outputs.{name}}}}}", self._ports[name]["type"])


class Step:
    """A component called inside a pipeline function."""

    def __init__(self, name: str, outputs: dict[str, Any]) -> None:
        self.name = name
        self.outputs = _Outputs(name, outputs)


class _Builder:
    stack: list[_Builder] = []

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}

    def add(self, component: Component, kwargs: dict[str, Any]) -> Step:
        spec = component.to_component_spec()
        name, n = component.name, 2
        while name in self.jobs:
            name, n = f"{component.name}_{n}", n + 1
        inputs: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in spec["inputs"]:
                have = ", ".join(spec["inputs"]) or "none"
                raise ValidationError(f"{component.name}() got an unexpected input {key!r} (its inputs: {have})")
            inputs[key] = _as_step_value(value)
        self.jobs[name] = {"type": "command", "component": spec, "inputs": inputs, "outputs": {}}
        return Step(name, spec["outputs"])


def _as_step_value(value: Any) -> Any:
    if isinstance(value, _Binding):
        return value.expression
    if isinstance(value, Input):
        return {"type": value.type, "path": value.path}
    if isinstance(value, Path):
        return str(value)
    return value


def _signature(func: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(func, eval_str=True)
    except NameError as exc:
        raise ValidationError(f"{func.__name__}: cannot read its annotations ({exc})") from None


def _unwrap_optional(ann: Any) -> tuple[Any, bool]:
    """``str | None`` / ``Optional[str]`` → (str, True); anything else → (ann, False)."""
    args = typing.get_args(ann)
    if typing.get_origin(ann) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else ann), True
    return ann, False


def _ports(func: Callable[..., Any], allow_outputs: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Inputs and outputs declared by a function's parameters."""
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for p in _signature(func).parameters.values():
        ann, default = p.annotation, p.default
        has_default = default is not inspect.Parameter.empty
        if isinstance(ann, Output):
            if not allow_outputs:
                raise ValidationError(f"{func.__name__}: a pipeline's outputs are what it returns, not parameters")
            outputs[p.name] = {"type": ann.type}
            continue
        if isinstance(ann, Input):
            port = ann.port()
            if has_default and default is None:
                port["optional"] = True
            elif has_default:
                port["default"] = str(default)
        else:
            ann, nullable = _unwrap_optional(ann)
            kind = _LITERALS.get(ann) if ann is not inspect.Parameter.empty else None
            if kind is None and has_default and default is not None:
                kind = _LITERALS.get(type(default))
            if kind is None:
                raise ValidationError(
                    f"{func.__name__}: parameter {p.name} has no type batchnb can map: annotate it with "
                    "Input(...), Output(...), int, float, str or bool",
                    field=p.name,
                )
            port = {"type": kind}
            if (has_default and default is None) or (nullable and not has_default):
                port["optional"] = True
            elif has_default:
                port["default"] = default
        inputs[p.name] = port
    return inputs, outputs


def _temp_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="batchnb-functions-"))
    atexit.register(shutil.rmtree, root, True)
    return root


_CODE_ROOT: Path | None = None


class Component:
    """A command component made from a Python function (see :func:`component`)."""

    def __init__(self, func: Callable[..., Any], **meta: Any) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.name = meta.pop("name", None) or func.__name__
        self.meta = meta
        self.inputs, self.outputs = _ports(func, allow_outputs=True)
        self._spec: dict[str, Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _Builder.stack:
            if args:
                raise ValidationError(f"{self.name}(): pass inputs by name inside a pipeline")
            return _Builder.stack[-1].add(self, kwargs)
        return self.func(*args, **kwargs)

    def to_component_spec(self) -> dict[str, Any]:
        """Azure's command component YAML (as a mapping) for this function."""
        if self._spec is None:
            self._spec = {
                "name": self.name,
                "type": "command",
                **{k: v for k, v in self.meta.items() if v is not None},
                "inputs": self.inputs,
                "outputs": self.outputs,
                "code": str(self._write_code()),
                "command": self._command(),
            }
        return dict(self._spec)

    def _command(self) -> str:
        parts = [f"python -m batchnb.pipelines.fnrun {PAYLOAD}"]
        for name, port in self.inputs.items():
            arg = f"--{name} ${{{{inputs.{name}}}}}"
            parts.append(f"$[[{arg}]]" if port.get("optional") and port.get("default") is None else arg)
        parts += [f"--{name} ${{{{outputs.{name}}}}}" for name in self.outputs]
        return " ".join(parts)

    def _write_code(self) -> Path:
        import cloudpickle

        global _CODE_ROOT
        _CODE_ROOT = _CODE_ROOT or _temp_root()
        folder = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=_CODE_ROOT))
        module = sys.modules.get(self.func.__module__)
        by_value = module is not None and module.__name__ != "__main__" and not _installed(module)
        if by_value:
            cloudpickle.register_pickle_by_value(module)
        try:
            payload = {"func": self.func, "inputs": self.inputs, "outputs": list(self.outputs)}
            (folder / PAYLOAD).write_bytes(cloudpickle.dumps(payload))
        finally:
            if by_value:
                cloudpickle.unregister_pickle_by_value(module)
        try:
            source = inspect.getsource(self.func)
        except (OSError, TypeError):
            source = f"# the source of {self.name} was not available\n"
        (folder / "source.py").write_text(source, encoding="utf-8")
        return folder


def _installed(module: Any) -> bool:
    """True for modules of installed packages (pickled by reference: importable in the step)."""
    path = getattr(module, "__file__", None) or ""
    return "site-packages" in path or "dist-packages" in path or path.startswith(sys.base_prefix)


def component(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    environment: str | None = None,
    environment_variables: dict[str, str] | None = None,
) -> Any:
    """Make a command component of a function (use as ``@component`` or ``@component(name=...)``)."""
    meta = {
        "name": name,
        "version": version,
        "display_name": display_name,
        "description": description,
        "environment": environment,
        "environment_variables": environment_variables,
    }
    if func is not None:
        return Component(func, **meta)
    return lambda f: Component(f, **meta)


class PipelineJobDraft:
    """A pipeline function called with values: submit it with ``client.jobs.create_or_update(draft)``."""

    def __init__(self, component_spec: dict[str, Any], inputs: dict[str, Any], settings: dict[str, Any]) -> None:
        self.component_spec = component_spec
        self.inputs = inputs
        self.outputs: dict[str, Any] = {}
        self.settings = settings

    def to_job_spec(self) -> dict[str, Any]:
        return {
            "type": "pipeline",
            "component": self.component_spec,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "settings": self.settings,
        }


class Pipeline:
    """A pipeline component made from a Python function (see :func:`pipeline`)."""

    def __init__(self, func: Callable[..., Any], **meta: Any) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.name = meta.pop("name", None) or func.__name__
        settings = {k: meta.pop(k, None) for k in ("default_compute", "continue_on_step_failure")}
        self.settings = {k: v for k, v in settings.items() if v is not None}
        self.meta = meta
        self.inputs, _ = _ports(func, allow_outputs=False)

    def to_component_spec(self) -> dict[str, Any]:
        """Azure's pipeline component YAML (as a mapping), built by calling the function."""
        if _Builder.stack:
            raise ValidationError(f"{self.name}: a pipeline inside a pipeline is not supported yet")
        builder = _Builder()
        _Builder.stack.append(builder)
        try:
            args = {n: _Binding(f"${{{{parent.inputs.{n}}}}}", p["type"]) for n, p in self.inputs.items()}
            returned = self.func(**args)
        finally:
            _Builder.stack.pop()
        if returned is None:
            returned = {}
        if not isinstance(returned, dict) or not all(isinstance(v, _Binding) for v in returned.values()):
            raise ValidationError(
                f"{self.name}: a pipeline function returns its outputs as a mapping of names to step outputs, "
                "e.g. {'scores': score_step.outputs.scores}"
            )
        outputs: dict[str, Any] = {}
        for out_name, binding in returned.items():
            outputs[out_name] = {"type": binding.type}
            step, _, rest = binding.expression.removeprefix("${{parent.jobs.").partition(".outputs.")
            builder.jobs[step]["outputs"][rest.removesuffix("}}")] = f"${{{{parent.outputs.{out_name}}}}}"
        if not builder.jobs:
            raise ValidationError(f"{self.name}: the pipeline function called no component")
        return {
            "name": self.name,
            "type": "pipeline",
            **{k: v for k, v in self.meta.items() if v is not None},
            "inputs": self.inputs,
            "outputs": outputs,
            "jobs": builder.jobs,
        }

    def __call__(self, *args: Any, **kwargs: Any) -> PipelineJobDraft:
        if _Builder.stack:
            raise ValidationError(f"{self.name}: a pipeline inside a pipeline is not supported yet")
        bound = _signature(self.func).bind_partial(*args, **kwargs)
        inputs = {k: _as_step_value(v) for k, v in bound.arguments.items()}
        return PipelineJobDraft(self.to_component_spec(), inputs, dict(self.settings))


def pipeline(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    default_compute: str | None = None,
    continue_on_step_failure: bool | None = None,
) -> Any:
    """Make a pipeline component of a function that calls components (``@pipeline`` or ``@pipeline(...)``)."""
    meta = {
        "name": name,
        "version": version,
        "display_name": display_name,
        "description": description,
        "default_compute": default_compute,
        "continue_on_step_failure": continue_on_step_failure,
    }
    if func is not None:
        return Pipeline(func, **meta)
    return lambda f: Pipeline(f, **meta)


__all__ = ["Component", "Input", "Output", "Pipeline", "PipelineJobDraft", "Step", "component", "pipeline"]
