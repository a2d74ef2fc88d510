"""Which job each notebook cell showed last, kept by the kernel for the page that reconnects to it.

A page reload does not restart the kernel, but the page shows the notebook as it was last saved: a
cell that ran a job again since shows the job of the save (issue 25). The kernel knows better: each
display of a job (:func:`batchnb.widgets.progress.show_job`) records the cell it ran in (the
``cellId`` JupyterLab sends with each execution) with the job's name and its live widget's model id;
running a cell again forgets what it showed. JupyterLab's batchnb extension opens a comm to
:data:`TARGET` when a notebook (re)connects to its kernel and receives ``{"cells": {cell id: {"name",
"model_id"}}}``; it then puts each cell's last job in place of an older one. A kernel that does not
answer (restarted, or batchnb not loaded) has no live widgets: the extension shows summaries instead.
"""

from __future__ import annotations

import threading
from typing import Any

TARGET = "batchnb.cells"

_shown: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()
_registered: set[int] = set()  # the shells (by id) whose comm target and hook are in place


def _current_cell(shell: Any) -> str | None:
    """The id of the cell the kernel is executing (JupyterLab sends it as ``metadata.cellId``)."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent()
    except Exception:  # an older ipykernel without get_parent: no cell ids to key by
        return None
    cell = ((parent or {}).get("metadata") or {}).get("cellId")
    return str(cell) if cell else None


def _forget(info: Any) -> None:
    """``pre_run_cell``: the cell runs again, so what it showed is gone (a job shown anew is recorded)."""
    cell = getattr(info, "cell_id", None)
    if cell:
        with _lock:
            _shown.pop(str(cell), None)


def _on_open(comm: Any, _msg: Any) -> None:
    with _lock:
        cells = {cell: dict(entry) for cell, entry in _shown.items()}
    comm.send({"cells": cells})
    comm.close()


def _register(shell: Any) -> None:
    if id(shell) in _registered:
        return
    import comm

    comm.get_comm_manager().register_target(TARGET, _on_open)
    shell.events.register("pre_run_cell", _forget)
    _registered.add(id(shell))


def remember(job_name: str, model_id: str | None) -> None:
    """Record that the executing cell shows ``job_name`` (live in the widget ``model_id``, or static)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    cell = _current_cell(shell)
    if shell is None or cell is None:
        return
    _register(shell)
    with _lock:
        _shown[cell] = {"name": job_name, "model_id": model_id}


def shown() -> dict[str, dict[str, Any]]:
    """What each cell showed last: ``{cell id: {"name": job, "model_id": widget model or None}}``."""
    with _lock:
        return {cell: dict(entry) for cell, entry in _shown.items()}
