"""The interface every execution target implements."""

from __future__ import annotations

import abc
import os
from concurrent.futures import Executor
from typing import Any


def worker_env(n_workers: int) -> dict[str, str]:
    """Thread settings for ``n_workers`` pool processes: each gets its share of the cores for
    BLAS/OpenMP pools, so N workers do not start N × cores threads and thrash."""
    threads = str(max(1, (os.cpu_count() or 1) // n_workers))
    return {
        var: threads
        for var in (
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS",
            "NUMEXPR_NUM_THREADS",
        )
    }


class ComputeTarget(abc.ABC):
    """A cluster's executor for one job (an ssh compute's Dask cluster).

    Class attributes state what the engine may rely on (joblib's backends do the same).
    """

    #: Worker processes can be killed one by one (a hung ``run()`` is ended with SIGKILL).
    supports_kill_worker: bool = False

    @abc.abstractmethod
    def executor(self, n_workers: int, env: dict[str, str]) -> Executor:
        """Return a working executor with ``n_workers`` processes; a new one after a crash."""

    @abc.abstractmethod
    def shutdown(self, kill: bool) -> None:
        """Stop the workers; with ``kill``, at once (cancel, abort)."""

    def release(self) -> None:
        """Let the workers go at the end of the work; :meth:`shutdown` then waits for them. A target
        whose workers take time to exit lets the supervisor finalize meanwhile."""
        self.shutdown(kill=False)

    @staticmethod
    def is_broken_pool_error(exc: BaseException) -> bool:
        """True if ``exc`` means the pool lost a worker (every in-flight task is lost with it)."""
        from concurrent.futures.process import BrokenProcessPool

        # joblib bundles its own loky whose TerminatedWorkerError is not the standalone loky's
        # class: both subclass BrokenProcessPool, so test for that.
        return isinstance(exc, BrokenProcessPool)


class TargetWorkers:
    """A job's workers on a target whose executor spreads the work itself (a Dask cluster): one
    slot, ``2 × n_workers`` deep. The same interface as :class:`batchnb.compute.workers.JobWorkers`."""

    exact_losses = False
    supports_kill_worker = False

    def __init__(self, target: ComputeTarget, n_workers: int) -> None:
        self.target = target
        self.n_workers = n_workers
        self._executor: Executor | None = None
        self._inflight: set[Any] = set()

    def slots(self) -> list[Any]:
        return [0]

    def submit(self, slot: Any, fn: Any, *args: Any) -> Any:
        if len(self._inflight) >= 2 * self.n_workers:
            return None
        if self._executor is None:
            self._executor = self.target.executor(self.n_workers, worker_env(self.n_workers))
        fut = self._executor.submit(fn, *args)
        self._inflight.add(fut)
        fut.add_done_callback(self._inflight.discard)
        return fut

    def running(self, slot: Any) -> None:
        return None

    def kill(self, slot: Any) -> None:
        return None

    def reset(self, slot: Any) -> None:
        self._executor = None  # the target hands out a new one

    def abandon(self, slots: set[Any]) -> None:
        self.target.shutdown(kill=True)
        self._executor = None

    def describe(self) -> str:
        return f"{self.n_workers} worker process(es)"

    def close(self, retire: bool = False) -> None:
        self.target.release()
        self.target.shutdown(kill=False)
