"""The zygote: the process a compute agent's workers are forked from, which outlives a lost agent.

Every worker needs the same imports (pandas and pyarrow; for an MLflow model also mlflow,
scikit-learn and the flavor's loader: seconds of CPU). Started from clean interpreters, N workers pay
that N times, side by side. Instead, an agent's workers are forked from one process that imported
everything once (:mod:`batchnb.compute.zygote_server`): a worker started for a job, after a worker
crashed or after a hung ``run()`` was killed is ready in milliseconds, and the workers share the
zygote's pages until they write to them. The agent hands the zygote to loky as a multiprocessing
context (:func:`batchnb.compute.zygote_client.context`): loky starts and watches its one-process
executors as it would any. An agent holds one zygote per interpreter its jobs run in: batchnb's own,
and each built environment's (started with that environment's ``python``).

Only imports that are safe to fork after are done there (:mod:`batchnb.compute.preload` chooses
them), and what a library does once per process on first use that is as safe (:data:`WARM_UPS`). A
user's scoring script is never imported or run there, nor a model loaded: its ``init()`` runs in
each worker, per job, as on Azure.

**Adopted after a crash.** An agent holds a lease on its zygote (a connection it keeps open). If
the agent dies (SIGKILL, a crash), the zygote kills that agent's workers at once and waits, its
imports done, for the compute's next agent, which finds it through ``run/zygote-<compute>.json`` in
the workspace and takes a lease in its turn: a resumed job's workers start in milliseconds, not
after seconds of imports. Only an agent of the same batchnb code (:func:`code_identity`) adopts
it. A zygote nobody adopts exits after its linger (the compute's idle time, :data:`MIN_LINGER_S` at
least); ``compute stop`` ends it at once; an agent that exits normally stops its own.

The run folder is private to the user who runs jobs (mode 0700), the record in it is 0600, the
zygote's socket is in a folder of its own only that user can enter, and the zygote serves no other
user's process. ``env`` (the thread settings for the agent's worker count) is applied before
anything is imported; a zygote whose settings differ from what the next agent wants is stopped
rather than adopted. The zygote writes to ``stdout/zygote.stdout.txt`` and ``stderr/`` in the
compute's log folder.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes
from .zygote_server import read_signed

# A zygote no agent holds waits at least this long for the compute's next one.
MIN_LINGER_S = 30.0
# A zygote's private folder in the temporary directory, which holds its socket.
_SOCKET_PREFIX = "batchnb-zygote-"


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


def _warm_mlflow() -> None:
    """``mlflow.pyfunc.load_model`` checks the model's requirements against the installed packages,
    and the first time in a process maps every installed distribution to its modules, reading all
    their metadata (about a second, in every worker that loads a model). Done here once, the map is
    inherited by every worker forked after."""
    from mlflow.utils import requirements_utils

    requirements_utils._init_packages_to_modules_map()


# A module the zygote imported -> what it then does once for every worker.
WARM_UPS = {"mlflow.pyfunc": _warm_mlflow}


# How workers start: "zygote" (forked, the default) or "spawn" (loky's clean interpreters: for a
# library that is not safe to fork after importing).
START_ENV = "BATCHNB_WORKER_START"
START_METHODS = ("zygote", "spawn")
# What every worker imports: the engine's worker side and the data stack it reads with.
BASE_MODULES = ("batchnb.engine.worker", "pandas", "pyarrow.parquet")


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


def record_path(workspace_root: Path, compute: str, python: str | None = None) -> Path:
    """Where the compute's zygote for ``python`` (None: batchnb's own interpreter) is described (pid,
    start time, socket, settings) for the compute's next agent."""
    if python is None:
        return run_folder(workspace_root) / f"zygote-{compute}.json"
    digest = hashlib.sha256(python.encode()).hexdigest()[:12]
    return run_folder(workspace_root) / f"zygote-{compute}+{digest}.json"  # "+" is in no compute's name


def _records(workspace_root: Path, compute: str) -> list[Path]:
    folder = workspace_root / "run"
    if not folder.is_dir():
        return []
    return [*folder.glob(f"zygote-{compute}.json"), *folder.glob(f"zygote-{compute}+*.json")]


class _Lease:
    """This agent's hold on a zygote: the zygote's pid, socket and record, and the connection kept
    open (its end tells the zygote this agent is gone)."""

    def __init__(self, pid: int, address: str, record: Path, conn: socket.socket) -> None:
        self.pid = pid
        self.address = address
        self.record = record
        self.conn = conn


# This agent's zygotes, by interpreter (None: batchnb's own; else a built environment's).
_leases: dict[str | None, _Lease] = {}
_lock = threading.Lock()


def ensure(
    workspace_root: Path,
    compute: str,
    env: dict[str, str],
    modules: tuple[str, ...],
    log: str | None,
    linger: float,
    python: str | None = None,
) -> None:
    """Hold a zygote running ``python`` (None: batchnb's own interpreter) for this agent: the
    compute's lingering one if its settings are ``env`` (it imports what of ``modules`` it has not),
    else a new one importing :data:`BASE_MODULES` and ``modules``. Returns at once for a new one:
    its first fork waits for its imports."""
    wanted = list(dict.fromkeys((*BASE_MODULES, *modules)))
    with _lock:
        if python in _leases:
            return
        record = record_path(workspace_root, compute, python)
        found = _read_record(record)
        held = _adopt(found, record, env, wanted) if found is not None else None
        _leases[python] = held or _start(record, env, wanted, log, max(MIN_LINGER_S, linger), python)


def holds(python: str | None) -> bool:
    """Whether this agent holds a zygote running ``python`` (None: batchnb's own interpreter)."""
    return python in _leases


def address(python: str | None) -> str:
    """The socket of this agent's zygote running ``python``.

    Raises:
        OSError: This agent holds none.
    """
    held = _leases.get(python)
    if held is None:
        raise OSError(f"this agent holds no zygote for {python or 'its own interpreter'}")
    return held.address


def _read_record(record: Path) -> dict[str, Any] | None:
    """The zygote ``record`` describes, if it still runs."""
    try:
        found = dict(json.loads(record.read_text()))
        started = _started(int(found["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # Gone (killed with SIGKILL, nothing removed its record), or its pid reused by another process.
    if started is None or abs(started - int(found["started"])) > 1:
        return None
    return found


def running_pids(workspace_root: Path, compute: str) -> list[int]:
    """The pids of the compute's zygotes that run (held by its agent, or waiting for the next)."""
    return [int(found["pid"]) for found in map(_read_record, _records(workspace_root, compute)) if found]


@functools.cache
def code_identity() -> str:
    """What batchnb's code is now: its package's files, their sizes and modification times. A
    zygote started from other code (batchnb upgraded or edited since) is never adopted: its workers
    would run that code."""
    package = Path(__file__).resolve().parents[1]
    listed = [str(package)]
    for found in sorted(package.rglob("*.py")):
        info = found.stat()
        listed.append(f"{found.relative_to(package)} {info.st_mtime_ns} {info.st_size}")
    text = json.dumps(listed)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def agent_usage(workspace_root: Path, compute: str, agent: int) -> tuple[int | None, int]:
    """What the compute's agent ``agent`` runs now: its workers (its zygotes' children but their
    helpers, whether it started those zygotes or adopted them; None when it has no zygote, its
    workers being clean interpreters) and the resident memory of the agent, its own processes, its
    zygotes and what they forked.

    Raises:
        psutil.Error: The agent is gone.
    """
    import psutil

    from ..processes import HELPER_NAME, children, descendants, name_of

    me = psutil.Process(agent)  # raises if the agent is gone
    family = {agent, *descendants(agent)}
    zygotes = running_pids(workspace_root, compute)
    workers = 0
    for pid in zygotes:
        forked = children(pid)
        family.update([pid, *forked])
        for worker in forked:
            family.update(descendants(worker))  # what a scoring script started
        workers += sum(name_of(p) != HELPER_NAME for p in forked)
    rss = me.memory_info().rss
    for pid in family - {agent}:
        with contextlib.suppress(psutil.Error):
            rss += psutil.Process(pid).memory_info().rss
    return (workers if zygotes else None), rss


def _adopt(found: dict[str, Any], record: Path, env: dict[str, str], modules: list[str]) -> _Lease | None:
    """A lease on the lingering zygote ``found``; None (and it is stopped) if it cannot serve."""
    if found.get("env") == env and found.get("code") == code_identity():
        with contextlib.suppress(OSError):
            conn = _lease_on(str(found["address"]), modules, answer=True)
            print(f"zygote {found['pid']}: adopted, its imports done", flush=True)
            return _Lease(int(found["pid"]), str(found["address"]), record, conn)
    _kill(int(found["pid"]))
    return None


def _lease_on(address: str, modules: list[str], answer: bool) -> socket.socket:
    """Take a lease on the zygote at ``address``, asking it to import ``modules``; with ``answer``,
    wait until it has (it answers with its pid)."""
    conn = socket.socket(socket.AF_UNIX)
    try:
        conn.connect(address)
        socket.send_fds(conn, [b"L" + json.dumps(modules).encode()], [])
        if answer:
            read_signed(conn.fileno())
    except (OSError, EOFError) as exc:
        conn.close()
        raise OSError(f"the zygote at {address} did not answer: {exc}") from exc
    return conn


def _start(
    record: Path, env: dict[str, str], modules: list[str], log: str | None, linger: float, python: str | None
) -> _Lease:
    """Start a zygote running ``python`` and importing ``modules``; its lease is taken at once (it
    is answered, and counts, once the imports are done: a fork asked for meanwhile waits too)."""
    _sweep_sockets()
    folder = tempfile.mkdtemp(prefix=_SOCKET_PREFIX)  # 0700, and short: a socket's path is ~100 bytes at most
    address = os.path.join(folder, "socket")
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(address)
        listener.listen(64)
        config = {"listener": listener.fileno(), "folder": folder, "record": str(record), "env": env,
                  "modules": modules, "log": log, "linger": linger}  # fmt: skip
        proc = subprocess.Popen(
            [python or sys.executable, "-m", "batchnb.compute.zygote_server"],
            stdin=subprocess.PIPE,
            pass_fds=[listener.fileno()],
            close_fds=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(config).encode())
        proc.stdin.close()
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(address)
            os.rmdir(folder)
        raise
    finally:
        listener.close()
    threading.Thread(target=proc.wait, name="batchnb-zygote-reap", daemon=True).start()
    described = {
        "pid": proc.pid,
        "started": _started(proc.pid),
        "address": address,
        "env": env,
        "code": code_identity(),
    }
    atomic_write_bytes(record, json.dumps(described).encode(), durable=False, private=True)
    return _Lease(proc.pid, address, record, _lease_on(address, [], answer=False))


def _kill(pid: int, sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def stop(kill: bool = False) -> None:
    """Stop this agent's zygotes and their workers (at once with ``kill``)."""
    with _lock:
        held_all = list(_leases.values())
        _leases.clear()
    for held in held_all:
        _kill(held.pid, signal.SIGKILL if kill else signal.SIGTERM)
        with contextlib.suppress(OSError):
            held.conn.close()
        if kill:  # a SIGKILLed zygote removes nothing itself
            with contextlib.suppress(OSError, ValueError):
                if json.loads(held.record.read_text()).get("pid") == held.pid:
                    held.record.unlink()
            _remove_socket(held.address)


def _sweep_sockets() -> None:
    """Remove the socket folders of this user's zygotes that were killed (nothing listens there):
    a zygote that exits removes its own, one killed with SIGKILL cannot."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_SOCKET_PREFIX}*"):
        address = folder / "socket"
        with contextlib.suppress(OSError):
            if folder.stat().st_uid != os.getuid() or not address.exists():
                continue
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(address))
                    continue  # a live zygote (it closes a connection that asks nothing)
                except ConnectionRefusedError:
                    pass
            _remove_socket(str(address))


def _remove_socket(address: str) -> None:
    """Remove a zygote's socket and the private folder that holds it."""
    with contextlib.suppress(OSError):
        os.unlink(address)
        os.rmdir(os.path.dirname(address))


def stop_lingering(workspace_root: Path, compute: str) -> list[int]:
    """Stop the compute's zygotes that no agent holds (``compute stop`` with no agent); their pids."""
    stopped = []
    for record in _records(workspace_root, compute):
        found = _read_record(record)
        if found is not None:
            _kill(int(found["pid"]), signal.SIGKILL)
            stopped.append(int(found["pid"]))
            _remove_socket(str(found["address"]))  # a SIGKILLed zygote removes nothing itself
        record.unlink(missing_ok=True)
    return stopped
