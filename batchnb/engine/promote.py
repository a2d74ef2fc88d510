"""Promote a job: write out the invocation that started it, in a form that runs it again.

``batchnb job show -n J --as <form>``, from what the job recorded at invoke (``spec["invocation"]``):

* ``cli``: the ``batchnb batch-endpoint invoke`` command line (``az ml`` reads the same flags);
* ``inputs-yaml``: Azure's ``invoke --file`` YAML (``inputs:``, and ``outputs:`` when the job
  named its output), with the command that uses it in a comment (per-job settings stay flags);
* ``papermill``: a notebook whose ``parameters`` cell holds the invocation, for ``papermill`` to
  run with other values;
* ``sdk``: azure-ai-ml code, which runs on batchnb (``batchnb.azure.MLClient``) and, with the
  client line it shows in a comment, on Azure.

The job's deployment is always named, so a later change of the endpoint's default does not change
what runs; a local input is its absolute path, so the invocation runs from any folder. The job name
is left out: a new job gets a new one. A job that named its output folder names it again, and an
``append_row`` job refuses an output file that exists: move it, or change the path.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from ..errors import ValidationError
from ..specfile import is_asset_ref, is_url, parse_datastore_uri

FORMS = ("cli", "inputs-yaml", "papermill", "sdk")
# The inputs file names the one input of a model deployment, as Azure's examples do.
INPUT_NAME = "input_data"


def _input_ref(inp: dict[str, Any]) -> str:
    """The input as given when it names an asset, a datastore path or a URL; else its absolute path."""
    given = str(inp["given"])
    if is_asset_ref(given) or is_url(given) or parse_datastore_uri(given) is not None:
        return given
    return str(inp["path"])


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _overrides(inv: dict[str, Any]) -> list[tuple[str, str]]:
    """The per-job ``--set`` overrides, plus the output file name when the job named its output."""
    pairs = [(str(k), _text(v)) for k, v in inv["overrides"]]
    if inv.get("output_dir") and not any(k.removeprefix("settings.") == "output_file_name" for k, _ in pairs):
        pairs.append(("output_file_name", str(inv["output_file_name"])))
    return pairs


def _flags(inv: dict[str, Any], with_input: bool = True) -> list[str]:
    argv = ["--name", inv["endpoint"], "--deployment-name", inv["deployment"]]
    if with_input:
        argv += ["--input", _input_ref(inv["input"]), "--input-type", inv["input"]["type"]]
    if inv.get("output_dir"):
        argv += ["--output-path", inv["output_dir"]]
    if inv.get("mini_batch_size") is not None:
        argv += ["--mini-batch-size", str(inv["mini_batch_size"])]
    if inv.get("instance_count") is not None:
        argv += ["--instance-count", str(inv["instance_count"])]
    if inv.get("experiment_name"):
        argv += ["--experiment-name", inv["experiment_name"]]
    overrides = _overrides(inv)
    if overrides:
        argv += ["--set", *(f"{k}={v}" for k, v in overrides)]
    if inv.get("incremental"):
        argv.append("--incremental")
    return argv


def as_cli(inv: dict[str, Any]) -> str:
    """The command line."""
    return shlex.join(["batchnb", "batch-endpoint", "invoke", *_flags(inv)]) + "\n"


def as_inputs_yaml(inv: dict[str, Any]) -> str:
    """Azure's inputs file, headed by the command that uses it."""
    import yaml

    doc: dict[str, Any] = {"inputs": {INPUT_NAME: {"type": inv["input"]["type"], "path": _input_ref(inv["input"])}}}
    if inv.get("output_dir"):
        path = inv["output_dir"].rstrip("/") + "/" + inv["output_file_name"]
        doc["outputs"] = {"score": {"type": "uri_file", "path": path}}
    flags = [f for f in _flags(inv, with_input=False) if f not in ("--output-path", inv.get("output_dir"))]
    if inv.get("output_dir"):  # the outputs section says where, and its path names the file
        flags = _drop_set(flags, "output_file_name")
    command = shlex.join(["batchnb", "batch-endpoint", "invoke", *flags, "--file", "inputs.yml"])
    return f"# {command}\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def _drop_set(flags: list[str], key: str) -> list[str]:
    kept = [f for f in flags if not f.startswith(f"{key}=")]
    return kept[:-1] if kept and kept[-1] == "--set" else kept


def as_papermill(inv: dict[str, Any], job: str) -> str:
    """A notebook (nbformat 4 JSON) whose ``parameters`` cell holds the invocation."""
    import nbformat

    params = {
        "endpoint_name": inv["endpoint"],
        "deployment_name": inv["deployment"],
        "input_path": _input_ref(inv["input"]),
        "input_type": inv["input"]["type"],
        "output_path": inv.get("output_dir"),
        "overrides": [f"{k}={v}" for k, v in _overrides(inv)],
        "mini_batch_size": inv.get("mini_batch_size"),
        "instance_count": inv.get("instance_count"),
        "experiment_name": inv.get("experiment_name"),
        "incremental": bool(inv.get("incremental")),
        "workspace": None,
    }
    lines = [f"{k} = {v!r}" for k, v in params.items()]
    run = (
        "from batchnb import BatchClient\n\n"
        "client = BatchClient(workspace)  # None: the workspace rule ($BATCHNB_WORKSPACE, the nearest .batchnb/)\n"
        "job = client.batch_endpoints.invoke(\n"
        "    endpoint_name,\n"
        "    deployment_name,\n"
        "    input=input_path,\n"
        "    input_type=input_type,\n"
        "    output_path=output_path,\n"
        "    set_values=overrides,\n"
        "    mini_batch_size=mini_batch_size,\n"
        "    instance_count=instance_count,\n"
        "    experiment_name=experiment_name,\n"
        "    incremental=incremental,\n"
        ")\n"
        "job = job.wait(raise_on_failure=True)\n"
        'print(job["name"], job["status"], job["outputs"]["score"]["path"])'
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            f"Re-runs batch job `{job}` on `{inv['endpoint']}/{inv['deployment']}`. "
            "Run it with papermill, changing any parameter: "
            "`papermill rerun.ipynb out.ipynb -p input_path data/next`."
        ),
        nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(run),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb) + "\n"


def as_sdk(inv: dict[str, Any]) -> str:
    """azure-ai-ml code for the same invocation."""
    kind = "URI_FOLDER" if inv["input"]["type"] == "uri_folder" else "URI_FILE"
    overrides = [{k: v} for k, v in _overrides(inv) if k != "output_file_name" or not inv.get("output_dir")]
    if inv.get("mini_batch_size") is not None:
        overrides.append({"mini_batch_size": str(inv["mini_batch_size"])})
    if inv.get("instance_count") is not None:
        overrides.append({"instance_count": str(inv["instance_count"])})
    lines = [
        "from azure.ai.ml import Input, Output" if inv.get("output_dir") else "from azure.ai.ml import Input",
        "from azure.ai.ml.constants import AssetTypes",
        "",
        "# On Azure, the client is azure-ai-ml's:",
        "#   from azure.ai.ml import MLClient",
        "#   from azure.identity import DefaultAzureCredential",
        "#   ml_client = MLClient.from_config(credential=DefaultAzureCredential())",
        "from batchnb.azure import MLClient",
        "",
        "ml_client = MLClient()",
        "job = ml_client.batch_endpoints.invoke(",
        f"    endpoint_name={inv['endpoint']!r},",
        f"    deployment_name={inv['deployment']!r},",
        f"    inputs={{{INPUT_NAME!r}: Input(type=AssetTypes.{kind}, path={_input_ref(inv['input'])!r})}},",
    ]
    if inv.get("output_dir"):
        path = inv["output_dir"].rstrip("/") + "/" + inv["output_file_name"]
        lines.append(f"    outputs={{'score': Output(type=AssetTypes.URI_FILE, path={path!r})}},")
    if overrides:
        lines.append(f"    params_override={overrides!r},")
    if inv.get("experiment_name"):
        lines.append(f"    experiment_name={inv['experiment_name']!r},")
    lines.append(")")
    if inv.get("incremental"):
        lines.insert(0, "# batchnb's --incremental has no azure-ai-ml equivalent: this scores every input file.")
    lines.append("ml_client.jobs.stream(job.name)")
    return "\n".join(lines) + "\n"


def render(spec: dict[str, Any], job: str, form: str) -> str:
    """The job's invocation in ``form`` (one of :data:`FORMS`).

    Raises:
        ValidationError: An unknown form, or a job that recorded no invocation (a pipeline job, or
            one invoked before batchnb recorded them).
    """
    if form not in FORMS:
        raise ValidationError(f"--as {form!r}: choose one of {', '.join(FORMS)}", field="as")
    inv = spec.get("invocation")
    if not inv:
        raise ValidationError(
            f"job {job} has no recorded invocation to write out (only batch jobs of model deployments "
            "invoked by this version of batchnb have one)",
            field="as",
        )
    if form == "cli":
        return as_cli(inv)
    if form == "inputs-yaml":
        return as_inputs_yaml(inv)
    if form == "papermill":
        return as_papermill(inv, job)
    return as_sdk(inv)
