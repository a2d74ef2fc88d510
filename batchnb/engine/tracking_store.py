"""Where scripts' MLflow metrics go, and reading them back for ``job show``.

Azure hands a batch job's scoring script and a pipeline step's command ``MLFLOW_TRACKING_URI`` and
``MLFLOW_RUN_ID``, so that ``mlflow.log_metric`` logs into the job's run without ``start_run``;
batchnb does the same. The store is the one the user configured at invoke
(:func:`batchnb.engine.tracking.capture_tracking_uri`), else the workspace's own, ``<workspace>/mlruns``.

The rule that keeps jobs of users who never use MLflow as fast as before (importing mlflow costs
about a second of CPU per process): a job has a run only if the user configured a tracking URI, or
its code imports mlflow (:func:`uses_mlflow`: a scan of the code folder's ``.py`` files, and of a
step's command). Otherwise nothing imports mlflow, no store is created and the variables stay unset.

The workspace store is MLflow's file store, not a sqlite file: several worker processes log into
one run at once, and the file store takes each metric as an append to its own file, while a sqlite
store serializes the writers on its lock (seconds of waiting per metric under load, and "database is
locked" past its timeout) and builds its schema (alembic migrations) on first use. MLflow 3 refuses
a file store unless ``MLFLOW_ALLOW_FILE_STORE=true``; batchnb sets it wherever it hands that store out.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..store import Store

STORE_FOLDER = "mlruns"
# What makes a script an MLflow user: an import of mlflow (or of one of its modules).
_IMPORT = re.compile(rb"^[ \t]*(?:import[ \t]+mlflow\b|from[ \t]+mlflow\b)", re.MULTILINE)
_MENTION = re.compile(r"\bmlflow\b")
# Bounds of the scan: a code folder is scripts, not data; a huge one is not read to the end.
_MAX_FILES = 2000
_MAX_BYTES = 2_000_000
_SKIPPED = {"__pycache__", "node_modules", ".git", ".venv", "venv", STORE_FOLDER}


def workspace_uri(root: Path) -> str:
    """The workspace's own tracking store, as a ``file://`` URI (absolute)."""
    return (Path(root).resolve() / STORE_FOLDER).as_uri()


def is_file_store(uri: str) -> bool:
    """True for a ``file:`` URI or a bare local path: MLflow's file store."""
    head = uri.split("/", 1)[0]
    return uri.startswith("file:") or (":" not in head and uri not in ("databricks", "databricks-uc"))


def allow_file_store(uri: str) -> dict[str, str]:
    """The variable MLflow 3 needs to open a file store (``{}`` for any other store)."""
    return {"MLFLOW_ALLOW_FILE_STORE": "true"} if is_file_store(uri) else {}


def _python_files(folder: Path) -> Iterable[Path]:
    seen = 0
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _SKIPPED and not d.startswith(".")]
        for name in files:
            if name.endswith(".py"):
                seen += 1
                if seen > _MAX_FILES:
                    return
                yield Path(here) / name


def uses_mlflow(code_dir: str | os.PathLike[str] | None, *commands: str) -> bool:
    """True if a ``.py`` file under ``code_dir`` imports mlflow, or a command names it.

    Args:
        code_dir: The code snapshot (a scoring script's folder, a component's code), or None.
        commands: Shell commands run by the job (a pipeline step's), searched for the word ``mlflow``.

    Returns:
        Whether the job's code may log to MLflow, so that it needs a run.
    """
    if any(_MENTION.search(command) for command in commands):
        return True
    if not code_dir or not Path(code_dir).is_dir():
        return False
    for path in _python_files(Path(code_dir)):
        try:
            with open(path, "rb") as handle:
                if _IMPORT.search(handle.read(_MAX_BYTES)):
                    return True
        except OSError:
            continue
    return False


def job_tracking_uri(captured: str | None, root: Path, code_uses_mlflow: bool) -> str | None:
    """The store a job is logged to: the configured one, else the workspace's if its code uses mlflow."""
    if captured:
        return captured
    return workspace_uri(root) if code_uses_mlflow else None


def experiment_id(tracker: Any, name: str) -> str:
    """The id of experiment ``name`` in the store of ``tracker`` (an ``MlflowClient``), created if missing."""
    found = tracker.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise RuntimeError(f"experiment {name!r} is deleted; restore it or use another experiment name")
        return str(found.experiment_id)
    try:
        return str(tracker.create_experiment(name))
    except Exception:  # another job created it meanwhile
        found = tracker.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def script_env(uri: str | None, run_id: str | None) -> dict[str, str]:
    """What a scoring script or a step's command gets to log into the job's run (``{}`` without one)."""
    if not uri or not run_id:
        return {}
    return {"MLFLOW_TRACKING_URI": uri, "MLFLOW_RUN_ID": run_id, **allow_file_store(uri)}


def client(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri`` (imports mlflow: only for jobs that have a run)."""
    for key, value in allow_file_store(uri).items():
        os.environ.setdefault(key, value)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def record_run_id(store: Store, job_name: str, run_id: str, uri: str | None = None) -> None:
    """Keep a job's run id (and, given, its store) in its spec (``mlflow_run_id``,
    ``mlflow_tracking_uri``): ``job show`` reads its metrics by them, and a resumed job reopens it."""
    with store.write() as tx:
        row = tx.execute("SELECT spec FROM jobs WHERE name = ?", (job_name,)).fetchone()
        stored = json.loads(row["spec"])
        stored["mlflow_run_id"] = run_id
        if uri:
            stored["mlflow_tracking_uri"] = uri
        tx.execute("UPDATE jobs SET spec = ? WHERE name = ?", (json.dumps(stored), job_name))


def read_metrics(uri: str | None, run_ids: list[str | None]) -> dict[str, dict[str, float]]:
    """The last value of each metric of each run, by run id; a run that cannot be read has none.

    Args:
        uri: The tracking store the runs are in, or None (then nothing is read).
        run_ids: Runs to read; None entries (jobs without a run) are skipped.

    Returns:
        ``{run_id: {metric name: last value}}``. A store that is gone or does not answer gives
        empty dicts: showing a job must not fail because of its bookkeeping.
    """
    wanted = [r for r in run_ids if r]
    if not uri or not wanted:
        return {}
    try:
        tracker = client(uri)
    except Exception:  # mlflow missing or the store unreadable
        return {}
    found: dict[str, dict[str, float]] = {}
    for run_id in wanted:
        try:
            found[run_id] = dict(sorted(tracker.get_run(run_id).data.metrics.items()))
        except Exception:
            found[run_id] = {}
    return found
