"""The keeper of one SSH cluster: ``python -m batchnb.compute.keeper --workspace W --compute C``.

Started by the first job that needs the cluster. It starts the cluster over SSH, publishes the
scheduler address in the store, drops the leases of jobs that have ended (even if their supervisor
died without releasing), and stops the cluster once no job has held a lease for
``idle_time_before_scale_down`` seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..store import Store

HEARTBEAT_S = 1.0


def explain(exc: BaseException, compute: dict[str, Any]) -> str:
    """A one-line reason for a cluster that could not start, naming the host where known."""
    name = type(exc).__name__
    text = str(exc).strip() or name
    known_hosts = compute.get("known_hosts") or "~/.ssh/known_hosts"
    if name == "HostKeyNotVerifiable":
        return (
            f"host key not trusted ({text}): add the host's key to {known_hosts}; batchnb never accepts "
            "unknown or changed host keys"
        )
    if name == "PermissionDenied":
        return f"SSH login refused ({text}): check ssh_user and ssh_key"
    if isinstance(exc, OSError):
        return f"cannot reach an SSH host: {text}"
    return f"{name}: {text}"


def main(argv: list[str] | None = None) -> int:
    """Run the keeper until the cluster has been idle long enough."""
    import psutil

    parser = argparse.ArgumentParser(prog="batchnb-keeper")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--compute", required=True)
    args = parser.parse_args(argv)
    store = Store(Path(args.workspace) / "batchnb.db")
    with store.read() as db:
        row = db.execute("SELECT spec FROM computes WHERE name = ?", (args.compute,)).fetchone()
    if row is None:
        return 2
    compute = json.loads(row["spec"])
    me = psutil.Process()
    with store.write() as tx:
        tx.execute(
            "UPDATE clusters SET keeper_pid = ?, keeper_started = ?, heartbeat_at = ? WHERE compute = ?",
            (me.pid, me.create_time(), time.time(), args.compute),
        )
    from .ssh import build_cluster

    try:
        cluster = build_cluster(compute)
        from distributed import Client

        with Client(cluster) as client:
            client.wait_for_workers(len(cluster.workers), timeout=120)
    except BaseException as exc:  # report any failure to the job waiting for the cluster
        traceback.print_exc()
        with store.write() as tx:
            tx.execute(
                "UPDATE clusters SET state = 'failed', error = ? WHERE compute = ?",
                (explain(exc, compute), args.compute),
            )
        return 1
    with store.write() as tx:
        tx.execute(
            "UPDATE clusters SET state = 'ready', address = ?, started_at = ? WHERE compute = ?",
            (cluster.scheduler_address, time.time(), args.compute),
        )
    print(f"cluster ready at {cluster.scheduler_address}", flush=True)
    idle_limit = float(compute.get("idle_time_before_scale_down") or 0)
    idle_since: float | None = None
    try:
        while True:
            time.sleep(HEARTBEAT_S)
            with store.write() as tx:
                changed = tx.execute(
                    "UPDATE clusters SET heartbeat_at = ? WHERE compute = ? AND state = 'ready'",
                    (time.time(), args.compute),
                ).rowcount
            if not changed:  # `compute stop` asked for it (state 'stopping'), or the row is gone
                break
            with store.write() as tx:
                # A lease outlives its job only if the job's supervisor died: drop those.
                tx.execute(
                    "DELETE FROM cluster_leases WHERE compute = ? AND job NOT IN (SELECT name FROM jobs WHERE "
                    "status IN ('Queued', 'Preparing', 'Running', 'Finalizing', 'CancelRequested'))",
                    (args.compute,),
                )
                leases = tx.execute(
                    "SELECT COUNT(*) FROM cluster_leases WHERE compute = ?", (args.compute,)
                ).fetchone()[0]
            if leases:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= idle_limit:
                break
    finally:
        with store.write() as tx:
            tx.execute("DELETE FROM clusters WHERE compute = ?", (args.compute,))
        cluster.close(timeout=30)
        print("cluster stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
