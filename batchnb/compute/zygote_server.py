"""The zygote's own process: it imports the data stack once, then forks a worker for each request.

Started by an agent as ``python -m batchnb.compute.zygote_server`` (see :mod:`batchnb.compute.zygote`
for the agent's side), with its configuration as one JSON document on stdin and its listening
socket already bound (the agent passes the descriptor, so a request made before the imports are
done waits in the socket's backlog)::

    {"listener": fd, "folder": "<its private socket folder>", "record": "<its record in run/>",
     "env": {thread settings}, "modules": [...], "log": "<folder>" | null, "linger": seconds}

A connection to it is one of two requests, told apart by its first byte:

* ``L`` (lease), with a JSON list of modules: an agent holds this connection for as long as it
  lives. The zygote imports what it has not yet, answers with its pid, and from then on forks for
  that agent. When the connection closes (the agent exited, or was SIGKILLed) the workers forked
  for it are killed at once: a busy one must not go on scoring beside the next agent's workers.
* ``F`` (fork), with descriptors: the read end of the new process's data pipe, the write end of
  its status pipe, the agent's resource tracker, then the descriptors the process object asked
  to inherit. The zygote forks; the child reads its process object from the data pipe and runs it
  as any multiprocessing child does. The zygote writes the child's pid to the status pipe, and
  its exit code once it has reaped it.

With no lease held, the zygote waits ``linger`` seconds for an agent to take one (the compute's
next agent adopts it: its imports are done), then exits. Only processes of the user who started it
are served (checked on every connection), and its socket lives in a folder only that user can
enter. SIGTERM ends it and the workers it forked.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

# A fork request's descriptors at most: the three it always sends, and what the process inherits.
MAX_FDS = 64
_SIGNED = struct.Struct("q")
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


def write_signed(fd: int, value: int) -> None:
    """Write ``value`` to ``fd`` as one fixed-size signed integer."""
    data = _SIGNED.pack(value)
    while data:
        data = data[os.write(fd, data) :]


def read_signed(fd: int) -> int:
    """Read one integer written by :func:`write_signed`.

    Raises:
        EOFError: The writer closed its end first.
    """
    data = b""
    while len(data) < _SIGNED.size:
        chunk = os.read(fd, _SIGNED.size - len(data))
        if not chunk:
            raise EOFError("the zygote closed the pipe")
        data += chunk
    return int(_SIGNED.unpack(data)[0])


def peer(conn: socket.socket) -> tuple[int, int]:
    """The pid and uid of the process at the other end of a Unix socket."""
    pid, uid, _ = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return pid, uid


class Server:
    """The zygote's accept loop: leases, forks, and the reaping of its children."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.listener = socket.socket(fileno=int(config["listener"]))
        self.linger = float(config.get("linger") or 0)
        self.leases: dict[socket.socket, int] = {}  # connection → the agent's pid
        self.children: dict[int, tuple[int, int]] = {}  # worker pid → (its status pipe, its agent's pid)
        self.alone_since: float | None = time.monotonic()  # no lease held since then
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    # -- serving ----------------------------------------------------------------------------------

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the select
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the agent's terminal is its
        self.selector.register(self.listener, selectors.EVENT_READ, "listener")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "signal")
        self.stopping = False
        signal.signal(signal.SIGTERM, self._on_term)
        while not self.stopping:
            timeout = None
            if self.alone_since is not None:
                timeout = self.alone_since + self.linger - time.monotonic()
                if timeout <= 0:
                    break
            for key, _ in self.selector.select(timeout):
                if key.data == "listener":
                    self._accept()
                elif key.data == "signal":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                    self._reap()
                else:
                    self._lease_event(key.fileobj)  # type: ignore[arg-type]
        self._kill_children(None)

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        try:
            pid, uid = peer(conn)
            if uid != os.getuid():
                conn.close()  # only the user who runs the compute's jobs
                return
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, MAX_FDS)
        except OSError:
            conn.close()
            return
        if data[:1] == b"L":
            self._lease(conn, pid, data[1:])
        elif data[:1] == b"F" and len(fds) >= 3:
            conn.close()
            self._fork(fds, pid)
        else:
            conn.close()
            for fd in fds:
                os.close(fd)

    def _lease(self, conn: socket.socket, agent: int, payload: bytes) -> None:
        with contextlib.suppress(ValueError):
            import_modules(json.loads(payload or b"[]"))
        try:
            conn.sendall(_SIGNED.pack(os.getpid()))
        except OSError:
            conn.close()
            return
        self.leases[conn] = agent
        self.alone_since = None
        self.selector.register(conn, selectors.EVENT_READ, "lease")
        print(f"zygote {os.getpid()}: serving agent {agent}", flush=True)

    def _lease_event(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            if conn.recv(64):
                return  # nothing is sent on a lease: only its end matters
        agent = self.leases.pop(conn)
        self.selector.unregister(conn)
        conn.close()
        self._kill_children(agent)
        print(f"zygote {os.getpid()}: agent {agent} is gone; its workers were stopped", flush=True)
        if not self.leases:
            self.alone_since = time.monotonic()

    def _fork(self, fds: list[int], agent: int) -> None:
        data_r, status_w, tracker, *inherited = fds
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = self._child(data_r, tracker, inherited)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(data_r)
        for fd in (tracker, *inherited):
            os.close(fd)
        self.children[pid] = (status_w, agent)
        with contextlib.suppress(OSError):
            write_signed(status_w, pid)

    def _child(self, data_r: int, tracker: int, inherited: list[int]) -> int:
        """In the forked worker: drop the zygote's own descriptors and handlers, run the process."""
        from multiprocessing import resource_tracker, spawn

        from . import zygote_client

        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        self.selector.close()
        self.listener.close()
        for conn in self.leases:
            conn.close()
        for status_w, _ in self.children.values():
            os.close(status_w)
        os.close(self.wake_r)
        os.close(self.wake_w)
        resource_tracker._resource_tracker._fd = tracker  # type: ignore[attr-defined]
        zygote_client.INHERITED[:] = inherited
        return int(spawn._main(data_r, os.dup(data_r)))  # type: ignore[attr-defined]

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            entry = self.children.pop(pid, None)
            if entry is not None:
                with contextlib.suppress(OSError):
                    write_signed(entry[0], os.waitstatus_to_exitcode(status))
                os.close(entry[0])

    def _kill_children(self, agent: int | None) -> None:
        """SIGKILL the workers forked for ``agent`` (None: all of them)."""
        for pid, (_, owner) in list(self.children.items()):
            if agent is None or owner == agent:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def import_modules(modules: list[str]) -> None:
    """Import ``modules`` (only a head start: a worker imports what it needs itself, and reports
    what fails), then the warm-ups of what got imported."""
    from .zygote import WARM_UPS

    started = time.time()
    new = [name for name in modules if name not in sys.modules]
    for name in new:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # not in this interpreter's environment: its workers do without
            print(f"zygote {os.getpid()}: did not import {name}: {exc}", flush=True)
        except Exception:
            import traceback

            traceback.print_exc()
    for name, warm_up in WARM_UPS.items():
        if name in new and name in sys.modules:
            try:
                warm_up()
            except Exception:  # a head start again, on a library's private part that may change
                import traceback

                traceback.print_exc()
    if new:
        print(f"zygote {os.getpid()}: imported {', '.join(new)} in {time.time() - started:.2f} s", flush=True)
    # What the imports made lives as long as the workers: out of the garbage collector's sight, so
    # that a worker's full collection does not walk it (0.16 s each for the data stack and mlflow,
    # and loky forces one after a worker's first task) nor write to the pages it shares with us.
    gc.freeze()


def main() -> int:
    config = json.loads(sys.stdin.read())
    os.environ.update(config.get("env") or {})
    if config.get("log"):
        from .stdio import redirect_stdio

        redirect_stdio(Path(config["log"]), "zygote")
    server = Server(config)
    try:
        import_modules(list(config.get("modules") or ()))
        server.serve()
    finally:
        record = Path(config["record"])
        with contextlib.suppress(OSError, ValueError):
            if json.loads(record.read_text()).get("pid") == os.getpid():
                record.unlink()
        with contextlib.suppress(OSError):
            Path(config["folder"], "socket").unlink()
            os.rmdir(config["folder"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
