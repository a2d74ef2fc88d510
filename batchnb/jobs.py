"""``jobs``: invoke a deployment, and show, list, stream, wait for, cancel, resume, rerun and download jobs.

A service above the engine and pipelines, as :mod:`batchnb.endpoints` and :mod:`batchnb.computes`
are: it serves both kinds of job. ``invoke`` validates everything it can (deployment, input,
overrides, output location: see :mod:`batchnb.engine.invoke`) before any work starts, records the
job as ``Queued`` and makes sure its compute's agent runs it (:mod:`batchnb.engine.agent`); it
returns at once. Pipeline jobs and their steps are jobs too: the calls for them go to
:mod:`batchnb.pipelines.operations`, and a pipeline job runs in a runner process of its own.
"""

from __future__ import annotations

import builtins  # the operations have a method named list, which shadows the type
import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import display
from .engine import agent, attempts, failures, lifecycle, output, output_location, state
from .engine.invoke import BatchInvocation
from .engine.logs import JobLogs, read_from
from .engine.records import batch_job_record, invoked_by_default, refuse_taken_names
from .entities import Entity
from .errors import (
    InvalidStateError,
    JobFailedError,
    JobWaitTimeoutError,
    NotFoundError,
    ValidationError,
)
from .specfile import is_url

if TYPE_CHECKING:
    from .client import BatchClient

# A batch job's one child job, as on Azure (where the scoring runs as a pipeline step of that name).
SCORING_STEP = "batchscoring"
SCORING_CHILD = "-" + SCORING_STEP


# Called with a job's name when ``wait()`` has seen it end. A front end that shows the job (the
# live widget) registers here to finish its last update before the caller moves on: otherwise a
# notebook run headless can end, and its kernel stop, before the display is replaced.
ON_JOB_END: list[Callable[[str], None]] = []


class Job(Entity):
    """A batch job. ``wait()`` and ``refresh()`` talk to the workspace it came from."""

    kind = "job"

    def _ops(self) -> JobOperations:
        ops: JobOperations | None = getattr(self, "_operations", None)
        if ops is None:
            raise InvalidStateError("this Job record is detached from its workspace")
        return ops

    def refresh(self, metrics: bool = True) -> Job:
        """Re-read the job from the store (in place) and return it; ``metrics=False`` leaves its
        ``metrics`` as they were (see :meth:`JobOperations.get`)."""
        self.update(self._ops().get(self["name"], metrics=metrics))  # same keys every time: no clear(), no gap
        return self

    def wait(self, timeout: float | None = None, raise_on_failure: bool = False) -> Job:
        """Block until the job ends; return it refreshed."""
        self.update(self._ops().wait(self["name"], timeout=timeout, raise_on_failure=raise_on_failure))
        return self

    def timeline(self) -> list[tuple[float, int, int]]:
        """Progress over time: (seconds since start, mini-batches finished, rows written)."""
        return self._ops().timeline(self["name"])

    def promote(self, form: str = "cli") -> str:
        """The invocation that started this job, to run it again: see :meth:`JobOperations.promote`."""
        return self._ops().promote(self["name"], form)

    def __repr__(self) -> str:
        return display.job_text(self)

    def _repr_html_(self) -> str:
        return self._ops().summary_html(self)


def ended_error(job: dict[str, Any]) -> JobFailedError:
    """The error for a job that ended other than Completed (Failed, Canceled, Interrupted)."""
    # With the exception, not only the first line: "init() ... failed in process12:" says no why.
    why = display.error_summary(job["error"]) or "see its logs"
    return JobFailedError(f"job {job['name']} ended {job['status']}: {why}")


class JobOperations:
    """The job engine's API, shared by the CLI, magics, REST handlers and widgets."""

    def __init__(self, client: BatchClient) -> None:
        self._client = client
        self._ws = client.workspace
        self._store = client.store

    # -- invoke ---------------------------------------------------------------------------------

    def invoke(
        self,
        endpoint_name: str,
        deployment_name: str | None = None,
        *,
        input: str | dict[str, Any] | None = None,
        input_type: str | None = None,
        inputs: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        output_path: str | None = None,
        job_name: str | None = None,
        mini_batch_size: int | str | None = None,
        instance_count: int | None = None,
        set_values: list[str] | None = None,
        params_override: list[dict[str, Any]] | None = None,
        experiment_name: str | None = None,
        dry_run: bool = False,
        invoked_by: str | None = None,
        base_dir: Path | None = None,
        incremental: bool = False,
    ) -> Entity:
        """Start a job on an endpoint (its default deployment unless one is named) and return it at once.

        Args:
            endpoint_name: The endpoint.
            deployment_name: A deployment of it; default: the endpoint's default deployment.
            input: A local path, ``azureml:<data>@latest``, ``azureml://datastores/<ds>/paths/<p>``, an
                fsspec URL, or a mapping ``{type, path}``.
            input_type: ``uri_folder`` or ``uri_file``; inferred from a local path when omitted.
            inputs: Named inputs (from ``--file inputs.yml``); a model deployment takes exactly one.
            outputs: Named outputs; ``score`` sets the output location.
            output_path: The output folder (``--output-path``).
            job_name: The job's name; default: generated.
            mini_batch_size: Per-job override.
            instance_count: Per-job override.
            set_values: az-style ``--set`` overrides (``error_threshold=5``, ``retry_settings.timeout=60``).
            params_override: azure-ai-ml's form of the same overrides: a list of one-key dicts.
            experiment_name: Recorded with the job (defaults to the endpoint name, as on Azure).
            dry_run: Score only the first mini-batch, in this process, and return its result.
            invoked_by: Who invokes (the REST API passes the Jupyter identity).
            base_dir: Where relative paths resolve (the inputs file's folder).
            incremental: Skip the input files that an earlier ``incremental`` job of the same
                deployment revision, model version and settings scored, reusing their rows (see
                :mod:`batchnb.engine.incremental`); ``job show`` says how many were reused.

        Returns:
            The :class:`Job` (status ``Queued``), or for a dry run the result record.
        """
        endpoint = self._client.batch_endpoints.get(endpoint_name)
        deployment_name = deployment_name or endpoint["defaults"].get("deployment_name")
        if not deployment_name:
            raise NotFoundError(
                f"No valid deployments to route to: endpoint {endpoint_name} has no default deployment; "
                "name one with --deployment-name or set defaults.deployment_name"
            )
        deployment = self._client.batch_deployments.get(deployment_name, endpoint_name)
        given: dict[str, Any] = {
            "input": input,
            "input_type": input_type,
            "inputs": inputs,
            "outputs": outputs,
            "output_path": output_path,
            "job_name": job_name,
            "experiment_name": experiment_name,
            "base_dir": base_dir,
        }
        if deployment["type"] == "pipeline":
            from .pipelines import operations as pipelines

            overrides = [f"{k}={v}" for d in params_override or [] for k, v in d.items()]
            job_or_plan = pipelines.invoke_deployment(
                self._client,
                endpoint_name,
                deployment,
                **given,
                set_values=[*(set_values or []), *overrides],
                invoked_by=invoked_by,
                dry_run=dry_run,
                refused={
                    "--mini-batch-size": mini_batch_size,
                    "--instance-count": instance_count,
                    "--incremental": incremental or None,
                },
            )
            if isinstance(job_or_plan, dict):
                return Entity(job_or_plan)
            self._spawn(job_or_plan)
            return self.get(job_or_plan)
        planner_ = BatchInvocation(self._client)
        name, spec = planner_.plan(
            endpoint_name,
            deployment,
            **given,
            mini_batch_size=mini_batch_size,
            instance_count=instance_count,
            set_values=set_values,
            params_override=params_override,
        )
        if dry_run:
            return planner_.dry_run(spec)

        job_dir = self._ws.job_dir(name)
        spec["job_dir"] = str(job_dir)
        reuse = None
        if incremental:
            from .engine import incremental as incremental_

            reuse = incremental_.plan(self._store, spec)  # reads and hashes the input: before the transaction
            spec["invocation"]["incremental"] = True
            spec["incremental"] = reuse.summary()
        now = time.time()
        with self._store.write() as tx:
            refuse_taken_names(tx, [name])
            tx.execute(
                "INSERT INTO jobs (name, kind, endpoint, deployment, status, spec, invoked_by, created_at, "
                "heartbeat_at) VALUES (?, 'batch', ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    endpoint_name,
                    deployment_name,
                    state.QUEUED,
                    json.dumps(spec),
                    invoked_by or invoked_by_default(),
                    now,
                    now,
                ),
            )
            output_location.reserve(tx, name, spec)  # refused (and nothing recorded) if another job holds it
            if reuse is not None:
                incremental_.record(tx, name, spec, reuse)
        if reuse is not None:
            incremental_.copy_parts(job_dir, spec, reuse)
            done = spec["incremental"]
            JobLogs(job_dir).event(
                f"incremental: {done['mini_batches_reused']} mini-batch(es) ({done['items_reused']} item(s)) reused "
                f"from {', '.join(done['reused_from']) or 'no earlier job'}; "
                f"{done['mini_batches_to_score']} to score"
            )
        self._spawn(name)  # it makes the job's logs folder
        return self.get(name)

    def create_or_update(
        self,
        job: dict[str, Any] | Any,
        *,
        base_dir: Path | None = None,
        set_values: list[str] | None = None,
        name: str | None = None,
        experiment_name: str | None = None,
        invoked_by: str | None = None,
        source: str = "pipeline job",
    ) -> Job:
        """Start a pipeline job (``job create -f pipeline-job.yml``) and return it at once.

        Args:
            job: Azure's ``pipelineJob`` YAML as a mapping, or a pipeline built in Python (calling a
                :func:`batchnb.pipeline` function returns one).
            base_dir: Where relative paths in it resolve (the YAML file's folder).
            set_values: az-style ``--set`` overrides, e.g. ``inputs.input_data.path=data/unlabeled``.
            name: The job's name; default: generated.
            experiment_name: Recorded with the job.
            invoked_by: Who submits (the REST API passes the Jupyter identity).
            source: Names the spec in error messages (the file name).
        """
        from .pipelines import operations as pipelines

        if hasattr(job, "to_job_spec"):
            job, base_dir = job.to_job_spec(), base_dir
        created = pipelines.create_job(
            self._client,
            job,
            base_dir=base_dir,
            set_values=set_values,
            name=name,
            experiment_name=experiment_name,
            invoked_by=invoked_by,
            source=source,
        )
        self._spawn(created)
        return self.get(created)

    begin_create_or_update = create_or_update

    def _spawn(self, name: str) -> None:
        """Make sure the job will run: its compute's agent (a batch job) or its own runner (a pipeline)."""
        job_dir = self._ws.job_dir(name)
        (job_dir / "logs" / "sys").mkdir(parents=True, exist_ok=True)
        row = self._row(name)
        if row["kind"] == "batch":
            agent.ensure(self._ws.root, row["compute"] or "local")
            return
        from .pipelines import auto_resume
        from .pipelines.runner import start_runner

        start_runner(self._store, self._ws.root, name, job_dir)
        # Where an agent would have started: other pipeline jobs whose runner was lost go on. Never
        # at the cost of this job, which runs already: they are looked at again on the next occasion.
        with contextlib.suppress(Exception):
            auto_resume.resume_lost(self._store, self._ws, skip=name)

    def recover(self) -> builtins.list[str]:
        """Start a runner again for every pipeline job whose runner died (a reboot, a killed
        process), up to its ``max_auto_resumes``, as a compute's agent resumes its batch jobs (see
        :mod:`batchnb.pipelines.auto_resume`). The Jupyter server extension calls this as it loads.
        Returns the jobs resumed."""
        from .pipelines import auto_resume

        return auto_resume.resume_lost(self._store, self._ws)

    # -- reading --------------------------------------------------------------------------------

    def _row(self, name: str) -> Any:
        with self._store.read() as db:
            row = db.execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
            if row is None and name.endswith(SCORING_CHILD):
                # A batch job's scoring child (see get): actions on it act on the batch job.
                row = db.execute(
                    "SELECT * FROM jobs WHERE name = ? AND kind = 'batch'", (name.removesuffix(SCORING_CHILD),)
                ).fetchone()
        if row is None:
            raise NotFoundError(f"job {name} does not exist in this workspace")
        return row

    def _entity(self, row: Any, metrics: bool = False) -> Job:
        """The job as the API returns it; with ``metrics``, read from its MLflow run (if it has one)."""
        if row["kind"] != "batch":
            from .pipelines.operations import job_record

            job = Job(job_record(self._store, row, metrics))
            object.__setattr__(job, "_operations", self)
            return job
        job = Job(batch_job_record(self._store, row, metrics))
        object.__setattr__(job, "_operations", self)
        return job

    def get(self, name: str, metrics: bool = True) -> Job:
        """Return one job with its live counters.

        As on Azure, a batch job has one child job, its scoring step, named ``<job>-batchscoring``
        here: the same status, counters, metrics and output, listed with ``parent_job_name``
        (Azure's SDK notebooks download the output from it).

        Args:
            name: The job's name.
            metrics: Also read ``metrics``: each metric's last value in the job's MLflow run (``{}``
                for a job without one; for a pipeline job, each step's too). Pollers pass False: it
                reads the tracking store (and imports mlflow, once per process, for a job with a run).

        Returns:
            The job.
        """
        row = self._row(name)
        job = self._entity(row, metrics=metrics)
        if row["name"] != name:
            job = Job({**job, "name": name, "step": SCORING_STEP, "parent_job_name": row["name"]})
            object.__setattr__(job, "_operations", self)
        return job

    def _peek(self, name: str) -> Job:
        """:meth:`get` without the metrics."""
        return self.get(name, metrics=False)

    def list(
        self,
        endpoint_name: str | None = None,
        deployment_name: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        parent_job_name: str | None = None,
    ) -> list[Job]:
        """Jobs, newest first, optionally for one endpoint or deployment, or in one status.

        The steps of pipeline jobs are child jobs: listed only with ``parent_job_name`` (``az ml job
        list --parent-job-name``), then in the pipeline's step order.
        """
        if parent_job_name:
            parent = self._peek(parent_job_name)
            if parent.get("parent_job_name") or parent["type"] not in ("pipeline", "batch"):
                raise ValidationError(f"job {parent_job_name} is a {parent['type']} job and has no child jobs")
            if parent["type"] == "batch":
                children = [self.get(parent_job_name + SCORING_CHILD)]
            else:
                children = [self._peek(step["job_name"]) for step in parent["steps"]]
            children = [c for c in children if not status or c["status"] == status]
            return children[:limit] if limit else children
        sql = "SELECT * FROM jobs WHERE parent IS NULL AND archived_at IS NULL"  # archived: see engine.catalog
        params: builtins.list[Any] = []
        if endpoint_name:
            sql, params = sql + " AND endpoint = ?", [*params, endpoint_name]
        if deployment_name:
            sql, params = sql + " AND deployment = ?", [*params, deployment_name]
        sql += " ORDER BY created_at DESC"
        with self._store.read() as db:
            rows = db.execute(sql, params).fetchall()
        jobs = [self._entity(r) for r in rows]
        if status:
            jobs = [j for j in jobs if j["status"] == status]
        return jobs[:limit] if limit else jobs

    def promote(self, name: str, form: str = "cli") -> str:
        """Write out the invocation that started a batch job, to run it again (``job show --as``).

        Args:
            name: The job.
            form: ``cli`` (the command line), ``inputs-yaml`` (Azure's ``invoke --file`` YAML),
                ``papermill`` (a parametrized notebook, as JSON) or ``sdk`` (azure-ai-ml code).

        Returns:
            The text: see :mod:`batchnb.engine.promote`.
        """
        from .engine import promote

        row = self._row(name)
        return promote.render(json.loads(row["spec"]), row["name"], form)

    def timeline(self, name: str) -> builtins.list[tuple[float, int, int]]:
        """(seconds since the job started, mini-batches finished, rows written) at each finish."""
        row = self._row(name)
        start = row["started_at"]
        if start is None:
            return []
        with self._store.read() as db:
            ends = db.execute(
                "SELECT ended_at, rows FROM minibatches WHERE job = ? AND status IN ('done', 'failed') "
                "AND ended_at IS NOT NULL ORDER BY ended_at",
                (name,),
            ).fetchall()
        points, done, rows = [(0.0, 0, 0)], 0, 0
        for r in ends:
            done, rows = done + 1, rows + r["rows"]
            points.append((max(0.0, r["ended_at"] - start), done, rows))
        return points

    def wait(self, name: str, timeout: float | None = None, raise_on_failure: bool = False, poll: float = 0.2) -> Job:
        """Block until the job is Completed, Failed, Canceled or Interrupted; return it. Past
        ``timeout`` seconds, raises :class:`JobWaitTimeoutError` (a ``TimeoutError``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self._peek(name)
            if job["status"] in state.ENDED:
                job = self.get(name)
                break
            if deadline is not None and time.monotonic() > deadline:
                raise JobWaitTimeoutError(f"job {name} is still {job['status']} after {timeout:g} s")
            time.sleep(poll)
        for hook in list(ON_JOB_END):
            hook(name)
        if raise_on_failure and job["status"] != state.COMPLETED:
            raise ended_error(job)
        return job

    def stream(self, name: str, out: TextIO | None = None, poll: float = 0.5) -> Job:
        """Print the job's events as they happen until it ends (``az ml job stream``); return it.

        Whatever it ended as: the caller decides what a Failed or Canceled job means (the CLI
        exits non-zero with :func:`ended_error`, like ``az ml job stream``).
        """
        out = out or sys.stdout
        job = self._peek(name)
        log = Path(job["std_log"]) if job["type"] == "command" else Path(job["logs_dir"]) / "sys" / "master_role.txt"
        offset = 0
        while True:
            job = self._peek(name)
            chunk, offset = read_from(log, offset)
            if chunk:
                out.write(chunk)
                out.flush()
            if job["status"] in state.ENDED:
                return job
            time.sleep(poll)

    # -- actions --------------------------------------------------------------------------------

    def cancel(self, name: str) -> Job:
        """Request cancellation: dispatch stops, workers stop, committed outputs stay; ends Canceled."""
        job = self._refuse_step(self._peek(name), "cancel")
        if job["status"] in state.TERMINAL:
            raise InvalidStateError(f"job {name} already ended {job['status']}")
        with self._store.write() as tx:
            if job["status"] == state.INTERRUPTED:
                tx.execute(
                    "UPDATE jobs SET status = ?, ended_at = ?, cancel_requested = 1 WHERE name = ?",
                    (state.CANCELED, time.time(), name),
                )
            else:
                tx.execute(
                    "UPDATE jobs SET status = ?, cancel_requested = 1 WHERE name = ? AND status NOT IN "
                    "('Completed', 'Failed', 'Canceled')",
                    (state.CANCEL_REQUESTED, name),
                )
        return self.get(name)

    begin_cancel = cancel

    def resume(self, name: str) -> Job:
        """Finish an Interrupted (or Canceled) job with a new supervisor; committed mini-batches are kept."""
        job = self._refuse_step(self._peek(name), "resume")
        if job["status"] not in (state.INTERRUPTED, state.CANCELED):
            raise InvalidStateError(
                f"job {name} is {job['status']}; only Interrupted or Canceled jobs can be "
                "resumed (use rerun-failed for failed mini-batches of a finished job)"
            )
        self._requeue(name, reset_failed=False)
        return self.get(name)

    def rerun_failed(self, name: str, latest: bool = False) -> Job:
        """Score again every failed item of a finished job (raised, timed out, crashed, or left out of a
        short ``run()`` result) and never-run mini-batches, then rebuild its output, one row per item.

        Args:
            name: The job.
            latest: Score them on the deployment's current revision (its model, code and environment
                now), not the one the job was invoked on; ``job show`` says which revision scored what.
        """
        job = self._refuse_step(self._peek(name), "rerun-failed")
        if job["status"] not in (state.COMPLETED, state.FAILED):
            raise InvalidStateError(f"job {name} is {job['status']}; rerun-failed applies to Completed or Failed jobs")
        new_spec = None
        if job["type"] == "pipeline":
            if job["status"] == state.COMPLETED:
                raise InvalidStateError(f"pipeline job {name} has no failed steps to rerun")
            if latest:
                raise ValidationError("--latest applies to jobs of model deployments", field="latest")
        else:
            p = job["progress"]
            mb = p["mini_batches"]
            if p["items"]["failed"] == 0 and mb["failed"] == 0 and mb["pending"] == 0 and mb["total"] > 0:
                raise InvalidStateError(f"job {name} has no failed items to rerun")
            if latest:
                new_spec = BatchInvocation(self._client).on_latest_revision(json.loads(self._row(name)["spec"]))
        lifecycle.requeue(self._store, name, reset_failed=True, new_spec=new_spec)
        self._spawn(name)
        return self.get(name)

    def failures(self, name: str, limit: int | None = None, tracebacks: bool = False) -> builtins.list[dict[str, Any]]:
        """The failed items of a batch job, in input order: ``item`` (a file, or a tabular chunk's
        rows), ``mini_batch``, ``attempts``, ``why`` (raised, timeout, crashed, missing),
        ``error_type``, ``error``, ``traceback`` (the log file that holds it, under the job's folder)
        and ``revision``.

        Args:
            name: The job.
            limit: Only the first ``limit`` of them.
            tracebacks: Add ``traceback_text``, the traceback itself (``None`` for an item that timed
                out, crashed or was left out of a short ``run()`` result).
        """
        job, own = self._batch_only(name, "failed items")
        with self._store.read() as db:
            return failures.list_failures(db, own, limit, tracebacks, Path(job["logs_dir"]).parent)

    def worker_timeline(self, name: str) -> builtins.list[dict[str, Any]]:
        """Every mini-batch attempt of a batch job, in the order they started (see
        :func:`batchnb.engine.attempts.worker_timeline`): what Dask's task stream shows of tasks."""
        job, own = self._batch_only(name, "worker timelines")
        with self._store.read() as db:
            return attempts.worker_timeline(db, own, job["started_at"])

    def summary_html(self, job: Job | dict[str, Any]) -> str:
        """A job's summary card (:func:`batchnb.display.job_html`) with what it draws from the store:
        a batch job's throughput, worker timeline and first failed items with their tracebacks."""
        if job.get("type") != "batch":
            return display.job_html(job)
        name = job["name"]
        shown = self.failures(name, limit=display.FAILURES_SHOWN, tracebacks=True)
        total = len(self.failures(name)) if len(shown) == display.FAILURES_SHOWN else len(shown)
        return display.job_html(
            job, self.timeline(name), failed=shown, failed_total=total, attempts=self.worker_timeline(name)
        )

    def _batch_only(self, name: str, what: str) -> tuple[Job, str]:
        """The batch job, and the name its store rows have (its scoring child's are the batch job's)."""
        if (job := self._peek(name))["type"] != "batch":
            raise ValidationError(f"job {name} is a {job['type']} job; {what} are those of batch jobs", field="name")
        return job, str(job.get("parent_job_name") or job["name"])

    @staticmethod
    def _refuse_step(job: Job, action: str) -> Job:
        if job.get("parent_job_name"):
            raise InvalidStateError(
                f"job {job['name']} is step {job['step']} of pipeline job {job['parent_job_name']}; "
                f"{action} the pipeline job instead"
            )
        return job

    def _requeue(self, name: str, reset_failed: bool) -> None:
        lifecycle.requeue(self._store, name, reset_failed)
        self._spawn(name)

    def download(self, name: str, download_path: str | Path = ".", output_name: str = "score") -> Path:
        """Copy a job's output into ``<download_path>/named-outputs/<output_name>/``, as ``az ml job download``."""
        job = self._peek(name)
        if job["type"] != "batch":
            from .pipelines.operations import output_location

            source = output_location(job, output_name)
        else:
            if output_name != "score":
                raise ValidationError(f"job {name} has one output, 'score' (got {output_name!r})", field="output_name")
            if job["status"] != state.COMPLETED:
                raise InvalidStateError(f"job {name} is {job['status']}; its output is complete only once Completed")
            source = job["outputs"]["score"]["path"]
        target = Path(download_path).expanduser().resolve() / "named-outputs" / output_name
        # Looked for before the target is made: an output deleted since the job leaves no empty folder.
        fs = None
        if is_url(source):
            from .cloud.fs import filesystem

            fs, root = filesystem(source, self._ws.root)
            found = fs.exists(root)
        else:
            found = Path(source).exists()
        if not found:
            raise NotFoundError(f"job {name}'s output {output_name}: {source} does not exist")
        target.mkdir(parents=True, exist_ok=True)
        if fs is not None:
            fs.get(root.rstrip("/") + "/", str(target), recursive=True)
        elif Path(source).is_file():
            shutil.copy2(source, target / Path(source).name)
        else:
            shutil.copytree(source, target, dirs_exist_ok=True)
        return target


__all__ = ["Job", "JobOperations", "ended_error", "output"]
