"""What every kind of worker shares: their thread and memory settings, and how a lost one shows."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# A worker's allocations up to this size come from its heap, and it gives the heap's free top back
# to the system only beyond this much: a mini-batch's frames are allocated, freed and allocated
# again, mini-batch after mini-batch, and the kernel would zero fresh pages for each.
_HEAP_ALLOCATION_MAX = 256 << 20
_HEAP_KEPT_FREE = 512 << 20


def worker_env(n_workers: int) -> dict[str, str]:
    """The environment of ``n_workers`` pool processes. Thread settings: each gets its share of the
    cores for BLAS/OpenMP pools, so N workers do not start N × cores threads and thrash. Memory:
    Arrow's allocator (mimalloc, in pyarrow's wheels) keeps the pages it frees instead of giving
    them back 10 ms later, so the next mini-batch's reads reuse them (read when pyarrow loads:
    before a zygote's imports, or at a spawned worker's start)."""
    threads = str(max(1, (os.cpu_count() or 1) // n_workers))
    env = {
        var: threads
        for var in (
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS",
            "NUMEXPR_NUM_THREADS",
        )
    }
    env["MIMALLOC_PURGE_DELAY"] = "-1"
    return env


def keep_freed_memory() -> None:
    """Make this process's C heap (numpy's arrays, pandas' frames) keep what it frees for reuse, as
    :func:`worker_env` does for Arrow's: a worker lives for many mini-batches of one size, and
    pages given back after one are faulted in and zeroed again for the next. What a worker holds
    goes back to the system when it exits. (The parameters are glibc's; elsewhere this does
    nothing or is refused.)"""
    name = ctypes.util.find_library("c")
    with contextlib.suppress(OSError, AttributeError):
        mallopt = ctypes.CDLL(name).mallopt if name else None
        if mallopt is not None:
            mallopt(_M_MMAP_THRESHOLD, _HEAP_ALLOCATION_MAX)
            mallopt(_M_TRIM_THRESHOLD, _HEAP_KEPT_FREE)


def is_lost_worker(exc: BaseException) -> bool:
    """True if ``exc`` (from a future or a submit) means a local worker died: its executor broke,
    and every mini-batch in flight on it is lost with it. (A Dask cluster reschedules a dead
    worker's tasks itself: it raises no such error.)"""
    from concurrent.futures.process import BrokenProcessPool

    # joblib bundles its own loky whose TerminatedWorkerError is not the standalone loky's class:
    # both subclass BrokenProcessPool, so test for that.
    return isinstance(exc, BrokenProcessPool)
