"""Processes batchnb recorded or started: whether one still runs (a pid and its create time, since
pids are reused), and the tree below one."""

from __future__ import annotations

import os


def process_alive(pid: int | None, started: float | None) -> bool | None:
    """True/False if process ``pid`` (created at ``started``) is known to be running / gone; None if
    unknown. A zombie counts as gone."""
    if not pid:
        return None
    import psutil

    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 1.0:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return None


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s children (empty if it is gone).

    Read from ``/proc/<pid>/task/<tid>/children``: a small file per thread of ``pid``, where
    psutil's ``children()`` reads the stat file of every process on the machine; the agent's
    heartbeat asks every second."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return [] if os.path.isdir("/proc/self/task") else _children_by_psutil(pid)  # gone; or no /proc
    kids: set[int] = set()
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids.update(int(k) for k in fh.read().split())
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        except OSError:  # a kernel without CONFIG_PROC_CHILDREN
            return _children_by_psutil(pid)
    return sorted(kids)


def descendants(pid: int) -> list[int]:
    """The pids of ``pid``'s children, theirs, and so on (empty if it is gone)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        found += kids
        todo += kids
    return found


def _children_by_psutil(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children()]
    except psutil.Error:
        return []


# The name a helper process gives itself (see set_name), so that a count of a zygote's workers
# leaves it out; ``ps -o comm`` shows it too.
HELPER_NAME = "batchnb-helper"


def set_name(name: str) -> None:
    """Name this process (``/proc/<pid>/comm``, 15 bytes at most); nothing where prctl is missing."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def name_of(pid: int) -> str | None:
    """A process's name (``/proc/<pid>/comm``); None if it is gone or cannot be read."""
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return None
