"""``compute check``: reach every host of an ssh compute and compare its Python and packages with ours.

A job on a cluster only works if every host runs the same Python and the same versions of the
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
