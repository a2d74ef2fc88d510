"""The bundled sample: Azure's heart-classifier layout (endpoint.yml, deployment.yml, model/, code/,
data/, deploy-and-run.sh), small enough to ship, real enough to run end to end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..client import BatchClient

SAMPLES = Path(__file__).parent
HEART = SAMPLES / "heart-classifier"


def run_demo(client: BatchClient, out: TextIO) -> Any:
    """Register the heart-classifier sample from its YAML files, invoke it on the sample data,
    follow the job to its end and return it. What the README's first command runs."""
    from ..specfile import load_yaml

    out.write(f"workspace: {client.workspace.root}\n")
    client.computes.create_or_update({"name": "batch-cluster", "type": "amlcompute", "max_instances": 2})
    endpoint, _ = load_yaml(HEART / "endpoint.yml")
    client.batch_endpoints.create_or_update(endpoint)
    deployment, base = load_yaml(HEART / "deployment.yml")
    dep = client.batch_deployments.create_or_update(
        deployment, base_dir=base, set_default=True, source="deployment.yml"
    )
    out.write(f"endpoint {endpoint['name']}: default deployment {dep['name']} (model {dep['resolved']['model']})\n")
    job = client.batch_endpoints.invoke(endpoint["name"], input=str(HEART / "data"))
    out.write(f"job {job['name']}: {job['status']}\n")
    job = client.jobs.stream(job["name"], out=out)
    path = Path(job["outputs"]["score"]["path"]) / job["outputs"]["score"]["file_name"]
    out.write(f"job {job['name']}: {job['status']}\n")
    if job["status"] == "Completed":
        lines = path.read_text().splitlines()
        out.write(f"output: {path} ({len(lines)} rows); first rows:\n")
        for line in lines[:5]:
            out.write(f"  {line}\n")
    return job
