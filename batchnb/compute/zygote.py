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

The configuration arrives in a file only the starting process and the zygote read,
``<tmp>/batchnb-zygote-<pid of the starting process>.json`` (mode 0600: it holds the deployment's
environment variables), which the zygote deletes at once. Not in an environment variable: another
thread of the supervisor may start a process (a standby) meanwhile, which would inherit it::

    {"env": {thread settings}, "modules": [...], "preinit": {deployment context} | null,
     "log": "<job>/logs/user" | null}

``env`` is applied before anything is imported, so that BLAS and OpenMP pools are sized for the
pool's worker count. With ``log``, the zygote writes to ``stdout/zygote.stdout.txt`` and
``stderr/zygote.stderr.txt`` there (the model's dependency warnings, for instance); without, to the
output of the process that started it (a standby's log).
"""

from __future__ import annotations

import atexit
import importlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any


def config_path(parent: int) -> Path:
    """Where the process ``parent`` leaves the configuration of the zygote it starts."""
    return Path(tempfile.gettempdir()) / f"batchnb-zygote-{parent}.json"


def ready_path(parent: int) -> Path:
    """The file the zygote of process ``parent`` creates once it has imported everything: until
    then a worker cannot start, and the parent can wait for it without blocking (see
    :meth:`batchnb.compute.local.LocalPool.wait_started`)."""
    return Path(tempfile.gettempdir()) / f"batchnb-zygote-{parent}.ready"


def write_config(config: dict[str, Any]) -> Path:
    """Leave ``config`` for the zygote this process starts next (replacing any left over)."""
    ready_path(os.getpid()).unlink(missing_ok=True)
    path = config_path(os.getpid())
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh)
    return path


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


def _read_config() -> dict[str, Any] | None:
    path = config_path(os.getppid())
    try:
        with open(path) as fh:
            return dict(json.load(fh))
    except FileNotFoundError:
        return None  # read by another zygote of the same parent meanwhile: nothing to do
    finally:
        path.unlink(missing_ok=True)


# The forkserver's command line, started by batchnb (it left a configuration for its pid).
if multiprocessing.parent_process() is None and sys.argv[:1] == ["-c"] and config_path(os.getppid()).exists():
    try:
        _config = _read_config()
        if _config is not None:
            prepare(_config)
    except BaseException:  # an exception here would stop the forkserver, and with it every worker start
        traceback.print_exc()
    finally:
        _ready = ready_path(os.getppid())
        _ready.touch()  # even after an error: the parent waits for this file
        # Removed when the zygote exits (the forkserver ends normally once its parent has gone;
        # the workers forked from it end with os._exit and skip this).
        atexit.register(_ready.unlink, missing_ok=True)
