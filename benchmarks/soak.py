"""A soak test of the job engine: many small jobs under crashes, cancels and resumes, checked row by row.

    .venv/bin/python benchmarks/soak.py                          # 200 jobs over about 10 minutes
    .venv/bin/python benchmarks/soak.py --jobs 20 --minutes 2    # a short run
    .venv/bin/python benchmarks/soak.py --jobs 200 --minutes 10 --seed 7 --keep

Not run in CI. It builds its own workspace under a temporary folder with two computes, the built-in
``local`` (its agent exits when it has no job) and a second local one (``soak-two``, an
``amlcompute`` whose agent keeps its workers warm for a minute after its last job), one deployment
on each, and input folders of 5 to 40 one-row CSV files whose rows are unique across the
whole run. Then, over ``--minutes``:

* jobs are invoked at a steady pace, several at once from different threads;
* every ``--chaos-interval`` seconds something goes wrong: a random worker of a random running job
  is SIGKILLed (most often), or the agent running a job is SIGKILLed (its jobs turn Interrupted,
  and ``computes.start`` right after starts the agent that resumes them by itself), or a job is
  canceled (each job at most ``MAX_STOPS_PER_JOB`` times);
* every Canceled job is resumed, and every Interrupted one that no agent has taken back, until it
  ends Completed (or Failed).

At the end it prints, per job and in total, the rows in (input files), the rows out (output lines),
the duplicated rows and the lost ones, and exits 1 unless every job Completed with exactly its
rows: none lost, none duplicated, none foreign.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import random
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ENDPOINT = "ep-soak"
COMPUTES = {"blue": "local", "green": "soak-two"}
# A job is stopped (its agent killed, or canceled) at most this often, or the last jobs
# running, which get all the trouble, might never finish.
MAX_STOPS_PER_JOB = 4

SCRIPT = """
import os, time
import pandas as pd
def init():
    pass
def run(mini_batch):
    time.sleep(float(os.environ["SLEEP"]))
    return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
"""


@dataclass
class Tracked:
    """One invoked job and what happened to it."""

    name: str
    deployment: str
    expected: list[str]
    status: str = "Queued"
    resumes: int = 0
    chaos: collections.Counter[str] = field(default_factory=collections.Counter)
    got: list[str] = field(default_factory=list)


def _workspace(root: Path, rng: random.Random, datasets: int) -> tuple[Any, list[tuple[Path, list[str]]]]:
    """A workspace with the two deployments, and ``datasets`` input folders with their expected lines."""
    from batchnb import BatchClient

    client = BatchClient(root / "ws")
    model = root / "model"
    model.mkdir()
    (model / "weights.json").write_text("{}")
    client.models.create_or_update({"name": "soak", "path": str(model)})
    client.computes.create_or_update(
        {"name": COMPUTES["green"], "type": "amlcompute", "max_instances": 1, "idle_time_before_scale_down": 60}
    )
    client.batch_endpoints.create_or_update({"name": ENDPOINT})
    code = root / "code"
    code.mkdir()
    (code / "score.py").write_text(textwrap.dedent(SCRIPT))
    for deployment, compute in COMPUTES.items():
        client.batch_deployments.create_or_update(
            {
                "name": deployment,
                "endpoint_name": ENDPOINT,
                "model": "azureml:soak@latest",
                "compute": f"azureml:{compute}",
                "code_configuration": {"code": str(code), "scoring_script": "score.py"},
                "settings": {
                    "mini_batch_size": rng.choice([1, 1, 2, 3]),
                    "max_concurrency_per_instance": 2,
                    "environment_variables": {"SLEEP": "0.05"},
                },
            },
            set_default=deployment == "blue",
        )
    inputs = []
    for d in range(datasets):
        folder = root / "data" / f"d{d:02d}"
        folder.mkdir(parents=True)
        expected = []
        for i in range(rng.randint(5, 40)):
            x = d * 1000 + i  # unique across the run: a row in the wrong job's output shows
            (folder / f"f{i:03d}.csv").write_text(f"x,y\n{x},{2 * x}\n")
            expected.append(f"{x} {2 * x}")
        inputs.append((folder, expected))
    return client, inputs


def _workers(pid: int) -> list[psutil.Process]:
    """An agent's worker processes: the children of its zygote (its own children are spared)."""
    try:
        return [worker for child in psutil.Process(pid).children() for worker in child.children()]
    except psutil.Error:
        return []


def _owner(client: Any, name: str) -> int | None:
    """The pid of the agent running the job."""
    with client.store.read() as db:
        row = db.execute("SELECT supervisor_pid FROM jobs WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


class Soak:
    """Invokes the jobs, makes trouble, resumes what needs it, and checks the outputs."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.client, self.inputs = _workspace(root, self.rng, datasets=12)
        self.jobs: dict[str, Tracked] = {}
        self.lock = threading.Lock()
        self.chaos: collections.Counter[str] = collections.Counter()
        self.errors: list[str] = []
        self.started = time.monotonic()

    def _invoke(self, deployment: str, dataset: int) -> None:
        folder, expected = self.inputs[dataset]
        try:
            job = self.client.batch_endpoints.invoke(ENDPOINT, deployment_name=deployment, input=str(folder))
        except Exception as exc:  # reported at the end: an invoke must not fail under load either
            with self.lock:
                self.errors.append(f"invoke on {deployment} failed: {exc}")
            return
        with self.lock:
            self.jobs[job["name"]] = Tracked(job["name"], deployment, expected)

    def _running(self) -> list[Tracked]:
        with self.lock:
            return [t for t in self.jobs.values() if t.status in ("Preparing", "Running")]

    def _make_trouble(self) -> None:
        running = self._running()
        if not running:
            return
        victim = self.rng.choice(running)
        roll = self.rng.random()
        if roll >= 0.75 and victim.chaos["agent killed"] + victim.chaos["canceled"] >= MAX_STOPS_PER_JOB:
            roll = 0.0  # this one has been stopped enough: a worker instead
        pid = _owner(self.client, victim.name)
        if roll < 0.75:
            workers = _workers(pid) if pid else []
            if workers:
                with contextlib.suppress(psutil.Error):
                    self.rng.choice(workers).send_signal(signal.SIGKILL)
                    victim.chaos["worker killed"] += 1
                    self.chaos["worker killed"] += 1
        elif roll < 0.9:
            if pid:
                try:
                    agent = psutil.Process(pid)
                    agent.send_signal(signal.SIGKILL)
                    # Dying, it still holds its compute: computes.start would find it and return.
                    agent.wait(timeout=10)
                except psutil.Error:
                    return
                victim.chaos["agent killed"] += 1
                self.chaos["agent killed"] += 1
                try:  # its jobs are resumed by the next agent, as after a crash
                    self.client.computes.start(COMPUTES[victim.deployment])
                except Exception as exc:  # reported at the end
                    with self.lock:
                        self.errors.append(f"compute start after an agent kill failed: {exc}")
        else:
            with contextlib.suppress(Exception):  # it may have ended meanwhile
                self.client.jobs.cancel(victim.name)
                victim.chaos["canceled"] += 1
                self.chaos["canceled"] += 1

    def _poll(self) -> None:
        """Refresh every unfinished job; resume the Interrupted and Canceled ones."""
        with self.lock:
            unfinished = [t for t in self.jobs.values() if t.status not in ("Completed", "Failed")]
        for tracked in unfinished:
            try:
                job = self.client.jobs.get(tracked.name)
                tracked.status = job["status"]
                if tracked.status in ("Interrupted", "Canceled"):
                    self.client.jobs.resume(tracked.name)
                    tracked.resumes += 1
                    tracked.status = "Queued"
            except Exception as exc:
                # An agent exiting (try again at the next poll), or one that resumed the job itself
                # between our two looks: neither is a fault.
                if "still running" not in str(exc) and "only Interrupted or Canceled" not in str(exc):
                    self.errors.append(f"{tracked.name}: {exc}")

    def run(self) -> None:
        """Invoke ``--jobs`` jobs over ``--minutes``, with trouble, until every job has ended."""
        n, seconds = self.args.jobs, self.args.minutes * 60
        started = self.started = time.monotonic()
        invoked = 0
        last_trouble = 0.0
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="soak-invoke") as invokers:
            while True:
                now = time.monotonic() - started
                due = min(n, int(n * now / seconds) + 1) if seconds > 0 else n
                while invoked < due:
                    deployment = self.rng.choice(list(COMPUTES))
                    invokers.submit(self._invoke, deployment, self.rng.randrange(len(self.inputs)))
                    invoked += 1
                if now - last_trouble >= self.args.chaos_interval:
                    last_trouble = now
                    self._make_trouble()
                self._poll()
                with self.lock:
                    pending = [t for t in self.jobs.values() if t.status not in ("Completed", "Failed")]
                    settled = invoked == n and len(self.jobs) + len(self.errors) >= n and not pending
                if settled:
                    break
                if now > seconds + self.args.grace:
                    self.errors.append(f"gave up after {now:.0f} s: {len(pending)} job(s) never ended")
                    break
                time.sleep(0.2)

    def check(self) -> bool:
        """Read every output; print the per-job and total figures. True if nothing was lost or duplicated."""
        totals: collections.Counter[str] = collections.Counter()
        print(
            f"{'job':<22} {'on':<9} {'status':<11} {'resumes':>7} {'in':>4} {'out':>4} {'dup':>4} {'lost':>4}  trouble"
        )
        for tracked in sorted(self.jobs.values(), key=lambda t: t.name):
            job = self.client.jobs.get(tracked.name)
            tracked.status = job["status"]
            score = job["outputs"]["score"]
            out = Path(score["path"]) / score["file_name"]
            tracked.got = out.read_text().splitlines() if out.exists() else []
            counts = collections.Counter(tracked.got)
            expected = set(tracked.expected)
            dup = sum(c - 1 for line, c in counts.items() if c > 1)
            lost = len(expected - set(counts))
            foreign = len(set(counts) - expected)
            trouble = ", ".join(f"{k} {v}" for k, v in sorted(tracked.chaos.items())) or "-"
            print(
                f"{tracked.name:<22} {COMPUTES[tracked.deployment]:<9} {tracked.status:<11} {tracked.resumes:>7} "
                f"{len(tracked.expected):>4} {len(tracked.got):>4} {dup:>4} {lost:>4}  {trouble}"
            )
            totals.update(
                jobs=1,
                completed=tracked.status == "Completed",
                rows_in=len(tracked.expected),
                rows_out=len(tracked.got),
                duplicated=dup,
                lost=lost,
                foreign=foreign,
                resumes=tracked.resumes,
            )
        print(
            f"\ntotal: {totals['jobs']} job(s), {totals['completed']} Completed, {totals['resumes']} resume(s); "
            f"rows in {totals['rows_in']}, rows out {totals['rows_out']}, duplicated {totals['duplicated']}, "
            f"lost {totals['lost']}, foreign {totals['foreign']}; {time.monotonic() - self.started:.0f} s"
        )
        print("trouble made: " + (", ".join(f"{k} {v}" for k, v in sorted(self.chaos.items())) or "none"))
        for error in self.errors:
            print(f"error: {error}")
        return (
            not self.errors
            and totals["jobs"] == self.args.jobs
            and totals["completed"] == totals["jobs"]
            and totals["duplicated"] == totals["lost"] == totals["foreign"] == 0
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="how many jobs to invoke (default 200)")
    parser.add_argument("--minutes", type=float, default=10, help="over how many minutes (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="the random seed: the same trouble, roughly")
    parser.add_argument("--chaos-interval", type=float, default=0.5, help="seconds between two troubles")
    parser.add_argument("--grace", type=float, default=300, help="seconds past --minutes for jobs to end")
    parser.add_argument("--workdir", type=Path, help="where to build the workspace (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="batchnb-soak-", dir=args.workdir))
    print(f"soak: {args.jobs} job(s) over {args.minutes:g} min, seed {args.seed}, in {root}", flush=True)
    soak = Soak(args, root)
    try:
        soak.run()
        ok = soak.check()
    finally:
        for compute in COMPUTES.values():
            soak.client.computes.stop(compute)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("soak: OK" if ok else "soak: FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
