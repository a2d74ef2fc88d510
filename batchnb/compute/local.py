"""The local pool: joblib's loky process pool on this machine, its workers forked from a zygote.

loky's own start method runs each worker in a clean interpreter that imports pandas, pyarrow (and
mlflow, scikit-learn, the model) itself. Here loky runs on the standard library's *forkserver*
context instead, whose server process is batchnb's zygote (:mod:`batchnb.compute.zygote`): it does
those imports, and the model load of batchnb's MLflow driver, once; each worker is forked from it.
loky's behaviour is kept: a worker killed (by a crash, the OOM killer or the watchdog) breaks the
executor, every task in flight is reported lost, and a new executor forks new workers at once.

``BATCHNB_WORKER_START=spawn`` (in the environment of the process that invokes the job) goes back to
loky's clean interpreters: each worker imports everything itself. It is there for a library that is
not safe to fork after importing, and as the benchmarks' baseline.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from . import zygote
from .base import ComputeTarget

# Workers outlive short idle gaps so init() (the model load) runs once per worker per job.
_IDLE_WORKER_TIMEOUT_S = 600
# How often a worker checks that the process that started the pool is still alive.
_PARENT_CHECK_INTERVAL_S = 1.0
# What every local worker imports: the engine's worker side and the data stack it reads with.
BASE_MODULES = ("batchnb.engine.worker", "pandas", "pyarrow.parquet")
# How local workers start: "zygote" (forked, the default) or "spawn" (loky's clean interpreters).
START_ENV = "BATCHNB_WORKER_START"
START_METHODS = ("zygote", "spawn")


def start_method() -> str:
    """The worker start method this process uses (see :data:`START_ENV`)."""
    method = os.environ.get(START_ENV) or "zygote"
    if method not in START_METHODS:
        from ..errors import ValidationError

        raise ValidationError(
            f"{START_ENV}={method!r} is not a worker start method; use one of {', '.join(START_METHODS)}",
            field=START_ENV,
        )
    return method


def _exit_with_parent(env: dict[str, str], preload: tuple[str, ...] = ()) -> None:
    """Runs first in every worker: end the worker when the pool's owner dies, apply the thread
    settings, and import ``preload`` (already imported when the zygote did it).

    After a supervisor is killed (SIGKILL, OOM killer), loky's idle workers would otherwise wait for
    work for the whole idle timeout holding the model in memory, and a busy one would keep scoring
    beside the supervisor of the resumed job. A worker's parent is the zygote, which exits when the
    supervisor is gone, as soon as no worker holds the forkserver's "alive" pipe either: so each
    worker closes its copy (it starts no forkserver of its own).
    """
    server = _server()
    alive = getattr(server, "_forkserver_alive_fd", None)
    if alive is not None:
        with contextlib.suppress(OSError):
            os.close(alive)
        server._forkserver_alive_fd = None
    os.environ.update(env)
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


def _server() -> Any:
    """The standard library's forkserver of this process (private: its pid, its stop)."""
    return multiprocessing.forkserver._forkserver  # type: ignore[attr-defined]


# The zygote running now: what it was started with (None: none started by this process).
_zygote: dict[str, Any] | None = None


def _serves(zygote: dict[str, Any], env: dict[str, str], preinit_key: str | None) -> bool:
    """True if workers forked from ``zygote`` may serve a job with thread settings ``env`` whose
    deployment is ``preinit_key``: same thread settings, and no init() state of another deployment."""
    return zygote["env"] == env and zygote["preinit_key"] in (None, preinit_key)


def start_zygote(
    workspace_root: Path,
    env: dict[str, str],
    modules: tuple[str, ...] = (),
    preinit: dict[str, Any] | None = None,
    log: str | None = None,
    job: str | None = None,
) -> bool:
    """Start the zygote for workers with thread settings ``env``, importing :data:`BASE_MODULES` and
    ``modules``, and running batchnb's driver ``init()`` for ``preinit`` (a deployment context,
    :func:`batchnb.compute.standby.preload_context`). Returns at once: the zygote works while the
    caller goes on, and the first worker starts when it is done. A running zygote that serves such
    workers is kept: returns False (a warm standby's), or True if it was started for ``job`` (by
    :func:`start_early`). One that does not serve them is stopped first. Its configuration goes
    through the workspace's private run folder (see :mod:`batchnb.compute.zygote`)."""
    global _zygote
    key = preinit.get("preload_key") if preinit else None
    server = _server()
    if _zygote is not None and server._forkserver_pid is not None:
        if _serves(_zygote, env, key):
            return job is not None and _zygote.get("job") == job
        stop_zygote()
    _remove_files()  # those of a zygote that ended by itself
    wanted = list(dict.fromkeys((*BASE_MODULES, *modules)))
    config = {"env": env, "modules": wanted, "preinit": preinit, "log": log}
    multiprocessing.forkserver.set_forkserver_preload(["batchnb.compute.zygote"])
    path = zygote.write_config(zygote.run_folder(workspace_root), config)
    _register_cleanup()
    try:
        os.environ[zygote.CONFIG_ENV] = str(path)
        multiprocessing.forkserver.ensure_running()
    except BaseException:
        zygote.remove(path)
        raise
    finally:
        os.environ.pop(zygote.CONFIG_ENV, None)
    _zygote = {"env": dict(env), "preinit_key": key, "job": job, "config": path}
    return True


def start_early(spec: dict[str, Any], job: str, workspace_root: Path) -> None:
    """Start the zygote for the job of ``spec`` as the first thing its supervisor process does,
    before it imports the supervisor (0.15 to 0.2 s here), so both run side by side; the
    supervisor's :meth:`LocalPool.prepare` then finds it. Does nothing for clean interpreters."""
    from . import standby

    if start_method() == "spawn":
        return
    start_zygote(workspace_root, *standby.pool_setup(spec), job=job)


def stop_zygote(kill: bool = False) -> None:
    """Stop the zygote and reap it. It exits as soon as this process lets it go (its workers hold
    nothing of it), or after its imports if it is still busy with them, unless ``kill``."""
    global _zygote
    server = _server()
    if kill and server._forkserver_pid is not None:
        with contextlib.suppress(OSError):
            os.kill(server._forkserver_pid, signal.SIGKILL)
    with contextlib.suppress(OSError, ChildProcessError):
        server._stop()
    _remove_files()
    _zygote = None


def _remove_files() -> None:
    """Delete the zygote's configuration (if it never got to read it) and its ready file."""
    if _zygote is not None:
        zygote.remove(_zygote["config"])


_cleanup_registered = False


def _register_cleanup() -> None:
    """At this process's exit, however it ends short of a SIGKILL, its zygote's files go too (a
    supervisor that did not claim its job exits without stopping the zygote it started early)."""
    global _cleanup_registered
    if not _cleanup_registered:
        atexit.register(_remove_files)
        _cleanup_registered = True


def _done_importing(pid: int) -> bool:
    """True if zygote ``pid`` has forked workers already (a standby's), or has exited (the executor
    then starts it again, or says why it cannot)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE or bool(proc.children())
    except psutil.Error:
        return True


def zygote_pid() -> int | None:
    """The pid of this process's zygote, if one is running."""
    return _server()._forkserver_pid


# The thread settings the live loky executor was made with: a job with other settings gets new workers.
_live_env: dict[str, str] | None = None


class LocalPool(ComputeTarget):
    """``instance_count × max_concurrency_per_instance`` loky worker processes, forked from a zygote.

    Args:
        workspace_root: The workspace of the jobs it runs (its zygote's files go to its ``run/``).
    """

    supports_kill_worker = True

    def __init__(self, workspace_root: Path) -> None:
        self._workspace_root = workspace_root
        self._executor: Executor | None = None
        self._leaving: threading.Thread | None = None
        self._prepared: tuple[tuple[str, ...], dict[str, Any] | None] = ((), None)

    def prepare(
        self,
        env: dict[str, str],
        modules: tuple[str, ...] = (),
        preinit: dict[str, Any] | None = None,
        log: str | None = None,
        job: str | None = None,
    ) -> bool:
        """Start the zygote now (see :func:`start_zygote`), while the caller plans the job. False
        if a running one serves (a warm standby's), or if workers start as clean interpreters."""
        self._prepared = (modules, preinit)
        if start_method() == "spawn":
            return False
        return start_zygote(self._workspace_root, env, modules, preinit, log, job)

    def wait_started(self, stop: threading.Event) -> bool:
        """Wait until the zygote has imported everything (a worker cannot start before), or until
        ``stop`` is set (False): a job canceled meanwhile need not wait for the imports."""
        while _zygote is not None and not zygote.ready_path(_zygote["config"]).exists():
            pid = zygote_pid()
            if pid is None or _done_importing(pid):
                _zygote["config"].unlink(missing_ok=True)  # if it ended before reading it
                break
            if stop.wait(0.02):
                return False
        return True

    def executor(self, n_workers: int, env: dict[str, str]) -> Executor:
        """Return loky's reusable executor: the same one while it works (a warm standby's pool is
        taken over by the job it claims), a fresh one after a crash, for other thread settings or
        after the zygote was replaced."""
        global _live_env
        from joblib.externals.loky import get_reusable_executor

        modules, preinit = self._prepared
        before = zygote_pid()
        if start_method() == "spawn":
            start: dict[str, Any] = {"env": env}  # loky's clean interpreters take it at their start
        else:
            # Keeps the running zygote if it serves these workers.
            start_zygote(self._workspace_root, env, modules, preinit)
            start = {"context": multiprocessing.get_context("forkserver")}
        self._executor = get_reusable_executor(
            max_workers=n_workers,
            timeout=_IDLE_WORKER_TIMEOUT_S,
            reuse=env == _live_env and zygote_pid() == before,
            initializer=_exit_with_parent,
            initargs=(env, modules),
            **start,
        )
        _live_env = dict(env)
        return self._executor

    def release(self) -> None:
        """Tell the workers to exit and return at once: workers take a moment to exit, which the
        supervisor spends merging the output."""
        if self._executor is not None:
            # loky forgets its manager thread on shutdown: keep it, to wait for the workers later.
            self._leaving = getattr(self._executor, "_executor_manager_thread", None)
            self._executor.shutdown(wait=False)
            self._executor = None

    def shutdown(self, kill: bool) -> None:
        """Stop the pool's workers and its zygote (and wait for workers already released, unless
        ``kill``)."""
        if self._executor is not None:
            self._executor.shutdown(wait=not kill, kill_workers=kill)  # type: ignore[call-arg]
            self._executor = None
        if self._leaving is not None and not kill:
            self._leaving.join()
        self._leaving = None
        stop_zygote(kill)
