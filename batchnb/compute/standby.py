"""Warm standby supervisors for local computes that keep warm: ``idle_time_before_scale_down``.

A cold job pays for a new supervisor process, new loky workers and their imports (pandas, pyarrow,
mlflow: seconds) before its first mini-batch. On a local compute (``local`` type or ``amlcompute``)
with ``idle_time_before_scale_down`` set, each job's supervisor leaves behind, when the job ends, a
*standby*: a supervisor process that has imported the engine and started the pool's zygote (which
imported what the last job needed, see :mod:`batchnb.compute.zygote`) and its workers. It waits, for
up to the idle time, for a ``Queued`` job on its compute, claims it (the same atomic claim as a cold
supervisor: whichever comes first runs the job, the other exits) and runs it as that job's
supervisor, with the pool it warmed::

    job A ends ──spawns──▶ standby (imports, workers, preloads) ──claims──▶ job B's supervisor
                                       └── idle for idle_time_before_scale_down ──▶ exits

A standby serves exactly one job and then ends like any supervisor, so every guarantee of a cold job
holds: its zygote and workers descend from it (they die with it, the watchdog may SIGKILL them), and
``resume`` works the same.

**Preloaded models.** For a deployment scored by batchnb's own driver (an MLflow model without a
scoring script), the standby's zygote also runs that driver's ``init()`` (the model load: seconds)
ahead of time, for the deployment of the job that spawned it; its workers are forked with it. Its
*preload key* names that deployment exactly: endpoint, deployment and its revision, model folder,
code and scoring script, environment variables, logging level. A job with the same key runs on those
workers with no ``init()``; any other job (another deployment, a user's scoring script) gets a fresh
zygote and workers: the pool is killed before the job is claimed, so no ``init()`` state or
environment crosses deployments. A user's scoring script is never run ahead of its job: its
``init()`` may read the job's environment.

**Early, at low priority.** A job on such a compute spawns its standby when it *starts*, at the
lowest CPU priority from its first instruction (nice 19, for its processes and its session's
autogroup: it warms up from the CPU the job leaves idle); a standby raises itself and its workers
back to normal priority when it is warm or takes a job (if it may: root, or ``CAP_SYS_NICE``).
Beside a CPU-bound job it gets almost no CPU, so a job killed midway finds it still loading.

**Spares: ``min_instances``.** A compute keeps ``min_instances`` standbys (at least one; a lock
around spawning keeps the count). With two, a job takes one while the other stays warm, and a job
killed midway and resumed (``job resume`` queues it again) runs on that warm spare at once. One
standby takes a queued job: a ready one preloaded for the job's deployment, else a ready one, else
the oldest; its record says ``taking`` until its process ends, so no other tries for that job.
Standbys are started detached, so that killing a job's process tree leaves them. Their idle time
counts from the last job on the compute. The cost: every standby's idle pool holds the model too.

``python -m batchnb.compute.standby --workspace W --compute C --workers N [--preload m1,m2]
[--job J] [--nice K] [--idle S] [--keep K]``; each standby is a file ``standby/<compute>/<pid>.json``
in the workspace, ``{"pid", "started", "state": starting|warming|ready|taking, "preload_key", "job"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

# How often an idle standby looks at the store's WAL file for a new job (a stat; cheap).
POLL_S = 0.02
# At most this long between two queries of the store even when the WAL file looks unchanged.
QUERY_EVERY_S = 1.0
LOCAL_TYPES = ("local", "amlcompute")
# The niceness of a standby spawned while a job runs: it must not slow that job down.
EARLY_NICE = 19
# In a compute's standby folder, left by stop_all: no standby is spawned there while it is present.
STOPPED = ".stopped"


def keeps_warm(compute: dict[str, Any]) -> bool:
    """True if jobs on this compute leave a warm standby behind."""
    return compute.get("type", "local") in LOCAL_TYPES and bool(compute.get("idle_time_before_scale_down"))


def kept(compute: dict[str, Any]) -> int:
    """How many standbys a compute that keeps warm keeps: ``min_instances``, at least one. With two,
    a job takes one and the other stays warm, ready for that job resumed after a crash."""
    return max(1, int(compute.get("min_instances") or 0))


# Packages a zygote may import ahead of a user's scoring script that imports them: common, slow to
# import, and safe to fork after importing (none starts threads or opens devices at import).
FORK_SAFE_PACKAGES = frozenset({"numpy", "pandas", "pyarrow", "scipy", "sklearn", "mlflow", "skops", "joblib"})


def preload_for(spec: dict[str, Any]) -> tuple[str, ...]:
    """What a pool's zygote imports ahead of a job like this one: the data stack; for an MLflow
    model without a scoring script, batchnb's driver, whose ``init()`` (run in the zygote too, see
    :func:`preload_context`) imports what its model needs (scikit-learn alone for a model it scores
    directly, else mlflow and the flavor's loader); for a user's scoring script, what it imports at
    its top level of :data:`FORK_SAFE_PACKAGES` (the script itself is never imported ahead), and
    the model's loader if it imports mlflow (a skops-saved model's skops first: its import-time
    scan is slower once mlflow is loaded)."""
    modules = ["pandas", "pyarrow.parquet", "batchnb.engine.worker"]
    if spec.get("builtin_driver") == "mlflow":
        return (*modules, "batchnb.engine.drivers.mlflow_score")
    if not (spec.get("code_dir") and spec.get("scoring_script")):
        return tuple(modules)
    imported = script_imports(Path(spec["code_dir"]) / spec["scoring_script"])
    modules += [m for m in imported if m.split(".")[0] in FORK_SAFE_PACKAGES]
    if any(m.split(".")[0] == "mlflow" for m in imported):
        flavors = _flavors(spec.get("model_dir"))
        sklearn = flavors.get("sklearn")
        if isinstance(sklearn, dict) and sklearn.get("serialization_format") == "skops":
            modules.insert(3, "skops.io")
        modules += ["mlflow.pyfunc"]
        pyfunc = flavors.get("python_function")
        loader = pyfunc.get("loader_module") if isinstance(pyfunc, dict) else None
        if loader:
            modules.append(str(loader))
    return tuple(dict.fromkeys(modules))


def script_imports(script: Path) -> list[str]:
    """The modules a scoring script imports at its top level (also inside a top-level ``try``, its
    ``except`` fallbacks, or ``if``), in order; [] if it cannot be read or parsed (its job reports that)."""
    import ast

    try:
        tree = ast.parse(script.read_text(), filename=str(script))
    except (OSError, SyntaxError, ValueError):
        return []
    found: list[str] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
        elif isinstance(node, ast.If):
            pending[:0] = [*node.body, *node.orelse]
        elif isinstance(node, ast.Try):
            handlers = [stmt for handler in node.handlers for stmt in handler.body]
            pending[:0] = [*node.body, *handlers, *node.orelse, *node.finalbody]
    return found


def preload_key(spec: dict[str, Any]) -> str | None:
    """What a job's workers must have run ``init()`` for, to serve it without running it again: the
    deployment, exactly. None for a deployment with a user's scoring script (never preloaded)."""
    if spec.get("builtin_driver") != "mlflow":
        return None
    settings = spec.get("settings", {})
    fields = {
        "endpoint": spec.get("endpoint"),
        "deployment": spec.get("deployment"),
        "deployment_revision": spec.get("deployment_revision"),
        "model_dir": spec.get("model_dir"),
        "driver": spec.get("builtin_driver"),
        "scoring_script": spec.get("scoring_script"),
        "environment_variables": settings.get("environment_variables", {}),
        "logging_level": settings.get("logging_level", "info"),
    }
    return json.dumps(fields, sort_keys=True)


def preload_context(spec: dict[str, Any]) -> dict[str, Any] | None:
    """What :func:`batchnb.engine.worker.preinitialize` needs of a job's deployment (nothing of the
    job); None for a deployment whose ``init()`` is never run ahead (a user's scoring script)."""
    from ..engine.drivers import DRIVERS_DIR, MLFLOW_DRIVER

    key = preload_key(spec)
    if key is None:
        return None
    settings = spec.get("settings", {})
    return {
        "preload_key": key,
        "code_dir": str(DRIVERS_DIR),  # where this batchnb is installed, as the supervisor resolves it
        "scoring_script": MLFLOW_DRIVER,
        "model_dir": spec.get("model_dir"),
        "cache_dir": spec.get("cache_dir"),
        "environment_variables": settings.get("environment_variables", {}),
        "logging_level": settings.get("logging_level", "info"),
    }


def pool_setup(spec: dict[str, Any]) -> tuple[dict[str, str], tuple[str, ...], dict[str, Any] | None, str]:
    """What a job's pool is prepared with (:meth:`batchnb.compute.base.ComputeTarget.prepare`): the
    workers' thread settings, the zygote's imports, the driver ``init()`` to run ahead, and the log
    folder, the same whether the job's process starts it early or its supervisor does."""
    from .base import worker_env

    log = str(Path(spec["job_dir"]) / "logs" / "user")
    return worker_env(int(spec["workers"])), preload_for(spec), preload_context(spec), log


def _flavors(model_dir: str | None) -> dict[str, Any]:
    """The flavors of the MLflow model the driver will load from ``model_dir`` ({} if none)."""
    from ..engine.drivers import mlflow_flavors, mlflow_model_folder

    folder = mlflow_model_folder(Path(model_dir)) if model_dir else None
    return mlflow_flavors(folder) if folder else {}


def _folder(workspace_root: Path, compute: str) -> Path:
    return workspace_root / "standby" / compute


def standbys(workspace_root: Path, compute: str, taking: bool = False) -> list[dict[str, Any]]:
    """The live standbys of a compute (records of dead ones are removed). A standby that is taking a
    job (state ``taking``) is no longer one, and is listed only with ``taking``: its record stays
    until it has claimed the job, so that no other standby tries to take that job meanwhile."""
    import psutil

    found = []
    for path in _folder(workspace_root, compute).glob("*.json"):
        try:
            record = json.loads(path.read_text())
            alive = abs(psutil.Process(record["pid"]).create_time() - record["started"]) < 1.0
        except (OSError, ValueError, KeyError, psutil.Error):
            alive = False
        if not alive:
            path.unlink(missing_ok=True)
        elif taking or record.get("state") != "taking":
            found.append(record)
    return found


def wait_ready(workspace_root: Path, compute: str, timeout: float, count: int = 1) -> bool:
    """Wait until ``count`` standbys of ``compute`` are warm; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(s.get("state") == "ready" for s in standbys(workspace_root, compute)) >= count:
            return True
        time.sleep(0.05)
    return False


def stop_all(workspace_root: Path) -> int:
    """SIGTERM every standby of the workspace (a standby that already took a job is left alone).
    Returns how many were stopped.

    Each local compute is left a stop marker first, which :func:`spawn` honours: a job ending just
    after this (its supervisor spawns a standby as it ends) starts none. The next job invoked on the
    compute removes it (:func:`allow`)."""
    import psutil

    stopped = []
    for name in sorted(_local_computes(workspace_root)):
        folder = _folder(workspace_root, name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STOPPED).touch()
        with _spawn_lock(folder):  # a spawn under way finishes first, and its standby is listed here
            records = standbys(workspace_root, name)
        for record in records:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(record["pid"])
                proc.terminate()
                stopped.append(proc)
    psutil.wait_procs(stopped, timeout=10)
    return len(stopped)


def allow(workspace_root: Path, compute: str) -> None:
    """Let jobs on ``compute`` leave standbys again after :func:`stop_all`. Called for a job a user
    invokes or resumes, never by a supervisor that ends: that one must not undo a stop."""
    (_folder(workspace_root, compute) / STOPPED).unlink(missing_ok=True)


def _local_computes(workspace_root: Path) -> set[str]:
    """The computes that may have standbys: each with a standby folder, and the workspace's local
    computes (a job that has just started may not have made its folder yet)."""
    names = {p.name for p in (workspace_root / "standby").glob("*") if p.is_dir()}
    if (workspace_root / "batchnb.db").exists():
        from ..store import Store

        store = Store(workspace_root / "batchnb.db")
        try:
            with store.read() as db:
                for row in db.execute("SELECT name, spec FROM computes"):
                    if json.loads(row["spec"]).get("type", "local") in LOCAL_TYPES:
                        names.add(row["name"])
        finally:
            store.close()
    return names


@contextlib.contextmanager
def _spawn_lock(folder: Path) -> Any:
    """Held while one process checks for a standby and starts one: two jobs starting together on
    one compute start one standby, not two."""
    with open(folder / ".spawn.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def spawn(
    workspace_root: Path,
    compute: dict[str, Any],
    workers: int,
    preload: tuple[str, ...],
    job: str | None = None,
    nice: int = 0,
) -> None:
    """Start standbys for ``compute`` until it has :func:`kept` of them. ``job``: the job whose
    deployment their workers preload (see :func:`preload_key`); ``nice``: their CPU niceness while
    they wait."""
    folder = _folder(workspace_root, compute["name"])
    folder.mkdir(parents=True, exist_ok=True)
    with _spawn_lock(folder):
        if (folder / STOPPED).exists():
            return  # stopped by stop_all, until a job is invoked on the compute
        for _ in range(kept(compute) - len(standbys(workspace_root, compute["name"]))):
            _start(folder, workspace_root, compute, workers, preload, job, nice)


def _start(
    folder: Path,
    workspace_root: Path,
    compute: dict[str, Any],
    workers: int,
    preload: tuple[str, ...],
    job: str | None,
    nice: int,
) -> None:
    """Start one standby process, detached, and record it at once (see :func:`spawn`)."""
    import psutil

    cmd = [sys.executable, "-m", "batchnb.compute.standby", "--workspace", str(workspace_root)]
    cmd += ["--compute", compute["name"], "--workers", str(workers), "--preload", ",".join(preload)]
    cmd += ["--idle", str(float(compute["idle_time_before_scale_down"])), "--nice", str(nice)]
    cmd += ["--keep", str(kept(compute))]
    if job:
        cmd += ["--job", job]
    pid = start_detached(cmd, folder / "standby.log", folder, nice)
    with contextlib.suppress(psutil.Error, FileExistsError):
        # Visible at once to the next spawn(), before the standby has started Python; the standby
        # rewrites it (same pid and start time) as it warms up.
        record = {"pid": pid, "started": psutil.Process(pid).create_time(), "workers": workers}
        fd = os.open(folder / f"{pid}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({**record, "state": "starting", "preload_key": None}))


# Linux's autogroup: with it enabled (the default on most distributions), the CPU is shared fairly
# between *sessions* first, and a process's niceness only weighs against others of its session. A
# standby is started in a session of its own, so its niceness alone would leave it an equal share
# beside the job (measured: every mini-batch of a CPU-bound job twice as slow while a niced standby
# warmed up). The session's own niceness, written here, weighs against other sessions.
AUTOGROUP = Path("/proc/self/autogroup")


def start_detached(cmd: list[str], log: Path, cwd: Path, nice: int = 0) -> int:
    """Start ``cmd`` detached, appending its output to ``log``; return its pid.

    The shell starts it in the background and exits, so it is no process's child: killing a job's
    process tree leaves it, and it never lingers as a zombie. With ``nice``, it runs niced from its
    first instruction (its session's autogroup too: the shell heads the new session), so that even
    the interpreter's start and imports take no CPU from a running job: measured, an un-niced start
    delayed a warm job's first mini-batch by 0.2 to 0.5 s.
    """
    script = '"$@" >>"$0" 2>&1 </dev/null & echo $!'
    if nice:
        script = f"{{ echo {int(nice)} >/proc/self/autogroup; }} 2>/dev/null; " + script
        cmd = ["nice", "-n", str(int(nice)), *cmd]
    started = subprocess.run(
        ["/bin/sh", "-c", script, str(log), *cmd],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        start_new_session=True,
        timeout=30,
        check=True,
    )
    return int(started.stdout.split()[-1])


def _set_session_priority(nice: int) -> bool:
    """Set this session's autogroup niceness. True if done or if there is no autogroup to set."""
    try:
        AUTOGROUP.write_text(str(nice))
    except FileNotFoundError:
        return True  # a kernel without autogroup: process niceness is all there is
    except OSError:
        return False  # EPERM, or EAGAIN: unprivileged writes are limited to one per 100 ms
    return True


def _set_priority(nice: int) -> bool:
    """Give this process, its workers and its session (see :data:`AUTOGROUP`) niceness ``nice``.
    False if not permitted (raising a process's priority needs root or CAP_SYS_NICE)."""
    import psutil

    me = psutil.Process()
    ok = _set_session_priority(nice)
    for proc in [me, *me.children(recursive=True)]:
        try:
            proc.nice(nice)
        except psutil.AccessDenied:
            ok = False
        except psutil.Error:
            continue
    return ok


def _job_spec(store: Any, name: str) -> dict[str, Any] | None:
    with store.read() as db:
        row = db.execute("SELECT spec FROM jobs WHERE name = ?", (name,)).fetchone()
    return None if row is None else dict(json.loads(row["spec"]))


def _compute_busy(store: Any, compute: str) -> bool:
    """A job on this compute is running (its supervisor alive by its heartbeat): the idle time waits."""
    from ..engine import state

    with store.read() as db:
        row = db.execute(
            "SELECT 1 FROM jobs WHERE status IN ('Preparing', 'Running', 'Finalizing', 'CancelRequested') "
            "AND json_extract(spec, '$.compute') = ? AND heartbeat_at > ? LIMIT 1",
            (compute, time.time() - state.STALE_AFTER_S),
        ).fetchone()
    return row is not None


def _queued_job(store: Any, compute: str) -> str | None:
    with store.read() as db:
        row = db.execute(
            "SELECT name FROM jobs WHERE status = 'Queued' AND kind = 'batch' AND cancel_requested = 0 "
            "AND json_extract(spec, '$.compute') = ? ORDER BY created_at LIMIT 1",
            (compute,),
        ).fetchone()
    return None if row is None else str(row[0])


def _warm_up(executor: Any, workers: int, stop: threading.Event) -> set[int]:
    """Wait until every worker has started and run its preload (the initializer runs first).
    Returns the workers' pids."""
    from concurrent.futures import wait

    seen: set[int] = set()
    deadline = time.monotonic() + 300
    while len(seen) < workers and time.monotonic() < deadline and not stop.is_set():
        futures = [executor.submit(_pid_after, 0.05) for _ in range(workers)]
        wait(futures, timeout=300)
        seen.update(f.result() for f in futures if f.done() and not f.exception())
    return seen


class _WarmUp(threading.Thread):
    """Waits, on a thread, until the workers have started (after their zygote's imports and init()):
    the standby watches for a job meanwhile and may take one before it is done. That is safe: the
    warm-up's probes are queued before any mini-batch."""

    def __init__(self, executor: Any, workers: int) -> None:
        super().__init__(name="batchnb-standby-warm-up", daemon=True)
        self.executor, self.workers = executor, workers
        self.stop = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        try:
            # The workers start once their zygote has imported everything and run the driver's
            # init() (it says so in this standby's log): then they are warm.
            pids = _warm_up(self.executor, self.workers, self.stop)
            print(f"workers {', '.join(map(str, sorted(pids)))} are ready", flush=True)
        except Exception as exc:  # the pool was killed under it (a job of another deployment): no matter
            print(f"warm-up stopped: {exc!r}", flush=True)
        finally:
            self.done.set()


# How long a standby leaves a queued job to the standby whose turn it is before it tries too.
TURN_GRACE_S = 1.0


def _my_turn(root: Path, compute: str, pid: int, job_key: str | None, waiting: dict[str, float], job: str) -> bool:
    """With several standbys on a compute (``min_instances``), one takes a queued job: a ready one
    preloaded for the job's deployment first, then any ready one, then the oldest. The others keep
    their warm pools (a standby of another deployment would kill its own before claiming). A
    standby that has waited TURN_GRACE_S for the chosen one tries as well: the claim is atomic."""
    now = time.monotonic()
    seen = waiting.get(job, now)
    waiting.clear()  # only the job queued now: a job resumed later is waited for afresh
    waiting[job] = seen
    live = standbys(root, compute, taking=True)
    if any(r.get("state") == "taking" and r.get("job") == job for r in live):
        return False  # another standby is claiming it
    live = [r for r in live if r.get("state") != "taking"]
    if len(live) <= 1 or now - seen >= TURN_GRACE_S:
        return True

    def rank(record: dict[str, Any]) -> tuple[bool, bool, float]:
        ready = record.get("state") == "ready"
        return (
            not (ready and job_key is not None and record.get("preload_key") == job_key),
            not ready,
            record["started"],
        )

    return min(live, key=rank)["pid"] == pid


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
    parser.add_argument("--job", default=None, help="preload init() for this job's deployment (MLflow driver)")
    parser.add_argument("--nice", type=int, default=0, help="niceness while warming up and waiting")
    parser.add_argument("--idle", type=float, default=300.0)
    parser.add_argument("--keep", type=int, default=1, help="how many standbys the compute keeps")
    args = parser.parse_args(argv)
    root = Path(args.workspace)
    if args.nice:
        os.nice(args.nice)  # before the workers start: they inherit it
        _set_session_priority(args.nice)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    me = psutil.Process()
    record_path = _folder(root, args.compute) / f"{me.pid}.json"
    record = {"pid": me.pid, "started": me.create_time(), "workers": args.workers, "state": "warming"}
    record["preload_key"] = None

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

        store = Store(root / "batchnb.db")
        preload = tuple(m for m in args.preload.split(",") if m)
        spec = _job_spec(store, args.job) if args.job else None
        key = preload_key(spec) if spec else None

        def warm_up() -> _WarmUp:
            assert pool is not None
            env = worker_env(args.workers)
            # The zygote imports and runs the driver's init() once; the workers are forked from it.
            pool.prepare(env, preload, preload_context(spec) if spec else None)
            thread = _WarmUp(pool.executor(args.workers, env), args.workers)
            thread.start()
            record["preload_key"] = key
            return thread

        pool = LocalPool(root)
        warming = warm_up()
        wal = root / "batchnb.db-wal"
        last_seen: tuple[int, int] | None = None
        last_query = 0.0
        deadline = time.monotonic() + args.idle
        waiting: dict[str, float] = {}  # queued job -> when this standby first saw it
        while time.monotonic() < deadline:
            try:
                st = wal.stat()
                seen = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                if not (root / "batchnb.db").exists():
                    return 0  # the workspace is gone
                seen = (0, 0)
            if record["state"] == "warming" and warming.done.is_set():
                if args.nice:
                    # Warm: waiting costs nothing, and a job must not wait for a niced poller.
                    _set_priority(0)
                publish("ready")
            now = time.monotonic()
            if seen != last_seen or now - last_query >= QUERY_EVERY_S:
                last_seen, last_query = seen, now
                name = _queued_job(store, args.compute)
                if name is None:
                    waiting.clear()
                    if _compute_busy(store, args.compute):
                        deadline = now + args.idle  # idle counts from the last job on the compute
                    time.sleep(POLL_S)
                    continue
                job_spec = _job_spec(store, name) or {}
                if not _my_turn(root, args.compute, me.pid, preload_key(job_spec), waiting, name):
                    time.sleep(POLL_S)
                    continue
                # No longer a standby (the job's start spawns the next), but the record says which job
                # it takes until this process ends, so no other standby tries for it meanwhile.
                record["job"] = name
                publish("taking")
                fresh = key is not None and preload_key(job_spec) != key
                warming.stop.set()  # queues nothing more; what it queued runs before the mini-batches
                if fresh:
                    # Workers that ran init() for another deployment never serve this job.
                    pool.shutdown(kill=True)
                    print(f"job {name} is of another deployment: it gets fresh workers", flush=True)
                if args.nice and not _set_priority(0):
                    print(f"not permitted to raise priority: job {name} runs at nice {args.nice}", flush=True)
                print(f"standby {me.pid} taking job {name}", flush=True)
                status = Supervisor(root, name).run()
                if status != "not-claimed":
                    return 0
                if len(standbys(root, args.compute)) >= args.keep:
                    return 0  # a cold supervisor was faster and its job started the standbys kept
                # A cold supervisor was faster: wait again, as before.
                record.pop("job", None)
                if args.nice:
                    _set_priority(args.nice)
                if fresh or not warming.done.is_set():
                    if fresh:
                        warming.join()
                    publish("warming")
                    warming = warm_up()
                else:
                    publish("ready")
            time.sleep(POLL_S)
        return 0
    finally:
        record_path.unlink(missing_ok=True)
        if pool is not None:
            pool.shutdown(kill=True)


if __name__ == "__main__":
    sys.exit(main())
