"""SSH clusters: hosts reached over SSH, run by Dask distributed, used by the engine like the local workers.

A compute of ``type: ssh`` lists hosts. Its agent (:mod:`batchnb.engine.agent`, the same lifecycle
as a local compute's) owns its cluster (:class:`SSHCluster`): started over SSH when the first job
needs it (a scheduler on the first host, ``workers_per_host`` single-threaded worker processes on
every host) and stopped with the agent, when no job has run for ``idle_time_before_scale_down``
seconds (0: when its queue is empty) or at ``compute stop``. So clusters scale to zero by default
and can be kept warm for the next job.

A job uses the cluster as it uses any Dask cluster (:class:`batchnb.compute.dask.DaskWorkers`): its
hosts need not see this machine's files, nor log in as the user who invoked (a job whose workers
cannot read its folder ships them its code, its model and its datastores' credentials, see
:mod:`batchnb.engine.remote`). If a host's workers die, Dask moves their tasks to the others; a
mini-batch is only charged an attempt when its task fails for good or is overdue. A worker lost
while the cluster stays warm (its Nanny killed too, its host rebooted) is started again on its host
before the next job (:meth:`SSHCluster.heal`). A scheduler lost mid-job interrupts the job (as on
any Dask compute); the job's next run, which the agent starts by itself, starts a new cluster in
place of the broken one (:meth:`SSHCluster.address`).

``compute stop`` during a job ends the job Interrupted at once (:mod:`batchnb.engine.agent`), then
closes the cluster: its scheduler, Nannies and workers end with their SSH sessions.

Security: no secret is stored; keys are given by path (or come from the SSH agent), and host keys
are always checked against ``known_hosts`` (``~/.ssh/known_hosts`` unless the compute names one):
an unknown or changed host key is refused, never accepted silently.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ComputeError, MissingDependencyError
from .dask import answers

ACQUIRE_TIMEOUT_S = 120.0


def _require_distributed() -> None:
    try:
        import asyncssh  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "SSH clusters need Dask distributed and asyncssh: pip install 'batchnb[dask]'"
        ) from None


def split_host(host: str, default_port: int) -> tuple[str, int]:
    """``host`` or ``host:port`` → (host, port)."""
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and name:
        return name, int(port)
    return host, default_port


def connect_options(compute: dict[str, Any], host: str) -> dict[str, Any]:
    """The asyncssh options for one host. ``known_hosts`` is never None: host keys are always checked."""
    _, port = split_host(host, int(compute.get("ssh_port") or 22))
    known_hosts = compute.get("known_hosts") or str(Path("~/.ssh/known_hosts").expanduser())
    options: dict[str, Any] = {"port": port, "known_hosts": known_hosts}
    if compute.get("ssh_user"):
        options["username"] = compute["ssh_user"]
    if compute.get("ssh_key"):
        options["client_keys"] = [str(Path(compute["ssh_key"]).expanduser())]
    return options


def build_cluster(compute: dict[str, Any]) -> Any:
    """Start the cluster for an ``ssh`` compute (blocking)."""
    _require_distributed()
    from distributed import SpecCluster
    from distributed.deploy.ssh import Scheduler, Worker

    hosts: list[str] = compute["hosts"]
    python = compute.get("python") or sys.executable
    first, _ = split_host(hosts[0], 22)
    scheduler = {
        "cls": Scheduler,
        "options": {
            "address": first,
            "connect_options": connect_options(compute, hosts[0]),
            "remote_python": python,
            "kwargs": {"host": first, "port": 0, "dashboard_address": f"{first}:0"},
        },
    }
    workers: dict[str, Any] = {}
    for host in hosts:
        name, _ = split_host(host, 22)
        for i in range(int(compute.get("workers_per_host") or 1)):
            workers[f"{host}-{i}"] = {
                "cls": Worker,
                "options": {
                    "address": name,
                    "connect_options": connect_options(compute, host),
                    "remote_python": python,
                    # One thread per worker process: init() once per process, like a loky worker.
                    # Named after its place in the spec, so a lost one is known (see SSHCluster.heal).
                    "kwargs": {"host": name, "nthreads": 1, "death_timeout": "30s", "name": f"{host}-{i}"},
                },
            }
    return SpecCluster(workers, scheduler, name=f"batchnb-{compute['name']}")


def explain(exc: BaseException, compute: dict[str, Any]) -> str:
    """A one-line reason for a cluster that could not start, naming the host where known."""
    name = type(exc).__name__
    text = str(exc).strip() or name
    known_hosts = compute.get("known_hosts") or "~/.ssh/known_hosts"
    if name == "HostKeyNotVerifiable":
        return (
            f"host key not trusted ({text}): add the host's key to {known_hosts}; batchnb never accepts "
            "unknown or changed host keys"
        )
    if name == "PermissionDenied":
        return f"SSH login refused ({text}): check ssh_user and ssh_key"
    if isinstance(exc, OSError):
        return f"cannot reach an SSH host: {text}"
    return f"{name}: {text}"


class SSHCluster:
    """An ssh compute's cluster, owned by its agent: started by the first job that needs it, shared
    by the jobs after it, stopped with the agent."""

    def __init__(self, compute: dict[str, Any]) -> None:
        self.compute = compute
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._closing = threading.Event()  # close() was called: a start under way gives up

    def address(self, log: Any = None) -> str:
        """The scheduler's address, starting the cluster first if it does not run (blocking); how
        long the start took goes to ``log`` (the job's event log).

        Raises:
            ComputeError: It could not start; the reason names the host where known.
        """
        with self._lock:
            if self._cluster is not None and not answers(str(self._cluster.scheduler_address)):
                (log or print)(
                    f"compute {self.compute['name']}: the SSH cluster's scheduler at {self._cluster.scheduler_address} "
                    "does not answer: the cluster is closed and started again"
                )
                self._close(timeout=10)  # the Nannies and workers left, if any; the scheduler is gone
            if self._cluster is None:
                _require_distributed()
                from distributed import Client

                started = time.monotonic()
                cluster = None
                try:
                    self._refuse_if_closing()
                    cluster = build_cluster(self.compute)
                    with Client(cluster) as client:
                        self._wait_for_workers(client, len(cluster.workers))
                except Exception as exc:
                    if cluster is not None:  # no nanny or worker left behind on the hosts it reached
                        with contextlib.suppress(Exception):
                            cluster.close(timeout=10)
                    why = exc.message if isinstance(exc, ComputeError) else explain(exc, self.compute)
                    raise ComputeError(
                        f"compute {self.compute['name']}: the SSH cluster could not start: {why}"
                    ) from exc
                self._cluster = cluster
                (log or print)(
                    f"compute {self.compute['name']}: the SSH cluster started in {time.monotonic() - started:.1f} s "
                    f"(scheduler {cluster.scheduler_address})"
                )
            return str(self._cluster.scheduler_address)

    def heal(self, client: Any, log: Any) -> None:
        """Before a job on the warm cluster: restart, on its host, every worker the cluster lost since
        it started (its Nanny too was killed, or its host rebooted); say so in the job's ``log``,
        and what could not be restarted."""
        with self._lock:
            cluster = self._cluster
            if cluster is None:
                return
            present = {w.get("name") for w in client.scheduler_info(n_workers=-1)["workers"].values()}
            lost = sorted(name for name in cluster.worker_spec if name not in present)
            if not lost:
                return
            total = len(cluster.worker_spec)
            log(
                f"compute {self.compute['name']}: {len(lost)} of {total} worker(s) lost since the last job "
                f"({', '.join(lost)}); restarting them on their hosts"
            )
            started = time.monotonic()
            try:
                cluster.sync(_restart_workers, cluster, lost)
                client.wait_for_workers(total, timeout=ACQUIRE_TIMEOUT_S)
            except Exception as exc:
                left = len(client.scheduler_info(n_workers=-1)["workers"])
                log(
                    f"compute {self.compute['name']}: could not restart them: {explain(exc, self.compute)}; "
                    f"the job runs on the {left} worker(s) left"
                )
                return
            log(
                f"compute {self.compute['name']}: {len(lost)} worker(s) restarted in {time.monotonic() - started:.1f} s"
            )

    def running_address(self) -> str | None:
        return str(self._cluster.scheduler_address) if self._cluster is not None else None

    def _refuse_if_closing(self) -> None:
        if self._closing.is_set():
            raise ComputeError("its compute is being stopped")

    def _wait_for_workers(self, client: Any, n: int) -> None:
        """Wait for the cluster's ``n`` workers (up to ``ACQUIRE_TIMEOUT_S``), giving up at once if the
        compute is being stopped (the cluster is then closed by the thread starting it: closing it
        from two threads leaves its processes behind)."""
        deadline = time.monotonic() + ACQUIRE_TIMEOUT_S
        while True:
            self._refuse_if_closing()
            try:
                client.wait_for_workers(n, timeout=1.0)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        """Stop the cluster for good: its scheduler, Nannies and workers, over their SSH sessions. A
        start under way gives up, and closes what it started, first."""
        self._closing.set()
        with self._lock:
            self._close()

    def _close(self, timeout: float = 30) -> None:
        if self._cluster is not None:
            with contextlib.suppress(Exception):  # its hosts may be gone already
                self._cluster.close(timeout=timeout)
            self._cluster = None


async def _restart_workers(cluster: Any, names: list[str]) -> None:
    """Start the workers ``names`` of ``cluster`` again over SSH (on its event loop)."""
    for name in names:
        gone = cluster.workers.pop(name, None)
        if gone is not None:  # its SSH session: ended with the worker, or hung with its host
            with contextlib.suppress(Exception):
                await gone.close()
    # SpecCluster starts every worker of its spec that it does not run (distributed has no public
    # call for "start this one again": scale() only adds or removes spec entries).
    await cluster._correct_state()


def describe(compute: dict[str, Any]) -> str:
    """One line for logs: the hosts and workers of an ssh compute."""
    return json.dumps({"hosts": compute["hosts"], "workers_per_host": compute.get("workers_per_host", 1)})
