"""The server-side state: configuration, the workspace the server uses, and its one :class:`BatchClient`."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Float, Integer, List, Unicode
from traitlets.config import Configurable

from ..workspace import ENV_VAR, MARKER, resolve_workspace_path

if TYPE_CHECKING:
    from ..client import BatchClient

SETTINGS_KEY = "batchnb"


class BatchnbServer(Configurable):
    """batchnb's settings in a Jupyter server (``c.BatchnbServer.<name>`` in ``jupyter_server_config.py``)."""

    workspace = Unicode(
        None,
        allow_none=True,
        config=True,
        help=(
            "The workspace folder. Default: $BATCHNB_WORKSPACE, else the nearest .batchnb folder at or "
            "above the server's root_dir, else the per-user default. A relative path is relative to root_dir."
        ),
    )
    threads = Integer(
        4,
        config=True,
        help=(
            "Worker threads for batchnb's requests. They are batchnb's own, so a workspace database "
            "locked by another process stalls batchnb's requests only, never the server's other work."
        ),
    )
    dry_run_timeout = Float(
        300.0,
        config=True,
        help="Seconds a dry-run invocation (run in its own process) may take before it is stopped.",
    )

    allowed_paths = List(
        Unicode(),
        default_value=[],
        config=True,
        help=(
            "Folders outside root_dir that paths in REST requests (inputs, outputs, models, code, "
            "components) may name, and URL prefixes (https://host/data, s3://bucket/prefix) that their "
            "remote inputs and outputs may be under. By default a request may name only paths inside "
            "root_dir and the workspace's registered datastores, after resolving '..' and symlinks, and "
            "no other URL. A relative entry is relative to root_dir."
        ),
    )

    def __init__(self, root_dir: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root_dir = Path(root_dir).expanduser().resolve()
        self._client: BatchClient | None = None
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=max(1, self.threads), thread_name_prefix="batchnb")

    def workspace_path(self) -> tuple[Path, str]:
        """The workspace folder by the workspace rule applied from ``root_dir``, and which rule chose it."""
        if self.workspace:
            given = Path(self.workspace).expanduser()
            return (given if given.is_absolute() else self.root_dir / given).resolve(), "config"
        if os.environ.get(ENV_VAR):
            return resolve_workspace_path(None, cwd=self.root_dir), "env"
        path = resolve_workspace_path(None, cwd=self.root_dir)
        near = path.name == MARKER and path.parent in (self.root_dir, *self.root_dir.parents)
        return path, "marker" if near else "default"

    def allowed_roots(self, client: BatchClient) -> list[str]:
        """The folders (and fsspec datastore URLs) that paths in a request may name: ``root_dir``,
        ``allowed_paths`` and the workspace's registered datastores (read per request: one may be added)."""
        extra = [p if "://" in p else str(self.root_dir / Path(p).expanduser()) for p in self.allowed_paths]
        return [str(self.root_dir), *extra, *(str(ds["path"]) for ds in client.datastores.list() if ds.get("path"))]

    def client(self) -> BatchClient:
        """The server's client, opened on first use (so a broken workspace fails requests, not the server)."""
        with self._lock:
            if self._client is None:
                from ..client import BatchClient

                self._client = BatchClient(self.workspace_path()[0])
            return self._client


def setup(server_app: Any) -> None:
    """Create the state, keep it in the web app's settings, and add the routes."""
    from .handlers import route_table

    state = BatchnbServer(root_dir=server_app.root_dir, parent=server_app)
    web_app = server_app.web_app
    web_app.settings[SETTINGS_KEY] = state
    web_app.add_handlers(".*$", route_table(web_app.settings.get("base_url", "/")))
    path, source = state.workspace_path()
    if (path / "batchnb.db").exists():
        # Jobs whose agent was lost (a reboot, a killed process) go on as the server comes back.
        state.executor.submit(_recover, state, server_app.log)
    server_app.log.info(
        "batchnb: REST API at %sbatchnb/api/, workspace %s (%s)", web_app.settings.get("base_url", "/"), path, source
    )


def _recover(state: BatchnbServer, log: Any) -> None:
    try:
        started = state.client().computes.recover()
        pipelines = state.client().jobs.recover()
    except Exception as exc:  # the server serves anyway; the user sees the jobs Interrupted
        log.warning("batchnb: could not resume the jobs left by lost agents or runners: %s", exc)
        return
    if started:
        log.info("batchnb: started the agents of compute(s) %s, which had jobs left", ", ".join(started))
    if pipelines:
        log.info("batchnb: resumed pipeline job(s) %s, whose runner was lost", ", ".join(pipelines))
