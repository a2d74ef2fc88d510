"""The CLI's commands: each parses nothing and decides nothing, it maps flags onto one API call.

Create commands follow ``az ml``: read ``--file`` if given, let ``--name`` and the other flags win
over it, then apply ``--set key=value``; relative paths in the file resolve against its folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..client import BatchClient
from ..errors import BatchnbError, JobFailedError, UsageError
from ..jobs import ended_error
from ..specfile import apply_set, load_yaml, parse_set
from .render import render


def _spec_from(args: argparse.Namespace, flags: dict[str, Any]) -> tuple[dict[str, Any], Path | None]:
    """The YAML from ``--file`` (if any), overlaid with the flags that were given, then ``--set``."""
    data: dict[str, Any] = {}
    base_dir: Path | None = None
    if getattr(args, "file", None):
        data, base_dir = load_yaml(args.file)
    for key, value in flags.items():
        if value is not None:
            data[key] = value
    return apply_set(data, parse_set(getattr(args, "set", None))), base_dir


def _require(value: Any, flag: str) -> Any:
    if value in (None, ""):
        raise UsageError(f"the following argument is required: {flag}")
    return value


def _confirm(args: argparse.Namespace, what: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"deleting {what} needs confirmation: pass --yes")
    answer = input(f"Are you sure you want to delete {what}? (y/n): ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("not deleted")


def _tags(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out = {}
    for item in values:
        key, _, value = item.partition("=")
        out[key] = value
    return out


# --- assets ----------------------------------------------------------------------------------------


def model_create(c: BatchClient, a: argparse.Namespace) -> Any:
    spec, base = _spec_from(
        a,
        {
            "name": a.name,
            "version": a.version,
            "path": a.path,
            "type": a.type,
            "description": a.description,
            "tags": _tags(a.tags),
        },
    )
    return c.models.create_or_update(spec, base_dir=base, trust_types=getattr(a, "trust_types", False))


def asset_show(ops_name: str) -> Any:
    def show(c: BatchClient, a: argparse.Namespace) -> Any:
        ops = getattr(c, ops_name)
        return ops.get(a.name, version=a.version, label=getattr(a, "label", None))

    return show


def asset_list(ops_name: str) -> Any:
    def list_(c: BatchClient, a: argparse.Namespace) -> Any:
        return getattr(c, ops_name).list(name=a.name)

    return list_


def data_create(c: BatchClient, a: argparse.Namespace) -> Any:
    spec, base = _spec_from(
        a, {"name": a.name, "version": a.version, "path": a.path, "type": a.type, "description": a.description}
    )
    return c.data.create_or_update(spec, base_dir=base)


def environment_create(c: BatchClient, a: argparse.Namespace) -> Any:
    spec, base = _spec_from(
        a,
        {
            "name": a.name,
            "version": a.version,
            "image": a.image,
            "conda_file": a.conda_file,
            "description": a.description,
        },
    )
    if not sys.stderr.isatty():
        env = c.environments.create_or_update(spec, base_dir=base)
    else:
        from rich.console import Console

        what = f"building environment {spec.get('name', '')}"
        with Console(stderr=True).status(what) as status:
            env = c.environments.create_or_update(
                spec, base_dir=base, progress=lambda line: status.update(f"{what}: {line}")
            )
    for warning in env.get("build_warnings", []):
        print(f"WARNING: {warning}", file=sys.stderr)
    return env


def environment_show(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.environments.show(a.name, version=a.version, label=a.label)


def environment_delete(c: BatchClient, a: argparse.Namespace) -> Any:
    _confirm(a, f"environment {a.name} version {a.version}")
    return c.environments.delete(a.name, a.version)


def datastore_create(c: BatchClient, a: argparse.Namespace) -> Any:
    spec, base = _spec_from(a, {"name": a.name, "path": a.path, "type": a.type, "description": a.description})
    return c.datastores.create_or_update(spec, base_dir=base)


def datastore_show(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.datastores.get(a.name)


def datastore_list(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.datastores.list()


def datastore_check(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.datastores.check(a.name)


def compute_create(c: BatchClient, a: argparse.Namespace) -> Any:
    spec, _ = _spec_from(
        a,
        {
            "name": a.name,
            "type": a.type,
            "min_instances": a.min_instances,
            "max_instances": a.max_instances,
            "size": a.size,
            "idle_time_before_scale_down": a.idle_time_before_scale_down,
            "description": a.description,
            "hosts": a.hosts,
            "workers_per_host": a.workers_per_host,
            "python": a.python,
            "ssh_user": a.ssh_user,
            "ssh_key": a.ssh_key,
            "ssh_port": a.ssh_port,
            "known_hosts": a.known_hosts,
            "address": a.address,
            "tls_ca_file": a.tls_ca_file,
            "tls_client_cert": a.tls_client_cert,
            "tls_client_key": a.tls_client_key,
        },
    )
    return c.computes.create_or_update(spec)


def compute_check(c: BatchClient, a: argparse.Namespace) -> Any:
    report = c.computes.check(a.name, endpoint_name=a.endpoint_name, deployment_name=a.deployment_name, input=a.input)
    # A table shows one row per host; the other formats the whole report.
    shown = check_rows(report) if a.output == "table" and not a.query else report
    if not report["ok"]:
        from ..errors import ComputeError

        render(shown, a.output, a.query, sys.stdout)
        problems = "; ".join(f"{h['host']}: {h['error']}" for h in report["hosts"] if h.get("error"))
        raise ComputeError(f"compute {a.name}: {problems}")
    return shown


def check_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """``compute check`` as one flat row per host or worker, for a table."""
    rows = []
    for h in report["hosts"]:
        versions = h.get("versions") or {}
        memory = h.get("memory_limit") or h.get("memory")
        env = h.get("environment")
        reach = h.get("input")
        rows.append(
            {
                "host": h["host"],
                "threads": h.get("threads"),
                "memory": f"{memory / 2**30:.1f} GiB" if memory else None,
                "python": versions.get("python"),
                **{p: versions.get(p) for p in ("batchnb", "pandas", "pyarrow", "mlflow")},
                "environment": None
                if env is None
                else ("built" if env["built"] else "ok" if not env["unmet"] else "missing"),
                "input": None if reach is None else ("reachable" if reach["reachable"] else "not reachable"),
                "problem": h.get("error") or "; ".join(h.get("warnings") or []) or None,
            }
        )
    return rows


def compute_stop(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.computes.stop(a.name)


def compute_show(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.computes.show(a.name)


def compute_start(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.computes.start(a.name)


def compute_list(c: BatchClient, a: argparse.Namespace) -> Any:
    # Each with its agent, as compute show has it: the table's Agent column reads it.
    return [c.computes.show(compute["name"]) for compute in c.computes.list()]


def compute_delete(c: BatchClient, a: argparse.Namespace) -> Any:
    _confirm(a, f"compute {a.name}")
    c.computes.delete(a.name)
    return None


# --- endpoints and deployments ---------------------------------------------------------------------


def endpoint_create(c: BatchClient, a: argparse.Namespace) -> Any:
    spec, _ = _spec_from(a, {"name": a.name, "description": a.description})
    _require(spec.get("name"), "-n/--name (or name: in --file)")
    return c.batch_endpoints.create_or_update(spec)


def endpoint_show(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.batch_endpoints.get(a.name)


def endpoint_list(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.batch_endpoints.list()


def endpoint_update(c: BatchClient, a: argparse.Namespace) -> Any:
    if a.file:
        spec, _ = _spec_from(a, {"name": a.name})
        return c.batch_endpoints.create_or_update(spec)
    return c.batch_endpoints.update(_require(a.name, "-n/--name"), a.set)


def endpoint_delete(c: BatchClient, a: argparse.Namespace) -> Any:
    _confirm(a, f"batch endpoint {a.name} and its deployments")
    c.batch_endpoints.delete(a.name)
    return None


def endpoint_invoke(c: BatchClient, a: argparse.Namespace) -> Any:
    inputs = outputs = None
    base_dir = None
    if a.file:
        data, base_dir = load_yaml(a.file)
        inputs, outputs = data.get("inputs"), data.get("outputs")
    job = c.batch_endpoints.invoke(
        a.name,
        deployment_name=a.deployment_name,
        input=a.input,
        input_type=a.input_type,
        inputs=inputs,
        outputs=outputs,
        output_path=a.output_path,
        job_name=a.job_name,
        mini_batch_size=a.mini_batch_size,
        instance_count=a.instance_count,
        set_values=a.set,
        experiment_name=a.experiment_name,
        dry_run=a.dry_run,
        base_dir=base_dir,
        incremental=a.incremental,
    )
    if a.dry_run:
        return job
    return _follow(c, job, a)


def endpoint_compare(c: BatchClient, a: argparse.Namespace, on_job: Any = None) -> Any:
    """``batch-endpoint compare``; ``on_job(deployment, job)`` lets a front end follow each job."""
    return c.batch_endpoints.compare(
        a.name,
        a.deployments,
        input=a.input,
        input_type=a.input_type,
        sample=a.sample,
        max_disagreements=a.max_disagreements,
        timeout=a.timeout,
        on_job=on_job,
    )


def endpoint_list_jobs(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.batch_endpoints.list_jobs(a.name)


def deployment_create(c: BatchClient, a: argparse.Namespace) -> Any:
    spec, base = _spec_from(a, {"name": a.name, "description": a.description})
    return c.batch_deployments.create_or_update(
        spec,
        endpoint_name=a.endpoint_name,
        base_dir=base,
        set_default=a.set_default,
        skip_script_validation=a.skip_script_validation,
        source=a.file or "deployment",
    )


def deployment_show(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.batch_deployments.get(a.name, a.endpoint_name)


def deployment_list(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.batch_deployments.list(a.endpoint_name)


def deployment_update(c: BatchClient, a: argparse.Namespace) -> Any:
    if a.file:
        return deployment_create(
            c,
            argparse.Namespace(
                **{**vars(a), "set_default": False, "skip_script_validation": False, "description": None}
            ),
        )
    return c.batch_deployments.update(_require(a.name, "-n/--name"), a.endpoint_name, a.set)


def deployment_delete(c: BatchClient, a: argparse.Namespace) -> Any:
    _confirm(a, f"deployment {a.name} of endpoint {a.endpoint_name}")
    c.batch_deployments.delete(a.name, a.endpoint_name)
    return None


def deployment_list_jobs(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.batch_deployments.list_jobs(a.endpoint_name, a.name)


# --- jobs ------------------------------------------------------------------------------------------


def component_create(c: BatchClient, a: argparse.Namespace) -> Any:
    spec, base = _spec_from(a, {"name": a.name, "version": a.version, "description": a.description})
    return c.components.create_or_update(spec, base_dir=base)


def job_create(c: BatchClient, a: argparse.Namespace) -> Any:
    data, base = load_yaml(a.file)
    job = c.jobs.create_or_update(
        data,
        base_dir=base,
        set_values=a.set,
        name=a.name,
        experiment_name=a.experiment_name,
        source=Path(a.file).name,
    )
    return _follow(c, job, a)


def _follow(c: BatchClient, job: Any, a: argparse.Namespace) -> Any:
    if a.stream:
        return c.jobs.stream(job["name"], out=sys.stderr)
    if a.wait:
        return c.jobs.wait(job["name"])
    return job


def outcome_error(a: argparse.Namespace, result: Any) -> BatchnbError | None:
    """The error a command's result stands for on the command line, printed after the result: a
    followed job (``job stream``, ``--stream``, ``--wait``) that did not complete, as ``az ml job
    stream`` fails, a failed dry run, an unhealthy workspace. The magics return such results as
    they are."""
    if not isinstance(result, dict):
        return None
    if (a.group, getattr(a, "command", None)) == ("workspace", "check") and not result["healthy"]:
        from ..errors import WorkspaceError

        return WorkspaceError("; ".join(result["problems"]))
    if getattr(a, "dry_run", False) and result.get("status") == "failed":
        return JobFailedError(f"the dry run failed in {result['stage']}(): {_last_line(result['error'])}")
    streamed = (a.group, getattr(a, "command", None)) == ("job", "stream")
    # A dry run starts no job, so --stream and --wait have nothing to follow.
    followed = streamed or getattr(a, "stream", False) or getattr(a, "wait", False)
    if followed and not getattr(a, "dry_run", False) and result.get("status") not in (None, "Completed"):
        return ended_error(result)
    return None


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "see the record above"


def job_show(c: BatchClient, a: argparse.Namespace) -> Any:
    if a.as_form:
        sys.stdout.write(c.jobs.promote(a.name, a.as_form))  # the text itself, whatever -o says
        return None
    return c.jobs.get(a.name)


def job_list(c: BatchClient, a: argparse.Namespace) -> Any:
    # The limit slices the list: -1 dropped the oldest job, and 0 listed them all.
    if a.max_results is not None and a.max_results < 1:
        raise UsageError(f"--max-results {a.max_results}: give a number of jobs of at least 1")
    return c.jobs.list(
        endpoint_name=a.endpoint_name,
        deployment_name=a.deployment_name,
        status=a.status,
        limit=a.max_results,
        parent_job_name=a.parent_job_name,
    )


def job_stream(c: BatchClient, a: argparse.Namespace) -> Any:
    from .progress import stream_with_progress

    return stream_with_progress(c, a.name)


def job_wait(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.jobs.wait(a.name, timeout=a.timeout, raise_on_failure=True)


def job_cancel(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.jobs.cancel(a.name)


def job_resume(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.jobs.resume(a.name)


def job_rerun_failed(c: BatchClient, a: argparse.Namespace) -> Any:
    return c.jobs.rerun_failed(a.name, latest=a.latest)


def job_failures(c: BatchClient, a: argparse.Namespace) -> Any:
    rows = c.jobs.failures(a.name)
    if a.download_path:
        from ..engine.failures import write_csv

        return {"name": a.name, "failed_items": len(rows), "path": str(write_csv(rows, a.download_path))}
    return rows


def job_download(c: BatchClient, a: argparse.Namespace) -> Any:
    target = c.jobs.download(a.name, download_path=a.download_path, output_name=a.output_name)
    return {
        "name": a.name,
        "output_name": a.output_name,
        "path": str(target),
        "files": sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()),
    }


# --- workspace -------------------------------------------------------------------------------------


# These take the workspace folder (``--workspace`` or None), not a client: a client refuses a
# workspace whose database is lost, and that is when they are needed.
WITHOUT_CLIENT = ("check", "backup", "restore")


def workspace_check(root: str | None, a: argparse.Namespace) -> Any:
    from ..recovery import check

    return check(root)


def workspace_backup(root: str | None, a: argparse.Namespace) -> Any:
    from ..recovery import backup

    return backup(root, a.file)


def workspace_restore(root: str | None, a: argparse.Namespace) -> Any:
    from ..recovery import restore

    result = restore(root, a.file)
    for holder in result["still_open_by"]:
        print(
            f"WARNING: process {holder['pid']} ({holder['name']}) still has the old database open: restart it",
            file=sys.stderr,
        )
    return result


def workspace_show(c: BatchClient, a: argparse.Namespace) -> Any:
    from ..workspace import ENV_VAR

    return {
        "path": str(c.workspace.root),
        "database": str(c.workspace.db_path),
        "default_datastore": str(c.workspace.default_datastore_root),
        "rule": f"--workspace, else ${ENV_VAR}, else the nearest .batchnb/ above the current folder, "
        "else the per-user default",
    }


def workspace_gc(c: BatchClient, a: argparse.Namespace) -> Any:
    from ..environments.usage import collect_unused

    return collect_unused(c.workspace.root, c.store)


def demo(c: BatchClient, a: argparse.Namespace) -> Any:
    from ..samples import run_demo

    return run_demo(c, out=sys.stderr)
