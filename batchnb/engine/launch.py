"""How a batch job's supervisor process starts: ``python -m batchnb.engine.launch --workspace W --job J``.

Light on purpose. A job invoked or resumed on a compute with a warm standby is taken by the standby
within milliseconds, and the process started beside it (in case no standby takes it) only has to
notice that and exit. Importing the supervisor (the registry and its pydantic schemas: 0.45 s of
CPU on this kind of machine) is left to the case where this process runs the job itself: measured
on a warm resume, its first two mini-batches took 0.7 to 0.9 s beside that import, 0.4 to 0.7 s
without it. When it does run the job on a local pool, it starts the pool's zygote first, so the
zygote's imports and the model load run beside that import rather than after it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import lifecycle, state

# How long a cold supervisor leaves a queued job to a live standby of its compute before taking it.
STANDBY_GRACE_S = 2.0


def _queued_spec(workspace_root: Path, job_name: str) -> dict[str, Any] | None:
    """The job's spec if the job is still Queued ({} if it is missing: reported by Supervisor), else None."""
    from ..store import Store

    store = Store(workspace_root / "batchnb.db")
    try:
        with store.read() as db:
            row = db.execute("SELECT status, spec FROM jobs WHERE name = ?", (job_name,)).fetchone()
    finally:
        store.close()
    if row is None:
        return {}
    return dict(json.loads(row["spec"])) if row["status"] == state.QUEUED else None


def _start_pool_early(spec: dict[str, Any], job: str, workspace: Path) -> None:
    """A local pool's zygote starts importing now, beside the supervisor's own imports."""
    compute = spec.get("compute_spec") or {"type": "local"}
    if compute.get("type") not in ("local", "amlcompute") or "job_dir" not in spec:
        return
    from ..compute import local

    try:
        local.start_early(spec, job, workspace)
    except Exception:  # only a head start: the supervisor starts the pool itself and reports what fails
        return


def _run(workspace: Path, job: str) -> str:
    from ..compute import standby

    spec = _queued_spec(workspace, job)
    if spec is None:
        return "not-claimed"  # a warm standby took the job first (see batchnb.compute.standby)
    compute = str(spec.get("compute", "local")) if spec else ""
    if compute and standby.standbys(workspace, compute):
        # A standby of this compute (even a niced one on a busy machine) is meant to take the job:
        # give it a moment before taking it cold.
        deadline = time.monotonic() + STANDBY_GRACE_S
        while time.monotonic() < deadline:
            if _queued_spec(workspace, job) is None:
                return "not-claimed"
            time.sleep(0.02)
    if spec:
        _start_pool_early(spec, job, workspace)
    from .supervisor import Supervisor

    return Supervisor(workspace, job).run()


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main("batchnb-supervisor", _run, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
