"""Remote storage (issue 22): batchnb over blobs in Azurite (Microsoft's Azure Storage emulator, on
loopback), against a loop a user would write by hand with the same library (adlfs), in the same run.

* ``storage-files``: CSV blobs in file mode; one output line per file (its name and its row count).
  batchnb (the cold ``local`` compute, ``cores`` workers, its datastore's account key) against a
  fresh Python running ``joblib.Parallel(n_jobs=cores, backend="loky")`` over the same blobs, each
  task reading its blob with adlfs, the lines written to one file in input order: A B A B, throughput
  in files per second. Target: batchnb ≥ 0.9 × the loop.
* ``storage-tabular``: one large Parquet blob of many row groups in tabular mode: the job's wall
  time, and how many of the ``cores`` workers took mini-batches (target: every one).

Azurite is the test suite's (``bash scripts/test`` installs it into ``.test-tools/node``); without
it the scenarios say so and are skipped. The hand-written loop is this file run as a script:

    python benchmarks/storage.py loop --container C --prefix P --workers N --out FILE
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workload  # noqa: E402
from measure import CORES, alternate, med, run_job, verdict  # noqa: E402

ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key (published in Azurite's documentation).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "bench"
SCENARIOS = ("storage-files", "storage-tabular")

COUNT_SCRIPT = r"""
import os

def init():
    pass

def run(mini_batch):
    out = []
    for path in mini_batch:
        with open(path, "rb") as fh:
            rows = fh.read().count(b"\n") - 1
        out.append(f"{os.path.basename(path)} {rows}")
    return out
"""
# One output row per input row (its first column): a mini-batch that returned fewer results than it
# has rows would be retried as a failure.
ROWS_SCRIPT = "def init():\n    pass\n\n\ndef run(mini_batch):\n    return mini_batch.iloc[:, :1]\n"


# -- the hand-written loop (runs in its own process) ----------------------------------------------


@functools.cache
def _blobs() -> Any:
    import adlfs

    return adlfs.AzureBlobFileSystem(connection_string=os.environ["AZURE_STORAGE_CONNECTION_STRING"])


def count_rows(path: str) -> str:
    """One blob's output line, as the scoring script writes it: its name and its row count."""
    rows = _blobs().cat_file(path).count(b"\n") - 1
    return f"{path.rsplit('/', 1)[-1]} {rows}"


def loop(container: str, prefix: str, workers: int, out: str) -> int:
    """List the blobs under ``prefix``, read each in a loky worker, write the lines in input order."""
    from joblib import Parallel, delayed

    paths = sorted(_blobs().find(f"{container}/{prefix}"))
    lines = Parallel(n_jobs=workers, backend="loky")(delayed(count_rows)(p) for p in paths)
    Path(out).write_text("".join(f"{line}\n" for line in lines))
    return len(lines)


# -- the emulator ---------------------------------------------------------------------------------


def _azurite_binary() -> str | None:
    local = HERE.parent / ".test-tools" / "node" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else shutil.which("azurite-blob")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def azurite(folder: Path) -> Iterator[str]:
    """Azurite's blob service on a free loopback port, its data under ``folder``: its blob endpoint."""
    binary = _azurite_binary()
    if binary is None:
        raise FileNotFoundError("Azurite is not installed (bash scripts/test installs it into .test-tools/node)")
    port = _free_port()
    with open(folder / "azurite.log", "wb") as log:
        proc = subprocess.Popen(
            [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(folder / "azurite"),
             "--silent", "--skipApiVersionCheck", "--loose"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Azurite did not start; see {folder / 'azurite.log'}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/{ACCOUNT}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # it waits for its clients' idle connections to close
            proc.kill()
            proc.wait(timeout=30)


def connection_string(endpoint: str) -> str:
    return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={endpoint};"


# -- the scenarios --------------------------------------------------------------------------------


def _run_loop(blob_endpoint: str, prefix: str, workers: int, out: Path) -> dict[str, Any]:
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": connection_string(blob_endpoint)}
    argv = [sys.executable, __file__, "loop", "--container", CONTAINER, "--prefix", prefix]
    t0 = time.perf_counter()
    done = subprocess.run(
        [*argv, "--workers", str(workers), "--out", str(out)], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"the hand-written loop failed: {done.stderr[-2000:]}")
    return {"wall_s": wall, "rows": int(json.loads(done.stdout.strip().splitlines()[-1])["rows"])}


def _workers_used(client: Any, job: str) -> int:
    with client.store.read() as db:
        row = db.execute("SELECT COUNT(DISTINCT worker) FROM minibatches WHERE job = ?", (job,)).fetchone()
    return int(row[0])


def run(root: Path, sizes: Any, rounds: int, chosen: list[str], report: dict[str, Any]) -> None:
    """Run the storage scenarios named in ``chosen`` (``storage`` for both), adding their figures to ``report``."""
    wanted = [s for s in SCENARIOS if s in chosen or "storage" in chosen]
    if not wanted:
        return
    folder = root / "storage"
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            endpoint = stack.enter_context(azurite(folder))
        except FileNotFoundError as exc:
            print(f"\n== storage: skipped: {exc}", flush=True)
            report["storage"] = {"skipped": str(exc)}
            return
        import adlfs

        blobs = adlfs.AzureBlobFileSystem(connection_string=connection_string(endpoint), skip_instance_cache=True)
        blobs.mkdir(CONTAINER)
        client = workload.workspace(root / "ws-storage")
        client.datastores.create_or_update(
            {"name": "blobs", "type": "azure_blob", "account_name": ACCOUNT, "container_name": CONTAINER,
             "endpoint": endpoint, "protocol": "http", "credentials": {"account_key": KEY}}
        )  # fmt: skip
        if "storage-files" in wanted:
            _files(root, sizes, rounds, report, client, blobs, endpoint)
        if "storage-tabular" in wanted:
            _tabular(root, sizes, report, client, blobs)


def _files(root: Path, sizes: Any, rounds: int, report: dict[str, Any], client: Any, blobs: Any, endpoint: str) -> None:
    cores = CORES
    n, size = sizes.storage_files, sizes.storage_file_kb * 1024
    print(f"\n== storage-files: {n} CSV blobs of {size // 1024} KB in Azurite, file mode, {cores} workers", flush=True)
    line = "0.123456,0.654321,0.111111,0.999999\n"
    body = ("a,b,c,d\n" + line * max(1, size // len(line))).encode()
    for i in range(n):
        blobs.pipe_file(f"{CONTAINER}/files/f{i:05d}.csv", body)
    workload.deploy_trivial(client, root, "ep-blobs", cores, 10, script=COUNT_SCRIPT)
    out = root / "storage" / "loop.txt"
    results = alternate(
        {
            "batchnb": lambda: run_job(client, "ep-blobs", "azureml://datastores/blobs/paths/files", cold=True),
            "joblib+adlfs": lambda: _run_loop(endpoint, "files", cores, out),
        },
        rounds,
    )
    job = client.jobs.get(results["batchnb"][-1]["name"])
    written = Path(job["outputs"]["score"]["path"], job["outputs"]["score"]["file_name"]).read_text()
    if sorted(written.splitlines()) != sorted(out.read_text().splitlines()):
        raise RuntimeError("batchnb's output and the loop's differ")
    pairs = zip(results["batchnb"], results["joblib+adlfs"], strict=True)
    ratio = med([loop["wall_s"] / ours["wall_s"] for ours, loop in pairs])
    figures = {v: n / med([r["wall_s"] for r in runs]) for v, runs in results.items()}
    report["storage_files"] = {"files": n, "file_kb": size // 1024, "results": results, "files_per_s": figures,
                               "batchnb_over_loop": ratio}  # fmt: skip
    print(
        f"  batchnb {figures['batchnb']:.1f} files/s, joblib+adlfs {figures['joblib+adlfs']:.1f} files/s: "
        f"{ratio:.2f} x [target >= 0.9: {verdict(ratio >= 0.9)}]",
        flush=True,
    )


def _tabular(root: Path, sizes: Any, report: dict[str, Any], client: Any, blobs: Any) -> None:
    import io

    cores = CORES
    rows, group = sizes.storage_rows, sizes.storage_row_group
    print(f"\n== storage-tabular: one Parquet blob of {rows:,} rows in row groups of {group:,}, {cores} workers")
    buf = io.BytesIO()
    workload._frame(rows, 0).to_parquet(buf, row_group_size=group, index=False)
    blobs.pipe_file(f"{CONTAINER}/table/big.parquet", buf.getvalue())
    tabular = {"mini_batch_mode": "tabular"}
    workload.deploy_trivial(client, root, "ep-table", cores, group, script=ROWS_SCRIPT, settings=tabular)
    result = run_job(client, "ep-table", "azureml://datastores/blobs/paths/table", cold=True)
    used = _workers_used(client, result["name"])
    report["storage_tabular"] = {"rows": rows, "row_group": group, "workers": cores, "workers_used": used, **result}
    print(
        f"  {rows / result['wall_s']:,.0f} rows/s; {used} of {cores} workers took mini-batches "
        f"[target: all: {verdict(used == cores)}]",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["loop"])
    parser.add_argument("--container", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    print(json.dumps({"rows": loop(args.container, args.prefix, args.workers, args.out)}))


if __name__ == "__main__":
    # Through the module, so that loky's workers find count_rows by its module's name.
    import storage

    storage.main()
