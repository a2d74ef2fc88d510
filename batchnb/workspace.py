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
    mlruns/                    MLflow runs of jobs whose scripts log with mlflow (no tracking URI set)
    cache/                     what batchnb can rebuild (loaded models); safe to delete
    run/                       private (0700): the files a local pool's zygote reads as it starts

Whoever can write to this folder can run code as the user who runs jobs (docs/security.md).

A workspace whose folders hold jobs or artifacts but whose database is missing, empty or unreadable
is refused, never silently given a new empty database: its records can only come back from a
backup (``batchnb workspace backup`` / ``restore``, :mod:`batchnb.recovery`).
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
        ws.refuse_lost_database()
        from .store import Store

        store = Store(ws.db_path)
        try:
            store.migrate()
        finally:
            # sqlite3 connections sit in a reference cycle (their statement cache): left to the
            # garbage collector, this one would keep the file open for an unknown time.
            store.close()
        return ws

    def contents(self) -> dict[str, int]:
        """What the folders hold, whatever the database says: job folders, registered model
        versions and code snapshots (zero counts are left out)."""
        counts = {
            "job folders": _count(self.jobs_dir, "*"),
            "registered model versions": _count(self.models_dir, "*/*"),
            "code snapshots": _count(self.code_dir, "*"),
        }
        return {what: n for what, n in counts.items() if n}

    def refuse_lost_database(self) -> None:
        """Raise :class:`WorkspaceError` if the database cannot be used as it is: unreadable, or
        missing or empty while the folders hold jobs or artifacts (a brand-new workspace is fine).

        Raises:
            WorkspaceError: naming the file, what is wrong with it and how to restore a backup.
        """
        from .store.files import BUSY, EMPTY, MISSING, OK, inspect

        db = inspect(self.db_path)
        if db.state in (OK, BUSY):  # a busy file is in use, so not lost: the store waits on it as usual
            return
        held = self.contents()
        if db.state in (MISSING, EMPTY) and not held:
            return
        found = f" while the workspace still holds its work ({_words(held)})" if held else ""
        raise WorkspaceError(
            f"the workspace database {self.db_path} {db.problem}{found}. Nothing was changed. "
            f"Restore a backup: batchnb workspace restore --workspace {self.root} --file BACKUP "
            "(batchnb workspace check says what is wrong)"
        )

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


def _count(folder: Path, pattern: str) -> int:
    return sum(1 for p in folder.glob(pattern) if p.is_dir() or p.is_file())


def _words(counts: dict[str, int]) -> str:
    return ", ".join(f"{what}: {n}" for what, n in counts.items())
