"""batchnb: Azure ML batch endpoints, run locally and from the notebook.

``import batchnb`` stays light: heavy modules (pandas, pyarrow, joblib) load when first used.
"""

from __future__ import annotations

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
