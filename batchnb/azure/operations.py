"""azure-ai-ml's operation groups over batchnb's core: the same names, arguments and return types.

Each method maps the entity onto batchnb's schema (:mod:`batchnb.azure.convert`), calls the one core
function that does the work (the CLI, the magics and the REST API call the same), and returns
azure-ai-ml's entity. batchnb's errors become azure-core's where a notebook catches them:
``ResourceNotFoundError`` for what does not exist (``try: ml_client.compute.get(name)``), and
``ResourceExistsError`` for a conflict.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConflictError, NotFoundError, ValidationError
from .convert import load, pipeline_spec, plain, reference, to_spec
from .jobs import AzureJob, Poller


@contextlib.contextmanager
def azure_errors() -> Iterator[None]:
    """Raise azure-core's exceptions for batchnb's "not found" and "already exists"."""
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

    try:
        yield
    except NotFoundError as exc:
        raise ResourceNotFoundError(str(exc)) from exc
    except ConflictError as exc:
        raise ResourceExistsError(str(exc)) from exc


def _here() -> Path:
    # azure-ai-ml resolves an entity's relative paths against the current folder, as the core must.
    return Path.cwd()


def _yaml_source(entity: Any) -> str | None:
    """The YAML file a ``load_component``/``load_job`` entity came from, if it is still there.

    ``@dsl.pipeline`` entities carry a source path too: the Python file that defined them, which
    is not a spec to load.
    """
    source = getattr(entity, "_source_path", None)
    if source and Path(source).suffix.lower() in (".yml", ".yaml") and Path(source).is_file():
        return str(source)
    return None


def _registered(client: Any, kind: str) -> Any:
    """``exists(name, version)`` for registered assets of ``kind`` (model, environment, component)."""
    ops = {"model": client.models, "environment": client.environments, "component": client.components}[kind]

    def exists(name: str, version: str) -> bool:
        try:
            ops.get(name, version=version)
        except NotFoundError:
            return False
        return True

    return exists


class _AssetOperations:
    """``models``, ``data`` and ``environments``: versioned assets."""

    kind = ""
    entity_class = ""

    def __init__(self, client: Any, core: Any) -> None:
        self._client = client
        self._core = core

    def _entity(self, record: Any) -> Any:
        import azure.ai.ml.entities as entities

        return load(getattr(entities, self.entity_class), self.kind, record)

    def create_or_update(self, entity: Any, **kwargs: Any) -> Any:
        """Register a new version of the asset and return it."""
        with azure_errors():
            return self._entity(self._core.create_or_update(to_spec(entity), base_dir=_here()))

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
        """One version (``label="latest"`` for the newest)."""
        with azure_errors():
            return self._entity(self._core.get(name, version=version, label=label))

    def list(self, name: str | None = None, **kwargs: Any) -> builtins.list[Any]:
        """Every asset, or every version of ``name``."""
        with azure_errors():
            return [self._entity(r) for r in self._core.list(name)]


class ModelOperations(_AssetOperations):
    """``ml_client.models``."""

    kind, entity_class = "model", "Model"


class DataOperations(_AssetOperations):
    """``ml_client.data``."""

    kind, entity_class = "data", "Data"


class EnvironmentOperations(_AssetOperations):
    """``ml_client.environments``."""

    kind, entity_class = "environment", "Environment"


class ComponentOperations(_AssetOperations):
    """``ml_client.components``: command and pipeline components, from ``load_component`` or YAML."""

    kind, entity_class = "component", "Component"

    def create_or_update(self, entity: Any, **kwargs: Any) -> Any:
        """Register a component: one loaded from YAML is registered from its file, as the CLI does;
        one built in Python (``my_pipeline().component``) from its definition."""
        source = _yaml_source(entity)
        with azure_errors():
            if source:
                from ..specfile import load_yaml

                spec, base = load_yaml(source)
                record = self._core.create_or_update(spec, base_dir=base)
            else:
                spec = pipeline_spec(entity, _registered(self._client, "component"))
                record = self._core.create_or_update(spec, base_dir=_here())
        return self._entity(record)

    def _entity(self, record: Any) -> Any:
        """A command component as azure-ai-ml's ``CommandComponent``: callable in a ``@dsl.pipeline``,
        where it stands for its registered version. A pipeline component reads as a record (its
        steps are resolved and inlined here, which no azure-ai-ml entity loads back faithfully);
        passed to a deployment, it refers to its registered version all the same."""
        if record.get("type") != "command":
            return _Record(record)
        from azure.ai.ml.entities import CommandComponent

        data = plain(record)
        if data.get("code_dir"):
            data["code"] = data["code_dir"]  # the registered snapshot: the source folder may have changed
        # azure-ai-ml's output ports take no "optional" (the core records one on every port).
        outputs = data.get("outputs") or {}
        data["outputs"] = {k: {f: v for f, v in port.items() if f != "optional"} for k, port in outputs.items()}
        return load(CommandComponent, "component", data)


class _Record(dict):  # type: ignore[type-arg]
    """A batchnb record read as an object, where azure-ai-ml has no entity for it."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class ComputeOperations:
    """``ml_client.compute``: ``AmlCompute`` clusters are local computes here."""

    def __init__(self, client: Any) -> None:
        self._core = client.computes

    @staticmethod
    def _entity(record: Any) -> Any:
        from azure.ai.ml.entities import AmlCompute

        if record.get("type") not in ("local", "amlcompute"):
            return _Record(record)
        keep = ("name", "description", "tags", "min_instances", "max_instances", "idle_time_before_scale_down")
        return AmlCompute(**{k: record[k] for k in keep if record.get(k) is not None})

    def begin_create_or_update(self, compute: Any, **kwargs: Any) -> Poller:
        """Create or update a compute (``AmlCompute`` becomes a local pool)."""
        spec = to_spec(compute)
        for azure_only in ("enable_node_public_ip", "size", "ssh_public_access_enabled", "tier"):
            spec.pop(azure_only, None)
        with azure_errors():
            return Poller(self._entity(self._core.create_or_update(spec)))

    create_or_update = begin_create_or_update

    def get(self, name: str) -> Any:
        """One compute."""
        with azure_errors():
            return self._entity(self._core.get(name))

    def list(self, **kwargs: Any) -> builtins.list[Any]:
        """Every compute."""
        return [self._entity(r) for r in self._core.list()]

    def begin_delete(self, name: str, **kwargs: Any) -> Poller:
        """Delete a compute."""
        with azure_errors():
            self._core.delete(name)
        return Poller(None)


class DatastoreOperations:
    """``ml_client.datastores``: batchnb's datastores, as records."""

    def __init__(self, client: Any) -> None:
        self._core = client.datastores

    def get(self, name: str) -> Any:
        """One datastore."""
        with azure_errors():
            return _Record(self._core.get(name))

    def get_default(self) -> Any:
        """The workspace's default datastore (``workspaceblobstore``)."""
        return _Record(self._core.get_default())

    def list(self, **kwargs: Any) -> builtins.list[Any]:
        """Every datastore."""
        return [_Record(r) for r in self._core.list()]

    def create_or_update(self, datastore: Any) -> Any:
        """Create or update a datastore from its entity or YAML mapping."""
        with azure_errors():
            return _Record(self._core.create_or_update(to_spec(datastore)))


class BatchEndpointOperations:
    """``ml_client.batch_endpoints``."""

    def __init__(self, client: Any, jobs: JobOperations) -> None:
        self._client = client
        self._core = client.batch_endpoints
        self._jobs = jobs

    @staticmethod
    def _entity(record: Any) -> Any:
        from azure.ai.ml.entities import BatchEndpoint

        return load(BatchEndpoint, "batch-endpoint", record)

    def begin_create_or_update(self, endpoint: Any, **kwargs: Any) -> Poller:
        """Create an endpoint, or update its description, tags and default deployment."""
        spec = to_spec(endpoint)
        spec.pop("properties", None)
        with azure_errors():
            return Poller(self._entity(self._core.create_or_update(spec)))

    def create_or_update(self, endpoint: Any, **kwargs: Any) -> Any:
        """As :meth:`begin_create_or_update`, returning the endpoint."""
        return self.begin_create_or_update(endpoint).result()

    def get(self, name: str) -> Any:
        """One endpoint."""
        with azure_errors():
            return self._entity(self._core.get(name))

    def list(self) -> builtins.list[Any]:
        """Every endpoint."""
        return [self._entity(r) for r in self._core.list()]

    def begin_delete(self, name: str, **kwargs: Any) -> Poller:
        """Delete an endpoint and its deployments (its jobs are kept)."""
        with azure_errors():
            self._core.delete(name)
        return Poller(None)

    def invoke(
        self,
        endpoint_name: str,
        deployment_name: str | None = None,
        input: Any = None,
        inputs: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        job_name: str | None = None,
        params_override: builtins.list[dict[str, Any]] | None = None,
        experiment_name: str | None = None,
        **kwargs: Any,
    ) -> AzureJob:
        """Start a job on the endpoint (its default deployment unless one is named)."""
        with azure_errors():
            job = self._client.jobs.invoke(
                endpoint_name,
                deployment_name,
                input=_port(input) if input is not None else None,
                inputs={k: _port(v) for k, v in inputs.items()} if inputs else None,
                outputs={k: _port(v) for k, v in outputs.items()} if outputs else None,
                job_name=job_name,
                params_override=params_override,
                experiment_name=experiment_name,
                base_dir=_here(),
            )
        return AzureJob(job)

    def list_jobs(self, endpoint_name: str) -> builtins.list[AzureJob]:
        """The endpoint's jobs, newest first."""
        with azure_errors():
            return [AzureJob(j) for j in self._core.list_jobs(endpoint_name)]


def _port(value: Any) -> Any:
    """An ``Input``/``Output`` as the mapping the core reads (``{"type", "path", "mode"}``)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "_to_dict"):
        spec = plain(value._to_dict())
    elif hasattr(value, "path") or hasattr(value, "type"):
        spec = {k: getattr(value, k, None) for k in ("type", "path", "mode")}
    else:
        spec = plain(value)
    if isinstance(spec, dict):
        return {k: v for k, v in spec.items() if v is not None}
    return spec


_ROOT_SETTINGS = (
    "environment_variables",
    "error_threshold",
    "logging_level",
    "max_concurrency_per_instance",
    "mini_batch_size",
    "output_action",
    "output_file_name",
    "retry_settings",
)


class BatchDeploymentOperations:
    """``ml_client.batch_deployments``: model and pipeline-component deployments."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._core = client.batch_deployments

    @staticmethod
    def _entity(record: Any) -> Any:
        from azure.ai.ml.entities import ModelBatchDeployment

        if record.get("type") == "pipeline":
            return _pipeline(record)
        data = plain(record)
        settings = data.get("settings") or {}
        if data.get("resources"):  # azure-ai-ml refuses the count in both places
            settings.pop("instance_count", None)
        if not settings.get("environment_variables"):
            settings.pop("environment_variables", None)
        resolved = data.get("resolved") or {}
        code = data.get("code_configuration")
        if code and resolved.get("code_dir"):
            # Where the code came from, if it is still there (an update re-snapshots it), else the snapshot.
            source = resolved.get("code_source")
            code["code"] = source if source and Path(source).is_dir() else resolved["code_dir"]
        return load(ModelBatchDeployment, "batch-deployment", data)

    def begin_create_or_update(self, deployment: Any, **kwargs: Any) -> Poller:
        """Create a deployment, or a new revision of an existing one."""
        component = getattr(deployment, "component", None)
        if isinstance(component, _Record):
            # A registered pipeline component (returned by components.create_or_update or get):
            # deployed by reference, on a copy, since azure-ai-ml cannot write a plain record.
            deployment = copy.copy(deployment)
            deployment.component = component["id"]
        spec = to_spec(deployment)
        spec.pop("properties", None)
        source = _yaml_source(component)
        if source:  # a load_component() result: deployed from its file, as the CLI does
            spec["component"] = str(source)
        elif isinstance(spec.get("component"), dict) and hasattr(component, "jobs"):
            # A pipeline built in Python (``my_pipeline._pipeline_builder.build()``), deployed inline.
            spec["component"] = pipeline_spec(component, _registered(self._client, "component"))
        if spec.get("type") == "model":
            # azure-ai-ml writes some settings of a model deployment at its root as well (the
            # legacy form); Azure's typed YAML has them in settings only.
            settings = spec.setdefault("settings", {})
            for key in _ROOT_SETTINGS:
                value = spec.pop(key, None)
                if value not in (None, {}) and settings.get(key) in (None, {}):
                    settings[key] = value
        if "model" in spec:
            spec["model"] = reference(spec["model"], _registered(self._client, "model"))
        if "environment" in spec:
            spec["environment"] = reference(spec["environment"], _registered(self._client, "environment"))
        if "component" in spec:
            spec["component"] = reference(spec["component"], _registered(self._client, "component"))
        with azure_errors():
            record = self._core.create_or_update(spec, base_dir=_here())
        return Poller(self._entity(record))

    def create_or_update(self, deployment: Any, **kwargs: Any) -> Any:
        """As :meth:`begin_create_or_update`, returning the deployment."""
        return self.begin_create_or_update(deployment).result()

    def get(self, name: str, endpoint_name: str) -> Any:
        """One deployment."""
        with azure_errors():
            return self._entity(self._core.get(name, endpoint_name))

    def list(self, endpoint_name: str) -> builtins.list[Any]:
        """The endpoint's deployments."""
        with azure_errors():
            return [self._entity(r) for r in self._core.list(endpoint_name)]

    def begin_delete(self, name: str, endpoint_name: str, **kwargs: Any) -> Poller:
        """Delete a deployment."""
        with azure_errors():
            self._core.delete(name, endpoint_name)
        return Poller(None)

    def list_jobs(self, endpoint_name: str, name: str | None = None) -> builtins.list[AzureJob]:
        """The deployment's jobs (every job of the endpoint without ``name``), newest first."""
        with azure_errors():
            if name is None:
                return [AzureJob(j) for j in self._client.batch_endpoints.list_jobs(endpoint_name)]
            return [AzureJob(j) for j in self._core.list_jobs(endpoint_name, name)]


def _pipeline(record: Any) -> Any:
    from azure.ai.ml.entities import PipelineComponentBatchDeployment

    keep = {k: v for k, v in plain(record).items() if k in ("name", "endpoint_name", "description", "tags")}
    entity = PipelineComponentBatchDeployment(**keep, settings=record.get("settings"))
    return entity


class JobOperations:
    """``ml_client.jobs``."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._core = client.jobs

    def get(self, name: str) -> AzureJob:
        """One job (a batch job, its scoring child, a pipeline job or one of its steps)."""
        with azure_errors():
            return AzureJob(self._core.get(name))

    def list(self, parent_job_name: str | None = None, **kwargs: Any) -> builtins.list[AzureJob]:
        """Top-level jobs, newest first; or the child jobs of ``parent_job_name``."""
        with azure_errors():
            return [AzureJob(j) for j in self._core.list(parent_job_name=parent_job_name)]

    def stream(self, name: str) -> None:
        """Print the job's log until it ends; raise azure-ai-ml's ``JobException`` unless it Completed."""
        from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, JobException

        with azure_errors():
            job = self._core.stream(name)
        if job["status"] != "Completed":
            message = f"Exception: job {name} ended {job['status']}: {job.get('error') or 'see its logs'}"
            # azure-ai-ml's constants are str-valued classes its own annotations do not name.
            details: dict[str, Any] = {"target": ErrorTarget.JOB, "error_category": ErrorCategory.USER_ERROR}
            raise JobException(message=message, no_personal_data_message="The job did not complete.", **details)

    def download(
        self, name: str, download_path: str | Path = ".", output_name: str | None = None, all: bool = False
    ) -> None:
        """Copy a job's output into ``<download_path>/named-outputs/<output_name>/``."""
        with azure_errors():
            self._core.download(name, download_path, output_name or "score")

    def begin_cancel(self, name: str, **kwargs: Any) -> Poller:
        """Cancel a job."""
        with azure_errors():
            return Poller(AzureJob(self._core.cancel(name)))

    def create_or_update(self, job: Any, *, experiment_name: str | None = None, **kwargs: Any) -> AzureJob:
        """Start a pipeline job from ``load_job`` YAML or a ``@dsl.pipeline`` function's job."""
        source = _yaml_source(job)
        with azure_errors():
            if source:
                from ..specfile import load_yaml

                spec, base = load_yaml(source)
            else:
                if not hasattr(job, "_to_dict") and not isinstance(job, dict):
                    raise ValidationError(f"a pipeline job, not {type(job).__name__}")
                spec, base = pipeline_spec(job, _registered(self._client, "component")), _here()
            record = self._core.create_or_update(spec, base_dir=base, experiment_name=experiment_name)
        return AzureJob(record)


__all__ = [
    "BatchDeploymentOperations",
    "BatchEndpointOperations",
    "ComponentOperations",
    "ComputeOperations",
    "DataOperations",
    "DatastoreOperations",
    "EnvironmentOperations",
    "JobOperations",
    "ModelOperations",
    "azure_errors",
]
