"""batchnb: Azure ML batch endpoints, run locally and from the notebook.

``import batchnb`` stays light: heavy modules (pandas, pyarrow, joblib) load when first used.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .errors import (
    BatchnbError,
    ConflictError,
    InvalidNameError,
    InvalidStateError,
    JobFailedError,
    MissingDependencyError,
    NotFoundError,
    UsageError,
    ValidationError,
    WorkspaceError,
)

if TYPE_CHECKING:
    from .client import BatchClient
    from .pipelines.dsl import Input, Output, component, pipeline

__version__ = "0.1.0"

__all__ = [
    "BatchClient",
    "BatchnbError",
    "ConflictError",
    "Input",
    "InvalidNameError",
    "InvalidStateError",
    "JobFailedError",
    "MissingDependencyError",
    "NotFoundError",
    "Output",
    "UsageError",
    "ValidationError",
    "WorkspaceError",
    "__version__",
    "component",
    "pipeline",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext batchnb``: register the ``%batch`` and ``%%batch`` magics."""
    from .magics import load_ipython_extension as load

    _register_job_display(ipython)
    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext batchnb``."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The JupyterLab sidebar, built from ``labextension/`` into ``batchnb/labextension``."""
    return [{"src": "labextension", "dest": "batchnb"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension: batchnb's REST API (see :mod:`batchnb.server`)."""
    return [{"module": "batchnb"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Load the REST API. Imported here, not at the top: ``import batchnb`` must not pull in tornado."""
    from .server import load_jupyter_server_extension

    load_jupyter_server_extension(server_app)


_DSL = ("Input", "Output", "component", "pipeline")


def __getattr__(name: str) -> Any:
    if name == "BatchClient":
        from .client import BatchClient

        return BatchClient
    if name in _DSL:  # notebook-first components and pipelines (batchnb.pipelines.dsl)
        from .pipelines import dsl

        return getattr(dsl, name)
    raise AttributeError(f"module 'batchnb' has no attribute {name!r}")


def _show_job(job: Any) -> None:
    """A job shown in IPython: live while it runs where a widget front end exists, else its summary."""
    from .widgets import show_job

    show_job(job)


def _register_job_display(shell: Any) -> None:
    """Jobs display through the notebook front end (:mod:`batchnb.widgets`). The core never imports a
    front end, so the front end registers with IPython, by the class's name: nothing is imported."""
    shell.display_formatter.ipython_display_formatter.for_type_by_name("batchnb.jobs", "Job", _show_job)


def _register_in_a_running_shell() -> None:
    ipython = sys.modules.get("IPython")  # never imported here: only a kernel has it loaded already
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        _register_job_display(shell)


_register_in_a_running_shell()
