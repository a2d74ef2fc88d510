"""The local pool: joblib's loky process pool on this machine."""

from __future__ import annotations

from concurrent.futures import Executor

from .base import ComputeTarget

# Workers outlive short idle gaps so init() (the model load) runs once per worker per job.
_IDLE_WORKER_TIMEOUT_S = 600


class LocalPool(ComputeTarget):
    """``instance_count × max_concurrency_per_instance`` loky worker processes."""

    supports_kill_worker = True

    def __init__(self) -> None:
        self._executor: Executor | None = None

    def executor(self, n_workers: int, env: dict[str, str]) -> Executor:
        """Return loky's reusable executor: the same one while it works, a fresh one after a crash."""
        from joblib.externals.loky import get_reusable_executor

        self._executor = get_reusable_executor(
            max_workers=n_workers, timeout=_IDLE_WORKER_TIMEOUT_S, env=env, reuse=True
        )
        return self._executor

    def shutdown(self, kill: bool) -> None:
        """Stop the pool's workers."""
        if self._executor is not None:
            self._executor.shutdown(wait=not kill, kill_workers=kill)  # type: ignore[call-arg]
            self._executor = None
