"""Which builds are in use, and ``workspace gc``: removing the ones no one uses.

A build is in use while a registered environment version, a deployment (an MLflow model's own
requirements) or an active job runs in it. An ended job needs none of them kept: resuming it builds
its environment again if it is gone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..engine.state import ACTIVE
from ..store import Store
from .build import building, plan, size_on_disk
from .runtime import as_spec, deployment_spec, envs_dir
from .spec import BuildSpec


def digest_in_use(spec: BuildSpec | None) -> str | None:
    """The hash of the build ``spec`` runs in now, or None if it needs none."""
    if spec is None:
        return None
    planned = plan(spec)
    return planned.digest if planned.needed else None


def builds_in_use(workspace_root: str | Path, store: Store) -> set[str]:
    """The hashes of every build an environment version, a deployment or an active job uses."""
    folder = envs_dir(workspace_root)
    with store.read() as db:
        envs = [json.loads(r["spec"]) for r in db.execute("SELECT spec FROM assets WHERE kind = 'environment'")]
        deployments = [json.loads(r["spec"]) for r in db.execute("SELECT spec FROM deployments")]
        marks = ",".join("?" * len(ACTIVE))
        jobs = [
            json.loads(r["spec"]) for r in db.execute(f"SELECT spec FROM jobs WHERE status IN ({marks})", tuple(ACTIVE))
        ]
    used = {digest_in_use(as_spec(env)) for env in envs}
    used |= {digest_in_use(deployment_spec(d.get("resolved") or {}, None)) for d in deployments}
    for job in jobs:
        python = Path(job.get("python") or "/")
        if python.parent.parent.parent == folder:  # <envs>/<hash>/bin/python
            used.add(python.parent.parent.name)
    used.discard(None)
    return used  # type: ignore[return-value]


def collect_unused(workspace_root: str | Path, store: Store) -> dict[str, Any]:
    """Remove every build (and abandoned half-build) that nothing uses.

    Returns:
        ``removed``: ``{hash, size_on_disk}`` of each build removed; ``kept``: how many remain.
    """
    folder = envs_dir(workspace_root)
    used = builds_in_use(workspace_root, store)
    removed, kept = [], 0
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        staging = entry.name.startswith(".build-")
        digest = entry.name.split("-")[1] if staging else entry.name
        if (not staging and digest in used) or (staging and building(folder, digest)):
            kept += not staging
            continue
        size = size_on_disk(entry)
        shutil.rmtree(entry, ignore_errors=True)
        removed.append({"hash": digest, "size_on_disk": size})
    return {"removed": removed, "kept": kept}
