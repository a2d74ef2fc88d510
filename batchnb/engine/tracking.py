"""Each job as one MLflow run (when a tracking URI is configured), logged by the supervisor only.

Azure records batch jobs as runs in an experiment named after the endpoint; so do we. The tracking
URI is captured when the job is invoked (``MLFLOW_TRACKING_URI``, or the URI the invoking process
set with ``mlflow.set_tracking_uri``), so the supervisor logs where the user is looking. Only the
supervisor writes (one writer per job: no "database is locked" from a sqlite tracking store), and a
tracking failure is logged, never fatal: the job's output matters more than its bookkeeping.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def capture_tracking_uri() -> str | None:
    """The tracking URI the invoking process uses, if the user configured one."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    if "mlflow" in sys.modules:  # never import mlflow here just to ask (it costs a second)
        try:
            import mlflow

            if mlflow.is_tracking_uri_set():
                return str(mlflow.get_tracking_uri())
        except Exception:  # an odd mlflow build must not break invoke
            return None
    return None


class JobRun:
    """The MLflow run of one job."""

    def __init__(self, spec: dict[str, Any], log: Any) -> None:
        self.uri: str | None = spec.get("mlflow_tracking_uri")
        self.spec = spec
        self.log = log  # JobLogs.event
        self.run_id: str | None = spec.get("mlflow_run_id")

    @property
    def enabled(self) -> bool:
        """True when a tracking URI was configured at invoke time."""
        return bool(self.uri)

    def start(self, job_name: str) -> str | None:
        """Start (or, after a resume, reopen) the run and log the job's parameters. Returns the run id."""
        if not self.enabled:
            return None
        try:
            import mlflow

            mlflow.set_tracking_uri(self.uri)
            mlflow.set_experiment(self.spec.get("experiment_name") or self.spec["endpoint"])
            run = mlflow.start_run(run_id=self.run_id) if self.run_id else mlflow.start_run(run_name=job_name)
            self.run_id = run.info.run_id
            if not self.spec.get("mlflow_run_id"):
                settings = self.spec["settings"]
                mlflow.log_params(
                    {
                        "endpoint": self.spec["endpoint"],
                        "deployment": self.spec["deployment"],
                        "deployment_revision": self.spec.get("deployment_revision"),
                        "model": self.spec.get("model"),
                        "input": self.spec["input"]["given"],
                        "instance_count": self.spec["instance_count"],
                        "workers": self.spec["workers"],
                        "mini_batch_size": settings["mini_batch_size"],
                        "mini_batch_mode": settings["mini_batch_mode"],
                        "error_threshold": settings["error_threshold"],
                        "max_retries": settings["retry_settings"]["max_retries"],
                        "timeout": settings["retry_settings"]["timeout"],
                        "output_action": settings["output_action"],
                        "overrides": ",".join(self.spec.get("overrides") or []) or "none",
                    }
                )
                mlflow.set_tags(
                    {
                        "batchnb.job": job_name,
                        "batchnb.kind": "batch-job",
                        "batchnb.output": self.spec["output"]["path"],
                    }
                )
            self.log(f"MLflow run {self.run_id} at {self.uri}")
        except Exception as exc:
            self.log(f"MLflow tracking disabled for this job: {type(exc).__name__}: {exc}")
            self.uri = None
        return self.run_id

    def finish(self, status: str, progress: dict[str, Any]) -> None:
        """Log the job's totals and end the run with a status MLflow understands."""
        if not self.enabled or not self.run_id:
            return
        try:
            import mlflow

            mb, items = progress["mini_batches"], progress["items"]
            mlflow.log_metrics(
                {
                    "items_succeeded": items["succeeded"],
                    "items_failed": items["failed"],
                    "mini_batches_total": mb["total"],
                    "mini_batches_failed": mb["failed"],
                    "rows_written": progress["rows_written"],
                    "rows_per_second": progress.get("rows_per_second", 0.0),
                    "duration_s": progress.get("elapsed_s", 0.0),
                    "worker_seconds": progress["worker_seconds"],
                }
            )
            mlflow.set_tag("batchnb.status", status)
            mlflow.end_run(status={"Completed": "FINISHED", "Canceled": "KILLED"}.get(status, "FAILED"))
        except Exception as exc:
            self.log(f"MLflow tracking: could not log the job's totals: {type(exc).__name__}: {exc}")
