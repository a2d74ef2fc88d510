"""The MLflow runs of a pipeline job: one for the pipeline, a child run for each step it launches.

A pipeline job has a tracking store when the user configured one at submit or a step's code or
command uses mlflow (see :mod:`batchnb.engine.tracking_store`); otherwise this does nothing and
imports nothing. Each step's command gets ``MLFLOW_TRACKING_URI`` (absolute) and the ``MLFLOW_RUN_ID``
of its own run, a child of the pipeline's (tag ``mlflow.parentRunId``), so that a step's
``mlflow.log_metric`` lands in that store, not in a ``mlflow.db`` of the step's working folder.

The runner creates a step's run just before launching it (the command needs the id), ends it when
the step ends, and ends the pipeline's run with the pipeline. Both ids are kept in the jobs' specs:
``job show`` reads the metrics by them, and a resumed pipeline reopens its run (a relaunched step
gets a new run). As for batch jobs, tracking never fails a job: a failure is logged, and the steps
run without the variables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engine import tracking_store
from ..engine.tracking import RUN_STATUS
from ..registry.mlflow_models import redact_uri
from ..store import Store


class PipelineRuns:
    """The MLflow runs of one pipeline job. No method raises."""

    def __init__(self, store: Store, job_name: str, spec: dict[str, Any], log: Callable[[str], None]) -> None:
        self.store = store
        self.name = job_name
        self.uri: str | None = spec.get("mlflow_tracking_uri")
        self.experiment = spec.get("experiment_name") or "Default"
        self.run_id: str | None = spec.get("mlflow_run_id")
        self.log = log  # JobLogs.event
        self._client: Any = None
        self._reopened = False
        self._experiment_id: str | None = None
        self.step_runs: dict[str, str] = {}  # step name → its current run

    def _fail(self, what: str, exc: BaseException) -> None:
        self.log(f"MLflow tracking: {what}: {type(exc).__name__}: {exc}; the pipeline goes on without it")
        self.uri = None

    def _pipeline_run(self) -> str:
        """The pipeline's run: created (or, after a resume, reopened) on first use."""
        assert self.uri is not None
        if self._client is None:
            self._client = tracking_store.client(self.uri)
        client = self._client
        if self.run_id and not self._reopened:
            client.update_run(self.run_id, status="RUNNING")
            self._reopened = True
            self.log(f"MLflow run {self.run_id} reopened at {redact_uri(self.uri)}")
        if not self.run_id:
            self._experiment_id = tracking_store.experiment_id(client, self.experiment)
            tags = {"batchnb.job": self.name, "batchnb.kind": "pipeline-job"}
            self.run_id = client.create_run(self._experiment_id, run_name=self.name, tags=tags).info.run_id
            tracking_store.record_run_id(self.store, self.name, self.run_id)
            self.log(f"MLflow run {self.run_id} at {redact_uri(self.uri)}")
        return self.run_id

    def step_env(self, step: str, child: dict[str, Any]) -> dict[str, str]:
        """Create the run of ``step`` (job ``child``) and return the variables its command gets."""
        if not self.uri:
            return {}
        try:
            parent = self._pipeline_run()
            if self._experiment_id is None:  # a resumed pipeline's run: its steps go where it is
                self._experiment_id = str(self._client.get_run(parent).info.experiment_id)
            tags = {
                "mlflow.parentRunId": parent,
                "batchnb.job": child["name"],
                "batchnb.kind": "pipeline-step",
                "batchnb.step": step,
            }
            run_id = self._client.create_run(self._experiment_id, run_name=step, tags=tags).info.run_id
            tracking_store.record_run_id(self.store, child["name"], run_id, self.uri)
        except Exception as exc:
            self._fail(f"could not start the run of step {step}", exc)
            return {}
        self.step_runs[step] = run_id
        return tracking_store.script_env(self.uri, run_id)

    def abandon(self, step: str, run_id: str | None) -> None:
        """End, KILLED, the run a lost runner left open for ``step`` (it is run again, in a new run)."""
        if not (self.uri and run_id):
            return
        try:
            if self._client is None:
                self._client = tracking_store.client(self.uri)
            self._client.set_terminated(run_id, status="KILLED")
        except Exception as exc:
            self._fail(f"could not end the lost run of step {step}", exc)

    def end_step(self, step: str, status: str) -> None:
        """End the run of ``step`` (if it has one) with the status MLflow uses for ``status``."""
        run_id = self.step_runs.pop(step, None)
        if run_id and self.uri:
            try:
                self._client.set_terminated(run_id, status=RUN_STATUS.get(status, "FAILED"))
            except Exception as exc:
                self._fail(f"could not end the run of step {step}", exc)

    def end(self, status: str) -> None:
        """End the pipeline's run (if it was started) with the job's final ``status``."""
        if self.uri and self.run_id and self._client is not None:
            try:
                self._client.set_terminated(self.run_id, status=RUN_STATUS.get(status, "FAILED"))
                self.log(f"MLflow run {self.run_id} ended {RUN_STATUS.get(status, 'FAILED')}")
            except Exception as exc:
                self._fail("could not end the pipeline's run", exc)
