"""Environment processes: a Dask worker's children that score a built environment's jobs in its interpreter.

Workers of different environments never share a process. A Dask worker is one long-lived process
that serves whatever comes, so a job whose deployment has a built environment (built on each host,
:mod:`batchnb.compute.hostenv`) is scored in a child of the Dask worker that runs the build's own
``bin/python`` (:func:`run_in_environment`); a job without one runs in the Dask worker's process.

- **Warm, as a local worker is.** A child serves one build and one deployment revision (its key,
  :func:`batchnb.compute.workers.revision_key`): it outlives mini-batches and jobs, so a job runs
  ``init()`` once in it and a later job of the revision finds its script imported
  (:mod:`batchnb.engine.worker` keeps that state in the child as in a local worker); no other
  revision's module state is ever in it. A Dask worker keeps at most as many children as it has
  threads (as a local compute has one worker per slot): one started for another revision stops the
  least recently used idle one first.
- **A plain child, not a multiprocessing one.** A Nanny's worker is a daemonic process, which
  ``multiprocessing`` forbids to have children, and a spawned child would import the Dask worker's
  main module and take its ``sys.path`` (batchnb's environment's, or another Python's). So the child
  is ``python -m batchnb.compute.envproc``, with its interpreter's own path (the build's packages
  first, batchnb's runtime layered behind them), and the two talk over a socket pair with
  :class:`multiprocessing.connection.Connection`: one call at a time, a module-level function and
  small records, pickled.
- **A child that dies** (a segfault, a SIGKILL, the OOM killer) closes its end: the call raises
  :class:`EnvironmentProcessLost`, that mini-batch's attempt fails and is retried, and the next
  mini-batch starts a new child. A hung ``run()`` is ended in the child by the job's timeout.
- **A child ends with its Dask worker**: stopped when the worker closes (a worker plugin the worker
  gives itself, ``EnvironmentProcesses``) or its process exits, and on its own when its parent dies
  (it watches it, as a local worker does, and its end of the socket closes).
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

PLUGIN = "batchnb-environment-processes"
# How long a child stopped gracefully may take to end (a scoring script's shutdown() runs).
STOP_WAIT_S = 5.0


class EnvironmentProcessLost(Exception):
    """The environment process running a call died under it; the message says how it ended."""


class EnvironmentProcess:
    """One child of this Dask worker, running ``python`` (a build's interpreter) for ``revision``;
    started by its first call."""

    def __init__(self, python: str, revision: str) -> None:
        self.python, self.revision = python, revision
        self.busy = True  # a Dask worker thread is using it (checked out)
        self.used_at = time.monotonic()
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None

    def _start(self) -> tuple[subprocess.Popen[bytes], Connection]:
        ours, theirs = socket.socketpair()
        with theirs:
            try:
                self.proc = subprocess.Popen(
                    [self.python, "-m", __name__, str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                )
            except OSError as exc:  # e.g. its build was removed from the host's cache meanwhile
                ours.close()
                raise EnvironmentProcessLost(
                    f"the environment process ({self.python}) could not start: {exc}"
                ) from None
        self.conn = Connection(ours.detach())
        return self.proc, self.conn

    def exited(self) -> bool:
        """Whether it was started and has ended since."""
        return self.proc is not None and self.proc.poll() is not None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the child; ``fn`` must be importable there (a module-level function).

        Raises:
            EnvironmentProcessLost: The child could not start, or died before it answered.
            RuntimeError: ``fn`` raised; the message holds the child's traceback.
        """
        proc, conn = (self.proc, self.conn) if self.proc is not None and self.conn is not None else self._start()
        try:
            conn.send((fn, args))
            ok, value = conn.recv()
        except (EOFError, OSError):
            conn.close()
            raise EnvironmentProcessLost(
                f"the environment process {proc.pid} ({self.python}) died: {_ending(proc)}"
            ) from None
        if not ok:
            raise RuntimeError(f"in the environment process {proc.pid} ({self.python}):\n{value}")
        return value

    def stop(self, kill: bool) -> None:
        """End the child: at once (``kill``), or by closing its connection, so that it exits as a
        local worker does (a scoring script's ``shutdown()`` runs), within ``STOP_WAIT_S``."""
        if self.proc is None or self.conn is None:
            return
        if kill:
            self.proc.kill()
        self.conn.close()
        try:
            self.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _ending(proc: subprocess.Popen[bytes]) -> str:
    """How a child whose connection closed ended."""
    try:
        code = proc.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        return "its connection closed"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


_children: list[EnvironmentProcess] = []
_lock = threading.Lock()
_plug_lock = threading.Lock()
_plugged = False  # whether this worker stops its children as it closes


def run_in_environment(python: str, revision: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in this Dask worker's environment process for the build whose interpreter
    is ``python`` and the deployment revision ``revision``, starting one if none is idle.

    Raises:
        EnvironmentProcessLost: The process died; the next call starts another.
    """
    child, retired = _checkout(python, revision)
    for old in retired:  # before the new one starts: never more than the limit at once
        old.stop(kill=False)
    try:
        return child.call(fn, *args)
    except EnvironmentProcessLost:
        with _lock, contextlib.suppress(ValueError):
            _children.remove(child)
        raise
    finally:
        with _lock:
            child.busy, child.used_at = False, time.monotonic()


def _checkout(python: str, revision: str) -> tuple[EnvironmentProcess, list[EnvironmentProcess]]:
    """An idle child for ``(python, revision)``, marked busy, or a new one; with the idle children
    of other revisions that make room for it (to be stopped by the caller)."""
    _plug()
    with _lock:
        # One that died while idle (killed from outside) is no mini-batch's fault: replaced quietly.
        for dead in [c for c in _children if not c.busy and c.exited()]:
            _children.remove(dead)
            dead.stop(kill=True)
        for child in _children:
            if not child.busy and (child.python, child.revision) == (python, revision):
                child.busy = True
                return child, []
        idle = sorted((c for c in _children if not c.busy), key=lambda c: c.used_at)
        retired = idle[: max(0, len(_children) + 1 - _limit())]
        for old in retired:
            _children.remove(old)
        child = EnvironmentProcess(python, revision)
        _children.append(child)
        return child, retired


def _limit() -> int:
    """How many environment processes this Dask worker keeps: one per thread, as many as it scores
    mini-batches at once."""
    from distributed import get_worker

    try:
        return max(1, int(get_worker().state.nthreads))
    except (ValueError, AttributeError):  # not in a Dask worker's task
        return 1


def stop_all() -> None:
    """Stop every environment process of this Dask worker (it is closing)."""
    with _lock:
        children, _children[:] = list(_children), []
    for child in children:
        child.stop(kill=child.busy)


def _plug() -> None:
    """Have this Dask worker stop its environment processes as it closes (a worker plugin, added
    once: added again under its name, it would stop them), and as its process exits."""
    global _plugged
    with _plug_lock:
        if _plugged:
            return
        from distributed import get_worker
        from distributed.utils import sync

        # Not in a Dask worker's task (ValueError), or a worker closing: its process's exit, and the
        # children's watch of their parent, are enough.
        with contextlib.suppress(Exception):
            worker = get_worker()
            if PLUGIN not in worker.plugins:
                sync(worker.loop, worker.plugin_add, plugin=_plugin(), name=PLUGIN)
        atexit.register(stop_all)
        _plugged = True


def _plugin() -> Any:
    from distributed import WorkerPlugin

    # Defined here: the child imports this module, and Dask is not its to import.
    class EnvironmentProcesses(WorkerPlugin):
        """Stops a Dask worker's environment processes when the worker closes."""

        def teardown(self, worker: Any) -> None:
            stop_all()

    return EnvironmentProcesses()


def serve(conn: Connection) -> None:
    """In the child: run each call its parent sends, one at a time, until the parent closes its end."""
    from .zygote_client import worker_started

    # Started as the build's own `python -m`: its sys.path is already the build's. What is left is
    # an end when the Dask worker dies mid-call.
    worker_started({}, ())
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return  # stopped, or the Dask worker is gone
        try:
            answer = (True, fn(*args))
        except BaseException:  # batchnb's worker code catches the script's errors: this is ours
            answer = (False, traceback.format_exc())
        conn.send(answer)


if __name__ == "__main__":
    # Its parent decides when it ends: a Ctrl-C at the Dask worker's terminal closes the worker,
    # which stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(Connection(int(sys.argv[1])))
