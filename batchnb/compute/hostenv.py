"""A deployment's environment on the hosts of a Dask cluster: built once per host, before its jobs.

A Dask worker is a long-lived process with its own interpreter; it cannot start again in a
deployment's. So each host builds the environment as this machine does (:mod:`batchnb.environments`:
uv, planned against the *host's* interpreter, so that only what the host lacks is installed) into
its cache (``<worker cache>/envs/<hash>``), and a worker puts the build's own site-packages first on
its ``sys.path`` while it scores that deployment (:func:`activate`): the deployment's packages win,
and the worker's own (batchnb, pandas, pyarrow) stay visible behind them. The build is also named by
:func:`batchnb.environments.runtime.host_digest` (a link), which is what ``compute check`` looks for.

Before a job's first mini-batch, every worker of the cluster is asked to build (:func:`ensure_built`,
one task per worker; the workers of one host take turns through a file lock, so the second finds the
first one's build). A worker that joins later builds at its first mini-batch.

A limit of sharing one process: a module the worker imported from one environment is forgotten when
another environment is activated, so pure-Python packages switch cleanly between deployments; a
compiled extension already loaded cannot be unloaded, which a deployment pinning another version of
one the worker imported (numpy, pandas) would meet.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .shipping import worker_cache

# The build whose packages this worker process has on its sys.path (its site-packages), if any.
_active: str | None = None


@contextlib.contextmanager
def _host_lock(folder: Path, digest: str) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".lock-{digest}", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_built(record: dict[str, Any]) -> dict[str, Any]:
    """On a worker: build the environment of ``record`` (a job's ``environment_build``) unless this
    host has it. Returns ``host``, ``needed`` (False: this interpreter has every package),
    ``built_now``, ``seconds`` and ``site`` (the build's site-packages)."""
    import socket

    from ..environments.build import build, plan, read_record
    from ..environments.runtime import as_spec, host_digest

    spec = as_spec({"environment_build": record})
    out: dict[str, Any] = {"host": socket.gethostname(), "needed": False, "site": None}
    if spec is None:
        return out
    planned = plan(spec)
    if not planned.needed:
        return out
    envs = worker_cache() / "envs"
    started = time.monotonic()
    with _host_lock(envs, planned.digest):
        built_now = read_record(envs / planned.digest) is None
        done = build(envs, planned)
        link = envs / host_digest(spec)
        if not link.exists():
            with contextlib.suppress(FileExistsError):
                link.symlink_to(planned.digest, target_is_directory=True)
    folder = Path(done["python"]).parent.parent
    site = next(iter(folder.glob("lib/python*/site-packages")), None)
    return {
        **out,
        "needed": True,
        "built_now": built_now,
        "seconds": round(time.monotonic() - started, 1),
        "site": str(site) if site else None,
    }


def activate(site: str | None) -> bool:
    """Put a build's ``site`` first on this worker's ``sys.path`` (None: no build), forgetting the
    modules of the one active before. Returns whether anything changed (the scoring script must
    then be imported again, so that it binds the new packages)."""
    global _active
    if site == _active:
        return False
    if _active is not None:
        with contextlib.suppress(ValueError):
            sys.path.remove(_active)
        for name, module in list(sys.modules.items()):
            where = getattr(module, "__file__", None) or ""
            if where.startswith(_active + os.sep):
                del sys.modules[name]
    if site is not None:
        sys.path.insert(0, site)
    importlib.invalidate_caches()
    _active = site
    return True
