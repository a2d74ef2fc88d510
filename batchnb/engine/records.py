"""What a job shows of itself: who invoked it, its header fields, its MLflow metrics, a batch job's record."""

from __future__ import annotations

import getpass
import json
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError
from . import failures, state

if TYPE_CHECKING:
    from ..store import Store


def invoked_by_default() -> str:
    """``user@host``: who a job is recorded as invoked by, unless a front end says otherwise."""
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # getuser fails in some containers
        return f"unknown@{socket.gethostname()}"


def refuse_taken_names(db: Any, names: list[str]) -> None:
    """Refuse job names already in the store. Checked on a read before slow work (a build, a copy)
    and again in the transaction that records the job."""
    for name in names:
        if db.execute("SELECT 1 FROM jobs WHERE name = ?", (name,)).fetchone():
            raise ConflictError(f"a job named {name} already exists")


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


def eta_seconds(remaining: int, finished_in_run: int, run_elapsed: float) -> float | None:
    """Seconds left at the pace of the job's current run: ``finished_in_run`` mini-batches finished
    in the ``run_elapsed`` seconds since it began (its start, or its last resume), ``remaining`` to go.

    Measured over this run only: after a resume, the mini-batches committed before it took no time
    of this run, and the time the job lay interrupted is no time of its work. None until a
    mini-batch of this run has finished.
    """
    if finished_in_run <= 0 or run_elapsed <= 0:
        return None
    return round(run_elapsed * max(remaining, 0) / finished_in_run, 1)


def batch_job_record(store: Store, row: Any, metrics: bool = False) -> dict[str, Any]:
    """A batch job as the job API shows it, with its live counters (``Interrupted`` first if its
    owner is gone); with ``metrics``, each metric's last value in its MLflow run."""
    if state.check_interrupted(store, row) != row["status"]:
        with store.read() as db:
            row = db.execute("SELECT * FROM jobs WHERE name = ?", (row["name"],)).fetchone()
    spec = json.loads(row["spec"])
    started, ended, now = row["started_at"], row["ended_at"], time.time()
    run_started = row["run_started_at"] or started
    with store.read() as db:
        progress = state.progress(db, row["name"])
        progress["scored_by_revision"] = failures.scored_by_revision(db, row["name"])
        in_run = state.finished_since(db, row["name"], run_started) if row["status"] == state.RUNNING else 0
    elapsed = ((ended or now) - started) if started else 0.0
    mb = progress["mini_batches"]
    progress["rows_per_second"] = round(progress["rows_written"] / elapsed, 2) if elapsed > 0 else 0.0
    progress["elapsed_s"] = round(elapsed, 3)
    progress["eta_s"] = (
        eta_seconds(mb["total"] - mb["done"] - mb["failed"], in_run, now - run_started)
        if row["status"] == state.RUNNING and run_started
        else None
    )
    record = {
        **job_header(row, spec),
        "inputs": {"input_data": {"type": spec["input"]["type"], "path": spec["input"]["given"]}},
        "outputs": {"score": {"path": spec["output"]["dir"], "file_name": spec["output"]["file_name"]}},
        "settings": spec["settings"],
        "deployment_revision": spec.get("deployment_revision"),
        "model": spec.get("model"),
        "compute": spec.get("compute", "local"),
        "instance_count": spec["instance_count"],
        "workers": spec["workers"],
        "progress": progress,
        "job_dir": spec["job_dir"],
        "logs_dir": str(Path(spec["job_dir"]) / "logs"),
        "lineage": spec.get("lineage"),
        "incremental": spec.get("incremental"),
        # Why a Queued job has not started (its compute's agent runs as many jobs as fit).
        "waiting": row["waiting"] if row["status"] == state.QUEUED else None,
        "auto_resumes": row["auto_resumes"],
    }
    if metrics:
        record["metrics"] = run_metrics(spec)
    return record
