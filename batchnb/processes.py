"""Whether a recorded process still runs: a pid and its create time, since pids are reused."""

from __future__ import annotations


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
