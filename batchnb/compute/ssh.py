"""SSH clusters: hosts reached over SSH, run by Dask distributed, used by the engine like the loky pool.

A compute of ``type: ssh`` lists hosts. A job's supervisor asks for the cluster
(:func:`acquire`); the cluster is run by a small *keeper* process (:mod:`batchnb.compute.keeper`)
that starts it over SSH (a scheduler on the first host, ``workers_per_host`` single-threaded worker
processes on every host), publishes the scheduler's address in the store, and stops it when no job
has used it for ``idle_time_before_scale_down`` seconds (0: when the job ends). So clusters scale
to zero by default and can be kept warm for the next job.

The engine submits mini-batches through ``Client.get_executor()``, a ``concurrent.futures``
executor, exactly as it does to loky. If a host's workers die, Dask moves their tasks to the
others; a mini-batch is only charged an attempt when its task fails for good.

Security: no secret is stored; keys are given by path (or come from the SSH agent), and host keys
are always checked against ``known_hosts`` (``~/.ssh/known_hosts`` unless the compute names one):
an unknown or changed host key is refused, never accepted silently.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from ..errors import ComputeError, MissingDependencyError
from ..store import Store
from .base import ComputeTarget

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
    """Start the cluster for an ``ssh`` compute (blocking). Used by the keeper process."""
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
                    "kwargs": {"host": name, "nthreads": 1, "death_timeout": "30s"},
                },
            }
    return SpecCluster(workers, scheduler, name=f"batchnb-{compute['name']}")


def acquire(store: Store, workspace_root: Path, compute: dict[str, Any], job: str) -> str:
    """Lease the compute's cluster for ``job``, starting a keeper if none runs; return the scheduler address."""
    from ..processes import process_alive as supervisor_alive

    name = compute["name"]
    spawn = False
    with store.write() as tx:
        tx.execute("INSERT OR REPLACE INTO cluster_leases (compute, job) VALUES (?, ?)", (name, job))
        row = tx.execute("SELECT * FROM clusters WHERE compute = ?", (name,)).fetchone()
        if row is None or supervisor_alive(row["keeper_pid"], row["keeper_started"]) is False:
            tx.execute("DELETE FROM clusters WHERE compute = ?", (name,))
            tx.execute(
                "INSERT INTO clusters (compute, state, heartbeat_at) VALUES (?, 'starting', ?)", (name, time.time())
            )
            spawn = True
    if spawn:
        _spawn_keeper(workspace_root, name)
    deadline = time.monotonic() + ACQUIRE_TIMEOUT_S
    while time.monotonic() < deadline:
        with store.read() as db:
            row = db.execute("SELECT state, address, error FROM clusters WHERE compute = ?", (name,)).fetchone()
        if row is None or row["state"] == "failed":
            error = row["error"] if row is not None else "the cluster's keeper stopped"
            release(store, name, job)
            raise ComputeError(f"compute {name}: the SSH cluster could not start: {error}")
        if row["state"] == "ready":
            return str(row["address"])
        time.sleep(0.2)
    release(store, name, job)
    raise ComputeError(f"compute {name}: the SSH cluster did not start within {ACQUIRE_TIMEOUT_S:.0f} s")


def release(store: Store, compute: str, job: str) -> None:
    """End ``job``'s lease; the keeper stops the cluster once it has been idle long enough."""
    with store.write() as tx:
        tx.execute("DELETE FROM cluster_leases WHERE compute = ? AND job = ?", (compute, job))


def _spawn_keeper(workspace_root: Path, compute: str) -> None:
    import subprocess

    log_dir = workspace_root / "computes" / compute
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "keeper.log", "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "batchnb.compute.keeper", "--workspace", str(workspace_root), "--compute", compute],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


class SSHClusterTarget(ComputeTarget):
    """The engine's view of an SSH cluster: a ``concurrent.futures`` executor over Dask workers."""

    supports_kill_worker = False

    def __init__(self, compute: dict[str, Any], store: Store, workspace_root: Path, job: str) -> None:
        _require_distributed()
        self.compute = compute
        self.store = store
        self.workspace_root = workspace_root
        self.job = job
        self._client: Any = None

    def executor(self, n_workers: int, env: dict[str, str]) -> Executor:
        """Lease the cluster (first call) and return its executor."""
        if self._client is None:
            from distributed import Client

            address = acquire(self.store, self.workspace_root, self.compute, self.job)
            self._client = Client(address, timeout=30)
        return self._client.get_executor(pure=False)  # type: ignore[no-any-return]

    def worker_count(self) -> int:
        """Workers currently connected."""
        return len(self._client.scheduler_info()["workers"]) if self._client is not None else 0

    def shutdown(self, kill: bool) -> None:
        """Cancel this job's tasks, disconnect, and release the lease."""
        if self._client is not None:
            try:
                if kill:
                    self._client.cancel(list(self._client.futures.values()), force=True)
                self._client.close(timeout=10)
            except Exception:  # the cluster may already be gone; the lease still goes
                pass
            self._client = None
        release(self.store, self.compute["name"], self.job)

    @staticmethod
    def is_broken_pool_error(exc: BaseException) -> bool:
        """Dask reschedules a dead worker's tasks itself: no error means "every task is lost"."""
        return False


def describe(compute: dict[str, Any]) -> str:
    """One line for logs: the hosts and workers of an ssh compute."""
    return json.dumps({"hosts": compute["hosts"], "workers_per_host": compute.get("workers_per_host", 1)})
