"""Environments: recorded as Azure describes them, and built (:mod:`batchnb.environments`) when
they ask for packages.

An environment's ``conda_file`` (a file or an inline mapping) or pip requirements file (a
``conda_file`` whose name ends in ``.txt``) is resolved into a build specification when the version
is created, with its relative paths made absolute, so the version means the same thing later and
from anywhere. ``create_or_update`` builds it at once: a specification that cannot be built records
nothing. The ``image`` is recorded and shown, and not used locally.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import entities
from ..environments.build import Progress, build, plan
from ..environments.runtime import as_spec, describe, envs_dir, to_record
from ..environments.spec import BuildSpec, from_conda, from_requirements
from ..errors import InvalidStateError, ValidationError
from ..schemas import EnvironmentSpec, validate_spec
from ..specfile import load_yaml, read_text_file, resolve_local
from .assets import AssetOperations

IMAGE_NOTE = "recorded, not used locally: deployments run in a virtual environment built on this machine"


class EnvironmentOperations(AssetOperations):
    """Environment versions: recorded, built eagerly, shown with their build, deleted when unused."""

    kind = "environment"

    def create_or_update(
        self,
        spec: EnvironmentSpec | dict[str, Any],
        base_dir: Path | None = None,
        progress: Progress | None = None,
    ) -> entities.Entity:
        """Record a new environment version, built first if it asks for packages.

        Args:
            spec: The environment YAML as a mapping or an :class:`EnvironmentSpec`.
            base_dir: Where a relative ``conda_file`` (and paths inside it) resolve.
            progress: Called with each line the build reports.

        Raises:
            EnvironmentBuildError: the packages cannot be installed (nothing is recorded); the
                message is the resolver's, naming the package.
        """
        env = spec if isinstance(spec, EnvironmentSpec) else validate_spec(EnvironmentSpec, spec, "environment")
        if env.version is not None:
            # Refused before a build that can take minutes and would stay behind; checked again
            # as the version is recorded.
            with self._store.read() as db:
                self._refuse_taken(db, env.name, str(env.version))
        record = env.model_dump(mode="json", exclude_none=True)
        build_spec = self._build_spec(env, record, base_dir)
        record["build_spec"] = to_record(build_spec)
        if build_spec is not None:
            planned = plan(build_spec)
            record["build_warnings"] = [*planned.warnings, *build_spec.notes]
            if planned.needed:  # built outside the transaction; recorded only once it is whole
                done = build(envs_dir(self._ws.root), planned, progress)
                record["build"] = {"hash": done["hash"], "python_version": done["python_version"]}
        return self._insert(record)

    def _build_spec(self, env: EnvironmentSpec, record: dict[str, Any], base_dir: Path | None) -> BuildSpec | None:
        source = f"environment {env.name}"
        if isinstance(env.conda_file, dict):
            return from_conda(env.conda_file, base_dir, source)
        if not isinstance(env.conda_file, str):
            return None
        path = resolve_local(env.conda_file, base_dir, "conda_file")
        if not path.exists():  # a FIFO or a folder: load_yaml says which
            raise ValidationError(
                f"conda_file {env.conda_file!r} does not exist (resolved to {path})", field="conda_file"
            )
        if path.suffix == ".txt":  # a pip requirements file
            text = read_text_file(path, "conda_file")
            del record["conda_file"]
            record["pip_requirements"] = [line for line in text.splitlines() if line.strip()]
            return from_requirements(text, path.parent, source)
        conda, folder = load_yaml(path)
        record["conda_file"] = conda
        return from_conda(conda, folder, source)

    def show(self, name: str, version: str | None = None, label: str | None = None) -> entities.Entity:
        """One version (default: the latest) with its build: status, Python version, packages
        (a freeze), size on disk; and its image, marked as not used locally."""
        env = self.get(name, version=version, label=label)
        shown = dict(env)
        shown.pop("build_spec", None)
        if env.get("image"):
            shown["image_used_locally"] = IMAGE_NOTE
        shown["build"] = describe(as_spec(env), self._ws.root)
        return type(env)(shown)

    def delete(self, name: str, version: str) -> dict[str, Any]:
        """Delete one version; refused while a deployment uses it. Its build stays until
        ``workspace gc`` (another version may share it).

        Raises:
            NotFoundError: no such version.
            InvalidStateError: a deployment uses it; the message names the deployments.
        """
        env = self.get(name, version=version)
        key = f"{env['name']}:{env['version']}"
        with self._store.write() as tx:
            users = [
                f"{row['endpoint']}/{row['name']}"
                for row in tx.execute("SELECT endpoint, name, spec FROM deployments ORDER BY endpoint, name")
                if (json.loads(row["spec"]).get("resolved") or {}).get("environment") == key
            ]
            if users:
                raise InvalidStateError(
                    f"environment {key} is used by deployment {', '.join(users)}: "
                    "delete those deployments or point them at another environment first"
                )
            tx.execute("DELETE FROM assets WHERE kind = 'environment' AND name = ? AND version = ?", (name, version))
        return {"deleted": key}
