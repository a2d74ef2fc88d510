"""``compute check``: reach every host (ssh) or Dask worker (dask) of a compute; compare versions with ours.

A job on a cluster only works if every host (every worker) runs the same Python and the same versions of the
packages that move data between them (batchnb, distributed, dask, pandas, pyarrow, cloudpickle).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from typing import Any

from .ssh import _require_distributed, connect_options, explain, split_host

PACKAGES = ("batchnb", "distributed", "dask", "pandas", "pyarrow", "cloudpickle", "joblib")
_PROBE = "\n".join(
    [
        "import json, sys, importlib.metadata as m",
        "out = {'python': '.'.join(map(str, sys.version_info[:3]))}",
        f"for p in {PACKAGES!r}:",
        "    try: out[p] = m.version(p)",
        "    except Exception: out[p] = None",
        "print(json.dumps(out))",
    ]
)


def local_versions() -> dict[str, str | None]:
    """This machine's Python and package versions."""
    import importlib.metadata as metadata

    out: dict[str, str | None] = {"python": ".".join(map(str, sys.version_info[:3]))}
    for package in PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


async def _probe(compute: dict[str, Any], host: str, python: str) -> dict[str, Any]:
    import asyncssh

    name, _ = split_host(host, 22)
    try:
        async with asyncssh.connect(name, **connect_options(compute, host)) as conn:
            done = await conn.run(f"{shlex.quote(python)} -c {shlex.quote(_PROBE)}", check=False, timeout=60)
    except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
        return {"host": host, "reachable": False, "error": explain(exc, compute)}
    if done.exit_status != 0:
        return {"host": host, "reachable": True, "error": f"{python} failed: {str(done.stderr).strip()[-300:]}"}
    return {"host": host, "reachable": True, "versions": json.loads(str(done.stdout))}


def check_compute(compute: dict[str, Any]) -> dict[str, Any]:
    """Probe every host; return a report with ``ok`` and, per host, versions and mismatches."""
    _require_distributed()
    python = compute.get("python") or sys.executable
    mine = local_versions()

    async def run_all() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(_probe(compute, h, python) for h in compute["hosts"])))

    # In a thread of its own: the caller may already run an event loop (a notebook kernel, a
    # Jupyter server), and asyncio.run() refuses to start inside one.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        hosts = pool.submit(lambda: asyncio.run(run_all())).result()
    for report in hosts:
        versions = report.get("versions")
        if versions is not None:
            report["mismatches"] = {
                k: {"here": mine.get(k), "host": v} for k, v in versions.items() if v != mine.get(k)
            }
            if report["mismatches"]:
                report["error"] = "version mismatch: " + ", ".join(
                    f"{k} {d['host']} there, {d['here']} here" for k, d in report["mismatches"].items()
                )
    return {"compute": compute["name"], "local": mine, "hosts": hosts, "ok": all(not h.get("error") for h in hosts)}


def check_dask(compute: dict[str, Any]) -> dict[str, Any]:
    """Reach a ``dask`` compute's scheduler; report each worker's host, threads, memory, Python and
    package versions, naming what differs from ours (a package missing there included)."""
    from .dask import connect

    mine = local_versions()
    packages = PACKAGES

    def probe() -> dict[str, str | None]:
        # A closure, so that it is sent by value: a worker without batchnb must still answer.
        import importlib.metadata as metadata
        import sys as worker_sys

        out: dict[str, str | None] = {"python": ".".join(map(str, worker_sys.version_info[:3]))}
        for package in packages:
            try:
                out[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                out[package] = None
        return out

    client = connect(compute, compute["address"])
    try:
        info = client.scheduler_info(n_workers=-1)["workers"]
        versions = client.run(probe) if info else {}
    finally:
        client.close(timeout=10)
    workers = []
    for address, w in sorted(info.items()):
        theirs = versions.get(address, {})
        report: dict[str, Any] = {
            "host": address,
            "hostname": w.get("host"),
            "threads": w.get("nthreads"),
            "memory_limit": w.get("memory_limit"),
            "versions": theirs,
        }
        report["mismatches"] = {k: {"here": mine.get(k), "host": v} for k, v in theirs.items() if v != mine.get(k)}
        if report["mismatches"]:
            report["error"] = "version mismatch: " + ", ".join(
                f"{k} {'missing' if d['host'] is None else d['host']} there, {d['here']} here"
                for k, d in report["mismatches"].items()
            )
        workers.append(report)
    ok = bool(workers) and all(not w.get("error") for w in workers)
    result: dict[str, Any] = {"compute": compute["name"], "address": compute["address"], "local": mine}
    result["hosts"] = workers or [{"host": compute["address"], "error": "the scheduler has no workers"}]
    result["ok"] = ok
    return result
