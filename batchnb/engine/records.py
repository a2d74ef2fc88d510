"""What every kind of job shows of itself: who invoked it, its header fields, its MLflow metrics."""

from __future__ import annotations

import getpass
import socket
from typing import Any


def invoked_by_default() -> str:
    """``user@host``: who a job is recorded as invoked by, unless a front end says otherwise."""
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # getuser fails in some containers
        return f"unknown@{socket.gethostname()}"


def run_metrics(spec: dict[str, Any]) -> dict[str, float]:
    """The last value of each metric in the MLflow run of the job of ``spec`` (``{}`` without one)."""
    run_id = spec.get("mlflow_run_id")
    if not run_id:
        return {}
    from .tracking_store import read_metrics

    return read_metrics(spec.get("mlflow_tracking_uri"), [run_id]).get(run_id, {})


def job_header(row: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """The fields every kind of job shows first: name, type, status, where it came from, when."""
    return {
        "name": row["name"],
        "type": row["kind"],
        "status": row["status"],
        "endpoint_name": row["endpoint"],
        "deployment_name": row["deployment"],
        "experiment_name": spec.get("experiment_name"),
        "invoked_by": row["invoked_by"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "error": row["error"],
        "archived_at": row["archived_at"],
    }
