"""Where the workspace lives: one rule for the kernel, the CLI and the Jupyter server alike.

The rule, first match wins:

1. an explicit path passed by the caller (``--workspace`` on the CLI, ``BatchClient(workspace=...)``);
2. the environment variable ``BATCHNB_WORKSPACE``;
3. the nearest folder named ``.batchnb`` in the current folder or any folder above it;
4. the per-user default, ``platformdirs.user_data_dir("batchnb")/workspace``.

So a notebook, a terminal and a ``jupyter lab`` started anywhere inside a project that has a
``.batchnb/`` folder (``batchnb workspace init`` makes one) all see the same endpoints and jobs.

A workspace folder holds::

    batchnb.db                 the SQLite store (WAL): registry, endpoints, deployments, jobs
    artifacts/models/<name>/<version>/<file or folder>   registered models, copied in
    artifacts/code/<sha256>/   snapshots of scoring-script folders (content-addressed)
    datastores/workspaceblobstore/   the default datastore's root
    jobs/<job-name>/           each job's logs and committed mini-batch parts
    cache/                     what batchnb can rebuild (loaded models); safe to delete
    run/                       private (0700): the files a local pool's zygote reads as it starts

Whoever can write to this folder can run code as the user who runs jobs (docs/security.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import WorkspaceError

ENV_VAR = "BATCHNB_WORKSPACE"
MARKER = ".batchnb"
DEFAULT_DATASTORE = "workspaceblobstore"


def resolve_workspace_path(explicit: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Path:
    """Apply the workspace rule (see the module docstring) and return an absolute folder path.

    Args:
        explicit: A path given by the caller; wins over everything else.
        cwd: The folder to start the upward search from (default: the current folder).

    Returns:
        The workspace folder. It may not exist yet.
    """
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / MARKER
        if candidate.is_dir():
            return candidate
    import platformdirs  # imported here: only the fallback needs it

    return Path(platformdirs.user_data_dir("batchnb")) / "workspace"


@dataclass(frozen=True)
class Workspace:
    """An opened workspace folder. Cheap to create; the store opens its own connections."""

    root: Path

    @classmethod
    def open(cls, explicit: str | os.PathLike[str] | None = None) -> Workspace:
        """Resolve the workspace by the rule, create its folders if missing, and migrate its store."""
        root = resolve_workspace_path(explicit)
        try:
            for sub in ("artifacts/models", "artifacts/code", f"datastores/{DEFAULT_DATASTORE}", "jobs"):
                (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot create the workspace folder {root}: {exc.strerror}") from exc
        ws = cls(root)
        from .store import Store

        Store(ws.db_path).migrate()
        return ws

    @property
    def db_path(self) -> Path:
        """The SQLite database file."""
        return self.root / "batchnb.db"

    @property
    def models_dir(self) -> Path:
        """Where registered models are copied."""
        return self.root / "artifacts" / "models"

    @property
    def code_dir(self) -> Path:
        """Where scoring-script folders are snapshotted."""
        return self.root / "artifacts" / "code"

    @property
    def cache_dir(self) -> Path:
        """What batchnb keeps to go faster and can always rebuild (loaded models; see
        :mod:`batchnb.engine.drivers.sklearn_direct`). Safe to delete."""
        return self.root / "cache"

    @property
    def jobs_dir(self) -> Path:
        """The parent of every job's folder."""
        return self.root / "jobs"

    @property
    def default_datastore_root(self) -> Path:
        """The root folder of the default datastore, ``workspaceblobstore``."""
        return self.root / "datastores" / DEFAULT_DATASTORE

    def job_dir(self, job_name: str) -> Path:
        """The folder that holds one job's logs and parts."""
        return self.jobs_dir / job_name
