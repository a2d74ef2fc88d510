"""Warm standby supervisors for local computes that keep warm: ``idle_time_before_scale_down``.

A cold job pays for a new supervisor process, new loky workers and their imports (pandas, pyarrow,
mlflow: seconds) before its first mini-batch. On a local compute (``local`` type or ``amlcompute``)
with ``idle_time_before_scale_down`` set, each job's supervisor leaves behind, when the job ends, a
*standby*: a supervisor process that has imported the engine, started the pool's workers and
imported in them what the last job needed. It waits, for up to the idle time, for a ``Queued`` job
on its compute, claims it (the same atomic claim as a cold supervisor: whichever comes first runs
the job, the other exits) and runs it as that job's supervisor, with the pool it warmed::

    job A ends ──spawns──▶ standby (imports, workers, preloads) ──claims──▶ job B's supervisor
                                       └── idle for idle_time_before_scale_down ──▶ exits

A standby serves exactly one job and then ends like any supervisor, so every guarantee of a cold
job holds: its workers are its children (they die with it, and the watchdog may SIGKILL them), no
``init()`` state or environment of one deployment reaches another job (a standby's workers have run
no scoring script), and ``resume`` works the same. ``python -m batchnb.compute.standby --workspace W
--compute C --workers N [--preload m1,m2] [--idle S]``; each standby is a file
``standby/<compute>/<pid>.json`` in the workspace, ``{"pid", "started", "state": warming|ready}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# How often an idle standby looks at the store's WAL file for a new job (a stat; cheap).
POLL_S = 0.02
# At most this long between two queries of the store even when the WAL file looks unchanged.
QUERY_EVERY_S = 1.0
LOCAL_TYPES = ("local", "amlcompute")


def keeps_warm(compute: dict[str, Any]) -> bool:
    """True if jobs on this compute leave a warm standby behind."""
    return compute.get("type", "local") in LOCAL_TYPES and bool(compute.get("idle_time_before_scale_down"))


def preload_for(spec: dict[str, Any]) -> tuple[str, ...]:
    """What a standby's workers import ahead of a job like this one: the data stack, and for an
    MLflow model without a scoring script, mlflow and the model flavor's loader module."""
    modules = ["pandas", "pyarrow.parquet", "batchnb.engine.worker"]
    if spec.get("builtin_driver") == "mlflow":
        modules += ["mlflow.pyfunc", "batchnb.engine.drivers.mlflow_score"]
        loader = _loader_module(spec.get("model_dir"))
        if loader:
            modules.append(loader)
    return tuple(modules)


def _loader_module(model_dir: str | None) -> str | None:
    if not model_dir:
        return None
    import yaml

    for mlmodel in [Path(model_dir) / "MLmodel", *sorted(Path(model_dir).glob("*/MLmodel"))]:
        with contextlib.suppress(OSError, yaml.YAMLError, AttributeError, TypeError):
            flavors = yaml.safe_load(mlmodel.read_text()).get("flavors", {})
            return str(flavors["python_function"]["loader_module"])
    return None


def _folder(workspace_root: Path, compute: str) -> Path:
    return workspace_root / "standby" / compute


def standbys(workspace_root: Path, compute: str) -> list[dict[str, Any]]:
    """The live standbys of a compute (records of dead ones are removed)."""
    import psutil

    found = []
    for path in _folder(workspace_root, compute).glob("*.json"):
        try:
            record = json.loads(path.read_text())
            alive = abs(psutil.Process(record["pid"]).create_time() - record["started"]) < 1.0
        except (OSError, ValueError, KeyError, psutil.Error):
            alive = False
        if alive:
            found.append(record)
        else:
            path.unlink(missing_ok=True)
    return found


def wait_ready(workspace_root: Path, compute: str, timeout: float) -> bool:
    """Wait until a standby of ``compute`` is warm; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s.get("state") == "ready" for s in standbys(workspace_root, compute)):
            return True
        time.sleep(0.05)
    return False


def stop_all(workspace_root: Path) -> int:
    """SIGTERM every standby of the workspace (a standby that already took a job is left alone).
    Returns how many were stopped."""
    import psutil

    stopped = []
    for folder in (workspace_root / "standby").glob("*"):
        for record in standbys(workspace_root, folder.name):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(record["pid"])
                proc.terminate()
                stopped.append(proc)
    psutil.wait_procs(stopped, timeout=10)
    return len(stopped)


def spawn(workspace_root: Path, compute: dict[str, Any], workers: int, preload: tuple[str, ...]) -> None:
    """Start a standby for ``compute`` unless one is already there."""
    if standbys(workspace_root, compute["name"]):
        return
    folder = _folder(workspace_root, compute["name"])
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "batchnb.compute.standby", "--workspace", str(workspace_root)]
    cmd += ["--compute", compute["name"], "--workers", str(workers), "--preload", ",".join(preload)]
    cmd += ["--idle", str(float(compute["idle_time_before_scale_down"]))]
    with open(folder / "standby.log", "ab") as log:
        subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
            start_new_session=True,  # outlives the supervisor that started it
            close_fds=True,
        )


def _queued_job(store: Any, compute: str) -> str | None:
    with store.read() as db:
        row = db.execute(
            "SELECT name FROM jobs WHERE status = 'Queued' AND kind = 'batch' AND cancel_requested = 0 "
            "AND json_extract(spec, '$.compute') = ? ORDER BY created_at LIMIT 1",
            (compute,),
        ).fetchone()
    return None if row is None else str(row[0])


def _warm_up(executor: Any, workers: int) -> None:
    """Wait until every worker has started and run its preload (the initializer runs first)."""
    from concurrent.futures import wait

    seen: set[int] = set()
    deadline = time.monotonic() + 300
    while len(seen) < workers and time.monotonic() < deadline:
        futures = [executor.submit(_pid_after, 0.05) for _ in range(workers)]
        wait(futures, timeout=300)
        seen.update(f.result() for f in futures if f.done() and not f.exception())


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)  # long enough that one worker cannot take every probe
    return os.getpid()


def main(argv: list[str] | None = None) -> int:
    """Run one standby: warm up, wait for a job, and run it (or leave after the idle time)."""
    import psutil

    parser = argparse.ArgumentParser(prog="batchnb-standby")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--compute", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--preload", default="")
    parser.add_argument("--idle", type=float, default=300.0)
    args = parser.parse_args(argv)
    root = Path(args.workspace)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    me = psutil.Process()
    record_path = _folder(root, args.compute) / f"{me.pid}.json"
    record = {"pid": me.pid, "started": me.create_time(), "workers": args.workers, "state": "warming"}

    def publish(state: str) -> None:
        record["state"] = state
        tmp = record_path.with_name(f".{record_path.name}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, record_path)

    publish("warming")
    pool = None
    try:
        from ..engine.supervisor import Supervisor, worker_env
        from ..store import Store
        from .local import LocalPool

        preload = tuple(m for m in args.preload.split(",") if m)
        pool = LocalPool()
        _warm_up(pool.executor(args.workers, worker_env(args.workers), preload), args.workers)
        publish("ready")
        store = Store(root / "batchnb.db")
        wal = root / "batchnb.db-wal"
        last_seen: tuple[int, int] | None = None
        last_query = 0.0
        deadline = time.monotonic() + args.idle
        while time.monotonic() < deadline:
            try:
                st = wal.stat()
                seen = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                if not (root / "batchnb.db").exists():
                    return 0  # the workspace is gone
                seen = (0, 0)
            now = time.monotonic()
            if seen != last_seen or now - last_query >= QUERY_EVERY_S:
                last_seen, last_query = seen, now
                name = _queued_job(store, args.compute)
                if name is not None:
                    record_path.unlink(missing_ok=True)  # no longer a standby: the job's end spawns the next
                    print(f"taking job {name}", flush=True)
                    status = Supervisor(root, name).run()
                    if status != "not-claimed":
                        return 0
                    publish("ready")  # a cold supervisor was faster: keep waiting
            time.sleep(POLL_S)
        return 0
    finally:
        record_path.unlink(missing_ok=True)
        if pool is not None:
            pool.shutdown(kill=True)


if __name__ == "__main__":
    sys.exit(main())
