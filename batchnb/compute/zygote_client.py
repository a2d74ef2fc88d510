"""Asking a zygote for a worker: the multiprocessing context loky starts an agent's workers with.

loky starts and watches its one-process executors through a multiprocessing context. This one's
processes are forked by the agent's zygote for the interpreter they run (batchnb's own, or a built
environment's: :mod:`batchnb.compute.zygote`), over its socket (:mod:`batchnb.compute.zygote_server`
says what a request carries), rather than forked here or started as fresh interpreters. A worker
forked by an environment's zygote keeps that interpreter's own ``sys.path`` and does not import the
agent's main module: what a child normally takes from its parent would put batchnb's environment
first, and in an environment of another Python version, a standard library and compiled packages
that version cannot load.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import socket
import threading
import time
from multiprocessing import context as mp_context
from multiprocessing import popen_fork, process, reduction, resource_tracker, spawn, util
from typing import Any

from . import zygote
from .base import keep_freed_memory
from .zygote_server import read_signed

# The descriptors a worker being forked inherits (set in the worker, by the zygote, before it runs).
INHERITED: list[int] = []
# What a child takes from its parent that a worker of another interpreter must not: its sys.path,
# and its main module to import again.
_PARENTS_OWN = ("sys_path", "init_main_from_name", "init_main_from_path")
# How often a worker checks that the zygote it was forked from is still alive.
_PARENT_CHECK_INTERVAL_S = 1.0


class _InheritedFd:
    """A descriptor a process object carries to the worker, as multiprocessing's forkserver does."""

    def __init__(self, index: int) -> None:
        self.index = index

    def detach(self) -> int:
        return INHERITED[self.index]


class _Popen(popen_fork.Popen):
    """Starts a process by asking this agent's zygote for its interpreter to fork it."""

    method = "forkserver"
    DupFd = _InheritedFd

    def __init__(self, process_obj: Any) -> None:
        self._fds: list[int] = []
        super().__init__(process_obj)

    def duplicate_for_child(self, fd: int) -> int:
        self._fds.append(fd)
        return len(self._fds) - 1

    def _launch(self, process_obj: Any) -> None:
        python = process_obj.python
        prep = spawn.get_preparation_data(process_obj._name)
        if python is not None:
            for key in _PARENTS_OWN:
                prep.pop(key, None)
        buf = io.BytesIO()
        mp_context.set_spawning_popen(self)  # type: ignore[arg-type]
        try:
            reduction.dump(prep, buf)
            reduction.dump(process_obj, buf)
        finally:
            mp_context.set_spawning_popen(None)
        address = zygote.address(python)
        data_r, data_w = os.pipe()
        status_r, status_w = os.pipe()
        resource_tracker.ensure_running()
        tracker = resource_tracker.getfd()
        assert tracker is not None  # ensure_running made it
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.connect(address)
                socket.send_fds(conn, [b"F"], [data_r, status_w, tracker, *self._fds])
        except BaseException:
            for fd in (data_r, data_w, status_r, status_w):
                os.close(fd)
            raise
        os.close(data_r)
        os.close(status_w)
        self.sentinel = status_r
        # The worker's sentinel of this process: its copy of the data pipe's write end closes with us.
        keep_w = os.dup(data_w)
        self.finalizer = util.Finalize(self, util.close_fds, (keep_w, self.sentinel))  # type: ignore[attr-defined]
        with open(data_w, "wb", closefd=True) as fh:
            fh.write(buf.getbuffer())
        self.pid = read_signed(self.sentinel)

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        if self.returncode is None:
            from multiprocessing.connection import wait

            if not wait([self.sentinel], 0 if flag == os.WNOHANG else None):
                return None
            try:
                self.returncode = read_signed(self.sentinel)
            except (OSError, EOFError):
                self.returncode = 255  # the zygote itself was killed
        return self.returncode


class _ZygoteProcess(process.BaseProcess):
    _start_method = "forkserver"
    python: str | None = None  # the interpreter whose zygote forks it (None: batchnb's own)

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _Popen(process_obj)


class _ZygoteContext(mp_context.ForkServerContext):
    def __init__(self, python: str | None) -> None:
        super().__init__()
        self.python = python

    def Process(self, *args: Any, **kwargs: Any) -> _ZygoteProcess:  # type: ignore[override]
        proc = _ZygoteProcess(*args, **kwargs)
        proc.python = self.python
        return proc


def context(python: str | None = None) -> Any:
    """The multiprocessing context whose processes this agent's zygote for ``python`` (None:
    batchnb's own interpreter) forks, for loky."""
    return _ZygoteContext(python)


def worker_started(env: dict[str, str], modules: tuple[str, ...]) -> None:
    """Runs first in every worker: apply the thread and memory settings, import ``modules`` (done already when
    forked from the zygote), and end the worker when the process that started it dies.

    A worker's parent is its zygote, which kills the workers of an agent that is gone; a worker
    whose zygote is gone ends itself.
    """

    os.environ.update(env)
    keep_freed_memory()
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
