"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` processes (with Nannies) on
loopback, started and reaped by the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from engine_helpers import kill_and_reap, wait_until

# No dashboards: the tests do not look at them, and a fixed port could be taken.
QUIET = ("--host", "127.0.0.1", "--dashboard-address", ":0")


def _scheduler(port: str, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", port, *QUIET],
        stdout=log,
        stderr=log,
    )


class Cluster:
    """A scheduler and its workers, as processes of the test."""

    def __init__(self, address: str, scheduler: subprocess.Popen[bytes], start_worker: Any, n_workers: int, log: Any):
        self.address, self.scheduler, self._log = address, scheduler, log
        self._start_worker = start_worker
        self.workers: list[subprocess.Popen[bytes]] = [start_worker(i) for i in range(n_workers)]
        self.ended: list[subprocess.Popen[bytes]] = []  # processes replaced since

    def kill_scheduler(self) -> None:
        """SIGKILL the scheduler, as a crashed scheduler or its host gone would (its workers stay)."""
        self.scheduler.send_signal(signal.SIGKILL)
        self.scheduler.wait(10)

    def restart_scheduler(self) -> None:
        """Start the scheduler again on the same address, and the workers that ended meanwhile (a
        ``dask worker`` exits when it loses its scheduler), as whatever runs the cluster would."""
        self.ended.append(self.scheduler)
        self.scheduler = _scheduler(self.address.rsplit(":", 1)[1], self._log)
        for i, worker in enumerate(self.workers):
            if worker.wait(30) is not None:
                self.ended.append(worker)
                self.workers[i] = self._start_worker(i)

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=10, set_as_default=False)

    def n_workers(self) -> int:
        with self.client() as c:
            return len(c.scheduler_info(n_workers=-1)["workers"])

    def task_prefixes(self) -> list[str]:
        """The task groups the scheduler has seen, as its dashboard names them."""
        with self.client() as c:
            return list(c.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes)))

    def kill_workers(self, which: Sequence[int] | None = None) -> None:
        """SIGKILL workers (by default every one) with their Nannies: gone until started again."""
        procs = []
        for i, w in enumerate(self.workers):
            if which is not None and i not in which:
                continue
            with_children = psutil.Process(w.pid)
            procs.extend([with_children, *with_children.children(recursive=True)])
        for p in procs:
            p.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _n_workers_or_none(c: Cluster) -> int | None:
    try:
        return c.n_workers()
    except OSError:
        return None


@contextmanager
def dask_cluster(
    log_file: Path, n_workers: int = 2, wrap: Sequence[str] = (), env: dict[str, str] | None = None
) -> Iterator[Cluster]:
    """A scheduler and ``n_workers`` single-threaded workers named ``w0``, ``w1``...; each worker's
    command is prefixed by ``wrap`` (e.g. a namespace it runs in) and gets ``env``."""
    port = str(free_port())
    address = f"tcp://127.0.0.1:{port}"
    log = open(log_file, "ab")  # noqa: SIM115 (closed below)
    scheduler = _scheduler(port, log)
    worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", *QUIET]

    def start_worker(i: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*wrap, *worker_cmd, "--name", f"w{i}"], stdout=log, stderr=log, env={**os.environ, **(env or {})}
        )

    c = Cluster(address, scheduler, start_worker, n_workers, log)
    try:
        wait_until(lambda: _n_workers_or_none(c) == n_workers, 120, f"the Dask cluster's {n_workers} workers")
        yield c
    finally:
        procs = [psutil.Process(p.pid) for p in [*c.workers, c.scheduler, *c.ended] if p.poll() is None]
        for p in list(procs):
            procs.extend(p.children(recursive=True))
        kill_and_reap(procs)
        log.close()


# A scoring script for workers that cannot see the job's files: it needs the shipped model (its
# weight) and a sibling module of the shipped code snapshot. One row per file: its name, x scaled by
# the weight, the uid that scored it and the Dask worker's name.
SHIPPED_SCRIPT = """
import json, os
from pathlib import Path
from distributed import get_worker
from scale import scaled  # a sibling module: the code snapshot reached the worker whole

def init():
    global W
    W = json.loads((Path(os.environ["AZUREML_MODEL_DIR"]) / "model" / "weights.json").read_text())["w"]

def run(mini_batch):
    out = []
    for f in mini_batch:
        x = int(Path(f).read_text().splitlines()[1].split(",")[0])
        out.append(f"{os.path.basename(f)} {scaled(x, W)} {os.getuid()} {get_worker().name}")
    return out
"""


def deploy_shipped(client: Any, model_dir: Path, tmp_path: Path, compute: str) -> Path:
    """Deploy :data:`SHIPPED_SCRIPT` (endpoint ``ep-test``, mini-batches of 2 files) on ``compute``;
    return its code folder."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(SHIPPED_SCRIPT)
    (code / "scale.py").write_text("def scaled(x, w):\n    return x * w\n")
    client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    client.batch_endpoints.create_or_update({"name": "ep-test"})
    settings = {"mini_batch_size": 2, "max_concurrency_per_instance": 2}
    code_configuration = {"code": str(code), "scoring_script": "score.py"}
    deployment = {"name": "blue", "endpoint_name": "ep-test", "model": "azureml:tiny@latest"}
    client.batch_deployments.create_or_update(
        {**deployment, "compute": f"azureml:{compute}", "code_configuration": code_configuration, "settings": settings}
    )
    return code
