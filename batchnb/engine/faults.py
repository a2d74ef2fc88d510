"""What the supervisor does when something other than the scoring script goes wrong.

Only the scoring script's own failures count against ``error_threshold``: its ``init()`` or
``run()`` raising, timing out, crashing its worker or returning short. Two other kinds of trouble
never do:

* **A lost worker.** loky reports a worker that died (a crash, the OOM killer, a SIGKILL) as a
  broken executor, from whichever call meets it first: a future's ``result()`` or the next
  ``submit()``. A local worker is an executor of its own (a slot, see
  :mod:`batchnb.compute.workers`): the mini-batches in flight on it are lost with it (the one it
  was running, and the one waiting behind it) and scored again on a new worker.
  :class:`PoolLosses` decides which of them, if any, is charged an attempt: a lost mini-batch is
  charged at most one, and only when it is the likely cause (see :meth:`PoolLosses.lost`).
* **batchnb's own files failing** (a part, the store, the logs: a read-only or full disk, a folder
  made immutable): :class:`SystemFault`. The job stops as ``Interrupted``, with the file and the
  reason, and ``batchnb job resume`` finishes it once the cause is fixed. A worker reports such a
  failure as a result of status ``system_error`` (:func:`system_error`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import WorkspaceError

SYSTEM_ERROR = "system_error"  # the status of a worker's result when batchnb's own I/O failed


class SystemFault(Exception):
    """batchnb itself could not go on (its own files or store failed): the job is Interrupted."""


def system_error(what: str, exc: BaseException) -> str:
    """One line for a failed operation on batchnb's own files: ``what`` (e.g. "write the part file
    of mini-batch 3") and the OS's reason, naming the file."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"batchnb could not {what}: {exc.strerror or exc} ({exc.filename})"
    return f"batchnb could not {what}: {type(exc).__name__}: {exc}"


def is_system_fault(exc: BaseException) -> bool:
    """True if ``exc``, escaping the supervisor, comes from batchnb's own files or store (the job is
    then resumable), rather than from the job's input or settings."""
    return isinstance(exc, SystemFault | OSError | sqlite3.Error | WorkspaceError)


def interrupted_reason(exc: BaseException, job: str) -> str:
    """The job's error text for a :func:`is_system_fault` exception: what failed, and how to finish."""
    if isinstance(exc, SystemFault | WorkspaceError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.filename is not None:
        text = f"batchnb could not use its own file {exc.filename}: {exc.strerror or exc}"
    else:
        text = system_error("go on with the job", exc)
    return f"{text}; fix that, then run `batchnb job resume -n {job}` to finish the job"


@dataclass
class PoolLosses:
    """Which mini-batches a lost worker took with it, and which of them to charge an attempt.

    A lost executor takes every mini-batch in flight on it, but at most one was being scored by the
    worker that died. When the dispatcher can tell which one (a local slot: the oldest in flight on
    it, ``dead_scoring`` below), only that one becomes a *suspect*, scored again free; a suspect
    whose worker dies under it again is charged one attempt. Every other lost mini-batch is scored
    again free. When it cannot tell, every lost mini-batch becomes a suspect and a suspect runs alone,
    so that if it kills its worker again, nothing else is in flight to share the blame. A mini-batch
    whose worker the watchdog killed (``run()`` stuck past its timeout) is charged at once.
    """

    suspects: set[int] = field(default_factory=set)
    killed: set[int] = field(default_factory=set)  # their worker was killed by the watchdog
    isolating: int | None = None  # the suspect now running alone

    def may_submit(self, idx: int, busy: bool) -> bool:
        """Whether mini-batch ``idx`` may be handed to the pool now (``busy``: others are in
        flight). A suspect waits until it can run alone, and nothing joins it meanwhile."""
        if self.isolating is not None:
            return False
        if idx in self.suspects:
            if busy:
                return False
            self.isolating = idx
        return True

    def not_submitted(self, idx: int) -> None:
        """Mini-batch ``idx`` never reached the pool (it broke first): it has not run alone yet."""
        if self.isolating == idx:
            self.isolating = None

    def finished(self, idx: int) -> None:
        """Mini-batch ``idx`` came back with a result (whatever it says)."""
        if self.isolating == idx:
            self.isolating = None
        self.suspects.discard(idx)

    def lost(
        self, tasks: Iterable[Any], timeout: float, dead_scoring: dict[int, float] | None
    ) -> list[tuple[Any, str | None]]:
        """The pool broke with ``tasks`` in flight. ``dead_scoring``: the mini-batches that a worker
        already gone was scoring, with when it started them (None: not known). Returns each task
        with the reason to charge it one attempt, or None (scored again free)."""
        verdicts: list[tuple[Any, str | None]] = []
        for task in tasks:
            why: str | None = None
            if task.idx in self.killed:
                why = f"run() exceeded the timeout of {timeout:g} s and its worker was killed"
            elif dead_scoring is None:
                if task.idx == self.isolating:
                    why = "the worker process died while scoring this mini-batch (it ran alone)"
                else:
                    self.suspects.add(task.idx)
            elif dead_scoring.get(task.idx, -1.0) >= task.submitted_at:  # its own worker died under it
                if task.idx in self.suspects:
                    why = "the worker process died while scoring this mini-batch, again"
                else:
                    self.suspects.add(task.idx)
            self.killed.discard(task.idx)
            if why is not None:
                self.suspects.discard(task.idx)
            verdicts.append((task, why))
        self.isolating = None
        return verdicts
