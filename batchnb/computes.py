"""Computes: where jobs run. Named, not versioned; the built-in ``local`` (a loky pool on this
machine) always exists.

A service beside :mod:`batchnb.endpoints` rather than part of the registry: besides its records, a
compute has processes to check and stop (:mod:`batchnb.compute`), which the registry never touches.
"""

from __future__ import annotations

import builtins  # the operations have a method named list, which shadows the type
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

from . import entities
from .engine import agent, auto_resume, state
from .errors import ConflictError, InvalidStateError, NotFoundError, ValidationError
from .registry.targets import DEFAULT_COMPUTE
from .schemas import ComputeSpec, validate_spec
from .store import Store
from .workspace import Workspace

# How long a just-started agent may take to take its compute's row before another is started.
AGENT_START_S = 5.0


class ComputeOperations:
    """Compute targets. ``local`` and ``amlcompute`` both mean this machine's loky pool."""

    def __init__(self, workspace: Workspace, store: Store) -> None:
        self._ws = workspace
        self._store = store

    def _default(self) -> entities.Compute:
        return entities.Compute(
            name=DEFAULT_COMPUTE,
            type="local",
            max_workers=os.cpu_count() or 1,
            min_instances=0,
            max_instances=1,
            is_default=True,
        )

    def create_or_update(self, spec: ComputeSpec | dict[str, Any]) -> entities.Compute:
        """Create or replace a compute. ``amlcompute`` is accepted so Azure's scripts run unchanged."""
        compute = spec if isinstance(spec, ComputeSpec) else validate_spec(ComputeSpec, spec, "compute")
        if compute.name == DEFAULT_COMPUTE:
            raise ConflictError(f"'{DEFAULT_COMPUTE}' is the built-in compute and cannot be replaced")
        if compute.min_instances > compute.max_instances:
            raise ValidationError(
                f"compute {compute.name}: min_instances ({compute.min_instances}) is above "
                f"max_instances ({compute.max_instances})",
                field="min_instances",
            )
        record = {**compute.model_dump(mode="json", exclude_none=True), "is_default": False}
        now = time.time()
        with self._store.write() as tx:
            tx.execute(
                "INSERT INTO computes (name, spec, created_at, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                (compute.name, json.dumps(record), now, now),
            )
        return entities.Compute(record)

    def get(self, name: str) -> entities.Compute:
        """Return one compute."""
        if name == DEFAULT_COMPUTE:
            return self._default()
        with self._store.read() as db:
            row = db.execute("SELECT spec FROM computes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"compute {name} does not exist in this workspace")
        return entities.Compute(json.loads(row["spec"]))

    def list(self) -> list[entities.Compute]:
        """All computes, the built-in ``local`` first."""
        with self._store.read() as db:
            rows = db.execute("SELECT spec FROM computes ORDER BY name").fetchall()
        return [self._default(), *(entities.Compute(json.loads(r["spec"])) for r in rows)]

    def delete(self, name: str) -> None:
        """Delete a compute that no deployment uses and no job runs on; its idle agent stops."""
        if name == DEFAULT_COMPUTE:
            raise InvalidStateError(f"'{DEFAULT_COMPUTE}' is the built-in compute and cannot be deleted")
        self.get(name)
        running = self._jobs_on(name, state.ACTIVE - {state.QUEUED})
        if running:
            raise InvalidStateError(
                f"compute {name} runs job(s) {', '.join(running)}; cancel them or wait for them to end"
            )
        with self._store.write() as tx:
            users = [
                f"{r['endpoint']}/{r['name']}"
                for r in tx.execute("SELECT endpoint, name, spec FROM deployments").fetchall()
                if json.loads(r["spec"]).get("resolved", {}).get("compute") == name
            ]
            if users:
                raise InvalidStateError(f"compute {name} is used by deployment(s) {', '.join(users)}")
            if tx.execute("DELETE FROM computes WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError(f"compute {name} does not exist in this workspace")
        agent.stop(self._ws.root, name)

    def _jobs_on(self, name: str, statuses: frozenset[str] | set[str]) -> builtins.list[str]:
        marks = ", ".join("?" for _ in statuses)
        with self._store.read() as db:
            rows = db.execute(
                f"SELECT name FROM jobs WHERE compute = ? AND kind = 'batch' AND status IN ({marks}) "
                "ORDER BY created_at",
                (name, *sorted(statuses)),
            ).fetchall()
        return [r["name"] for r in rows]

    def check(
        self,
        name: str,
        *,
        endpoint_name: str | None = None,
        deployment_name: str | None = None,
        input: str | None = None,
    ) -> dict[str, Any]:
        """Reach every host of an ssh compute, or every worker of a dask compute: one row for each,
        with its threads, memory, Python and package versions against ours.

        Args:
            name: The compute.
            endpoint_name: With it, each host is also checked for the packages of a deployment's
                environment (``deployment_name``, else the endpoint's default deployment).
            deployment_name: The deployment; needs ``endpoint_name``.
            input: A data path or URL each host must reach.
        """
        compute = self.get(name)
        if compute.get("type") not in ("ssh", "dask"):
            raise ValidationError(
                f"compute {name} is {compute.get('type')}: only ssh and dask computes have hosts to check",
                field="type",
            )
        if deployment_name and not endpoint_name:
            raise ValidationError("a deployment is named with its endpoint: give endpoint_name too", field="endpoint")
        environment = self._environment_of(endpoint_name, deployment_name) if endpoint_name else None
        from .compute import check  # asyncio, SSH and Dask: only for this command

        if compute.get("type") == "dask":
            return check.check_dask(dict(compute), environment, input)
        return check.check_compute(dict(compute), environment, input)

    def _environment_of(self, endpoint_name: str, deployment_name: str | None) -> dict[str, Any]:
        """What a deployment's code needs on a host: its environment's requirement lines and the
        digest its build has in a host's cache (see :func:`batchnb.environments.runtime.host_digest`)."""
        from .environments import runtime
        from .registry.environments import EnvironmentOperations

        with self._store.read() as db:
            row = db.execute("SELECT spec FROM endpoints WHERE name = ?", (endpoint_name,)).fetchone()
            if row is None:
                raise NotFoundError(f"batch endpoint {endpoint_name} does not exist in this workspace")
            deployment_name = deployment_name or json.loads(row["spec"]).get("defaults", {}).get("deployment_name")
            row = db.execute(
                "SELECT spec FROM deployments WHERE endpoint = ? AND name = ?", (endpoint_name, deployment_name)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"batch endpoint {endpoint_name} has no deployment named {deployment_name}")
        resolved = json.loads(row["spec"])["resolved"]
        registered = None
        if resolved.get("environment"):
            env_name, _, version = resolved["environment"].partition(":")
            registered = EnvironmentOperations(self._ws, self._store).get(env_name, version=version or None)
        spec = runtime.deployment_spec(resolved, registered)
        label = resolved.get("environment") or f"of {endpoint_name}/{deployment_name}"
        if spec is None:
            return {"name": label, "requirements": [], "digest": None}
        return {"name": label, "requirements": list(spec.requirements), "digest": runtime.host_digest(spec)}

    def show(self, name: str) -> entities.Compute:
        """A compute with its agent: pid, started, workers, running and queued jobs, resident memory."""
        compute = self.get(name)
        row = agent.agent_row(self._store, name)
        running = self._jobs_on(name, state.ACTIVE - {state.QUEUED})
        queued = self._jobs_on(name, {state.QUEUED})
        if row is None:
            compute["agent"] = None
            return compute
        workers, rss = _live_counts(self._ws.root, name, row["pid"]) or (row["workers"], row["rss"])
        compute["agent"] = {
            "pid": row["pid"],
            "host": row["host"],
            # ISO 8601 as every other time a command prints (the store keeps epoch seconds).
            "started": dt.datetime.fromtimestamp(row["created_at"], dt.timezone.utc).isoformat(timespec="seconds"),
            "workers": workers,
            "capacity": row["capacity"] or None,
            "running_jobs": running,
            "queued_jobs": queued,
            "resident_memory_mb": round(rss / 2**20, 1),
            "cluster": row["cluster"],
        }
        return compute

    def start(self, name: str, timeout: float = 30.0) -> entities.Compute:
        """Start the compute's agent now: it resumes jobs a lost agent left, and waits for jobs at
        least a minute (``START_LINGER_S``) or its ``idle_time_before_scale_down``. Returns once
        it serves: once an agent started or stamped its row after this call (a just-killed agent
        may still look alive for a moment)."""
        self.get(name)
        asked = time.time()
        auto_resume.resume_lost(self._store, name)  # queued before it returns: `job show` says so at once
        deadline = time.monotonic() + timeout
        spawned = float("-inf")
        while True:
            row = agent.agent_row(self._store, name)
            if row is not None and max(row["created_at"], row["heartbeat_at"]) >= asked:
                return self.show(name)
            if row is None and time.monotonic() - spawned > AGENT_START_S:
                agent.ensure(self._ws.root, name, linger=agent.START_LINGER_S)
                spawned = time.monotonic()
            elif row is not None:
                agent.ensure(self._ws.root, name)  # wakes it; it stamps its row within a second
            if time.monotonic() > deadline:
                raise InvalidStateError(
                    f"the agent of compute {name} did not start within {timeout:g} s; "
                    f"see {agent.log_folder(self._ws.root, name) / 'agent.log'}"
                )
            time.sleep(0.1)

    def recover(self) -> builtins.list[str]:
        """Start the agent of every compute that has work its agent left: jobs queued, running
        under an owner that may be gone, or lost and waiting to be resumed. Returns those computes.
        (The Jupyter server extension calls this as it loads.)"""
        marks = ", ".join("?" for _ in state.ACTIVE)
        with self._store.read() as db:
            rows = db.execute(
                f"SELECT DISTINCT compute FROM jobs WHERE kind = 'batch' AND compute IS NOT NULL "
                f"AND (status IN ({marks}) OR (status = ? AND lost = 1))",
                (*sorted(state.ACTIVE), state.INTERRUPTED),
            ).fetchall()
        started = []
        for row in rows:
            if agent.agent_row(self._store, row["compute"]) is None:
                auto_resume.resume_lost(self._store, row["compute"])
                agent.ensure(self._ws.root, row["compute"])
                started.append(row["compute"])
        return started

    def stop(self, name: str) -> dict[str, Any]:
        """Stop the compute's agent and its workers (or its SSH cluster) now; its running jobs end
        Interrupted."""
        self.get(name)
        return agent.stop(self._ws.root, name)

    def resolve(self, ref: str | None) -> entities.Compute:
        """Resolve a deployment's ``compute`` (``azureml:<name>`` or ``<name>``); None means ``local``."""
        if not ref:
            return self.get(DEFAULT_COMPUTE)
        return self.get(ref.removeprefix("azureml:"))


def _live_counts(workspace_root: Path, compute: str, pid: int) -> tuple[int, int] | None:
    """An agent's worker processes and resident memory, read now (see
    :func:`batchnb.compute.zygote.agent_usage`); None if they cannot be read, or its workers are not
    a zygote's (then the agent's last heartbeat says)."""
    import psutil

    from .compute import zygote

    try:
        workers, rss = zygote.agent_usage(workspace_root, compute, pid)
    except psutil.Error:
        return None
    return (workers, rss) if workers is not None else None


__all__ = ["DEFAULT_COMPUTE", "ComputeOperations"]
