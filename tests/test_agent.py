"""The compute agent (``batchnb.engine.agent``): one process per compute runs every job queued on it,
within the compute's capacity, with workers that stay warm per deployment revision, and resumes by
itself the jobs a killed agent left. Real processes throughout: agents, zygotes and workers are
counted and killed through /proc (psutil)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cli_helpers import run_cli
from engine_helpers import lines, output_file, reaping, wait_until

from batchnb.errors import InvalidStateError

# Every row says which process scored it, how many times the module was imported in that process
# and how many init() calls it saw, and what init() read: the deployment's TAG and the job's output path.
TRACED = """
import builtins, os, time
builtins.batchnb_test_imports = getattr(builtins, "batchnb_test_imports", 0) + 1
IMPORTS = builtins.batchnb_test_imports
SEEN = []
def init():
    SEEN.append(os.environ.get("TAG"))
    global OUT
    OUT = os.environ["AZUREML_BI_OUTPUT_PATH"]
def run(mini_batch):
    time.sleep(float(os.environ.get("DELAY", "0")))
    return [f"{os.path.basename(f)} {os.getpid()} {IMPORTS} {len(SEEN)} {'+'.join(SEEN)} {OUT}" for f in mini_batch]
"""


@pytest.fixture
def compute(client) -> Iterator[str]:
    """A local compute of two worker processes that keeps its agent a minute after its last job."""
    client.computes.create_or_update(
        {"name": "pool-two", "type": "amlcompute", "max_workers": 2, "idle_time_before_scale_down": 60}
    )
    with reaping():
        try:
            yield "pool-two"
        finally:
            client.computes.stop("pool-two")


def _deploy(client, tmp_path: Path, name: str, compute: str, concurrency: int = 1, **env: str) -> None:
    model = tmp_path / "model"
    if not model.exists():
        model.mkdir()
        (model / "weights.json").write_text("{}")
        client.models.create_or_update({"name": "tiny", "path": str(model)})
    code = tmp_path / f"code-{name}"
    code.mkdir(exist_ok=True)
    (code / "score.py").write_text(TRACED)
    try:
        client.batch_endpoints.get("ep-test")
    except Exception:
        client.batch_endpoints.create_or_update({"name": "ep-test"})
    client.batch_deployments.create_or_update(
        {
            "name": name,
            "endpoint_name": "ep-test",
            "model": "azureml:tiny@latest",
            "compute": f"azureml:{compute}",
            "code_configuration": {"code": str(code), "scoring_script": "score.py"},
            "settings": {
                "mini_batch_size": 1,
                "max_concurrency_per_instance": concurrency,
                "environment_variables": {"TAG": name, **env},
            },
        }
    )


def _inputs(tmp_path: Path, n: int, name: str = "data") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for i in range(n):
        (folder / f"f{i:03d}.txt").write_text(f"{i}\n")
    return folder


def _rows(job) -> list[list[str]]:
    return [line.split(" ") for line in lines(output_file(job))]


def _agent(client, compute: str) -> dict | None:
    return client.computes.show(compute)["agent"]


def _workers(agent_pid: int) -> list[psutil.Process]:
    """The agent's worker processes: the zygote's children (the zygote itself is not a worker)."""
    try:
        children = psutil.Process(agent_pid).children()
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            found += child.children()
        except psutil.Error:
            continue
    return found


def test_an_agent_starts_on_demand_is_shown_and_exits_after_its_idle_time(client, tmp_path):
    client.computes.create_or_update({"name": "brief", "type": "amlcompute", "idle_time_before_scale_down": 2})
    _deploy(client, tmp_path, "blue", "brief")
    assert _agent(client, "brief") is None
    with reaping():
        job = client.batch_endpoints.invoke("ep-test", input=str(_inputs(tmp_path, 4))).wait(timeout=120)
        assert job["status"] == "Completed"
        agent = _agent(client, "brief")
        assert agent is not None, "the agent keeps its workers for its idle time"
        assert agent["running_jobs"] == [] and agent["queued_jobs"] == []
        assert agent["workers"] >= 1 and agent["resident_memory_mb"] > 10
        assert {int(row[1]) for row in _rows(job)} <= {p.pid for p in _workers(agent["pid"])}
        proc = psutil.Process(agent["pid"])
        proc.wait(timeout=30)  # scaled to zero by itself
        assert _agent(client, "brief") is None


def test_compute_start_then_stop_leaves_no_process_and_interrupts_the_running_job(client, tmp_path, compute):
    started = client.computes.start(compute)["agent"]
    assert started is not None and started["running_jobs"] == []
    _deploy(client, tmp_path, "blue", compute, concurrency=2, DELAY="0.2")
    job = client.batch_endpoints.invoke("ep-test", input=str(_inputs(tmp_path, 40)))
    wait_until(lambda: client.jobs.get(job["name"])["progress"]["mini_batches"]["done"] >= 2, 120, "progress")
    agent = _agent(client, compute)
    assert agent["pid"] == started["pid"], "the job ran on the agent that compute start started"
    assert agent["running_jobs"] == [job["name"]]
    family = [psutil.Process(agent["pid"]), *psutil.Process(agent["pid"]).children(recursive=True)]
    assert len(family) >= 3  # the agent, its zygote and a worker at least
    with pytest.raises(InvalidStateError, match=f"compute {compute} runs job\\(s\\) {job['name']}"):
        client.computes.delete(compute)
    report = client.computes.stop(compute)
    assert report["stopping"] and report["stopped"]
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, f"left behind: {[(p.pid, p.name()) for p in alive]}"
    ended = client.jobs.get(job["name"])
    assert ended["status"] == "Interrupted" and "was stopped" in ended["error"]
    assert _agent(client, compute) is None


def test_compute_list_as_a_table_shows_the_running_agent(client, compute):
    # The table's Agent column was always empty: the list's records never carried their agent.
    started = client.computes.start(compute)["agent"]
    code, out, err = run_cli("compute", "list", "-o", "table", ws=client.workspace.root)
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.split()[0] == compute)
    assert f"pid {started['pid']}, " in row, out


def test_compute_show_gives_the_agent_s_start_in_iso_8601(client, compute):
    # It was the store's epoch seconds (1796307653.88...), in json, yaml, tsv and table alike.
    client.computes.start(compute)
    code, out, err = run_cli(
        "compute", "show", "-n", compute, "--query", "agent.started", "-o", "tsv", ws=client.workspace.root
    )
    assert code == 0, err
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00\n", out), out


def test_two_jobs_share_the_capacity_and_both_advance(client, tmp_path, compute):
    # Each asks for 2 × 2 workers; the compute has 2.
    _deploy(client, tmp_path, "blue", compute, concurrency=2, DELAY="0.1")
    _deploy(client, tmp_path, "green", compute, concurrency=2, DELAY="0.1")
    data = _inputs(tmp_path, 30)
    first = client.batch_endpoints.invoke("ep-test", deployment_name="blue", input=str(data), instance_count=2)
    second = client.batch_endpoints.invoke("ep-test", deployment_name="green", input=str(data), instance_count=2)
    agent = wait_until(lambda: _agent(client, compute), 60, "the agent")
    most = 0
    both_moving = False
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        most = max(most, len(_workers(agent["pid"])))
        done = [client.jobs.get(j["name"])["progress"]["mini_batches"] for j in (first, second)]
        if all(0 < d["done"] < d["total"] for d in done):
            both_moving = True
        if all(0 < d["done"] == d["total"] for d in done):
            break
        time.sleep(0.05)
    assert most <= 2, f"{most} worker processes ran on a compute of 2"
    assert both_moving, "one job waited for the other to finish"
    for job in (first, second):
        ended = client.jobs.wait(job["name"], timeout=60)
        assert ended["status"] == "Completed" and len(lines(output_file(ended))) == 30
        log = (Path(ended["logs_dir"]) / "sys" / "master_role.txt").read_text()
        assert "capped at 2" in log


def test_a_job_that_does_not_fit_waits_queued_saying_why(client, tmp_path):
    client.computes.create_or_update({"name": "pool-one", "type": "amlcompute", "max_workers": 1})
    _deploy(client, tmp_path, "blue", "pool-one", DELAY="0.2")
    data = _inputs(tmp_path, 10)
    with reaping():
        first = client.batch_endpoints.invoke("ep-test", input=str(data))
        second = client.batch_endpoints.invoke("ep-test", input=str(data))
        wait_until(lambda: client.jobs.get(first["name"])["status"] == "Running", 60, "the first job to run")
        waiting = wait_until(lambda: client.jobs.get(second["name"])["waiting"], 30, "the reason")
        assert client.jobs.get(second["name"])["status"] == "Queued"
        assert waiting == "waiting for a worker: compute pool-one runs 1 job(s) on its 1 worker process(es)"
        assert client.jobs.wait(first["name"], timeout=120)["status"] == "Completed"
        ended = client.jobs.wait(second["name"], timeout=120)
        assert ended["status"] == "Completed" and ended["waiting"] is None
        assert len(lines(output_file(ended))) == 10


def test_a_warm_second_job_imports_nothing_but_runs_init_with_its_own_output_path(client, tmp_path, compute):
    _deploy(client, tmp_path, "blue", compute, concurrency=2)
    data = _inputs(tmp_path, 6)
    jobs = []
    for n in range(2):
        out = tmp_path / f"out{n}"
        jobs.append(client.batch_endpoints.invoke("ep-test", input=str(data), output_path=str(out)).wait(120))
    first, second = (_rows(job) for job in jobs)
    assert {row[1] for row in second} <= {row[1] for row in first}, "the second job started new workers"
    assert {row[2] for row in first + second} == {"1"}, "the script was imported again"
    assert {row[3] for row in second} == {"2"}, "init() ran once per worker per job"
    assert {row[5] for row in first} == {str(tmp_path / "out0")}
    assert {row[5] for row in second} == {str(tmp_path / "out1")}
    log = (Path(jobs[1]["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert "warm worker" in log


def test_one_deployments_module_state_is_never_seen_by_another(client, tmp_path, compute):
    _deploy(client, tmp_path, "blue", compute)
    _deploy(client, tmp_path, "green", compute)
    data = _inputs(tmp_path, 4)
    blue = client.batch_endpoints.invoke("ep-test", deployment_name="blue", input=str(data)).wait(120)
    green = client.batch_endpoints.invoke("ep-test", deployment_name="green", input=str(data)).wait(120)
    assert {row[4] for row in _rows(blue)} == {"blue"}
    assert {row[4] for row in _rows(green)} == {"green"}, "green's workers saw blue's module"
    assert not {row[1] for row in _rows(blue)} & {row[1] for row in _rows(green)}


@pytest.mark.parametrize("restart", ["compute start", "the server extension loading"])
def test_a_killed_agent_s_job_completes_by_itself_once_the_next_agent_starts(client, tmp_path, compute, restart):
    _deploy(client, tmp_path, "blue", compute, concurrency=2, DELAY="0.1")
    n = 40
    job = client.batch_endpoints.invoke("ep-test", input=str(_inputs(tmp_path, n)))
    wait_until(lambda: client.jobs.get(job["name"])["progress"]["mini_batches"]["done"] >= 8, 120, "progress")
    agent = _agent(client, compute)
    family = [psutil.Process(agent["pid"]), *_workers(agent["pid"])]
    os.kill(agent["pid"], signal.SIGKILL)
    _, alive = psutil.wait_procs(family, timeout=15)
    assert not alive, "the agent's workers end with it (its zygote waits for the next agent)"
    lost = wait_until(lambda: _status(client, job["name"]) == "Interrupted", 30, "Interrupted")
    assert lost
    if restart == "compute start":
        client.computes.start(compute)
    else:  # what the Jupyter server extension runs as it loads
        assert client.computes.recover() == [compute]
    ended = client.jobs.wait(job["name"], timeout=120)
    assert ended["status"] == "Completed"
    names = [row[0] for row in _rows(ended)]
    assert sorted(names) == [f"f{i:03d}.txt" for i in range(n)], "exactly one row per input"
    with client.store.read() as db:
        resumes = db.execute("SELECT auto_resumes FROM jobs WHERE name = ?", (job["name"],)).fetchone()[0]
    assert resumes == 1


def _status(client, name: str) -> str:
    return str(client.jobs.get(name)["status"])


def test_a_job_lost_more_than_max_auto_resumes_times_waits_for_the_user(client, tmp_path, compute):
    _deploy(client, tmp_path, "blue", compute)
    job = client.batch_endpoints.invoke("ep-test", input=str(_inputs(tmp_path, 2))).wait(120)
    with client.store.write() as tx:  # as if its agent had been lost three times already
        spec = json.loads(tx.execute("SELECT spec FROM jobs WHERE name = ?", (job["name"],)).fetchone()[0])
        tx.execute(
            "UPDATE jobs SET status = 'Interrupted', lost = 1, auto_resumes = 3, error = 'heartbeat lost' "
            "WHERE name = ?",
            (job["name"],),
        )
    assert spec["settings"].get("max_auto_resumes", 3) == 3
    client.computes.stop(compute)
    client.computes.start(compute)
    ended = wait_until(lambda: "max_auto_resumes 3" in (client.jobs.get(job["name"])["error"] or ""), 30, "reason")
    assert ended
    assert _status(client, job["name"]) == "Interrupted"
