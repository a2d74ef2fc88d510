"""The local pool: joblib's loky process pool on this machine."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Executor

from .base import ComputeTarget

# Workers outlive short idle gaps so init() (the model load) runs once per worker per job.
_IDLE_WORKER_TIMEOUT_S = 600
# How often a worker checks that the process that started the pool is still alive.
_PARENT_CHECK_INTERVAL_S = 1.0


def _exit_with_parent() -> None:
    """Runs first in every worker: end the worker when the process that started the pool dies.

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


class LocalPool(ComputeTarget):
    """``instance_count × max_concurrency_per_instance`` loky worker processes."""

    supports_kill_worker = True

    def __init__(self) -> None:
        self._executor: Executor | None = None

    def executor(self, n_workers: int, env: dict[str, str]) -> Executor:
        """Return loky's reusable executor: the same one while it works, a fresh one after a crash."""
        from joblib.externals.loky import get_reusable_executor

        self._executor = get_reusable_executor(
            max_workers=n_workers,
            timeout=_IDLE_WORKER_TIMEOUT_S,
            env=env,
            reuse=True,
            initializer=_exit_with_parent,
        )
        return self._executor

    def shutdown(self, kill: bool) -> None:
        """Stop the pool's workers."""
        if self._executor is not None:
            self._executor.shutdown(wait=not kill, kill_workers=kill)  # type: ignore[call-arg]
            self._executor = None
