"""The compute agent's benchmarks (issue 17): a scoring script that loads an MLflow scikit-learn
forest in ``init()`` with ``mlflow.pyfunc.load_model``, over Parquet files of 16 float columns, one
Parquet output; run by ``bench.py --only agent`` (or one of :data:`SCENARIOS`).

* ``throughput``: batchnb warm (a compute with ``idle_time_before_scale_down``, after a first,
  untimed job) and cold (the built-in ``local``: a new agent per job) against the same
  ``joblib.Parallel`` loop re-run in a live Python process (warm) and run by a fresh ``python``
  (cold), and *the limit*: cores × one process's rows per CPU-second with the model already
  loaded. batchnb is compared at the loop's unit of work, one file per mini-batch (as Azure's
  ``mini_batch_size: 1`` over a list of files); a second warm compute runs the job in the smaller
  mini-batches the other scenarios use (``Sizes.mini_batch_rows``), in the same rounds, to show
  what the smaller unit costs;
* ``concurrent``: two jobs (half the files each) submitted together on the warm compute: their
  combined rate, and when each first made progress;
* ``worker-kill``: one worker SIGKILLed when half of a warm job is done, against an unkilled run;
* ``agent-kill``: a job of about ``Sizes.agent_kill_s`` at the limit, its agent SIGKILLed at 50 %
  and ``computes.start`` right after: from the kill to Completed, against a full run.

``throughput`` and ``concurrent`` measure the limit again, alternating with their contenders, and
no rate may pass it: if one does, the limit is measured wrong, and the scenario says so.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import workload
from measure import (
    CORES,
    LiveBaseline,
    agent_pid,
    alternate,
    follow,
    med,
    run_baseline,
    run_job,
    verdict,
    wait_fraction,
    worker_pids,
)

SCENARIOS = ("throughput", "concurrent", "worker-kill", "agent-kill")
# The warm computes: one for mini-batches of Sizes.mini_batch_rows (every scenario), one for a
# file per mini-batch (throughput's comparison with the loop). Each keeps its own warm workers.
WARM, WARM_FILES = "warm", "warm-files"
IDLE_S = 600  # a warm compute keeps its agent this long after its last job
COLD_EP, WARM_EP, WARM_FILES_EP = "ep-cold", "ep-warm", "ep-warm-files"


@dataclass
class Setup:
    """The workspace, the model, the scoring script and the input files, made once per run."""

    root: Path
    sizes: workload.Sizes
    client: Any
    model: Path
    code: Path
    files: list[Path]

    @property
    def data(self) -> Path:
        return self.files[0].parent

    def subset(self, name: str, files: list[Path]) -> Path:
        """A folder of some of the input files (hard links)."""
        folder = self.root / "data" / f"{self.data.name}-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in files:
            if not (folder / f.name).exists():
                os.link(f, folder / f.name)
        return folder

    def rows(self, files: list[Path] | None = None) -> int:
        return len(files if files is not None else self.files) * self.sizes.rows

    def limit(self) -> dict[str, Any]:
        """One measure of the limit: the scoring script in one process, its rows per CPU-second."""
        s = self.sizes
        args = [
            "limit",
            "--model",
            str(self.model),
            "--code",
            str(self.code),
            "--out",
            str(self.root / "limit.parquet"),
        ]
        args += ["--batch-rows", str(s.mini_batch_rows), *map(str, self.files[: s.limit_files])]
        result = run_baseline(args, self.root / "limit.log")
        return {**result, "limit_rows_per_s": CORES * result["rows_per_cpu_s"]}

    def warm_job(self, data: Path | None = None, endpoint: str = WARM_EP) -> dict[str, Any]:
        return checked(run_job(self.client, endpoint, data or self.data), self.rows(_files(data or self.data)))


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet"))


def checked(result: dict[str, Any], rows: int) -> dict[str, Any]:
    """``result``, once its rows are the input's: a run that lost or duplicated rows is not timed."""
    if result.get("rows") != rows:
        raise RuntimeError(f"{result.get('name', 'a run')} wrote {result.get('rows')} rows, not {rows}")
    return result


def setup(root: Path, sizes: workload.Sizes) -> Setup:
    files = workload.parquet_files(root / "data" / f"forest-{sizes.files}x{sizes.rows}", sizes.files, sizes.rows)
    model = workload.mlflow_model(
        root / "models" / f"forest-{sizes.trees}-{sizes.depth}", "forest", sizes.trees, sizes.depth
    )
    client = workload.workspace(root / "ws-agent")
    for compute in (WARM, WARM_FILES):
        client.computes.create_or_update({"name": compute, "type": "amlcompute", "idle_time_before_scale_down": IDLE_S})
    # One file per mini-batch: the joblib loop's task.
    code = workload.deploy_scoring(client, root, model, COLD_EP, CORES, sizes.rows, compute=None)
    workload.deploy_scoring(client, root, model, WARM_FILES_EP, CORES, sizes.rows, compute=WARM_FILES)
    workload.deploy_scoring(client, root, model, WARM_EP, CORES, sizes.mini_batch_rows, compute=WARM)
    return Setup(root, sizes, client, model, code, files)


def limit_of(rounds: list[dict[str, Any]]) -> float:
    """The limit over rounds: each way of doing the work (script, whole files) gets its median, and
    the better median is the limit. The median of each round's better way would be biased upward:
    the larger of two noisy figures is on average larger than either's typical value."""
    ways = ("script_rows_per_cpu_s", "files_rows_per_cpu_s")
    return CORES * max(med([r[way] for r in rounds]) for way in ways)


def _limit_line(rates: dict[str, float], limit: float) -> None:
    for name, rate in rates.items():
        print(f"  {name}: {rate:,.0f} rows/s = {rate / limit:.2f} x the limit", flush=True)
    over = [name for name, rate in rates.items() if rate > limit]
    if over:
        print(f"  WARNING: {', '.join(over)} above 1.0 x the limit: the limit is measured wrong", flush=True)


def _ratio(results: dict[str, list[dict[str, Any]]], slow: str, fast: str) -> float:
    """The median over rounds of ``slow``'s wall time over ``fast``'s (above 1: ``fast`` is faster)."""
    pairs = zip(results[slow], results[fast], strict=True)
    return med([s["wall_s"] / f["wall_s"] for s, f in pairs])


def scenario_throughput(env: Setup, rounds: int, report: dict[str, Any]) -> None:
    s = env.sizes
    rows = env.rows()
    print(
        f"\n== throughput: forest ({s.trees} trees, depth {s.depth}) loaded by the scoring script with "
        f"mlflow.pyfunc, {s.files} Parquet files x {s.rows} rows x 16 floats, one Parquet output, {CORES} cores",
        flush=True,
    )
    small = f"batchnb warm, {s.mini_batch_rows:,}-row mini-batches"
    # Untimed: each warm compute's agent starts, its workers load the model.
    env.warm_job(endpoint=WARM_FILES_EP)
    env.warm_job()
    base = ["--model", str(env.model), "--cores", str(CORES)]
    live = LiveBaseline(
        [*base, "--out", str(env.root / "out-live.parquet"), *map(str, env.files)], env.root / "live.log"
    )
    fresh = [*base, "--out", str(env.root / "out-fresh.parquet"), *map(str, env.files)]
    contenders: dict[str, Callable[[], dict[str, Any]]] = {
        "limit": env.limit,
        "batchnb warm": lambda: env.warm_job(endpoint=WARM_FILES_EP),
        "joblib live": lambda: checked(live.run(), rows),
        small: env.warm_job,
        "batchnb cold": lambda: checked(run_job(env.client, COLD_EP, env.data, cold=True), rows),
        "joblib fresh": lambda: checked(run_baseline(["cold", *fresh], env.root / "fresh.log"), rows),
    }
    try:
        pairs = [("batchnb warm", "joblib live"), ("batchnb cold", "joblib fresh")]
        results = alternate(contenders, rounds, pairs)
    finally:
        live.close()
    limit = limit_of(results["limit"])
    rates = {name: rows / med([r["wall_s"] for r in results[name]]) for name in contenders if name != "limit"}
    out: dict[str, Any] = {"rows": rows, "limit_rows_per_s": limit, "rows_per_s": rates, "results": results}
    out["warm_vs_limit"] = rates["batchnb warm"] / limit
    out["warm_vs_live"] = _ratio(results, "joblib live", "batchnb warm")
    out["warm_small_vs_limit"] = rates[small] / limit
    out["warm_small_vs_live"] = rates[small] / rates["joblib live"]
    out["cold_vs_fresh"] = _ratio(results, "joblib fresh", "batchnb cold")
    print(f"  the limit: {CORES} cores x {limit / CORES:,.0f} rows per CPU-second = {limit:,.0f} rows/s", flush=True)
    _limit_line(rates, limit)
    print(
        f"  warm, a file per mini-batch: {out['warm_vs_limit']:.2f} x the limit "
        f"[target >= 0.93: {verdict(out['warm_vs_limit'] >= 0.93)}]; "
        f"{out['warm_vs_live']:.2f} x the live joblib loop [target >= 1.0: {verdict(out['warm_vs_live'] >= 1.0)}]\n"
        f"  warm, {s.mini_batch_rows:,}-row mini-batches: {out['warm_small_vs_limit']:.2f} x the limit, "
        f"{out['warm_small_vs_live']:.2f} x the live joblib loop (medians of rates: not paired with it)\n"
        f"  cold: {out['cold_vs_fresh']:.2f} x the joblib loop in a fresh python "
        f"[target >= 1.05: {verdict(out['cold_vs_fresh'] >= 1.05)}]",
        flush=True,
    )
    report["throughput"] = out


def scenario_concurrent(env: Setup, rounds: int, report: dict[str, Any]) -> None:
    half = len(env.files) // 2 or 1
    parts = [env.files[:half], env.files[half:] or env.files[:half]]
    folders = [env.subset("a", parts[0]), env.subset("b", parts[1])]
    rows = env.rows(parts[0]) + env.rows(parts[1])
    print(f"\n== concurrent: two jobs of {half} file(s) each submitted together on the warm compute", flush=True)
    env.warm_job()

    def together() -> dict[str, Any]:
        t0 = time.perf_counter()
        names = [env.client.batch_endpoints.invoke(WARM_EP, input=str(f))["name"] for f in folders]
        seen = follow(env.client, names, t0)
        for name, part in zip(names, parts, strict=True):
            checked({"name": name, "rows": env.client.jobs.get(name)["progress"]["rows_written"]}, env.rows(part))
        wall = max(seen["ended"].values())
        first = [seen["first"][n] or wall for n in names]
        return {"wall_s": wall, "first_progress_1_s": first[0], "first_progress_2_s": first[1]}

    results = alternate({"limit": env.limit, "two jobs": together}, rounds)
    limit = limit_of(results["limit"])
    runs = results["two jobs"]
    rate = rows / med([r["wall_s"] for r in runs])
    # Both progressing from the start: neither job's first mini-batch waits for the other job.
    latest = med([max(r["first_progress_1_s"], r["first_progress_2_s"]) / r["wall_s"] for r in runs])
    out = {"rows": rows, "limit_rows_per_s": limit, "combined_vs_limit": rate / limit, "results": results}
    out["later_first_progress_of_wall"] = latest
    _limit_line({"two jobs combined": rate}, limit)
    print(
        f"  combined: {rate / limit:.2f} x the limit [target >= 0.9: {verdict(rate / limit >= 0.9)}]; "
        f"first progress: job 1 after {med([r['first_progress_1_s'] for r in runs]):.2f} s, job 2 after "
        f"{med([r['first_progress_2_s'] for r in runs]):.2f} s, of {med([r['wall_s'] for r in runs]):.2f} s "
        f"[both in the first quarter: {verdict(latest <= 0.25)}]",
        flush=True,
    )
    report["concurrent"] = out


def scenario_worker_kill(env: Setup, rounds: int, report: dict[str, Any]) -> None:
    print("\n== worker-kill: one worker SIGKILLed at 50 % of a warm job, against an unkilled run", flush=True)
    env.warm_job()

    def killed() -> dict[str, Any]:
        t0 = time.perf_counter()
        name = env.client.batch_endpoints.invoke(WARM_EP, input=str(env.data))["name"]
        wait_fraction(env.client, name, 0.5)
        victims = worker_pids(agent_pid(env.client, WARM))
        if not victims:
            raise RuntimeError("the warm compute's agent has no worker to kill")
        os.kill(victims[0], signal.SIGKILL)
        seen = follow(env.client, [name], t0)
        rows = env.client.jobs.get(name)["progress"]["rows_written"]
        return checked({"name": name, "wall_s": seen["ended"][name], "rows": rows}, env.rows())

    results = alternate({"unkilled": env.warm_job, "worker killed": killed}, rounds)
    cost = med([k["wall_s"] - u["wall_s"] for u, k in zip(results["unkilled"], results["worker killed"], strict=True)])
    report["worker_kill"] = {"cost_s": cost, "results": results}
    print(f"  a killed worker costs {cost:.2f} s of wall time [target <= 1: {verdict(cost <= 1.0)}]", flush=True)


def _workers_of(env: Setup, agent: int) -> list[psutil.Process]:
    """The agent's workers: its zygote's children, whether it started that zygote or adopted it."""
    found = set(worker_pids(agent))
    record = env.client.workspace.root / "run" / f"zygote-{WARM}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, psutil.Error):
        found |= {child.pid for child in psutil.Process(json.loads(record.read_text())["pid"]).children()}
    return [psutil.Process(pid) for pid in sorted(found) if psutil.pid_exists(pid)]


def scenario_agent_kill(env: Setup, rounds: int, report: dict[str, Any]) -> None:
    s = env.sizes
    # The limit, to size the job: the throughput scenario's if it ran, else measured now (untimed).
    limit = report.get("throughput", {}).get("limit_rows_per_s") or env.limit()["limit_rows_per_s"]
    count = min(s.agent_kill_max_files, max(1, math.ceil(s.agent_kill_s * limit / s.rows)))
    # More files than the others use if need be: the same content, in a folder of their own.
    pool = env.root / "data" / f"forest-{s.rows}-agent-kill"
    files = workload.parquet_files(pool, count, s.rows)
    data = env.subset(f"agent-kill-{count}", files)
    print(
        f"\n== agent-kill: {count} files (about {env.rows(files) / limit:.0f} s at the limit) on the warm compute, "
        "its agent SIGKILLed at 50 % and computes.start right after: kill to Completed, against a full run",
        flush=True,
    )
    env.warm_job(data)

    def killed() -> dict[str, Any]:
        name = env.client.batch_endpoints.invoke(WARM_EP, input=str(data))["name"]
        wait_fraction(env.client, name, 0.5)
        pid = agent_pid(env.client, WARM)
        # The agent and its workers; its zygote outlives it, for the next agent to adopt.
        family = [psutil.Process(pid), *_workers_of(env, pid)]
        os.kill(pid, signal.SIGKILL)
        t0 = time.perf_counter()
        # Until a SIGKILLed process is gone (which takes a moment), it still holds its compute:
        # computes.start would find it alive and return, and no agent would be left to resume.
        psutil.wait_procs(family[:1], timeout=10)
        env.client.computes.start(WARM)
        seen = follow(env.client, [name], t0, timeout=600, through_interrupted=True)
        _, left = psutil.wait_procs(family, timeout=10)
        if left:
            print(f"  WARNING: the killed agent's processes {[p.pid for p in left]} outlived it", flush=True)
        rows = env.client.jobs.get(name)["progress"]["rows_written"]
        result = {"name": name, "wall_s": seen["ended"][name], "rows": rows}
        if seen["first"][name] is not None:  # None: every mini-batch was committed before the kill
            result["first_progress_s"] = seen["first"][name]
        return checked(result, env.rows(files))

    results = alternate({"full": lambda: env.warm_job(data), "agent killed": killed}, rounds)
    ratio = 1 / _ratio(results, "full", "agent killed")
    firsts = [r["first_progress_s"] for r in results["agent killed"] if "first_progress_s" in r]
    first = med(firsts) if firsts else None
    full = med([r["wall_s"] for r in results["full"]])
    report["agent_kill"] = {"files": count, "ratio": ratio, "resume_first_progress_s": first, "results": results}
    after = f"{first:.2f} s after it" if first is not None else "never: all were committed before it"
    print(
        f"  kill to Completed: {ratio:.2f} x a full run of {full:.2f} s [target <= 0.55: {verdict(ratio <= 0.55)}]; "
        f"the first mini-batch after the kill came {after}",
        flush=True,
    )


RUNNERS = {
    "throughput": scenario_throughput,
    "concurrent": scenario_concurrent,
    "worker-kill": scenario_worker_kill,
    "agent-kill": scenario_agent_kill,
}


def run(root: Path, sizes: workload.Sizes, rounds: int, chosen: list[str], report: dict[str, Any]) -> None:
    """The chosen scenarios (``agent``: all of them), in one workspace."""
    wanted = [name for name in SCENARIOS if name in chosen or "agent" in chosen]
    if not wanted:
        return
    env = setup(root, sizes)
    for name in wanted:
        RUNNERS[name](env, rounds, report)
