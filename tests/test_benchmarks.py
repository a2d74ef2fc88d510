"""The benchmark script runs end to end on tiny sizes (a smoke test: no timing is asserted here;
the figures come from ``benchmarks/bench.py`` at full size)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from engine_helpers import reaping, wait_until
from storage_servers import azurite_binary, missing

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_script_runs_on_a_tiny_workload(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("sklearn")
    report = tmp_path / "report.json"
    with reaping():
        bench = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick"]
        proc = subprocess.run(
            # The overhead and memory scenarios reuse run_job as the others do; left out to keep CI short.
            [*bench, "--work", str(tmp_path / "w"), "--json", str(report), "--only", "latency,agent,recovery"],
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert figures["latency"]["warm"]["first_progress_s"] > 0
    assert figures["throughput"]["limit_rows_per_s"] > 0
    assert figures["throughput"]["rows_per_s"]["batchnb warm"] > 0
    assert figures["concurrent"]["combined_vs_limit"] > 0
    assert "cost_s" in figures["worker_kill"]
    assert figures["agent_kill"]["ratio"] > 0
    assert figures["recovery"]["spawn"]["s_per_crash"] > 0
    assert "target" in proc.stdout
    assert wait_until(lambda: not _agents_under(tmp_path), 30, "the benchmark's agents to stop") is True


def test_the_storage_benchmark_runs_on_a_tiny_workload(tmp_path):
    pytest.importorskip("adlfs")
    if azurite_binary() is None:
        missing("Azurite (npm package azurite)")
    report = tmp_path / "report.json"
    with reaping():
        bench = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--only", "storage"]
        proc = subprocess.run(
            [*bench, "--work", str(tmp_path / "w"), "--json", str(report)], capture_output=True, text=True, timeout=600
        )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert figures["storage_files"]["files_per_s"]["joblib+adlfs"] > 0  # the same output, checked by the benchmark
    assert figures["storage_files"]["batchnb_over_loop"] > 0
    assert 1 <= figures["storage_tabular"]["workers_used"] <= figures["storage_tabular"]["workers"]
    assert "storage-files" in proc.stdout and "workers took mini-batches" in proc.stdout
    assert wait_until(lambda: not _agents_under(tmp_path), 30, "the benchmark's agents to stop") is True


def test_the_environments_benchmark_runs_on_a_tiny_workload(tmp_path):
    """Offline with an empty uv cache (as every test builds), so the large specification, which
    needs the package index once, is skipped and says so; the small one is built and timed."""
    report = tmp_path / "report.json"
    env = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    with reaping():
        bench = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--only", "environments"]
        proc = subprocess.run(
            [*bench, "--work", str(tmp_path / "w"), "--json", str(report)],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert figures["env_build"]["small"]["median_s"] > 0
    assert figures["env_build"]["small"]["packages"] == 1
    assert "large: skipped: offline and not in uv's cache" in proc.stdout
    assert figures["env_reuse"]["none_over_environment"] > 0
    assert "target >= 0.9" in proc.stdout
    assert wait_until(lambda: not _agents_under(tmp_path), 30, "the benchmark's agents to stop") is True


def _agents_under(folder: Path) -> list[psutil.Process]:
    """The compute agents of the workspaces under ``folder`` still running."""
    found = []
    for proc in psutil.process_iter():
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "batchnb.engine.agent" in cmd and str(folder) in cmd:
            found.append(proc)
    return found
