"""The zygote: the process a local pool's workers are forked from.

Every worker of a local job needs the same imports (pandas and pyarrow; for an MLflow model also
mlflow, scikit-learn and the flavor's loader: about 5 s of CPU on this kind of machine) and, for
batchnb's own MLflow driver, the same model. Started from clean interpreters, N workers pay that N
times, side by side. Instead, a local pool starts its workers through the standard library's
*forkserver*, with this module as its preload: one process imports everything and loads the model
once, then forks each worker on demand. A worker started at the beginning of a job, after a worker
crashed or after a hung ``run()`` was killed is ready in milliseconds, and the workers share the
zygote's pages (the model included) until they write to them.

Only work that is safe to fork after is done here: imports of the data stack, and ``init()`` of
batchnb's own MLflow driver, which reads nothing of the job (see
:func:`batchnb.engine.worker.preinitialize`). A user's scoring script is never imported or run
here: its ``init()`` runs in each worker, per job, as on Azure.

The configuration arrives in a file, which the zygote reads and deletes as it starts: it holds the
deployment's environment variables. The file lives in the workspace's private ``run/`` folder (mode
0700, this user's), is created with mode 0600 (never readable by others, not even for a moment) and
has an unpredictable name, ``zygote-<parent pid>-<parent start>-<random>.json``; the zygote learns
it from ``BATCHNB_ZYGOTE_CONFIG``, set only while the starting process spawns it (another thread may
start a process meanwhile, a standby, which inherits only that name and gives its own zygote
another)::

    {"env": {thread settings}, "modules": [...], "preinit": {deployment context} | null,
     "log": "<job>/logs/user" | null}

Every way out removes it: the zygote deletes it at once; the starting process deletes it if the
zygote never got to it (a failed start, :func:`remove`); and since a process killed with SIGKILL
cleans up nothing, the next start in the workspace deletes the files of processes that are gone
(:func:`sweep`). The ``.ready`` file beside it, made when the zygote is done importing, follows
the same rules.

``env`` is applied before anything is imported, so that BLAS and OpenMP pools are sized for the
pool's worker count. With ``log``, the zygote writes to ``stdout/zygote.stdout.txt`` and
``stderr/zygote.stderr.txt`` there (the model's dependency warnings, for instance); without, to the
output of the process that started it (a standby's log).
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
            "it holds the deployments' environment variables while workers start"
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
    then a worker cannot start, and the parent can wait for it without blocking (see
    :meth:`batchnb.compute.local.LocalPool.wait_started`)."""
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


def prepare(config: dict[str, Any]) -> None:
    """Import ``config["modules"]`` and, with ``config["preinit"]``, run batchnb's driver ``init()``."""
    os.environ.update(config.get("env") or {})
    if config.get("log"):
        from ..engine.worker import redirect_stdio

        redirect_stdio(Path(config["log"]), "zygote")
    started = time.time()
    for name in config.get("modules") or ():
        try:
            importlib.import_module(name)
        except Exception:  # only a head start: a worker imports what it needs itself and reports failures
            traceback.print_exc()
    imported = time.time()
    print(f"zygote {os.getpid()}: imported {', '.join(config.get('modules') or ())} in {imported - started:.2f} s")
    if config.get("preinit"):
        from ..engine.worker import preinitialize

        result = preinitialize(config["preinit"])
        took = f"{result['status']} in {result['duration']:.2f} s"
        print(f"zygote {os.getpid()}: init() of batchnb's MLflow driver {took}")
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
