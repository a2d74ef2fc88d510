"""The benchmark script runs end to end on tiny sizes (a smoke test: no timing is asserted here;
the figures come from ``benchmarks/bench.py`` at full size)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from engine_helpers import reaping, wait_until

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_script_runs_on_a_tiny_workload(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("sklearn")
    report = tmp_path / "report.json"
    with reaping():
        bench = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--no-ray"]
        proc = subprocess.run(
            [
                *bench,
                "--work",
                str(tmp_path / "w"),
                "--json",
                str(report),
                "--only",
                # The overhead and memory scenarios reuse run_job as cpu does; left out to keep CI short.
                "latency,cpu,resume,recovery",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert figures["latency"]["warm"]["first_progress_s"] > 0
    assert figures["cpu"]["batchnb"]["rows_per_s"] > 0
    assert figures["resume"]["ratio"] > 0
    assert figures["recovery"]["spawn"]["s_per_crash"] > 0
    assert "target" in proc.stdout
    wait_until(lambda: not _standbys_under(tmp_path), 30, "the benchmark's standbys to stop")


def _standbys_under(folder: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "batchnb.compute.standby" in cmd and str(folder) in cmd:
            found.append(proc)
    return found
