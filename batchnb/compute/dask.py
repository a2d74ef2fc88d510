"""Dask clusters: the ones users already run (``type: dask``), and a job's workers on any Dask cluster.

A compute of ``type: dask`` names a scheduler that already runs (``address``, with optional TLS
files). Its agent attaches to it (:class:`AttachedCluster`) and never starts or stops it: ``compute
stop`` only disconnects. An ``ssh`` compute's cluster (:mod:`batchnb.compute.ssh`) is started by
its agent instead; past that, both are used alike, through :class:`DaskWorkers`:

- a job has at most ``instance_count × max_concurrency_per_instance`` mini-batches in flight, and
  never more than the cluster's threads, so each one submitted has a thread to run on;
- its tasks' keys start with ``batchnb:<job>``, so the Dask dashboard shows them apart from other work;
- a mini-batch not back ``timeout`` plus a grace after its submission is expired (:meth:`DaskWorkers.expire`):
  the worker running it is restarted through its Nanny, and the dispatcher retries it; one that no
  worker ever took (every worker died) is retried the same way;
- a cluster with no workers (its scheduler up) fails the job after the compute's
  ``no_workers_timeout`` (:data:`DEFAULT_NO_WORKERS_TIMEOUT_S` unless set), saying so;
- a scheduler lost mid-job (killed, its host down, the network cut: the job's client loses its
  connection) interrupts the job at once with a :class:`batchnb.errors.ClusterLostError` naming the
  scheduler; the job keeps its committed mini-batches, and the compute's agent resumes it when the
  scheduler answers again (:func:`answers`, see :mod:`batchnb.engine.agent`);
- before a job, the cluster's health is checked (``heal``): an ssh cluster starts its lost workers
  again, an attached one has them reported in the job's log;
- what a job needs on the workers goes there first: :meth:`DaskWorkers.ship` (code and model, for
  workers that do not see this machine's files, :mod:`batchnb.compute.shipping`) and
  :meth:`DaskWorkers.on_every_worker` (the environment's build on each host,
  :mod:`batchnb.compute.hostenv`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from ..errors import ClusterLostError, ComputeError, MissingDependencyError

# How long a job waits for a cluster without workers to get one before it fails.
DEFAULT_NO_WORKERS_TIMEOUT_S = 60
# How long the Nanny may take to restart a hung worker.
RESTART_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 30.0
# How often a job asks the scheduler how many threads the cluster has (workers come and go).
INFO_EVERY_S = 1.0
# How long the agent's probe of a lost scheduler waits for an answer (it probes every few seconds).
PROBE_TIMEOUT_S = 2.0
# The reason distributed gives the tasks of a client that lost its scheduler.
CONNECTION_LOST = "scheduler-connection-lost"


def require_distributed() -> None:
    """Raise :class:`MissingDependencyError` naming the extra if Dask distributed is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise MissingDependencyError("Dask computes need Dask distributed: pip install 'batchnb[dask]'") from None


def security_of(compute: dict[str, Any]) -> Any:
    """The ``distributed.Security`` for a compute's TLS files, or None without them."""
    if not compute.get("tls_ca_file"):
        return None
    from distributed.security import Security

    return Security(
        tls_ca_file=compute["tls_ca_file"],
        tls_client_cert=compute.get("tls_client_cert"),
        tls_client_key=compute.get("tls_client_key"),
        require_encryption=True,
    )


def connect(compute: dict[str, Any], address: str) -> Any:
    """A Dask client of ``address``.

    Raises:
        ComputeError: The scheduler cannot be reached; the message names it.
    """
    require_distributed()
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, security=security_of(compute), set_as_default=False)
    except Exception as exc:
        raise ComputeError(
            f"compute {compute['name']}: cannot reach the Dask scheduler at {address}: {type(exc).__name__}: {exc}"
        ) from exc


def answers(address: str) -> bool:
    """True if something accepts connections at the scheduler's ``address`` (``tcp://host:port``, ``tls://...``)."""
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S):
            return True
    except (OSError, ValueError):
        return False


def worker_lines(client: Any) -> list[str]:
    """One line per worker of the cluster: address, host, threads, memory."""
    out = []
    for address, info in sorted(client.scheduler_info(n_workers=-1)["workers"].items()):
        memory = f"{info.get('memory_limit', 0) / 2**30:.1f} GiB" if info.get("memory_limit") else "no memory limit"
        out.append(f"{address} on host {info.get('host')}: {info.get('nthreads')} thread(s), {memory}")
    return out


def _cancel_reason(future: Any) -> str | None:
    """Why distributed cancelled ``future`` (e.g. :data:`CONNECTION_LOST`), if it says."""
    from concurrent.futures import CancelledError

    try:
        future.result(timeout=1)
    except CancelledError as exc:
        return getattr(exc, "reason", None)
    except Exception:  # the client itself may be closing: nothing to tell
        return None
    return None


class AttachedCluster:
    """A ``dask`` compute's cluster: it already runs; batchnb only connects to it."""

    def __init__(self, compute: dict[str, Any]) -> None:
        self.compute = compute
        self._seen: dict[str, str] = {}  # the workers the last job found: name → host

    def address(self, log: Any = None) -> str:
        """The scheduler's address, as the compute names it (``log`` is for clusters that start)."""
        return str(self.compute["address"])

    def heal(self, client: Any, log: Any) -> None:
        """Before a job: report the workers lost since the last job of this agent (the cluster is not
        batchnb's to repair; whoever runs it, or its own adaptive scaling, replaces them)."""
        # By name: a worker its Nanny restarted keeps its name, not its address (unnamed ones are
        # named by their address, so a count that fell is what tells a loss there).
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        now = {str(w.get("name") or w.get("id")): str(w.get("host")) for w in workers}
        lost = sorted(set(self._seen) - set(now))
        if lost and len(now) < len(self._seen):
            names = ", ".join(f"{n} on host {self._seen[n]}" for n in lost)
            log(
                f"compute {self.compute['name']}: {len(lost)} worker(s) lost since the last job ({names}); this "
                f"cluster is not started by batchnb, which cannot replace them: the job runs on {len(now)} worker(s)"
            )
        self._seen = now

    def running_address(self) -> str:
        return self.address()

    def close(self) -> None:
        """Nothing to stop: the cluster is not batchnb's."""


class DaskWorkers:
    """One job's workers on a Dask cluster: one slot whose depth is the job's concurrency, capped by
    the cluster's threads. The same interface as :class:`batchnb.compute.workers.JobWorkers`."""

    exact_losses = False
    supports_kill_worker = False
    #: The dispatcher may expire an overdue mini-batch (see :meth:`expire`).
    supports_expire = True

    def __init__(self, cluster: Any, compute: dict[str, Any], job: str, wanted: int, log: Any = None) -> None:
        self.cluster = cluster
        self.compute = compute
        self.job = job
        self.wanted = max(1, wanted)
        self._log = log or (lambda text: None)
        self._client: Any = None
        self._inflight: dict[Future[Any], Any] = {}  # ours → Dask's future
        self._no_workers_since: float | None = None
        self._threads: tuple[float, int] | None = None  # (when asked, threads)
        self._stopped = False  # its compute is being stopped: no new client
        self._address: str | None = None  # the scheduler the job connected to

    def client(self) -> Any:
        """The job's Dask client, connecting (and, for an ssh compute, starting the cluster) first."""
        if self._stopped:
            raise ComputeError(f"compute {self.compute['name']} is being stopped")
        if self._client is None:
            self._address = self.cluster.address(log=self._log)
            self._client = connect(self.compute, self._address)
            # A warm cluster may have lost workers since the last job: replaced or reported first.
            with self._cluster_errors("check the health of"):
                self.cluster.heal(self._client, self._log)
        return self._client

    def scheduler_address(self) -> str:
        """The scheduler the job connected to (never starts a cluster: it is for messages)."""
        return self._address or str(self.compute.get("address") or "(not started)")

    def _lost(self) -> ClusterLostError:
        """The error of a job whose client lost its scheduler."""
        return ClusterLostError(
            f"compute {self.compute['name']}: lost the connection to the Dask scheduler at "
            f"{self.scheduler_address()} mid-job; the job keeps its committed mini-batches, and the compute's "
            f"agent resumes it when the scheduler answers again (or run `batchnb job resume -n {self.job}`)"
        )

    def _check_connected(self) -> None:
        """Raise :class:`ClusterLostError` if the job's client lost its scheduler (distributed then
        tries to reconnect for a while; the job does not wait for it)."""
        if self._client is not None and self._client.status != "running":
            raise self._lost()

    @contextlib.contextmanager
    def _cluster_errors(self, doing: str) -> Iterator[None]:
        """distributed's errors stop here, as a :class:`ComputeError` that names the scheduler (a
        :class:`ClusterLostError` if the scheduler is gone)."""
        try:
            yield
        except ComputeError:
            raise
        except Exception as exc:
            self._check_connected()
            raise ComputeError(
                f"compute {self.compute['name']}: could not {doing} the Dask cluster at {self.scheduler_address()}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def threads(self) -> int:
        """The cluster's threads, over every worker (asked of the scheduler at most every ``INFO_EVERY_S``)."""
        now = time.monotonic()
        self._check_connected()
        if self._threads is None or now - self._threads[0] >= INFO_EVERY_S:
            client = self.client()
            with self._cluster_errors("ask for the threads of"):
                workers = client.scheduler_info(n_workers=-1)["workers"]
            self._threads = (now, sum(int(w.get("nthreads") or 0) for w in workers.values()))
        return self._threads[1]

    def depth(self) -> int:
        """Mini-batches the job may have in flight: what it asks, at most the cluster's threads."""
        return min(self.wanted, self.threads())

    def task_prefix(self) -> str:
        """What the job's task keys start with: the Dask dashboard groups tasks by the part of a key
        before its first ``-``, so the job's name is kept whole there (its ``-`` become ``_``)."""
        return "batchnb:" + self.job.replace("-", "_")

    def slots(self) -> list[Any]:
        return [0]

    def submit(self, slot: Any, fn: Any, *args: Any) -> Future[Any] | None:
        """Submit ``fn(*args)`` if the job has room on the cluster; None if not now.

        Raises:
            ComputeError: The cluster has had no worker for the compute's ``no_workers_timeout``.
            ClusterLostError: The job's client lost its scheduler.
        """
        depth = self.depth()
        if depth == 0:
            now = time.monotonic()
            self._no_workers_since = self._no_workers_since or now
            limit = int(self.compute.get("no_workers_timeout") or DEFAULT_NO_WORKERS_TIMEOUT_S)
            if now - self._no_workers_since > limit:
                raise ComputeError(
                    f"compute {self.compute['name']}: the Dask cluster at {self.scheduler_address()} has had no "
                    f"workers for {limit} s (its no_workers_timeout); start workers for it, then invoke again"
                )
            return None
        self._no_workers_since = None
        if len(self._inflight) >= depth:
            return None
        client = self.client()
        dask_future = client.submit(fn, *args, key=f"{self.task_prefix()}-{uuid.uuid4().hex}", pure=False)
        ours: Future[Any] = Future()
        self._inflight[ours] = dask_future

        def settle(done: Any) -> None:
            if ours.done():  # expired or abandoned meanwhile
                return
            try:
                if done.status == "cancelled":
                    if _cancel_reason(done) == CONNECTION_LOST or client.status == "connecting":
                        ours.set_exception(self._lost())
                        return
                    ours.cancel()
                    ours.set_running_or_notify_cancel()
                    return
                exc = done.exception()
                if type(exc).__name__ == "KilledWorker":
                    # Dask gave up on the task after it took down several workers: a failed
                    # attempt of the mini-batch (retried up to max_retries), not a fault of batchnb.
                    lost = {"status": "retry", "error": f"KilledWorker: {exc}", "duration": 0.0, "worker": None}
                    ours.set_result(lost)
                elif exc is not None:
                    ours.set_exception(exc)
                else:
                    ours.set_result(done.result())
            except BaseException as exc:  # the cluster may be gone
                if not ours.done():
                    ours.set_exception(exc)

        ours.add_done_callback(lambda f: self._inflight.pop(f, None))
        dask_future.add_done_callback(settle)
        return ours

    def expire(self, fut: Future[Any]) -> str:
        """Give up on an overdue mini-batch: cancel its task and restart the worker running it
        (through its Nanny, in the background). Returns what was done, for the job's log."""
        dask_future = self._inflight.pop(fut, None)
        if dask_future is None:
            return "it was no longer in flight"
        client = self.client()
        with self._cluster_errors("find the worker of an overdue mini-batch on"):
            running_on = [w for w, keys in client.processing().items() if dask_future.key in keys]
            workers = client.scheduler_info(n_workers=-1)["workers"]
            client.cancel([dask_future], force=True)
        if not running_on:
            return "no worker had started it"
        hosts = ", ".join(f"{w} on host {workers.get(w, {}).get('host', '?')}" for w in running_on)

        def restart() -> None:
            try:
                client.restart_workers(running_on, timeout=RESTART_TIMEOUT_S, raise_for_error=False)
                self._log(f"worker {hosts} restarted")
            except Exception as exc:  # a worker without a Nanny cannot be restarted: Dask says why
                self._log(f"worker {hosts} could not be restarted: {type(exc).__name__}: {exc}")

        threading.Thread(target=restart, name=f"batchnb-restart-{self.job}", daemon=True).start()
        return f"restarting worker {hosts} through its Nanny"

    def sees_folder(self, folder: str) -> dict[str, bool]:
        """Whether each worker sees ``folder`` as this machine does (see :mod:`batchnb.compute.shipping`)."""
        from . import shipping

        with self._cluster_errors("ask the workers of"):
            return shipping.sees_folder(self.client(), folder)

    def ship(self, folder: str) -> tuple[str, bool]:
        """Send ``folder`` to every worker of the cluster, once per content; return its digest and
        whether it was sent now (not already there).

        Raises:
            ComputeError: The cluster refused it (the message says which folder).
        """
        from . import shipping

        with self._cluster_errors(f"ship {folder} to"):
            return shipping.ship(self.client(), folder)

    def on_every_worker(self, fn: Any, *args: Any) -> dict[str, tuple[str, Any]]:
        """Run ``fn(*args)`` once on each worker of the cluster now, as a task of the job (on a
        worker thread, not its event loop). Returns, by worker address, its host and what ``fn``
        returned or raised; a worker that left meanwhile is left out (its first mini-batch does the
        work instead)."""
        with self._cluster_errors("run a setup task on"):
            return self._on_every_worker(fn, *args)

    def _on_every_worker(self, fn: Any, *args: Any) -> dict[str, tuple[str, Any]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        client = self.client()
        hosts = {a: str(w.get("host")) for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        # Ours (concurrent.futures) ← Dask's, so that they can be waited on without a default client.
        pending: dict[Future[Any], tuple[str, Any]] = {}
        for address in hosts:
            theirs = client.submit(
                fn, *args, key=f"{self.task_prefix()}-setup-{uuid.uuid4().hex}", workers=[address], pure=False
            )
            ours: Future[Any] = Future()
            theirs.add_done_callback(lambda _, ours=ours: ours.set_result(None))
            pending[ours] = (address, theirs)
        out: dict[str, tuple[str, Any]] = {}
        while pending:
            done, _ = wait(list(pending), timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in done:
                address, theirs = pending.pop(fut)
                exc = theirs.exception() if theirs.status != "cancelled" else RuntimeError("the task was cancelled")
                out[address] = (hosts[address], exc if exc is not None else theirs.result())
            left = set(hosts) - set(client.scheduler_info(n_workers=-1)["workers"])
            for fut in [f for f, (address, _) in pending.items() if address in left]:
                client.cancel([pending.pop(fut)[1]], force=True)
        return out

    def running(self, slot: Any) -> None:
        return None

    def kill(self, slot: Any) -> None:
        return None

    def reset(self, slot: Any) -> None:
        return None

    def abandon(self, slots: set[Any]) -> None:
        """Cancel the job's tasks on the cluster (a cancel, a stop, a failure)."""
        if self._client is not None and self._inflight:
            with contextlib.suppress(Exception):  # the cluster may already be gone
                self._client.cancel(list(self._inflight.values()), force=True)
        self._inflight.clear()

    def describe(self) -> str:
        """The cluster as the job found it: its workers (hosts, threads, memory) and the job's depth."""
        client = self.client()
        workers = worker_lines(client)
        listing = "".join(f"\n  {line}" for line in workers)
        return (
            f"the Dask cluster at {self.scheduler_address()} ({len(workers)} worker(s), {self.threads()} thread(s); "
            f"up to {self.depth()} mini-batch(es) of this job in flight):{listing}"
        )

    def stop(self) -> None:
        """The compute is being stopped (called from another thread than the job's): disconnect now,
        so that a call of the job's to the cluster fails at once, and never connect again."""
        self._stopped = True
        self.close()

    def close(self, retire: bool = False) -> None:
        """Disconnect; the cluster stays for the next job."""
        if self._client is not None:
            self.abandon(set())
            with contextlib.suppress(Exception):  # the cluster may already be gone
                self._client.close(timeout=10)
            self._client = None
