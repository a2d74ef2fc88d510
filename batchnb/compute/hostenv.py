"""A deployment's environment on the hosts of a Dask cluster: built once per host, before its jobs.

A Dask worker is a long-lived process with its own interpreter; it cannot start again in a
deployment's. So each host builds the environment as this machine does (:mod:`batchnb.environments`:
uv, planned against the *host's* interpreter, so that only what the host lacks is installed) into
its cache (``<worker cache>/envs/<hash>``). The build is also named by
:func:`batchnb.environments.runtime.host_digest` (a link), which is what ``compute check`` looks for.

Before a job's first mini-batch, every worker of the cluster is asked to build (:func:`ensure_built`,
one task per worker; the workers of one host take turns through a file lock, so the second finds the
first one's build). A worker that joins later builds at its first mini-batch.

A job with a build then scores its mini-batches in the build's own interpreter, in an environment
process of the Dask worker (:mod:`batchnb.compute.envproc`): never in the Dask worker's process, which
serves every job that comes, of any environment. A job without one runs in the Dask worker's process.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .shipping import worker_cache


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
    ``built_now``, ``seconds`` and ``python`` (the build's interpreter)."""
    import socket

    from ..environments.build import build, plan, read_record
    from ..environments.runtime import as_spec, host_digest

    spec = as_spec({"environment_build": record})
    out: dict[str, Any] = {"host": socket.gethostname(), "needed": False, "python": None}
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
    return {
        **out,
        "needed": True,
        "built_now": built_now,
        "seconds": round(time.monotonic() - started, 1),
        "python": done["python"],
    }
