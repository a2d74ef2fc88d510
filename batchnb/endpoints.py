"""Batch endpoints and their deployments.

An endpoint is a stable name that holds deployments; one of them is the default
(``defaults.deployment_name``) and serves every invocation that names none. Changing the default
never changes how the endpoint is called. Deleting an endpoint deletes its deployments and keeps
its jobs.
"""

from __future__ import annotations

import builtins  # the operations have a method named list, which shadows the type
import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import entities
from .errors import InvalidStateError, NotFoundError, ValidationError
from .registry.code import check_code, snapshot_folder
from .registry.mlflow_models import check_pyfunc, is_mlflow_uri
from .schemas import (
    BatchEndpointSpec,
    DeploymentSpec,
    InlineModel,
    ModelBatchDeploymentSpec,
    ModelSpec,
    check_name,
    parse_deployment,
    validate_spec,
)
from .specfile import apply_set, is_url, parse_set, resolve_local

if TYPE_CHECKING:
    from .client import BatchClient
    from .jobs import Job


def _endpoint_entity(row: sqlite3.Row, deployments: list[str]) -> entities.BatchEndpoint:
    spec = json.loads(row["spec"])
    return entities.BatchEndpoint(
        {
            **spec,
            "deployments": deployments,
            "scoring_uri": f"/batchnb/api/endpoints/{row['name']}/jobs",
            "provisioning_state": "Succeeded",
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }
    )


class BatchEndpointOperations:
    """``batch_endpoints``: create, show, list, update, delete, invoke, list_jobs."""

    def __init__(self, client: BatchClient) -> None:
        self._client = client
        self._store = client.store

    def create_or_update(self, spec: BatchEndpointSpec | dict[str, Any]) -> entities.BatchEndpoint:
        """Create an endpoint, or update the description, tags and defaults of an existing one."""
        endpoint = spec if isinstance(spec, BatchEndpointSpec) else validate_spec(BatchEndpointSpec, spec, "endpoint")
        record = endpoint.to_yaml_dict()
        now = time.time()
        with self._store.write() as tx:
            default = endpoint.defaults.deployment_name
            if default is not None:
                self._require_deployment(tx, endpoint.name, default)
            elif "deployment_name" not in endpoint.defaults.model_fields_set:
                # A spec that does not mention the default (an endpoint.yml applied again to change the
                # description) keeps it: otherwise the endpoint could no longer be invoked.
                row = tx.execute("SELECT spec FROM endpoints WHERE name = ?", (endpoint.name,)).fetchone()
                kept = json.loads(row["spec"]).get("defaults", {}).get("deployment_name") if row else None
                if kept:
                    record["defaults"] = {**record.get("defaults", {}), "deployment_name": kept}
            tx.execute(
                "INSERT INTO endpoints (name, spec, created_at, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                (endpoint.name, json.dumps(record), now, now),
            )
        return self.get(endpoint.name)

    begin_create_or_update = create_or_update  # azure-ai-ml's name for the same operation

    @staticmethod
    def _require_deployment(tx: sqlite3.Connection, endpoint: str, deployment: str) -> None:
        row = tx.execute("SELECT 1 FROM deployments WHERE endpoint = ? AND name = ?", (endpoint, deployment)).fetchone()
        if row is None:
            raise ValidationError(
                f"defaults.deployment_name: endpoint {endpoint} has no deployment named {deployment!r}",
                field="defaults.deployment_name",
            )

    def get(self, name: str) -> entities.BatchEndpoint:
        """Return one endpoint, with the names of its deployments."""
        with self._store.read() as db:
            row = db.execute("SELECT * FROM endpoints WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"batch endpoint {name} does not exist in this workspace")
            deps = [
                r["name"]
                for r in db.execute("SELECT name FROM deployments WHERE endpoint = ? ORDER BY created_at", (name,))
            ]
        return _endpoint_entity(row, deps)

    def list(self) -> list[entities.BatchEndpoint]:
        """All endpoints, by name."""
        with self._store.read() as db:
            rows = db.execute("SELECT * FROM endpoints ORDER BY name").fetchall()
            deps: dict[str, list[str]] = {}
            for r in db.execute("SELECT endpoint, name FROM deployments ORDER BY created_at"):
                deps.setdefault(r["endpoint"], []).append(r["name"])
        return [_endpoint_entity(r, deps.get(r["name"], [])) for r in rows]

    def update(self, name: str, set_values: builtins.list[str] | None = None) -> entities.BatchEndpoint:
        """Apply az-style ``--set key=value`` changes, e.g. ``defaults.deployment_name=blue``."""
        current = self._spec(name)
        changed = apply_set(current, parse_set(set_values))
        if changed.get("name") != name:
            raise ValidationError("name: an endpoint cannot be renamed", field="name")
        return self.create_or_update(changed)

    def _spec(self, name: str) -> dict[str, Any]:
        """The endpoint as its YAML would state it (without the fields the workspace adds)."""
        derived = ("deployments", "scoring_uri", "provisioning_state", "created_at", "updated_at")
        return {k: v for k, v in self.get(name).items() if k not in derived}

    def set_default(self, name: str, deployment_name: str) -> entities.BatchEndpoint:
        """Make ``deployment_name`` the endpoint's default deployment."""
        # Not through update()'s --set parsing: a deployment named "yes" or "null" is a plain string.
        current = self._spec(name)
        current["defaults"] = {**(current.get("defaults") or {}), "deployment_name": deployment_name}
        return self.create_or_update(current)

    def delete(self, name: str) -> None:
        """Delete the endpoint and its deployments. Its jobs are kept."""
        with self._store.write() as tx:
            if tx.execute("DELETE FROM endpoints WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError(f"batch endpoint {name} does not exist in this workspace")

    begin_delete = delete

    def invoke(self, endpoint_name: str, deployment_name: str | None = None, **kwargs: Any) -> entities.Entity:
        """Start a job on the endpoint; see :meth:`batchnb.jobs.JobOperations.invoke`."""
        return self._client.jobs.invoke(endpoint_name, deployment_name=deployment_name, **kwargs)

    def compare(self, endpoint_name: str, deployments: builtins.list[str] | tuple[str, str], **kwargs: Any) -> Any:
        """Score one input with two deployments and compare their outputs row by row; see
        :func:`batchnb.engine.compare.compare` (its keyword arguments: ``input``, ``input_type``,
        ``sample``, ``max_disagreements``, ``timeout``, ``base_dir``)."""
        from .engine.compare import compare

        return compare(self._client, endpoint_name, deployments, **kwargs)

    def list_jobs(self, endpoint_name: str) -> builtins.list[Job]:
        """The endpoint's jobs, newest first (jobs survive the endpoint's deletion)."""
        return self._client.jobs.list(endpoint_name=endpoint_name)


class BatchDeploymentOperations:
    """``batch_deployments``: create, show, list, update, delete, list_jobs."""

    def __init__(self, client: BatchClient) -> None:
        self._client = client
        self._store = client.store

    def create_or_update(
        self,
        spec: DeploymentSpec | dict[str, Any],
        *,
        endpoint_name: str | None = None,
        base_dir: Path | None = None,
        set_default: bool = False,
        skip_script_validation: bool = False,
        create_endpoint: bool = False,
        source: str = "deployment",
    ) -> entities.BatchDeployment:
        """Create a deployment, or a new revision of an existing one.

        Args:
            spec: The deployment YAML mapping (any of Azure's three forms) or a parsed spec.
            endpoint_name: Overrides ``endpoint_name`` in the spec (the CLI's ``-e``).
            base_dir: Where relative paths in the spec resolve (the YAML file's folder).
            set_default: Make it the endpoint's default deployment.
            skip_script_validation: Do not check that the scoring script parses.
            create_endpoint: Create the endpoint (with only its name) if it does not exist, in the
                same transaction as the deployment, so that a refused deployment leaves no endpoint.
            source: Names the spec in error messages (the file name).
        """
        parsed = parse_deployment(spec, source) if isinstance(spec, dict) else spec
        endpoint = endpoint_name or parsed.endpoint_name
        if not endpoint:
            raise ValidationError(
                f"{source}: endpoint_name is required (or pass --endpoint-name)", field="endpoint_name"
            )
        check_name("endpoint", endpoint)
        new_endpoint = None
        try:
            self._client.batch_endpoints.get(endpoint)
        except NotFoundError:
            if not create_endpoint:
                raise
            new_endpoint = validate_spec(BatchEndpointSpec, {"name": endpoint}, "endpoint").to_yaml_dict()
        parsed = parsed.model_copy(update={"endpoint_name": endpoint})
        resolved = (
            self._resolve_model_deployment(parsed, base_dir, skip_script_validation, source)
            if isinstance(parsed, ModelBatchDeploymentSpec)
            else self._resolve_pipeline_deployment(parsed, base_dir, source)
        )
        record = {**parsed.to_yaml_dict(), "resolved": resolved}
        now = time.time()
        with self._store.write() as tx:
            if new_endpoint is not None:
                # DO NOTHING: another writer may have created it since; theirs is kept.
                tx.execute(
                    "INSERT INTO endpoints (name, spec, created_at, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(name) DO NOTHING",
                    (endpoint, json.dumps(new_endpoint), now, now),
                )
            row = tx.execute(
                "SELECT revision FROM deployments WHERE endpoint = ? AND name = ?", (endpoint, parsed.name)
            ).fetchone()
            revision = 1 if row is None else row["revision"] + 1
            record["revision"] = revision
            tx.execute(
                "INSERT INTO deployments (endpoint, name, revision, spec, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(endpoint, name) DO UPDATE SET "
                "revision = excluded.revision, spec = excluded.spec, updated_at = excluded.updated_at",
                (endpoint, parsed.name, revision, json.dumps(record), now, now),
            )
            ep = json.loads(tx.execute("SELECT spec FROM endpoints WHERE name = ?", (endpoint,)).fetchone()["spec"])
            defaults = ep.setdefault("defaults", {})
            # The first deployment of an endpoint becomes its default, so the endpoint is callable at once.
            if set_default or not defaults.get("deployment_name"):
                defaults["deployment_name"] = parsed.name
                tx.execute(
                    "UPDATE endpoints SET spec = ?, updated_at = ? WHERE name = ?", (json.dumps(ep), now, endpoint)
                )
        return self.get(parsed.name, endpoint)

    begin_create_or_update = create_or_update

    def _resolve_model_deployment(
        self, dep: ModelBatchDeploymentSpec, base_dir: Path | None, skip_validation: bool, source: str
    ) -> dict[str, Any]:
        client = self._client
        # Every check runs before an inline model is registered, so a refused deployment registers nothing.
        inline = dep.model if isinstance(dep.model, InlineModel) else None
        model = None
        inline_spec: ModelSpec | None = None
        if inline is not None:
            # Its path is refused now if it must be, not after the code folder has been copied.
            if not is_mlflow_uri(inline.path) and not is_url(inline.path):
                resolve_local(inline.path, base_dir, "model.path")  # named as the deployment names it
            inline_spec, _ = client.models.check(
                {
                    **inline.model_dump(mode="json", exclude_none=True),
                    "name": inline.name or f"{dep.endpoint_name}-{dep.name}-model",
                },
                base_dir,
            )
        else:
            try:
                model = client.models.resolve(str(dep.model))
            except NotFoundError as exc:
                raise NotFoundError(f"{source}: model: {exc.message}") from None
        model_type = inline.type if inline is not None else model["type"]  # type: ignore[index]
        resolved: dict[str, Any] = {}
        if isinstance(dep.environment, str) and dep.environment.startswith("azureml:"):
            try:
                env = client.environments.resolve(dep.environment)
                resolved["environment"] = f"{env['name']}:{env['version']}"
            except NotFoundError as exc:
                raise NotFoundError(f"{source}: environment: {exc.message}") from None
        try:
            compute = client.computes.resolve(dep.compute)
        except NotFoundError as exc:
            raise NotFoundError(f"{source}: compute: {exc.message}") from None
        resolved["compute"] = compute["name"]
        code_dir = None
        if dep.code_configuration is not None:
            code_dir = resolve_local(dep.code_configuration.code, base_dir, "code_configuration.code")
            # Copied last, once nothing is left to refuse (an inline environment or model).
            check_code(code_dir, dep.code_configuration.scoring_script, validate=not skip_validation)
        elif model_type != "mlflow_model":
            raise ValidationError(
                f"{source}: code_configuration is required for a {model_type} model "
                "(only mlflow_model deployments can run without a scoring script)",
                field="code_configuration",
            )
        elif model is not None:
            # Scored by the built-in MLflow driver, through pyfunc. Checked at registration too;
            # checked again here because it is cheap and a record may predate the check.
            try:
                check_pyfunc(Path(model["path"]), f"{model['name']}:{model['version']}")
            except ValidationError as exc:
                raise ValidationError(
                    f"{source}: model: {exc.message}; deploy it with a scoring script (code_configuration) instead",
                    field="model",
                ) from None
        inline_env = None
        if isinstance(dep.environment, dict):
            # Registered like an inline model, as Azure registers an anonymous environment; built
            # first (before the model: an environment that cannot be built registers nothing).
            inline_env = client.environments.create_or_update(
                {**dep.environment, "name": dep.environment.get("name") or f"{dep.endpoint_name}-{dep.name}-env"},
                base_dir=base_dir,
            )
            resolved["environment"] = f"{inline_env['name']}:{inline_env['version']}"
        if model is None:
            assert inline_spec is not None
            try:
                model = client.models.create_or_update(inline_spec, base_dir=base_dir)
            except Exception:
                # Some checks are made only as the model is registered (its MLflow flavor, on the
                # copy; its version, in the transaction): a model refused then must not leave the
                # environment behind. The build runs outside any transaction, so the two cannot share
                # one; no deployment uses the new version yet.
                if inline_env is not None:
                    with contextlib.suppress(Exception):
                        client.environments.delete(inline_env["name"], inline_env["version"])
                raise
        resolved.update(
            model=f"{model['name']}:{model['version']}", model_type=model["type"], model_dir=model["model_dir"]
        )
        if code_dir is not None:
            assert dep.code_configuration is not None
            snap = snapshot_folder(code_dir, client.workspace.code_dir, "code_configuration.code")
            resolved.update(
                code_dir=str(snap), scoring_script=dep.code_configuration.scoring_script, code_source=str(code_dir)
            )
        return resolved

    def _resolve_pipeline_deployment(self, dep: Any, base_dir: Path | None, source: str) -> dict[str, Any]:
        """Pin the pipeline the deployment runs: from a component (file, inline or ``azureml:``) or a job."""
        from .pipelines.operations import graph_from_job
        from .pipelines.resolve import Resolver

        compute = dep.settings.default_compute
        if compute:
            try:
                self._client.computes.resolve(compute)
            except NotFoundError as exc:
                raise NotFoundError(f"{source}: settings.default_compute: {exc.message}") from None
        if dep.job_definition is not None:
            graph = graph_from_job(self._client, dep.job_definition, f"{source}: job_definition")
        else:
            resolver = Resolver(self._client)
            graph = resolver.load(dep.component, base_dir, f"{source}: component")
            if graph.get("type") != "pipeline":
                raise ValidationError(
                    f"{source}: component: a pipeline deployment needs a pipeline component, "
                    f"got a {graph.get('type')} component",
                    field="component",
                )
            resolver.place_code()
        ref = f"{graph.get('name')}:{graph.get('version')}" if graph.get("version") else graph.get("name")
        return {"component": graph, "component_ref": ref}

    def get(self, name: str, endpoint_name: str) -> entities.BatchDeployment:
        """Return one deployment, with ``is_default`` set."""
        with self._store.read() as db:
            row = db.execute(
                "SELECT d.spec, d.created_at, d.updated_at, e.spec AS ep FROM deployments d "
                "JOIN endpoints e ON e.name = d.endpoint WHERE d.endpoint = ? AND d.name = ?",
                (endpoint_name, name),
            ).fetchone()
        if row is None:
            self._client.batch_endpoints.get(endpoint_name)
            raise NotFoundError(f"batch endpoint {endpoint_name} has no deployment named {name}")
        return self._entity(row)

    @staticmethod
    def _entity(row: sqlite3.Row) -> entities.BatchDeployment:
        spec = json.loads(row["spec"])
        default = json.loads(row["ep"]).get("defaults", {}).get("deployment_name")
        return entities.BatchDeployment(
            {
                **spec,
                "is_default": default == spec["name"],
                "provisioning_state": "Succeeded",
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
            }
        )

    def list(self, endpoint_name: str) -> list[entities.BatchDeployment]:
        """The endpoint's deployments, oldest first."""
        self._client.batch_endpoints.get(endpoint_name)
        with self._store.read() as db:
            rows = db.execute(
                "SELECT d.spec, d.created_at, d.updated_at, e.spec AS ep FROM deployments d "
                "JOIN endpoints e ON e.name = d.endpoint WHERE d.endpoint = ? ORDER BY d.created_at",
                (endpoint_name,),
            ).fetchall()
        return [self._entity(r) for r in rows]

    def update(
        self, name: str, endpoint_name: str, set_values: builtins.list[str] | None = None
    ) -> entities.BatchDeployment:
        """Apply az-style ``--set`` changes to a deployment, creating a new revision."""
        current = self.get(name, endpoint_name)
        base = {
            k: v
            for k, v in current.items()
            if k not in ("resolved", "revision", "is_default", "provisioning_state", "created_at", "updated_at")
        }
        resolved = current["resolved"]
        # Paths were resolved when it was created: keep pointing at the same code and model.
        if "code_configuration" in base and resolved.get("code_source"):
            base["code_configuration"] = {**base["code_configuration"], "code": resolved["code_source"]}
        if not isinstance(base.get("model"), str) and resolved.get("model"):
            base["model"] = f"azureml:{resolved['model']}"
        changed = apply_set(base, parse_set(set_values))
        if changed.get("name") != name:
            raise ValidationError("name: a deployment cannot be renamed", field="name")
        return self.create_or_update(changed, endpoint_name=endpoint_name)

    def delete(self, name: str, endpoint_name: str) -> None:
        """Delete a deployment. The default deployment can only go when it is the last one."""
        with self._store.write() as tx:
            ep_row = tx.execute("SELECT spec FROM endpoints WHERE name = ?", (endpoint_name,)).fetchone()
            if ep_row is None:
                raise NotFoundError(f"batch endpoint {endpoint_name} does not exist in this workspace")
            others = [
                r["name"]
                for r in tx.execute(
                    "SELECT name FROM deployments WHERE endpoint = ? AND name != ?", (endpoint_name, name)
                )
            ]
            ep = json.loads(ep_row["spec"])
            is_default = ep.get("defaults", {}).get("deployment_name") == name
            if is_default and others:
                raise InvalidStateError(
                    f"{name} is the default deployment of {endpoint_name}; make another one the default first "
                    f"(batchnb batch-endpoint update -n {endpoint_name} --set defaults.deployment_name={others[0]})"
                )
            if (
                tx.execute("DELETE FROM deployments WHERE endpoint = ? AND name = ?", (endpoint_name, name)).rowcount
                == 0
            ):
                raise NotFoundError(f"batch endpoint {endpoint_name} has no deployment named {name}")
            if is_default:
                ep["defaults"]["deployment_name"] = None
                tx.execute("UPDATE endpoints SET spec = ? WHERE name = ?", (json.dumps(ep), endpoint_name))

    begin_delete = delete

    def list_jobs(self, endpoint_name: str, name: str) -> builtins.list[Job]:
        """The deployment's jobs, newest first."""
        return self._client.jobs.list(endpoint_name=endpoint_name, deployment_name=name)
