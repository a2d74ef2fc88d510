"""The local pool: joblib's loky process pool on this machine."""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
from concurrent.futures import Executor

from .base import ComputeTarget

# Workers outlive short idle gaps so init() (the model load) runs once per worker per job.
_IDLE_WORKER_TIMEOUT_S = 600
# How often a worker checks that the process that started the pool is still alive.
_PARENT_CHECK_INTERVAL_S = 1.0


def _exit_with_parent(preload: tuple[str, ...] = ()) -> None:
    """Runs first in every worker: end the worker when the process that started the pool dies, and
    import ``preload`` (a warm standby's workers import pandas, pyarrow or mlflow before any job).

    After a supervisor is killed (SIGKILL, OOM killer), loky's idle workers would otherwise wait for
    work for the whole idle timeout holding the model in memory, and a busy one would keep scoring
    beside the supervisor of the resumed job.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_INTERVAL_S)
        os._exit(1)

    threading.Thread(target=watch, name="batchnb-parent-watch", daemon=True).start()
    for module in preload:
        # Only a head start: the job imports what it needs itself, and reports what fails.
        with contextlib.suppress(Exception):
            importlib.import_module(module)


# The thread settings the live loky executor was made with: a job with other settings gets new workers.
_live_env: dict[str, str] | None = None


class LocalPool(ComputeTarget):
    """``instance_count × max_concurrency_per_instance`` loky worker processes."""

    supports_kill_worker = True

    def __init__(self) -> None:
        self._executor: Executor | None = None
        self._leaving: threading.Thread | None = None

    def executor(self, n_workers: int, env: dict[str, str], preload: tuple[str, ...] = ()) -> Executor:
        """Return loky's reusable executor: the same one while it works (a warm standby's pool is
        taken over by the job it claims), a fresh one after a crash or for other thread settings."""
        global _live_env
        from joblib.externals.loky import get_reusable_executor

        self._executor = get_reusable_executor(
            max_workers=n_workers,
            timeout=_IDLE_WORKER_TIMEOUT_S,
            env=env,
            reuse=env == _live_env,
            initializer=_exit_with_parent,
            initargs=(preload,),
        )
        _live_env = dict(env)
        return self._executor

    def release(self) -> None:
        """Tell the workers to exit and return at once: workers that imported pandas or mlflow take
        a second to exit, which the supervisor spends merging the output."""
        if self._executor is not None:
            # loky forgets its manager thread on shutdown: keep it, to wait for the workers later.
            self._leaving = getattr(self._executor, "_executor_manager_thread", None)
            self._executor.shutdown(wait=False)
            self._executor = None

    def shutdown(self, kill: bool) -> None:
        """Stop the pool's workers (and wait for workers already released, unless ``kill``)."""
        if self._executor is not None:
            self._executor.shutdown(wait=not kill, kill_workers=kill)  # type: ignore[call-arg]
            self._executor = None
        if self._leaving is not None and not kill:
            self._leaving.join()
        self._leaving = None
