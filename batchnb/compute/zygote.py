"""The zygote: the process a compute agent's workers are forked from.

Every worker needs the same imports (pandas and pyarrow; for an MLflow model also mlflow,
scikit-learn and the flavor's loader: seconds of CPU). Started from clean interpreters, N workers pay
that N times, side by side. Instead, the agent starts its workers through the standard library's
*forkserver*, with this module as its preload: one process imports everything once, then forks each
worker on demand. A worker started for a job, after a worker crashed or after a hung ``run()`` was
killed is ready in milliseconds, and the workers share the zygote's pages until they write to them.

Only imports that are safe to fork after are done here (:mod:`batchnb.compute.preload` chooses
them), and what a library does once per process on first use that is as safe (:data:`WARM_UPS`). A
user's scoring script is never imported or run here, nor a model loaded: its ``init()`` runs in
each worker, per job, as on Azure.
The stdlib keeps one forkserver per process, so an agent has one zygote.

The configuration arrives in a file, which the zygote reads and deletes as it starts. The file
lives in the workspace's private ``run/`` folder (mode 0700, this user's), is created with mode 0600
and has an unpredictable name, ``zygote-<parent pid>-<parent start>-<random>.json``; the zygote
learns it from ``BATCHNB_ZYGOTE_CONFIG``, set only while the agent spawns it::

    {"env": {thread settings}, "modules": [...], "preinit": {deployment context} | null,
     "log": "<job>/logs/user" | null}

Every way out removes it: the zygote deletes it at once; the starting process deletes it if the
zygote never got to it (a failed start, :func:`remove`); and since a process killed with SIGKILL
cleans up nothing, the next start in the workspace deletes the files of processes that are gone
(:func:`sweep`). The ``.ready`` file beside it, made when the zygote is done importing, follows
the same rules.

``env`` is applied before anything is imported, so that BLAS and OpenMP pools are sized for the
agent's worker count. With ``log``, the zygote writes to ``stdout/zygote.stdout.txt`` and
``stderr/zygote.stderr.txt`` there; without, to the output of the agent.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import multiprocessing
import os
import re
import secrets
import stat
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# Names the configuration file of the zygote being spawned; set only for the spawn.
CONFIG_ENV = "BATCHNB_ZYGOTE_CONFIG"
# A zygote's files in the run folder: the starting process's pid and start time (centiseconds
# since the epoch: a pid alone may be reused), then a random part.
_NAME = re.compile(r"zygote-(\d+)-(\d+)-[0-9a-f]{32}\.(json|ready)")
_PRIVATE = 0o600


def run_folder(workspace_root: Path) -> Path:
    """The workspace's ``run/`` folder, made private to this user (mode 0700) if it is not yet.

    Raises:
        WorkspaceError: It is not a folder, or another user owns it.
    """
    folder = workspace_root / "run"
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        from ..errors import WorkspaceError

        raise WorkspaceError(f"cannot create the workspace's run folder {folder}: {exc.strerror}") from exc
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        from ..errors import WorkspaceError

        raise WorkspaceError(
            f"{folder} must be a folder owned by the user who runs jobs (uid {os.getuid()}): "
            "it holds the configuration of the processes workers start from"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)  # only ever tightens: mkdir made it 0700 (less under an odd umask)
    return folder


def _started(pid: int) -> int | None:
    """When process ``pid`` started, in centiseconds since the epoch (None: no such process)."""
    import psutil

    try:
        return round(psutil.Process(pid).create_time() * 100)
    except psutil.Error:
        return None


def sweep(folder: Path) -> None:
    """Delete the zygote files in ``folder`` whose starting process is gone (killed with SIGKILL,
    say, before its zygote read its configuration)."""
    for entry in folder.iterdir():
        found = _NAME.fullmatch(entry.name)
        if found is None:
            continue
        started = _started(int(found[1]))
        # The start time can differ by a tick between two reads of it.
        if started is None or abs(started - int(found[2])) > 1:
            entry.unlink(missing_ok=True)


def ready_path(config: Path) -> Path:
    """The file the zygote started with ``config`` creates once it has imported everything: until
    then a worker cannot start, and the parent can wait for it without blocking."""
    return config.with_suffix(".ready")


def write_config(folder: Path, config: dict[str, Any]) -> Path:
    """Leave ``config`` in ``folder`` (see :func:`run_folder`) for the zygote this process starts
    next, after sweeping the files of processes that are gone. Returns its path."""
    sweep(folder)
    me = os.getpid()
    path = folder / f"zygote-{me}-{_started(me)}-{secrets.token_hex(16)}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _PRIVATE)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(config, fh)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def remove(config: Path) -> None:
    """Delete the files of the zygote started with ``config`` (those it has not deleted itself)."""
    config.unlink(missing_ok=True)
    ready_path(config).unlink(missing_ok=True)


def _warm_mlflow() -> None:
    """``mlflow.pyfunc.load_model`` checks the model's requirements against the installed packages,
    and the first time in a process maps every installed distribution to its modules, reading all
    their metadata (about a second, in every worker that loads a model). Done here once, the map is
    inherited by every worker forked after."""
    from mlflow.utils import requirements_utils

    requirements_utils._init_packages_to_modules_map()


# A module the zygote imported -> what it then does once for every worker.
WARM_UPS = {"mlflow.pyfunc": _warm_mlflow}


def prepare(config: dict[str, Any]) -> None:
    """Import ``config["modules"]``."""
    os.environ.update(config.get("env") or {})
    if config.get("log"):
        from .stdio import redirect_stdio

        redirect_stdio(Path(config["log"]), "zygote")
    started = time.time()
    for name in config.get("modules") or ():
        try:
            importlib.import_module(name)
        except Exception:  # only a head start: a worker imports what it needs itself and reports failures
            traceback.print_exc()
    for name, warm_up in WARM_UPS.items():
        if name in sys.modules:
            try:
                warm_up()
            except Exception:  # a head start again, on a library's private part that may change
                traceback.print_exc()
    imported = time.time()
    print(f"zygote {os.getpid()}: imported {', '.join(config.get('modules') or ())} in {imported - started:.2f} s")
    sys.stdout.flush()


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as fh:
            return dict(json.load(fh))
    except FileNotFoundError:
        return None  # swept meanwhile, its starting process gone: nothing to do
    finally:
        path.unlink(missing_ok=True)


def _starting() -> Path | None:
    """The configuration file if this process is a forkserver that batchnb is starting, else None."""
    value = os.environ.pop(CONFIG_ENV, None)  # the workers forked from here must not inherit it
    forkserver = "multiprocessing.forkserver" in sys.modules and sys.argv[:1] == ["-c"]
    if not value or not forkserver or multiprocessing.parent_process() is not None:
        return None
    path = Path(value)
    return path if _NAME.fullmatch(path.name) else None


# -- the agent's side: starting the zygote, and what every worker does first ----------------------

# How workers start: "zygote" (forked, the default) or "spawn" (loky's clean interpreters: for a
# library that is not safe to fork after importing).
START_ENV = "BATCHNB_WORKER_START"
START_METHODS = ("zygote", "spawn")
# What every worker imports: the engine's worker side and the data stack it reads with.
BASE_MODULES = ("batchnb.engine.worker", "pandas", "pyarrow.parquet")
# How often a worker checks that the zygote it was forked from is still alive.
_PARENT_CHECK_INTERVAL_S = 1.0


def start_method() -> str:
    """The worker start method of this process (see :data:`START_ENV`)."""
    method = os.environ.get(START_ENV) or "zygote"
    if method not in START_METHODS:
        from ..errors import ValidationError

        raise ValidationError(
            f"{START_ENV}={method!r} is not a worker start method; use one of {', '.join(START_METHODS)}",
            field=START_ENV,
        )
    return method


def _server() -> Any:
    """The standard library's forkserver of this process (private: its pid, its stop)."""
    import multiprocessing.forkserver

    return multiprocessing.forkserver._forkserver  # type: ignore[attr-defined]


_started_config: Path | None = None


def start(workspace_root: Path, env: dict[str, str], modules: tuple[str, ...], log: str | None = None) -> None:
    """Start this process's zygote, importing :data:`BASE_MODULES` and ``modules`` with thread
    settings ``env``. Returns at once: the first worker forks when the imports are done."""
    global _started_config
    import multiprocessing.forkserver

    wanted = list(dict.fromkeys((*BASE_MODULES, *modules)))
    multiprocessing.forkserver.set_forkserver_preload(["batchnb.compute.zygote"])
    path = write_config(run_folder(workspace_root), {"env": env, "modules": wanted, "log": log})
    try:
        os.environ[CONFIG_ENV] = str(path)
        multiprocessing.forkserver.ensure_running()
    except BaseException:
        remove(path)
        raise
    finally:
        os.environ.pop(CONFIG_ENV, None)
    _started_config = path
    atexit.register(remove, path)


def pid() -> int | None:
    """The pid of this process's zygote, if one runs."""
    found: int | None = _server()._forkserver_pid
    return found


def stop(kill: bool = False) -> None:
    """Stop this process's zygote (at once with ``kill``) and delete its files."""
    global _started_config
    import signal

    server = _server()
    if kill and server._forkserver_pid is not None:
        with contextlib.suppress(OSError):
            os.kill(server._forkserver_pid, signal.SIGKILL)
    with contextlib.suppress(OSError, ChildProcessError):
        server._stop()
    if _started_config is not None:
        remove(_started_config)
        _started_config = None


def worker_started(env: dict[str, str], modules: tuple[str, ...]) -> None:
    """Runs first in every worker: apply the thread settings, import ``modules`` (done already when
    forked from the zygote), and end the worker when the process that started it dies.

    A worker's parent is the zygote, which exits when its agent is gone, as soon as no worker holds
    the forkserver's "alive" pipe either: so each worker closes its copy. Without this, after an
    agent is killed its workers would wait for work holding their memory, and a busy one would keep
    scoring beside the next agent's workers.
    """
    import threading

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
    for module in modules:
        # Only a head start: the job imports what it needs itself, and reports what fails.
        with contextlib.suppress(Exception):
            importlib.import_module(module)


# The forkserver's command line, started by batchnb (which named its configuration file).
_config_path = _starting()
if _config_path is not None:
    try:
        _config = _read_config(_config_path)
        if _config is not None:
            prepare(_config)
    except BaseException:  # an exception here would stop the forkserver, and with it every worker start
        traceback.print_exc()
    finally:
        _ready = ready_path(_config_path)
        with contextlib.suppress(OSError):  # the workspace deleted meanwhile: nobody waits for it
            os.close(os.open(_ready, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, _PRIVATE))
        # Removed when the zygote exits (the forkserver ends normally once its parent has gone;
        # the workers forked from it end with os._exit and skip this).
        atexit.register(_ready.unlink, missing_ok=True)
