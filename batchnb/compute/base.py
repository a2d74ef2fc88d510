"""The interface every execution target implements."""

from __future__ import annotations

import abc
import os
from concurrent.futures import Executor


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
