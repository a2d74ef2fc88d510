"""Jobs as azure-ai-ml's notebooks read them, and the pollers its ``begin_*`` calls return.

On Azure a batch job is a pipeline job with one child, the scoring step: notebooks find it with
``list(ml_client.jobs.list(parent_job_name=job.name))[0]`` and read its ``status``,
``creation_context`` and outputs. batchnb's core lists that child (``<job>-batchscoring``) the same
way; :class:`AzureJob` gives both the attributes azure-ai-ml's job entities have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .convert import plain, when


class AzureJob:
    """A batchnb job with azure-ai-ml's job attributes (``name``, ``status``, ``creation_context``…).

    The batchnb record stays available as :attr:`record` (counters, logs folder, settings).
    """

    def __init__(self, record: Mapping[str, Any]) -> None:
        from azure.ai.ml import Input, Output
        from azure.ai.ml.entities import SystemData

        self.record = plain(record)
        self.name: str = record["name"]
        self.display_name: str = record.get("display_name") or record["name"]
        self.status: str = record["status"]
        # Azure's kinds: a batch job is a pipeline job, its scoring child a parallel job.
        kind = "parallel" if record.get("step") == "batchscoring" else record["type"]
        self.type: str = {"batch": "pipeline"}.get(kind, kind)
        self.experiment_name = record.get("experiment_name") or record.get("endpoint_name")
        self.parent_job_name = record.get("parent_job_name")
        self.description = record.get("description")
        self.tags: dict[str, str] = dict(record.get("tags") or {})
        self.properties: dict[str, Any] = {
            "endpoint": record.get("endpoint_name"),
            "deployment": record.get("deployment_name"),
        }
        component = record.get("component")
        if record.get("step") and isinstance(component, Mapping):
            # The keys Azure gives a pipeline step, by which notebooks tell the steps apart.
            self.properties.update(
                {
                    "azureml.moduleName": component.get("name"),
                    "azureml.nodeid": record["step"],
                    "azureml.pipelinerunid": record.get("parent_job_name"),
                }
            )
        self.compute = record.get("compute")
        self.studio_url = None  # no studio here: the sidebar and `batchnb job show` show the job
        self.services: dict[str, Any] = {}
        self.error = record.get("error")
        self.metrics: dict[str, float] = dict(record.get("metrics") or {})
        created = when(record.get("created_at"))
        modified = when(record.get("ended_at") or record.get("started_at") or record.get("created_at"))
        self.creation_context = SystemData(created_at=created, last_modified_at=modified)
        self.inputs = {
            k: Input(type=v.get("type", "uri_folder"), path=v.get("path"))
            for k, v in (record.get("inputs") or {}).items()
            if isinstance(v, Mapping)
        }
        self.outputs = {
            k: Output(type="uri_folder", path=v.get("path"))
            for k, v in (record.get("outputs") or {}).items()
            if isinstance(v, Mapping)
        }

    @property
    def id(self) -> str:
        """The job's id (its name here)."""
        return self.name

    def __getitem__(self, key: str) -> Any:
        return self.record[key]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, status={self.status!r}, type={self.type!r})"

    def _repr_html_(self) -> str:
        from ..display import entity_html

        return entity_html(self.record, f"Job {self.name}")


class Poller:
    """What azure-ai-ml's ``begin_*`` operations return. batchnb's operations finish before they
    return (a job is the long-running thing, and it has its own ``jobs.stream``), so the poller is
    done from the start; :meth:`result` gives the entity."""

    def __init__(self, result: Any = None, make: Callable[[], Any] | None = None) -> None:
        self._result = make() if make is not None else result

    def result(self, timeout: float | None = None) -> Any:
        """The created, updated or deleted entity (None for a delete)."""
        return self._result

    def wait(self, timeout: float | None = None) -> None:
        """Return at once: the operation has finished."""

    def done(self) -> bool:
        """Always True."""
        return True

    def status(self) -> str:
        """Azure's word for a finished operation."""
        return "Succeeded"


__all__ = ["AzureJob", "Poller"]
