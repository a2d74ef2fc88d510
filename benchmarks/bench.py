"""batchnb's performance benchmarks: builds its own workloads, runs contenders alternately (A B A B,
because shared machines are noisy) and prints ratios measured in the same run.

    .venv/bin/python benchmarks/bench.py                 # everything, full size (tens of minutes)
    .venv/bin/python benchmarks/bench.py --quick         # tiny sizes, one round: a smoke test
    .venv/bin/python benchmarks/bench.py --only cpu,latency --rounds 3 --no-ray

Scenarios (the targets of issue 9):

* ``cpu``: a random forest saved with MLflow over Parquet files, end to end from invoke to the final
  output file, against one process (a), a joblib loky loop (b) and Ray Data (c);
* ``overhead``: 10,000 one-row files, a trivial run(), one file per mini-batch: ms per mini-batch;
* ``memory``: peak RSS of the whole job (supervisor and workers) on 1x and 10x the data;
* ``latency``: ``import batchnb``, invoke's return, first progress (a mini-batch committed, as the
  store shows it);
* ``resume``: a job killed (SIGKILL, supervisor and workers) at 50 % and resumed, against a full run;
* ``recovery``: workers killed (SIGKILL) by a scoring script on 3 mini-batches: what each crash costs
  with workers forked from the zygote against clean interpreters (``BATCHNB_WORKER_START=spawn``).

Each batchnb scenario runs on the built-in ``local`` compute (a cold pool per job; ``cpu`` also runs
it with the workspace's model cache emptied first, as the first job after registering the model)
and, where it matters, on a local compute with ``idle_time_before_scale_down`` (a warm standby supervisor; two,
``min_instances: 2``, for ``resume``, so that one is warm for the killed job). Each warm run starts,
as it would after some idle time, with the compute's standbys ready (the wait is not timed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workload  # noqa: E402

CORES = os.cpu_count() or 1
WARM = "warm-pool"
ENDED = {"Completed", "Failed", "Canceled", "Interrupted"}


# -- measuring ------------------------------------------------------------------------------------


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def run_job(client: Any, endpoint: str, data: Path, sample_rss: bool = False) -> dict[str, Any]:
    """Invoke, follow the job through the store until it ends; the timings a user would see."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    job = client.batch_endpoints.invoke(endpoint, input=str(data))
    invoke_s = time.perf_counter() - t0
    name = job["name"]
    first = None
    peak = 0
    pid = None
    while True:
        with client.store.read() as db:
            row = db.execute("SELECT status, supervisor_pid FROM jobs WHERE name = ?", (name,)).fetchone()
            done = db.execute("SELECT COUNT(*) FROM minibatches WHERE job = ? AND status = 'done'", (name,)).fetchone()[
                0
            ]
        now = time.perf_counter() - t0
        if done and first is None:
            first = now
        pid = row["supervisor_pid"] or pid
        if sample_rss and pid:
            peak = max(peak, _tree_rss(pid))
        if row["status"] in ENDED:
            break
        if row["status"] == "Queued" and now > 120:
            raise RuntimeError(f"job {name} never started")
        time.sleep(0.01 if first is None else 0.05)
    wall = time.perf_counter() - t0
    job = client.jobs.get(name)
    if job["status"] != "Completed":
        raise RuntimeError(f"job {name} ended {job['status']}: {job.get('error')}")
    if pid:  # the supervisor's CPU is ours to count once it has exited and been reaped
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(timeout=30)
        time.sleep(0.05)
    return {
        "name": name,
        "wall_s": wall,
        "invoke_s": invoke_s,
        "first_progress_s": first,
        "cpu_s": _children_cpu() - cpu0,
        "peak_rss_mb": peak / 2**20,
        "rows": job["progress"]["rows_written"] if "progress" in job else None,
    }


def run_baseline(kind: str, model: Path, files: list[Path], out: Path) -> dict[str, Any]:
    """One baseline in a fresh process: wall time from launch to exit, and its CPU seconds."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(HERE / "baselines.py"), kind, "--model", str(model), "--out", str(out)]
    cmd += ["--cores", str(CORES), *map(str, files)]
    log = out.with_suffix(".log")
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"baseline {kind} failed; see {log}:\n{log.read_text()[-2000:]}")
    rows = json.loads(log.read_text().strip().splitlines()[-1])["rows"]
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rows": rows}


def with_start_method(method: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()`` with local workers started by ``method`` (zygote or spawn): the job's supervisor
    inherits ``BATCHNB_WORKER_START`` from this process at invoke."""
    saved = os.environ.get("BATCHNB_WORKER_START")
    os.environ["BATCHNB_WORKER_START"] = method
    try:
        return run()
    finally:
        if saved is None:
            os.environ.pop("BATCHNB_WORKER_START")
        else:
            os.environ["BATCHNB_WORKER_START"] = saved


def alternate(contenders: dict[str, Callable[[], dict[str, Any]]], rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Run every contender once per round, rotating the order each round (A B C, B C A, ...)."""
    names = list(contenders)
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            result = contenders[name]()
            results[name].append(result)
            shown = ", ".join(f"{k} {v:.3f}" for k, v in result.items() if isinstance(v, float))
            print(f"  round {r + 1} {name}: {shown}", flush=True)
    return results


def med(values: list[float]) -> float:
    return statistics.median(values)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


# -- scenarios ------------------------------------------------------------------------------------


def warm_compute(client: Any, idle_s: int = 300, standbys: int = 1) -> None:
    """The warm compute: a standby left after each job (``standbys`` of them: ``min_instances``)."""
    client.computes.create_or_update(
        {
            "name": WARM,
            "type": "amlcompute",
            "min_instances": standbys,
            "max_instances": max(1, standbys),
            "idle_time_before_scale_down": idle_s,
        }
    )


def ready(client: Any, count: int = 1) -> None:
    """Wait (untimed) until the warm compute's standbys are ready, as between jobs with idle time."""
    from batchnb.compute import standby

    if not standby.wait_ready(client.workspace.root, WARM, timeout=180, count=count):
        raise RuntimeError(f"{count} standby(s) of {WARM} did not become ready")


def prime(client: Any, endpoint: str, data: Path, count: int = 1) -> None:
    """One job to leave warm standbys behind, then wait until they are ready to take the next."""
    run_job(client, endpoint, data)
    ready(client, count)


def _forest(root: Path, sizes: workload.Sizes, count: int) -> tuple[list[Path], Path]:
    """``count`` Parquet files of the CPU workload and the forest saved with MLflow (built once)."""
    files = workload.parquet_files(root / "data" / f"cpu-{count}x{sizes.rows}", count, sizes.rows)
    model = workload.mlflow_model(
        root / "models" / f"forest-{sizes.trees}-{sizes.depth}", "forest", sizes.trees, sizes.depth
    )
    return files, model


def scenario_cpu(root: Path, sizes: workload.Sizes, rounds: int, with_ray: bool, report: dict[str, Any]) -> None:
    print(
        f"\n== cpu: random forest ({sizes.trees} trees, depth {sizes.depth}) over {sizes.files} Parquet files "
        f"x {sizes.rows} rows x 16 floats, {CORES} cores",
        flush=True,
    )
    files, model = _forest(root, sizes, sizes.files)
    client = workload.workspace(root / "ws-cpu")
    warm_compute(client)
    workload.deploy_mlflow(client, model, "ep-forest", CORES, sizes.mini_batch_rows)
    workload.deploy_mlflow(client, model, "ep-forest-warm", CORES, sizes.mini_batch_rows, compute=WARM)
    data = files[0].parent
    prime(client, "ep-forest-warm", data)
    total_rows = sizes.files * sizes.rows
    cache = client.workspace.cache_dir

    def first_job() -> dict[str, Any]:
        """A cold job as the first after the model's registration: nothing in the workspace's cache."""
        shutil.rmtree(cache, ignore_errors=True)
        return run_job(client, "ep-forest", data)

    contenders: dict[str, Callable[[], dict[str, Any]]] = {
        "batchnb": lambda: run_job(client, "ep-forest", data),
        "batchnb-first": first_job,
        # The same cold job with workers started as clean interpreters instead of forked (the zygote).
        "batchnb-spawn": lambda: with_start_method("spawn", lambda: run_job(client, "ep-forest", data)),
        # ready() returns None: the lambdas wait (untimed) for the standby, then run the job.
        "batchnb-warm": lambda: ready(client) or run_job(client, "ep-forest-warm", data),
        "single (a)": lambda: run_baseline("single", model, files, root / "out-single"),
        "joblib (b)": lambda: run_baseline("joblib", model, files, root / "out-joblib"),
    }
    if with_ray:
        contenders["ray (c)"] = lambda: run_baseline("ray", model, files, root / "out-ray")
    results = alternate(contenders, rounds)
    per_cpu_a = [total_rows / r["cpu_s"] for r in results["single (a)"]]
    out: dict[str, Any] = {"rows": total_rows, "results": results}
    for variant in ("batchnb", "batchnb-first", "batchnb-spawn", "batchnb-warm"):
        runs = results[variant]
        rate = [total_rows / r["wall_s"] for r in runs]
        eff = [x / (CORES * a) for x, a in zip(rate, per_cpu_a, strict=True)]
        vs_b = [b["wall_s"] / r["wall_s"] for r, b in zip(runs, results["joblib (b)"], strict=True)]
        line = {
            "rows_per_s": med(rate),
            "vs_cores_x_single_rows_per_cpu_s": med(eff),
            "vs_single_wall": med(
                [a["wall_s"] / r["wall_s"] for r, a in zip(runs, results["single (a)"], strict=True)]
            ),
            "vs_joblib": med(vs_b),
        }
        if with_ray:
            line["vs_ray"] = med([c["wall_s"] / r["wall_s"] for r, c in zip(runs, results["ray (c)"], strict=True)])
        out[variant] = line
        print(
            f"  {variant}: {line['rows_per_s']:.0f} rows/s; "
            f"{line['vs_cores_x_single_rows_per_cpu_s']:.2f} x (cores x (a) rows per CPU-s) [target >= 0.9: "
            f"{verdict(line['vs_cores_x_single_rows_per_cpu_s'] >= 0.9)}]; "
            f"{line['vs_joblib']:.2f} x (b) [target >= 1.25: {verdict(line['vs_joblib'] >= 1.25)}]"
            + (f"; {line['vs_ray']:.2f} x (c) [target >= 3: {verdict(line['vs_ray'] >= 3)}]" if with_ray else ""),
            flush=True,
        )
    report["cpu"] = out


def scenario_overhead(root: Path, sizes: workload.Sizes, rounds: int, report: dict[str, Any]) -> None:
    n = sizes.tiny_files
    print(f"\n== overhead: {n} one-row files, trivial run(), 1 file per mini-batch, {CORES} workers", flush=True)
    data = workload.tiny_files(root / "data" / f"tiny-{n}", n)
    client = workload.workspace(root / "ws-overhead")
    warm_compute(client)
    workload.deploy_trivial(client, root, "ep-tiny", CORES, 1)
    workload.deploy_trivial(client, root, "ep-tiny-warm", CORES, 1, compute=WARM)
    prime(client, "ep-tiny-warm", workload.tiny_files(root / "data" / "tiny-4", 4))
    results = alternate(
        {
            "batchnb": lambda: run_job(client, "ep-tiny", data),
            "batchnb-warm": lambda: run_job(client, "ep-tiny-warm", data),
        },
        rounds,
    )
    out: dict[str, Any] = {"mini_batches": n, "results": results}
    for variant, runs in results.items():
        ms = med([r["wall_s"] / n * 1000 for r in runs])
        out[variant] = {"ms_per_mini_batch": ms}
        print(f"  {variant}: {ms:.2f} ms per mini-batch end to end [target <= 2: {verdict(ms <= 2)}]", flush=True)
    report["overhead"] = out


def scenario_memory(root: Path, sizes: workload.Sizes, rounds: int, report: dict[str, Any]) -> None:
    small_n, big_n = sizes.memory_files, sizes.memory_files * 10
    print(
        f"\n== memory: linear model (MLflow), {small_n} vs {big_n} Parquet files x {sizes.memory_rows} rows", flush=True
    )
    files = workload.parquet_files(root / "data" / f"mem-{big_n}x{sizes.memory_rows}", big_n, sizes.memory_rows)
    small = root / "data" / f"mem-{small_n}x{sizes.memory_rows}"
    small.mkdir(parents=True, exist_ok=True)
    for f in files[:small_n]:
        if not (small / f.name).exists():
            os.link(f, small / f.name)
    model = workload.mlflow_model(root / "models" / "linear", "linear")
    client = workload.workspace(root / "ws-memory")
    workload.deploy_mlflow(client, model, "ep-linear", CORES, sizes.mini_batch_rows)
    results = alternate(
        {
            "1x": lambda: run_job(client, "ep-linear", small, sample_rss=True),
            "10x": lambda: run_job(client, "ep-linear", files[0].parent, sample_rss=True),
        },
        rounds,
    )
    ratio = med([b["peak_rss_mb"] / a["peak_rss_mb"] for a, b in zip(results["1x"], results["10x"], strict=True)])
    report["memory"] = {"results": results, "ratio_10x_over_1x": ratio}
    print(
        f"  peak RSS 1x {med([r['peak_rss_mb'] for r in results['1x']]):.0f} MB, "
        f"10x {med([r['peak_rss_mb'] for r in results['10x']]):.0f} MB: ratio {ratio:.2f} "
        f"[target <= 1.2: {verdict(ratio <= 1.2)}]",
        flush=True,
    )


def scenario_latency(root: Path, sizes: workload.Sizes, rounds: int, report: dict[str, Any]) -> None:
    print("\n== latency: import batchnb, invoke, first progress (20 one-row files, trivial run())", flush=True)
    code = "import time; t = time.perf_counter(); import batchnb; print(time.perf_counter() - t)"
    imports = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(5)]
    data = workload.tiny_files(root / "data" / "tiny-20", 20)
    client = workload.workspace(root / "ws-latency")
    warm_compute(client)
    workload.deploy_trivial(client, root, "ep-lat", CORES, 1)
    workload.deploy_trivial(client, root, "ep-lat-warm", CORES, 1, compute=WARM)
    prime(client, "ep-lat-warm", data)

    def warm() -> dict[str, Any]:
        result = run_job(client, "ep-lat-warm", data)
        from batchnb.compute import standby

        standby.wait_ready(client.workspace.root, WARM, timeout=120)  # the next job finds it warm again
        return result

    results = alternate({"cold": lambda: run_job(client, "ep-lat", data), "warm": warm}, max(rounds, 3))
    out: dict[str, Any] = {"import_batchnb_s": med(imports), "results": results}
    print(f"  import batchnb: {med(imports) * 1000:.0f} ms [target < 500: {verdict(med(imports) < 0.5)}]")
    for variant, runs in results.items():
        inv, first = med([r["invoke_s"] for r in runs]), med([r["first_progress_s"] for r in runs])
        out[variant] = {"invoke_s": inv, "first_progress_s": first}
        print(
            f"  {variant}: invoke returns in {inv * 1000:.0f} ms [target < 300: {verdict(inv < 0.3)}]; "
            f"first progress after {first:.2f} s [target <= 2: {verdict(first <= 2)}]",
            flush=True,
        )
    report["latency"] = out


def _kill_at_half(client: Any, name: str) -> None:
    while True:
        with client.store.read() as db:
            total, done = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(status = 'done'), 0) FROM minibatches WHERE job = ?", (name,)
            ).fetchone()
            pid = db.execute("SELECT supervisor_pid FROM jobs WHERE name = ?", (name,)).fetchone()[0]
        if total and done * 2 >= total:
            break
        time.sleep(0.02)
    proc = psutil.Process(pid)
    victims = [proc, *proc.children(recursive=True)]
    for p in victims:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(victims, timeout=10)
    while client.jobs.get(name)["status"] != "Interrupted":
        time.sleep(0.05)


def _wait_ended(client: Any, name: str, t0: float) -> tuple[str, float | None]:
    """Follow the job through the store as :func:`run_job` does (same polling), until it ends.
    Returns its status and when (since ``t0``) a mini-batch was first committed by this run."""
    with client.store.read() as db:
        before = db.execute("SELECT COUNT(*) FROM minibatches WHERE job = ? AND status = 'done'", (name,)).fetchone()[0]
    first = None
    while True:
        with client.store.read() as db:
            status = db.execute("SELECT status FROM jobs WHERE name = ?", (name,)).fetchone()[0]
            done = db.execute("SELECT COUNT(*) FROM minibatches WHERE job = ? AND status = 'done'", (name,)).fetchone()[
                0
            ]
        if first is None and done > before:
            first = time.perf_counter() - t0
        if status in ENDED:
            return str(client.jobs.get(name)["status"]), first
        time.sleep(0.01 if first is None else 0.05)


def scenario_resume(root: Path, sizes: workload.Sizes, rounds: int, report: dict[str, Any]) -> None:
    print(
        f"\n== resume: the forest over {sizes.resume_files} files x {sizes.rows} rows, killed (supervisor and "
        "workers, SIGKILL) at 50 % and resumed, vs a full run; cold (local) and warm (a compute keeping two standbys)",
        flush=True,
    )
    files, model = _forest(root, sizes, sizes.resume_files)
    client = workload.workspace(root / "ws-resume")
    # Two standbys: a job takes one, and the other is warm for that job if it is killed and resumed.
    warm_compute(client, standbys=2)
    workload.deploy_mlflow(client, model, "ep-resume", CORES, sizes.mini_batch_rows // 2)
    workload.deploy_mlflow(client, model, "ep-resume-warm", CORES, sizes.mini_batch_rows // 2, compute=WARM)
    data = files[0].parent
    prime(client, "ep-resume-warm", data, count=2)

    def killed_and_resumed(endpoint: str) -> dict[str, Any]:
        job = client.batch_endpoints.invoke(endpoint, input=str(data))
        _kill_at_half(client, job["name"])
        t0 = time.perf_counter()
        client.jobs.resume(job["name"])
        status, first = _wait_ended(client, job["name"], t0)
        wall = time.perf_counter() - t0
        if status != "Completed":
            raise RuntimeError(f"resumed job ended {status}")
        with client.store.read() as db:
            pid = db.execute("SELECT supervisor_pid FROM jobs WHERE name = ?", (job["name"],)).fetchone()[0]
        log = client.workspace.root / "standby" / WARM / "standby.log"
        by_standby = log.exists() and f"standby {pid} taking job {job['name']}" in log.read_text(errors="replace")
        return {"wall_s": wall, "first_progress_s": first or wall, "served_by_standby": float(by_standby)}

    results = alternate(
        {
            "full": lambda: run_job(client, "ep-resume", data),
            "resume": lambda: killed_and_resumed("ep-resume"),
            "full-warm": lambda: ready(client, 2) or run_job(client, "ep-resume-warm", data),
            "resume-warm": lambda: ready(client, 2) or killed_and_resumed("ep-resume-warm"),
        },
        rounds,
    )
    out: dict[str, Any] = {"results": results}
    for variant, full, resumed in (("cold", "full", "resume"), ("warm", "full-warm", "resume-warm")):
        pairs = zip(results[full], results[resumed], strict=True)
        ratio = med([r["wall_s"] / f["wall_s"] for f, r in pairs])
        # Where a resume's time goes: what it pays before its first mini-batch (a new supervisor,
        # workers, imports, the model load) is paid in full however much work is left.
        first = med([r["first_progress_s"] for r in results[resumed]])
        out[variant] = {"ratio": ratio, "resume_first_progress_s": first}
        print(
            f"  {variant}: resume after a kill at 50 %: {ratio:.2f} x a full run [target <= 0.55: "
            f"{verdict(ratio <= 0.55)}]; the resume's first mini-batch after {first:.2f} s, the full "
            f"run's after {med([f['first_progress_s'] for f in results[full]]):.2f} s",
            flush=True,
        )
    served = sum(r["served_by_standby"] for r in results["resume-warm"])
    print(f"  warm resumes served by the standby: {served:.0f} of {len(results['resume-warm'])}", flush=True)
    out["ratio"] = out["cold"]["ratio"]
    report["resume"] = out


def scenario_recovery(root: Path, sizes: workload.Sizes, rounds: int, report: dict[str, Any]) -> None:
    crashes = sizes.crashes
    print(
        f"\n== recovery: an Azure-style scoring script loading the forest with MLflow over {sizes.resume_files} "
        f"files x {sizes.rows} rows; {crashes} mini-batches kill their worker (SIGKILL) on their first attempt. "
        "Workers forked from the zygote vs clean interpreters (BATCHNB_WORKER_START=spawn)",
        flush=True,
    )
    files, model = _forest(root, sizes, sizes.resume_files)
    client = workload.workspace(root / "ws-recovery")
    rows = sizes.mini_batch_rows // 2
    crash_dir = workload.deploy_crashing(client, root, model, "ep-crash", CORES, rows, crashes)
    calm_dir = workload.deploy_crashing(client, root, model, "ep-calm", CORES, rows, 0)
    data = files[0].parent

    def run(endpoint: str, folder: Path, method: str) -> dict[str, Any]:
        for slot in folder.iterdir():
            slot.unlink()
        return with_start_method(method, lambda: run_job(client, endpoint, data))

    results = alternate(
        {
            "zygote": lambda: run("ep-crash", crash_dir, "zygote"),
            "spawn": lambda: run("ep-crash", crash_dir, "spawn"),
            "zygote-no-crash": lambda: run("ep-calm", calm_dir, "zygote"),
            "spawn-no-crash": lambda: run("ep-calm", calm_dir, "spawn"),
        },
        rounds,
    )
    out: dict[str, Any] = {"crashes": crashes, "results": results}
    for method in ("zygote", "spawn"):
        pairs = zip(results[method], results[f"{method}-no-crash"], strict=True)
        out[method] = {"s_per_crash": med([(c["wall_s"] - n["wall_s"]) / crashes for c, n in pairs])}
    pairs = zip(results["zygote"], results["spawn"], strict=True)
    out["spawn_over_zygote_wall"] = med([s["wall_s"] / z["wall_s"] for z, s in pairs])
    pairs = zip(results["zygote-no-crash"], results["spawn-no-crash"], strict=True)
    out["spawn_over_zygote_wall_no_crash"] = med([s["wall_s"] / z["wall_s"] for z, s in pairs])
    print(
        f"  each crash costs {out['zygote']['s_per_crash']:.2f} s with the zygote, "
        f"{out['spawn']['s_per_crash']:.2f} s with clean interpreters; the job with {crashes} crashes takes "
        f"{out['spawn_over_zygote_wall']:.2f} x as long with clean interpreters "
        f"({out['spawn_over_zygote_wall_no_crash']:.2f} x without crashes)",
        flush=True,
    )
    report["recovery"] = out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one round (a smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each A B comparison (default 2)")
    parser.add_argument("--only", default="latency,overhead,cpu,memory,resume,recovery")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Data baseline")
    parser.add_argument("--work", type=Path, default=None, help="where to build workloads (kept for reuse)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = workload.Sizes.quick() if args.quick else workload.Sizes()
    rounds = args.rounds or (1 if args.quick else 2)
    work = args.work or Path(tempfile.mkdtemp(prefix="batchnb-bench-"))
    with_ray = not args.no_ray
    if with_ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("ray is not installed (pip install 'batchnb[bench]'): skipping the Ray Data baseline")
            with_ray = False
    print(f"batchnb benchmarks in {work}; {CORES} cores; load average {os.getloadavg()}", flush=True)
    report: dict[str, Any] = {"cores": CORES, "quick": args.quick, "rounds": rounds}
    chosen = args.only.split(",")
    started = time.time()
    try:
        if "latency" in chosen:
            scenario_latency(work, sizes, rounds, report)
        if "overhead" in chosen:
            scenario_overhead(work, sizes, rounds, report)
        if "cpu" in chosen:
            scenario_cpu(work, sizes, rounds, with_ray, report)
        if "memory" in chosen:
            scenario_memory(work, sizes, rounds, report)
        if "resume" in chosen:
            scenario_resume(work, sizes, rounds, report)
        if "recovery" in chosen:
            scenario_recovery(work, sizes, rounds, report)
    finally:
        from batchnb.compute import standby

        for ws in work.glob("ws-*"):
            standby.stop_all(ws)
    report["elapsed_s"] = time.time() - started
    report["load_average_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    print(f"\ndone in {report['elapsed_s']:.0f} s; load average at the end {os.getloadavg()}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
