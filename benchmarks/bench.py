"""batchnb's performance benchmarks: builds its own workloads, runs contenders alternately (A B A B,
because shared machines are noisy) and prints ratios measured in the same run.

    .venv/bin/python benchmarks/bench.py                 # everything, full size
    .venv/bin/python benchmarks/bench.py --quick         # tiny sizes, one round: a smoke test
    .venv/bin/python benchmarks/bench.py --only agent --rounds 3

Scenarios:

* ``agent`` (issue 17; :mod:`agent`, where each is described): ``throughput``, ``concurrent``,
  ``worker-kill`` and ``agent-kill``, an MLflow forest loaded by a scoring script over Parquet files,
  against joblib loops and the limit (cores × one process's rows per CPU-second);
* ``overhead``: 10,000 one-row files, a trivial run(), one file per mini-batch: ms per mini-batch;
* ``memory``: peak RSS of the whole job (the agent and its workers) on 1x and 10x the data;
* ``latency``: ``import batchnb``, invoke's return, first progress (a mini-batch committed, as the
  store shows it);
* ``recovery``: workers killed (SIGKILL) by a scoring script on 3 mini-batches: what each crash costs
  with workers forked from the zygote against clean interpreters (``BATCHNB_WORKER_START=spawn``);
* ``storage`` (issue 22; :mod:`storage`): ``storage-files``, blobs in Azurite read in file mode against
  a joblib loop reading them with the same library (adlfs), and ``storage-tabular``, one large
  Parquet blob in tabular mode spread over every worker;
* ``environments`` (issue 23; :mod:`environments`): ``env-build``, the build time of a small and a
  large environment from uv's warm cache, and ``env-reuse``, the second job of a deployment in a
  built environment against the same job without one.

"Cold" is the built-in ``local`` compute: its agent starts with the job and exits after it (the
next cold job waits, untimed, until it has). "Warm" is a local compute with
``idle_time_before_scale_down``, after a first, untimed job: its agent and warm workers wait for
the next job. Every compute's agent is stopped (``computes.stop``) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import agent  # noqa: E402
import environments  # noqa: E402
import storage  # noqa: E402
import workload  # noqa: E402
from measure import CORES, alternate, med, run_job, verdict, with_start_method  # noqa: E402

WARM = "warm-pool"


def warm_compute(client: Any, idle_s: int = 300) -> None:
    """The warm compute: its agent keeps its workers ``idle_s`` after its last job."""
    client.computes.create_or_update({"name": WARM, "type": "amlcompute", "idle_time_before_scale_down": idle_s})


def stop_agents(work: Path) -> None:
    """Stop the agent of every compute of every workspace the benchmarks made."""
    from batchnb import BatchClient

    for root in work.glob("ws-*"):
        client = BatchClient(root)
        for compute in client.computes.list():
            client.computes.stop(compute["name"])


# -- scenarios ------------------------------------------------------------------------------------


def scenario_overhead(root: Path, sizes: workload.Sizes, rounds: int, report: dict[str, Any]) -> None:
    n = sizes.tiny_files
    print(f"\n== overhead: {n} one-row files, trivial run(), 1 file per mini-batch, {CORES} workers", flush=True)
    data = workload.tiny_files(root / "data" / f"tiny-{n}", n)
    client = workload.workspace(root / "ws-overhead")
    warm_compute(client)
    workload.deploy_trivial(client, root, "ep-tiny", CORES, 1)
    workload.deploy_trivial(client, root, "ep-tiny-warm", CORES, 1, compute=WARM)
    run_job(client, "ep-tiny-warm", workload.tiny_files(root / "data" / "tiny-4", 4))  # untimed: warms it
    results = alternate(
        {
            "batchnb": lambda: run_job(client, "ep-tiny", data, cold=True),
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
            "1x": lambda: run_job(client, "ep-linear", small, sample_rss=True, cold=True),
            "10x": lambda: run_job(client, "ep-linear", files[0].parent, sample_rss=True, cold=True),
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
    run_job(client, "ep-lat-warm", data)  # untimed: the warm compute's agent starts
    results = alternate(
        {
            "cold": lambda: run_job(client, "ep-lat", data, cold=True),
            "warm": lambda: run_job(client, "ep-lat-warm", data),
        },
        max(rounds, 3),
    )
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


def scenario_recovery(root: Path, sizes: workload.Sizes, rounds: int, report: dict[str, Any]) -> None:
    crashes = sizes.crashes
    print(
        f"\n== recovery: an Azure-style scoring script loading the forest with MLflow over {sizes.recovery_files} "
        f"files x {sizes.rows} rows; {crashes} mini-batches kill their worker (SIGKILL) on their first attempt. "
        "Workers forked from the zygote vs clean interpreters (BATCHNB_WORKER_START=spawn)",
        flush=True,
    )
    files = workload.parquet_files(
        root / "data" / f"recovery-{sizes.recovery_files}x{sizes.rows}", sizes.recovery_files, sizes.rows
    )
    model = workload.mlflow_model(
        root / "models" / f"forest-{sizes.trees}-{sizes.depth}", "forest", sizes.trees, sizes.depth
    )
    client = workload.workspace(root / "ws-recovery")
    rows = sizes.mini_batch_rows // 2
    crash_dir = workload.deploy_crashing(client, root, model, "ep-crash", CORES, rows, crashes)
    calm_dir = workload.deploy_crashing(client, root, model, "ep-calm", CORES, rows, 0)
    data = files[0].parent

    def run(endpoint: str, folder: Path, method: str) -> dict[str, Any]:
        for slot in folder.iterdir():
            slot.unlink()
        return with_start_method(method, lambda: run_job(client, endpoint, data, cold=True))

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
    parser.add_argument(
        "--only",
        default="latency,overhead,agent,memory,recovery,storage,environments",
        help="scenarios, comma-separated: agent (or some of " + ", ".join(agent.SCENARIOS) + "), "
        "latency, overhead, memory, recovery, storage (or some of " + ", ".join(storage.SCENARIOS) + "), "
        "environments (or some of " + ", ".join(environments.SCENARIOS) + ")",
    )
    parser.add_argument("--work", type=Path, default=None, help="where to build workloads (kept for reuse)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--mini-batch-rows",
        type=int,
        default=None,
        help="the agent scenarios' mini-batch size in rows (default 100,000; throughput also runs a file per "
        "mini-batch, the joblib loop's task)",
    )
    args = parser.parse_args(argv)
    sizes = workload.Sizes.quick() if args.quick else workload.Sizes()
    if args.mini_batch_rows:
        sizes.mini_batch_rows = args.mini_batch_rows
    rounds = args.rounds or (1 if args.quick else 2)
    work = args.work or Path(tempfile.mkdtemp(prefix="batchnb-bench-"))
    print(f"batchnb benchmarks in {work}; {CORES} cores; load average {os.getloadavg()}", flush=True)
    report: dict[str, Any] = {"cores": CORES, "quick": args.quick, "rounds": rounds, "sizes": vars(sizes)}
    chosen = args.only.split(",")
    started = time.time()
    try:
        if "latency" in chosen:
            scenario_latency(work, sizes, rounds, report)
        if "overhead" in chosen:
            scenario_overhead(work, sizes, rounds, report)
        agent.run(work, sizes, rounds, chosen, report)
        if "memory" in chosen:
            scenario_memory(work, sizes, rounds, report)
        if "recovery" in chosen:
            scenario_recovery(work, sizes, rounds, report)
        storage.run(work, sizes, rounds, chosen, report)
        environments.run(work, sizes, rounds, chosen, report)
    finally:
        stop_agents(work)
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
