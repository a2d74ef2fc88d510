"""A job's lineage: what produced its output, recorded when it is invoked.

Every batch job records the deployment and its revision, the model (``name:version``, immutable in
the registry), a hash of the code snapshot it runs (the snapshot's folder is named by the hash of
its files; the built-in MLflow driver's is the hash of batchnb's driver files), the environment
the deployment declares and a hash of it, and the Python and batchnb it runs on. ``job show``
shows them; ``invoke --incremental`` reuses only the rows of jobs whose :func:`scoring_key` is
the same (see :mod:`batchnb.engine.incremental`).

Where each output *row* comes from (its source file, row and mini-batch) is written into the
output itself: see :class:`batchnb.engine.output.RowLineage`.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

from . import output
from .drivers import DRIVERS_DIR

# Settings that say where or how the output is written, not what is scored: two jobs that differ
# only in these score every item alike.
# isolate_failures changes which mini-batches end failed, never what a committed one holds.
_NOT_SCORING = ("output_file_name", "lineage_columns", "isolate_failures")


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def code_hash(code_dir: str | None, builtin: str | None) -> str | None:
    """``sha256:<hex>`` of the code a job runs: its snapshot's content hash (the snapshot folder's
    name), or for the built-in MLflow driver, of batchnb's driver files."""
    if builtin:
        digest = hashlib.sha256()
        for path in sorted(DRIVERS_DIR.glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return f"sha256:{digest.hexdigest()[:32]}"
    return f"sha256:{Path(code_dir).name}" if code_dir else None


def environment_of(deployment: dict[str, Any]) -> tuple[str | None, str | None]:
    """The declared environment (``name:version``, ``inline``, or None) and ``sha256:`` of its spec."""
    declared = deployment.get("environment")
    if declared is None:
        return None, None
    name = deployment.get("resolved", {}).get("environment") or ("inline" if isinstance(declared, dict) else declared)
    return name, f"sha256:{_digest([name, declared])[:32]}"


def scoring_key(lineage: dict[str, Any], settings: dict[str, Any]) -> str:
    """What two jobs must share for one's committed rows to stand for the other's: the deployment
    and its revision, the model, the code, the environment, and every setting that shapes the
    scoring (the mini-batch size too, since a mini-batch's rows are reused whole) and the format."""
    scoring = {k: v for k, v in settings.items() if k not in _NOT_SCORING}
    facts = [
        lineage.get(k)
        for k in ("endpoint", "deployment", "deployment_revision", "model", "code_hash", "environment_hash")
    ]
    return _digest([facts, scoring, output.part_format(settings["output_file_name"])])


def _batchnb_version() -> str:
    # Asked of the installed distribution: importing the package for it would import its front ends.
    import importlib.metadata

    try:
        return importlib.metadata.version("batchnb")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def job_lineage(endpoint: str, deployment: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The lineage record of a job about to be invoked with ``spec`` on ``deployment``."""
    environment, environment_hash = environment_of(deployment)
    lineage: dict[str, Any] = {
        "endpoint": endpoint,
        "deployment": deployment["name"],
        "deployment_revision": deployment["revision"],
        "model": spec.get("model"),
        "code_hash": code_hash(spec.get("code_dir"), spec.get("builtin_driver")),
        "environment": environment,
        "environment_hash": environment_hash,
        "runtime": f"python {platform.python_version()}, batchnb {_batchnb_version()}",
        "row_lineage_columns": list(output.LINEAGE_COLUMNS) if output.lineage_enabled(spec["settings"]) else [],
    }
    lineage["scoring_key"] = scoring_key(lineage, spec["settings"])
    return lineage
