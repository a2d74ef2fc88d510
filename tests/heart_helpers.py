"""The heart sample (``batchnb.samples.HEART``) for the storage tests: deployed as its YAML files say,
its data uploaded to a storage server, and its output checked: one row per input row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchnb import BatchClient
from batchnb.samples import HEART
from batchnb.specfile import load_yaml

HEART_FILES = {f"heart-unlabeled-{i}.csv" for i in range(6)}


@pytest.fixture
def heart(client: BatchClient) -> str:
    """The heart sample deployed (its endpoint's name)."""
    client.computes.create_or_update({"name": "batch-cluster", "type": "amlcompute", "max_instances": 2})
    endpoint, _ = load_yaml(HEART / "endpoint.yml")
    client.batch_endpoints.create_or_update(endpoint)
    deployment, base = load_yaml(HEART / "deployment.yml")
    client.batch_deployments.create_or_update(deployment, base_dir=base, set_default=True)
    return str(endpoint["name"])


def upload_heart(fs: Any, folder: str) -> None:
    """Put the sample's CSV files into ``folder`` (``<container or bucket>/<path>``) of ``fs``."""
    for path in sorted((HEART / "data").glob("*.csv")):
        fs.pipe_file(f"{folder}/{path.name}", path.read_bytes())


def output_rows(job: dict[str, Any]) -> list[str]:
    """The lines of a job's output file (a local output folder)."""
    out = job["outputs"]["score"]
    return Path(out["path"], out["file_name"]).read_text().splitlines()


def heart_files_scored(rows: list[str]) -> set[str]:
    """The input files the heart sample's output rows name, after checking there is one row per
    input row (6 files of 5 rows)."""
    assert len(rows) == 30, rows
    return {row.split()[0] for row in rows}
