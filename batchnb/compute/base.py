"""What every kind of worker shares: their thread settings, and how a lost one shows."""

from __future__ import annotations

import os


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


def is_lost_worker(exc: BaseException) -> bool:
    """True if ``exc`` (from a future or a submit) means a local worker died: its executor broke,
    and every mini-batch in flight on it is lost with it. (A Dask cluster reschedules a dead
    worker's tasks itself: it raises no such error.)"""
    from concurrent.futures.process import BrokenProcessPool

    # joblib bundles its own loky whose TerminatedWorkerError is not the standalone loky's class:
    # both subclass BrokenProcessPool, so test for that.
    return isinstance(exc, BrokenProcessPool)
