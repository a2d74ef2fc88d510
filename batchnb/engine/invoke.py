"""Invoking a model deployment: everything a batch job will need, resolved and checked before it starts.

``plan`` turns an invocation (the deployment, the input, per-job overrides, the output location)
into the job's spec, refusing anything wrong with the field named: a setting that cannot change
per job, an input that does not exist or has the wrong type, an output that would overwrite a
file or that cannot be written. ``dry_run`` scores the first mini-batch of that plan in this
process. Recording the job (and reserving its output location, see
:mod:`batchnb.engine.output_location`) and starting its supervisor is
:meth:`batchnb.jobs.JobOperations.invoke`'s part.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cloud.fs import filesystem
from ..confine import check_path, check_url
from ..entities import Entity
from ..environments import runtime
from ..environments.spec import BuildSpec
from ..errors import ConflictError, ValidationError
from ..schemas import ModelDeploymentSettings, Resources, check_name, check_workers, validate_spec
from ..specfile import apply_set, is_asset_ref, is_url, parse_datastore_uri, parse_set, resolve_local
from ..storage import check_url_scheme, local_kind
from . import isolated, lineage, output, output_location, planner, tracking, tracking_store
from .drivers import DRIVERS_DIR, MLFLOW_DRIVER
from .records import refuse_taken_names

if TYPE_CHECKING:
    from ..client import BatchClient

# Settings a single invocation may change (Azure: "Which settings can be overridden?"), by the names
# they are given in --set and params_override, mapped to their place in the deployment settings.
OVERRIDABLE = {
    "mini_batch_size": "mini_batch_size",
    "error_threshold": "error_threshold",
    "output_file_name": "output_file_name",
    "retry_settings.max_retries": "retry_settings.max_retries",
    "retry_settings.timeout": "retry_settings.timeout",
    "max_retries": "retry_settings.max_retries",
    "timeout": "retry_settings.timeout",
    "mini_batch_mode": "mini_batch_mode",
    "recursive": "recursive",
    "lineage_columns": "lineage_columns",
    "isolate_failures": "isolate_failures",
}
INSTANCE_COUNT_KEYS = ("instance_count", "compute.instance_count", "resources.instance_count")
OUTPUT_PATH_KEYS = ("output_dataset.path", "output_path")


class BatchInvocation:
    """Plans jobs of model deployments for one client."""

    def __init__(self, client: BatchClient) -> None:
        self._client = client
        self._ws = client.workspace

    def plan(
        self,
        endpoint_name: str,
        deployment: dict[str, Any],
        *,
        input: str | dict[str, Any] | None,
        input_type: str | None,
        inputs: dict[str, Any] | None,
        outputs: dict[str, Any] | None,
        output_path: str | None,
        job_name: str | None,
        mini_batch_size: int | str | None,
        instance_count: int | None,
        set_values: list[str] | None,
        params_override: list[dict[str, Any]] | None,
        experiment_name: str | None,
        base_dir: Path | None,
    ) -> tuple[str, dict[str, Any]]:
        """The job's name and spec (everything the supervisor reads), checked; nothing is recorded."""
        deployment_name = deployment["name"]
        resolved = deployment["resolved"]
        builtin = None
        if not resolved.get("code_dir"):
            if resolved.get("model_type") != "mlflow_model":
                raise ValidationError(
                    f"deployment {deployment_name} has no scoring script, and only an mlflow_model can run without one",
                    field="code_configuration",
                )
            builtin = "mlflow"  # Azure generates the scoring script; so do we (engine/drivers)

        overrides = parse_set(set_values)
        for item in params_override or []:
            overrides.extend(item.items())
        settings = self.effective_settings(deployment, overrides, mini_batch_size)
        instances: Any = deployment["resources"].get("instance_count", 1) if instance_count is None else instance_count
        for key, value in overrides:
            if key in INSTANCE_COUNT_KEYS:
                instances = value
            elif key in OUTPUT_PATH_KEYS:
                output_path = str(value)
        # Checked by the deployment's own schema, so a job gets the same range as a deployment.
        instances = validate_spec(Resources, {"instance_count": instances}, "job settings").instance_count
        try:
            check_workers(instances, settings["max_concurrency_per_instance"])
        except ValueError as exc:
            raise ValidationError(f"job settings: {exc}", field="instance_count") from None

        inp = self._select_input(input, input_type, inputs, base_dir)
        name = check_name("job", job_name) if job_name else f"batchjob-{uuid.uuid4().hex[:12]}"
        out_dir, out_file = self.resolve_output(name, output_path, outputs, settings, base_dir)
        workers = instances * settings["max_concurrency_per_instance"]
        uses = not builtin and tracking_store.uses_mlflow(resolved["code_dir"])

        spec = {
            "endpoint": endpoint_name,
            "deployment": deployment_name,
            "deployment_revision": deployment["revision"],
            "model": resolved.get("model"),
            "model_dir": resolved.get("model_dir"),
            # The built-in driver's path is resolved now, never stored with the deployment, so
            # a reinstall of batchnb at another path still works (the supervisor re-resolves it).
            "code_dir": str(DRIVERS_DIR) if builtin else resolved["code_dir"],
            "scoring_script": MLFLOW_DRIVER if builtin else resolved["scoring_script"],
            "builtin_driver": builtin,
            # The built-in driver caches what it loaded there (BATCHNB_CACHE_DIR).
            "cache_dir": str(self._client.workspace.cache_dir),
            "compute": resolved.get("compute", "local"),
            "compute_spec": dict(self._client.computes.get(resolved.get("compute", "local"))),
            "settings": settings,
            "instance_count": instances,
            "workers": workers,
            "input": inp,
            "output": {"dir": out_dir, "file_name": out_file, "path": _join(out_dir, out_file)},
            "experiment_name": experiment_name or endpoint_name,
            # The scoring script logs to MLflow: its workers get the job's run before init().
            "mlflow_in_code": uses,
            # Where the job is logged as an MLflow run (by its supervisor): the store the user set,
            # else the workspace's if the script uses mlflow, else none (see engine/tracking_store).
            "mlflow_tracking_uri": tracking_store.job_tracking_uri(
                tracking.capture_tracking_uri(), self._client.workspace.root, uses
            ),
        }
        # Last, once everything else is known to be right: the first job of an environment builds it.
        with self._client.store.read() as db:  # checked again as the job is recorded
            refuse_taken_names(db, [name])
        build = self._environment_build(deployment)
        spec.update(
            environment=resolved.get("environment"),
            environment_build=runtime.to_record(build),
            # The Python the job's code runs with (None: batchnb's own); its workers start with it.
            python=runtime.interpreter_for(build, self._ws.root),
        )
        spec["lineage"] = lineage.job_lineage(endpoint_name, deployment, spec)
        # What was asked, as it was asked: `job show --as cli|inputs-yaml|papermill|sdk` writes it
        # out again (see engine/promote). The input is the resolved path when it is a local one, so
        # that the promoted invocation runs from any folder.
        explicit_output = bool(output_path) or bool(outputs)
        spec["invocation"] = {
            "endpoint": endpoint_name,
            "deployment": deployment_name,
            "input": inp,
            "output_dir": out_dir if explicit_output else None,
            "output_file_name": out_file,
            "overrides": [[key, value] for key, value in overrides],
            "mini_batch_size": mini_batch_size,
            "instance_count": instance_count,
            "experiment_name": experiment_name,
            "incremental": False,
        }
        return name, spec

    def on_latest_revision(self, spec: dict[str, Any]) -> dict[str, Any]:
        """``spec`` of an existing job, moved to its deployment's current revision (``rerun-failed
        --latest``): its model, code, environment and ``environment_variables`` are the deployment's
        now; its input, output, other settings and mini-batches stay (the committed ones are kept as
        they were scored).

        Raises:
            NotFoundError: The endpoint or the deployment is gone.
            ValidationError: The deployment has no scoring script and its model is not an MLflow one.
        """
        deployment = self._client.batch_deployments.get(spec["deployment"], spec["endpoint"])
        resolved = deployment["resolved"]
        builtin = None
        if not resolved.get("code_dir"):
            if resolved.get("model_type") != "mlflow_model":
                raise ValidationError(
                    f"deployment {deployment['name']} has no scoring script, and only an mlflow_model can run "
                    "without one",
                    field="code_configuration",
                )
            builtin = "mlflow"
        build = self._environment_build(deployment)
        new = dict(spec)
        # What the code runs with is the deployment's now; what shaped the plan and the output stays.
        now = deployment.get("settings") or {}
        new["settings"] = {
            **spec["settings"],
            **{k: now[k] for k in ("environment_variables", "logging_level") if k in now},
        }
        new.update(
            deployment_revision=deployment["revision"],
            model=resolved.get("model"),
            model_dir=resolved.get("model_dir"),
            code_dir=str(DRIVERS_DIR) if builtin else resolved["code_dir"],
            scoring_script=MLFLOW_DRIVER if builtin else resolved["scoring_script"],
            builtin_driver=builtin,
            environment=resolved.get("environment"),
            environment_build=runtime.to_record(build),
            python=runtime.interpreter_for(build, self._ws.root),
        )
        if not builtin:
            new["mlflow_in_code"] = tracking_store.uses_mlflow(resolved["code_dir"])
        new["lineage"] = lineage.job_lineage(spec["endpoint"], deployment, new)
        return new

    def _environment_build(self, deployment: dict[str, Any]) -> BuildSpec | None:
        """What the deployment's code runs in: its environment's build spec, or its MLflow model's own."""
        resolved = deployment["resolved"]
        environment = None
        if resolved.get("environment"):
            env_name, _, version = resolved["environment"].partition(":")
            environment = self._client.environments.get(env_name, version=version)
        return runtime.deployment_spec(resolved, environment)

    def effective_settings(
        self, deployment: dict[str, Any], overrides: list[tuple[str, Any]], mini_batch_size: int | str | None
    ) -> dict[str, Any]:
        base = dict(deployment.get("settings") or {})
        changes: list[tuple[str, Any]] = []
        for key, value in overrides:
            short = key.removeprefix("settings.")
            if short in OVERRIDABLE:
                changes.append((OVERRIDABLE[short], value))
            elif short not in INSTANCE_COUNT_KEYS and short not in OUTPUT_PATH_KEYS:
                allowed = ", ".join(sorted({*OVERRIDABLE, "instance_count", "output_dataset.path"}))
                raise ValidationError(
                    f"--set {key}: this setting cannot be changed per job; per-job settings are {allowed}", field=key
                )
        if mini_batch_size is not None:
            changes.append(("mini_batch_size", mini_batch_size))
        merged = apply_set(base, changes)
        merged.pop("instance_count", None)
        return validate_spec(ModelDeploymentSettings, merged, "job settings").model_dump(mode="json")  # type: ignore[no-any-return]

    def _select_input(
        self,
        given: str | dict[str, Any] | None,
        input_type: str | None,
        inputs: dict[str, Any] | None,
        base_dir: Path | None,
    ) -> dict[str, Any]:
        if given is None and inputs:
            if len(inputs) != 1:
                raise ValidationError(
                    f"a model deployment takes exactly one input; got {len(inputs)}: {', '.join(inputs)}",
                    field="inputs",
                )
            where, given = next((f"inputs.{key}", value) for key, value in inputs.items())
        else:
            where = "input"
        if given is None:
            raise ValidationError(
                "an input is required: pass --input <path | azureml:data@latest | URI>", field="input"
            )
        return resolve_input(self._client, given, input_type, base_dir, where=where)

    def resolve_output(
        self,
        name: str,
        output_path: str | None,
        outputs: dict[str, Any] | None,
        settings: dict[str, Any],
        base_dir: Path | None,
    ) -> tuple[str, str]:
        file_name = settings["output_file_name"]
        field = "output_path"
        if outputs:
            unknown = set(outputs) - {"score"}
            if unknown:
                raise ValidationError(
                    f"a model deployment has one output, 'score'; got {', '.join(sorted(unknown))}", field="outputs"
                )
            score = outputs["score"]
            target = score.get("path") if isinstance(score, dict) else score
            if target:
                if isinstance(score, dict) and score.get("type") == "uri_file" and Path(str(target)).suffix:
                    output_path, file_name = str(Path(str(target)).parent), Path(str(target)).name
                    settings["output_file_name"] = file_name
                else:
                    output_path = str(target)
                field = "outputs.score"
        if output_path:
            resolved = self._client.datastores.resolve_uri(output_path)
            if is_url(resolved):
                check_url_scheme(resolved, field, self._ws.root)
                check_url(resolved, field)
                out_dir = resolved
            else:
                out_dir = str(resolve_local(resolved, base_dir, field))
                check_path(Path(out_dir) / file_name, field)  # the file itself may be a symlink leading out
        else:
            # Azure's default: the default datastore, in a folder named by the job.
            out_dir = str(self._ws.default_datastore_root / "azureml" / name / "score")
        if settings["output_action"] == "append_row":
            target = _join(out_dir, file_name)
            # As on Azure, whoever wrote it (an earlier job, a person): a job's output is its own.
            if _exists(target, self._ws.root):
                raise ConflictError(
                    f"the output file {target} already exists; batch jobs never overwrite an "
                    "output: choose another --output-path or output_file_name"
                )
        output_location.check_writable(out_dir)
        return out_dir, file_name

    def dry_run(self, spec: dict[str, Any]) -> Entity:
        from .worker import dry_run

        settings = spec["settings"]
        files = planner.list_input_files(spec["input"]["path"], spec["input"]["type"], settings["recursive"])
        first: list[Any]
        if settings["mini_batch_mode"] == "tabular":
            first = next(planner.plan_tabular_minibatches(files[:1], settings["mini_batch_size"]))
        else:
            first = next(planner.plan_file_minibatches(files, int(settings["mini_batch_size"])))
        scratch = Path(tempfile.mkdtemp(prefix="batchnb-dry-run-"))
        context = {
            "job": "dry-run",
            "job_dir": str(scratch),
            "code_dir": spec["code_dir"],
            "scoring_script": spec["scoring_script"],
            "model_dir": spec["model_dir"],
            "cache_dir": spec.get("cache_dir"),
            "output_dir": str(scratch / "score"),
            "environment_variables": settings["environment_variables"],
            "logging_level": settings["logging_level"],
            "mode": settings["mini_batch_mode"],
            "part_format": output.part_format(settings["output_file_name"]),
        }
        if spec.get("python"):
            record = isolated.dry_run_in(spec["python"], context, first, planner.minibatch_items(first))
        else:
            record = dry_run(context, first, planner.minibatch_items(first))
        shutil.rmtree(scratch, ignore_errors=True)
        return Entity(
            {
                "dry_run": True,
                "endpoint": spec["endpoint"],
                "deployment": spec["deployment"],
                "files_in_input": len(files),
                **record,
            }
        )


def resolve_input(
    client: BatchClient,
    given: str | dict[str, Any],
    input_type: str | None,
    base_dir: Path | None,
    where: str = "input",
) -> dict[str, Any]:
    """Resolve one data input (a local path, an ``azureml:`` data asset, a datastore URI or a URL)
    to ``{given, path, type}``; local paths must exist and match the type."""
    if isinstance(given, dict):
        input_type = input_type or given.get("type")
        path = given.get("path")
        if not path:
            raise ValidationError(f"{where}: 'path' is missing", field=where)
    else:
        path = str(given)
    if input_type not in (None, "uri_folder", "uri_file"):
        raise ValidationError(
            f"{where}: input type {input_type!r} is not supported; use uri_folder or uri_file", field=where
        )
    original = path
    if is_asset_ref(path):
        asset = client.data.resolve(path)
        path, input_type = asset["path"], input_type or asset["type"]
    if parse_datastore_uri(path) is not None:
        path = client.datastores.resolve_uri(path)
    if not is_url(path):
        local = resolve_local(path.removeprefix("file://"), base_dir, where)
        inferred = local_kind(local, original, where)
        if input_type and input_type != inferred:
            raise ValidationError(
                f"{where} {original!r} is a {'file' if inferred == 'uri_file' else 'folder'}, "
                f"but the input type is {input_type}",
                field=where if where != "input" else "input_type",
            )
        path, input_type = str(local), inferred
    else:
        check_url_scheme(path, where, client.workspace.root)
        check_url(path, where)
    return {"given": original, "path": path, "type": input_type or "uri_folder"}


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name if is_url(folder) else str(Path(folder) / name)


def _exists(path: str, workspace: Path) -> bool:
    if is_url(path):
        fs, p = filesystem(path, workspace)
        return bool(fs.exists(p))
    return Path(path).exists()
