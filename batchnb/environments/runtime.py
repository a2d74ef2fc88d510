"""Which Python runs a deployment's code, and what its build holds (``environment show``).

:func:`interpreter_for` is the one call the engine makes: given a job's spec (or an environment,
or a :class:`BuildSpec`), it returns the python executable of the built environment, building it
first if it is missing, or None when the code runs in batchnb's own interpreter (no environment,
an image-only environment, or one whose every package batchnb's environment already has).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .build import Progress, build, plan
from .spec import BuildSpec, from_mlflow_model

ENVS = "envs"


def envs_dir(workspace_root: str | Path) -> Path:
    """The workspace's folder of builds, one sub-folder per build hash."""
    return Path(workspace_root) / ENVS


def as_spec(spec_or_env: Mapping[str, Any] | BuildSpec | None) -> BuildSpec | None:
    """The build spec of a job's spec (``environment_build``), an environment version
    (``build_spec``) or the spec itself; None when there is nothing to build."""
    if spec_or_env is None or isinstance(spec_or_env, BuildSpec):
        return spec_or_env
    stored = spec_or_env.get("environment_build", spec_or_env.get("build_spec"))
    if not stored:
        return None
    return BuildSpec(
        tuple(stored["requirements"]), stored.get("python"), tuple(stored.get("notes") or ()), stored.get("source", "")
    )


def to_record(spec: BuildSpec | None) -> dict[str, Any] | None:
    """A build spec as JSON-ready data (stored with an environment version and a job)."""
    return None if spec is None else dataclasses.asdict(spec)


def interpreter_for(
    spec_or_env: Mapping[str, Any] | BuildSpec | None,
    workspace_root: str | Path,
    progress: Progress | None = None,
) -> str | None:
    """The python executable that runs this code, built (once, then cached) if needed.

    Args:
        spec_or_env: A job's spec (as recorded at invoke), an environment version, or a
            :class:`BuildSpec`.
        workspace_root: The workspace whose ``envs/`` folder holds the builds.
        progress: Called with each line the build reports.

    Returns:
        The build's ``bin/python``, or None for batchnb's own interpreter.

    Raises:
        EnvironmentBuildError: the build failed; the message names the package.
    """
    spec = as_spec(spec_or_env)
    if spec is None:
        return None
    planned = plan(spec)
    if not planned.needed:
        return None
    return str(build(envs_dir(workspace_root), planned, progress)["python"])


def deployment_spec(resolved: Mapping[str, Any], environment: Mapping[str, Any] | None) -> BuildSpec | None:
    """What a model deployment runs in: its environment's spec, or for an MLflow model deployed
    without an environment and without a scoring script, the model's own requirements (as on Azure).

    Args:
        resolved: The deployment's ``resolved`` record.
        environment: Its registered environment version, if it names one.
    """
    if environment is not None:
        return as_spec(environment)
    if resolved.get("model_type") == "mlflow_model" and not resolved.get("code_dir") and resolved.get("model_dir"):
        spec = from_mlflow_model(Path(resolved["model_dir"]))
        return None if spec is None else dataclasses.replace(spec, source=f"model {resolved.get('model')}")
    return None


def host_digest(spec: BuildSpec) -> str:
    """The name of a spec's build in a cluster host's cache (``<cache>/envs/<digest>``): a hash of
    the spec alone, since a host's own Python and batchnb are not this machine's."""
    text = json.dumps([list(spec.requirements), spec.python])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe(spec: BuildSpec | None, workspace_root: str | Path) -> dict[str, Any]:
    """A build's state for ``environment show``: status, Python, packages, size on disk."""
    from .build import building, freeze, read_record, size_on_disk
    from .spec import this_python

    if spec is None:
        return {"status": "Not needed", "reason": "nothing to install: runs in batchnb's own environment"}
    planned = plan(spec)
    base: dict[str, Any] = {
        "python_version": planned.version,
        "provided_by_batchnb": list(planned.provided),
        "warnings": [*planned.warnings, *spec.notes],
    }
    if not planned.needed:
        return {
            "status": "Not needed",
            "reason": "batchnb's own environment has every package: runs in it",
            **base,
        }
    folder = envs_dir(workspace_root) / planned.digest
    record = read_record(folder)
    if record is None:
        status = "Building" if building(envs_dir(workspace_root), planned.digest) else "Not built"
        return {"status": status, "hash": planned.digest, "to_install": list(planned.install), **base}
    layered = "batchnb's package" + (
        " and environment" if planned.version.rsplit(".", 1)[0] == this_python() else " (another Python version)"
    )
    return {
        "status": "Built",
        "hash": planned.digest,
        "python": record["python"],
        "packages": freeze(folder),
        "layered_over": layered,
        "size_on_disk": size_on_disk(folder),
        "built_at": record["built_at"],
        "build_seconds": record["build_seconds"],
        **base,
    }


__all__ = [
    "as_spec",
    "deployment_spec",
    "describe",
    "envs_dir",
    "host_digest",
    "interpreter_for",
    "to_record",
]
