"""Each job as one MLflow run (when it has a tracking store), started and ended by the supervisor.

Azure records batch jobs as runs in an experiment named after the endpoint; so do we. The tracking
URI is captured when the job is invoked (``MLFLOW_TRACKING_URI``, or the URI the invoking process
set with ``mlflow.set_tracking_uri``), made absolute there (the supervisor runs in the job's folder,
so a relative ``sqlite:///mlflow.db`` would name another file), and the supervisor logs where the
user is looking. Without one, a job whose scoring script imports mlflow is logged to the workspace's
own store (see :mod:`batchnb.engine.tracking_store`, which also says why other jobs have no run).
The supervisor writes the job's parameters and totals; the scoring script's workers may log their
own metrics into the same run (they get ``MLFLOW_TRACKING_URI`` and ``MLFLOW_RUN_ID``). A tracking
failure is logged, never fatal: the job's output matters more than its bookkeeping.

The run is started in a background thread of the supervisor, so importing mlflow and opening the
store (seconds, more for a new sqlite store) overlap the planning and the pool's start-up; ending
the run waits for that start, and the first mini-batch of a script that imports mlflow waits for
the run to be created (its ``init()`` must find the run), not for its parameters, unless the run
exists already (a resumed job's). On a local compute the MLflow calls themselves run in a helper
process the agent's zygote forks, kept for the agent's later jobs (see :class:`_Helper`).

The run is written through ``MlflowClient`` rather than the fluent ``mlflow.start_run``: the fluent
API ends its active run with status FINISHED at interpreter exit, which would mark the run of an
interrupted job finished. A run left ``RUNNING`` by an interrupted supervisor is reopened by the
supervisor that resumes the job (its id is kept in the job's spec).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..processes import HELPER_NAME, set_name
from ..registry.mlflow_models import redact_uri
from . import tracking_store

# A tracking server that does not answer must not hold a job for minutes (MLflow's defaults retry
# for a long time); applied in the supervisor only, unless the user set them.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
RUN_STATUS = {"Completed": "FINISHED", "Canceled": "KILLED", "Failed": "FAILED"}
# How long the end of a job waits for its run's start (bounded by HTTP_LIMITS for a server).
START_WAIT_S = 180.0


def absolute_uri(uri: str) -> str:
    """``uri`` with a relative local path made absolute (``sqlite:///x.db``, ``./mlruns``)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        rest = uri.removeprefix("sqlite:///")
        if rest and rest != ":memory:" and not rest.startswith(":"):
            return "sqlite:///" + str(Path(rest).resolve())
        return uri
    if uri.startswith("file:") and not uri.startswith("file:/"):
        return Path(uri.removeprefix("file:")).resolve().as_uri()
    if ":" not in uri.split("/", 1)[0] and uri not in ("databricks", "databricks-uc"):
        return str(Path(uri).resolve())  # a bare local path
    return uri


def capture_tracking_uri() -> str | None:
    """The tracking URI the invoking process uses, if the user configured one (absolute)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri and "mlflow" in sys.modules:  # never import mlflow here just to ask (it costs a second)
        try:
            import mlflow

            if mlflow.is_tracking_uri_set():
                uri = str(mlflow.get_tracking_uri())
        except Exception:  # an odd mlflow build must not break invoke
            return None
    return absolute_uri(uri) if uri else None


class JobRun:
    """The MLflow run of one job. Every method logs its failures and returns; none raises.

    On a local compute whose agent holds a zygote, the calls to MLflow are made in a process the
    zygote forks (:class:`_Helper`; mlflow is imported there already when the job's code uses it):
    importing mlflow in the agent would cost a second of CPU beside the job's workers, and hold the
    agent's interpreter lock while its dispatch loop has mini-batches to hand out. Elsewhere (a
    Dask compute, a pipeline's runner) they are made in the calling process.
    """

    def __init__(self, spec: dict[str, Any], log: Callable[[str], None]) -> None:
        self.uri: str | None = spec.get("mlflow_tracking_uri")
        self.spec = spec
        self.log = log  # JobLogs.event
        self.run_id: str | None = spec.get("mlflow_run_id")
        self._opened = False
        self._thread: threading.Thread | None = None
        self._created = threading.Event()  # the run exists (or will not): the script may log into it

    @property
    def enabled(self) -> bool:
        """True when a tracking URI was configured at invoke time (and tracking has not failed)."""
        return bool(self.uri)

    def _disable(self, what: str, exc: BaseException) -> None:
        self.log(f"MLflow tracking: {what}: {type(exc).__name__}: {exc}; the job goes on without it")
        self.uri = None

    @staticmethod
    def _call(fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the agent's helper process if it has a zygote, else here."""
        return _HELPER.call(fn, *args)

    def start(self, job_name: str) -> str | None:
        """Create the run (or, after a resume, reopen it) and log the job's parameters. Returns its id.

        The script's workers wait for the run to exist (:meth:`wait_created`), not for its
        parameters: those are logged after, in a call of their own."""
        try:
            return self._start(job_name)
        finally:
            self._created.set()

    def _start(self, job_name: str) -> str | None:
        if not self.enabled:
            return None
        assert self.uri is not None
        experiment = self.spec.get("experiment_name") or self.spec["endpoint"]
        try:
            tags = self._tags(job_name)
            opened = self._call(_open, self.uri, self.run_id, experiment, job_name, tags)
        except Exception as exc:
            self._disable("could not start the job's run", exc)
            return None
        self._opened = True
        if opened["reopened"]:
            self.log(f"MLflow run {self.run_id} reopened at {redact_uri(self.uri)}")
            return self.run_id
        self.run_id = opened["run_id"]
        self._created.set()
        self.log(
            f"MLflow run {self.run_id} at {redact_uri(self.uri)} "
            f"(import mlflow {opened['imported_s']:.2f} s, run created in {opened['created_s']:.2f} s)"
        )
        try:
            self._call(_log_params, self.uri, self.run_id, self._params())
        except Exception as exc:  # the run exists: keep it, and end it with the job
            self.log(f"MLflow tracking: could not log the job's parameters: {type(exc).__name__}: {exc}")
        return self.run_id

    def start_in_background(self, job_name: str, on_started: Callable[[str], None]) -> None:
        """:meth:`start` in a daemon thread; ``on_started(run_id)`` is called there once the run exists."""
        if not self.enabled:
            return

        def work() -> None:
            run_id = self.start(job_name)
            if run_id:
                try:
                    on_started(run_id)
                except Exception as exc:
                    self.log(f"MLflow tracking: could not record run {run_id} with the job: {exc}")

        self._thread = threading.Thread(target=work, name="batchnb-mlflow-run", daemon=True)
        self._thread.start()

    def script_env(self) -> dict[str, str]:
        """The variables that let a scoring script log into this run (``{}`` while it has none)."""
        return tracking_store.script_env(self.uri, self.run_id) if self.enabled else {}

    def wait_created(self) -> None:
        """Wait for a background start to have created the run (or given up), at most START_WAIT_S."""
        if self._thread is not None and not self._created.wait(START_WAIT_S):
            self.log(f"MLflow tracking: the run was not created within {START_WAIT_S:g} s; the script gets no run")

    def wait_started(self) -> bool:
        """Wait for a background start, parameters included; False if it is still going after START_WAIT_S."""
        if self._thread is None:
            return True
        self._thread.join(START_WAIT_S)
        if self._thread.is_alive():
            self.log(
                f"MLflow tracking: the run did not start within {START_WAIT_S:g} s; the job's totals are not logged"
            )
            return False
        return True

    def _tags(self, job_name: str) -> dict[str, str]:
        tags = {
            "batchnb.job": job_name,
            "batchnb.kind": "batch-job",
            "batchnb.endpoint": self.spec["endpoint"],
            "batchnb.deployment": self.spec["deployment"],
            "batchnb.output": self.spec["output"]["path"],
        }
        if self.spec.get("builtin_driver"):
            tags["batchnb.driver"] = f"builtin:{self.spec['builtin_driver']}"
        return tags

    def _params(self) -> dict[str, str]:
        spec, settings = self.spec, self.spec["settings"]
        params = {
            "endpoint": spec["endpoint"],
            "deployment": spec["deployment"],
            "deployment_revision": spec.get("deployment_revision"),
            "model": spec.get("model"),
            "input": spec["input"]["given"],
            "instance_count": spec["instance_count"],
            "workers": spec["workers"],
            "mini_batch_size": settings["mini_batch_size"],
            "mini_batch_mode": settings["mini_batch_mode"],
            "error_threshold": settings["error_threshold"],
            "max_retries": settings["retry_settings"]["max_retries"],
            "timeout": settings["retry_settings"]["timeout"],
            "output_action": settings["output_action"],
            "output_file_name": settings["output_file_name"],
        }
        return {k: str(v)[:6000] for k, v in params.items() if v is not None}

    def finish(self, status: str, totals: dict[str, Any]) -> None:
        """Log the job's totals and end the run with the status MLflow uses for ``status``."""
        try:
            if not self.wait_started() or not self.enabled or not self.run_id or not self._opened:
                return
            assert self.uri is not None
            mb, items = totals["mini_batches"], totals["items"]
            metrics = {
                "items_succeeded": items["succeeded"],
                "items_failed": items["failed"],
                "mini_batches_total": mb["total"],
                "mini_batches_succeeded": mb["done"],
                "mini_batches_failed": mb["failed"],
                "rows_written": totals["rows_written"],
                "rows_per_second": totals.get("rows_per_second", 0.0),
                "duration_s": totals.get("elapsed_s", 0.0),
                "worker_seconds": totals["worker_seconds"],
            }
            ended = RUN_STATUS.get(status, "FAILED")
            self._call(_close, self.uri, self.run_id, {k: float(v) for k, v in metrics.items()}, status, ended)
            self.log(f"MLflow run {self.run_id} ended {ended}")
        except Exception as exc:
            self._disable("could not log the job's totals", exc)


class _Helper:
    """The process an agent makes its MLflow calls in: forked by its zygote for batchnb's own
    interpreter when it holds one (a local compute's agent), and kept for its later jobs, so that a
    warm job's first mini-batch waits for one ``create_run``, not for a fork. Without a zygote
    (a Dask compute, a pipeline's runner), calls are made in the calling process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: Any = None

    def _get(self) -> Any:
        from ..compute import zygote, zygote_client

        with self._lock:
            if not zygote.holds(None):
                return None
            if self._executor is None:
                from concurrent.futures import ProcessPoolExecutor

                self._executor = ProcessPoolExecutor(
                    max_workers=1, mp_context=zygote_client.context(), initializer=set_name, initargs=(HELPER_NAME,)
                )
            return self._executor

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        executor = self._get()
        if executor is None:
            return fn(*args)
        try:
            return executor.submit(fn, *args).result(START_WAIT_S)
        except BrokenProcessPool:  # its zygote was replaced, or it was killed: once more, anew
            with self._lock:
                if self._executor is executor:
                    self._executor = None
            executor = self._get()
            return fn(*args) if executor is None else executor.submit(fn, *args).result(START_WAIT_S)


_HELPER = _Helper()


def _client(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri``, within :data:`HTTP_LIMITS` unless the user set them."""
    for key, value in HTTP_LIMITS.items():
        os.environ.setdefault(key, value)
    return tracking_store.client(uri)


def _open(uri: str, run_id: str | None, experiment: str, job_name: str, tags: dict[str, str]) -> dict[str, Any]:
    """Create the job's run (or reopen ``run_id``): in whichever process :meth:`JobRun._call` chose."""
    started = time.perf_counter()
    client = _client(uri)
    imported = time.perf_counter() - started
    if run_id:
        client.update_run(run_id, status="RUNNING")
        return {"reopened": True, "run_id": run_id}
    run = client.create_run(tracking_store.experiment_id(client, experiment), run_name=job_name, tags=tags)
    created = time.perf_counter() - started - imported
    return {"reopened": False, "run_id": run.info.run_id, "imported_s": imported, "created_s": created}


def _log_params(uri: str, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    _client(uri).log_batch(run_id, params=[Param(k, v) for k, v in params.items()])


def _close(uri: str, run_id: str, metrics: dict[str, float], status: str, ended: str) -> None:
    """Log the job's totals into its run and end it with MLflow's status ``ended``."""
    from mlflow.entities import Metric, RunTag

    client = _client(uri)
    now = int(time.time() * 1000)
    client.log_batch(
        run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()], tags=[RunTag("batchnb.status", status)]
    )
    client.set_terminated(run_id, status=ended)
