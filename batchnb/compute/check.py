"""``compute check``: reach every host (ssh) or Dask worker (dask) of a compute; one row for each.

A job on a cluster only works if every host (every worker) runs the same Python and the same versions of the
packages that move data between them (:data:`PACKAGES`: batchnb, distributed, dask, pandas, pyarrow,
cloudpickle, joblib); MLflow's version is reported beside them. Given a deployment, each host is also asked
whether it has the packages of the deployment's environment (or the environment built in its cache); given a
data path or URL, whether it can reach it. Each host answers with :mod:`batchnb.compute.probe`, sent there as
source, so a host without batchnb answers too.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import shlex
import sys
from typing import Any

from . import probe as probe_module
from .ssh import _require_distributed, connect_options, explain, split_host

PACKAGES = ("batchnb", "distributed", "dask", "pandas", "pyarrow", "cloudpickle", "joblib")
# Reported, and a difference noted, but not an error: only MLflow models need it on the workers.
REPORTED = ("mlflow",)
_RUN = "\nimport json, sys\nprint(json.dumps(probe(json.loads(sys.argv[1]))))\n"


def probe_args(environment: dict[str, Any] | None = None, input: str | None = None) -> dict[str, Any]:
    """What each host is asked: the packages, and a deployment's environment (``name``,
    ``requirements``, ``digest``) and a data path or URL when given."""
    env = environment or {}
    return {
        "packages": [*PACKAGES, *REPORTED],
        "requirements": list(env.get("requirements") or []),
        "environment": env.get("digest"),
        "input": input,
    }


def local_versions() -> dict[str, str | None]:
    """This machine's Python and package versions."""
    mine = probe_module.probe(probe_args())
    return {"python": mine["python"], **mine["versions"]}


def _judge(
    row: dict[str, Any], answer: dict[str, Any], mine: dict[str, Any], environment: dict[str, Any] | None
) -> None:
    """Fill a host's row from its ``answer``: versions, what differs from ``mine``, and the verdict."""
    theirs = {"python": answer["python"], **answer["versions"]}
    row.update(python=answer["python"], cpus=answer.get("cpus"), memory=answer.get("memory"), versions=theirs)
    differ = {k: {"here": mine.get(k), "host": v} for k, v in theirs.items() if v != mine.get(k)}
    row["mismatches"] = {k: d for k, d in differ.items() if k not in REPORTED}
    errors: list[str] = []
    warnings = [
        f"{k} {d['host'] or 'missing'} there, {d['here'] or 'missing'} here" for k, d in differ.items() if k in REPORTED
    ]
    if row["mismatches"]:
        errors.append(
            "version mismatch: "
            + ", ".join(
                f"{k} {'missing' if d['host'] is None else d['host']} there, {d['here']} here"
                for k, d in row["mismatches"].items()
            )
        )
    if environment is not None:
        built = (answer.get("environment") or {}).get("built")
        row["environment"] = {"name": environment["name"], "unmet": answer["unmet"], "built": built}
        if answer["unmet"] and not built:
            errors.append(f"environment {environment['name']}: {'; '.join(answer['unmet'])}")
    reach = answer.get("input")
    if reach is not None:
        row["input"] = reach
        if not reach["reachable"]:
            if "://" in reach["target"]:
                errors.append(f"cannot reach {reach['target']}" + (f": {reach['error']}" if reach.get("error") else ""))
            else:  # a job ships the inputs on this machine to workers that cannot see them
                warnings.append(f"{reach['target']} is not seen there: a job sends those inputs with its mini-batches")
    if warnings:
        row["warnings"] = warnings
    if errors:
        row["error"] = "; ".join(errors)


async def _probe_ssh(compute: dict[str, Any], host: str, python: str, args: dict[str, Any]) -> dict[str, Any]:
    import asyncssh

    name, _ = split_host(host, 22)
    code = inspect.getsource(probe_module) + _RUN
    command = f"{shlex.quote(python)} -c {shlex.quote(code)} {shlex.quote(json.dumps(args))}"
    try:
        async with asyncssh.connect(name, **connect_options(compute, host)) as conn:
            done = await conn.run(command, check=False, timeout=60)
    except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
        return {"host": host, "reachable": False, "error": explain(exc, compute)}
    if done.exit_status != 0:
        return {"host": host, "reachable": True, "error": f"{python} failed: {str(done.stderr).strip()[-300:]}"}
    return {"host": host, "reachable": True, "answer": json.loads(str(done.stdout))}


def check_compute(
    compute: dict[str, Any], environment: dict[str, Any] | None = None, input: str | None = None
) -> dict[str, Any]:
    """Probe every host of an ``ssh`` compute; one row per host, with ``ok`` over them all."""
    _require_distributed()
    python = compute.get("python") or sys.executable
    args = probe_args(environment, input)
    mine = local_versions()

    async def run_all() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(_probe_ssh(compute, h, python, args) for h in compute["hosts"])))

    # In a thread of its own: the caller may already run an event loop (a notebook kernel, a
    # Jupyter server), and asyncio.run() refuses to start inside one.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        hosts = pool.submit(lambda: asyncio.run(run_all())).result()
    for row in hosts:
        answer = row.pop("answer", None)
        if answer is not None:
            row["threads"] = int(compute.get("workers_per_host") or 1)  # one single-threaded worker each
            _judge(row, answer, mine, environment)
    return {"compute": compute["name"], "local": mine, "hosts": hosts, "ok": all(not h.get("error") for h in hosts)}


def check_dask(
    compute: dict[str, Any], environment: dict[str, Any] | None = None, input: str | None = None
) -> dict[str, Any]:
    """Reach a ``dask`` compute's scheduler; one row per worker: its host, threads, memory limit, and
    what :mod:`batchnb.compute.probe` finds there."""
    from .dask import connect

    mine = local_versions()
    args = probe_args(environment, input)
    source = inspect.getsource(probe_module)

    def on_worker() -> dict[str, Any]:
        # A closure, so that it is sent by value: a worker without batchnb must still answer.
        scope: dict[str, Any] = {}
        exec(source, scope)  # batchnb's own probe, sent as source
        return scope["probe"](args)  # type: ignore[no-any-return]

    client = connect(compute, compute["address"])
    try:
        info = client.scheduler_info(n_workers=-1)["workers"]
        answers = client.run(on_worker) if info else {}
    finally:
        client.close(timeout=10)
    workers = []
    for address, w in sorted(info.items()):
        row: dict[str, Any] = {
            "host": address,
            "hostname": w.get("host"),
            "threads": w.get("nthreads"),
            "memory_limit": w.get("memory_limit"),
        }
        if address in answers:
            _judge(row, answers[address], mine, environment)
        else:
            row["error"] = "the worker did not answer"
        workers.append(row)
    result: dict[str, Any] = {"compute": compute["name"], "address": compute["address"], "local": mine}
    result["hosts"] = workers or [{"host": compute["address"], "error": "the scheduler has no workers"}]
    result["ok"] = bool(workers) and all(not w.get("error") for w in workers)
    return result
