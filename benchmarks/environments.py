"""Built environments (issue 23): what a build costs, and that a deployment's later jobs pay nothing for it.

* ``env-build``: the wall time of building an environment (``interpreter_for``, what the first job
  on a new environment and ``environment create`` call) from uv's warm cache, for a small
  specification (one pure-Python package, from a wheel built here) and a large one (scikit-learn at
  another version than batchnb's environment's, with numpy and scipy: a real install). The first
  build of each is untimed (it may download from the package index); each timed one starts by
  deleting the build's folder. Median of ``env_builds`` builds.
* ``env-reuse``: the second job of a deployment whose environment is built, against the same job on
  a deployment without an environment, A B A B on the cold ``local`` compute (each job starts its
  agent). Target: the environment's job ≥ 0.9 × as fast (it pays nothing for the build; its workers
  are fresh interpreters of the build rather than forks of the agent's zygote).

Offline (``UV_OFFLINE=1``, as in the tests) with the large specification not in uv's cache, its
build is skipped and says so.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # tiny_wheel: the tests' small pure-Python wheel

import workload  # noqa: E402
from env_helpers import tiny_wheel  # noqa: E402
from measure import CORES, alternate, med, run_job, verdict  # noqa: E402

SCENARIOS = ("env-build", "env-reuse")
# Imports the environment's package, so that the job runs in it; one result per file.
ENV_SCRIPT = "import tinypkg\n\n\ndef init():\n    pass\n\n\ndef run(mini_batch):\n    return [1 for _ in mini_batch]\n"


def run(root: Path, sizes: Any, rounds: int, chosen: list[str], report: dict[str, Any]) -> None:
    """Run the environment scenarios named in ``chosen`` (``environments`` for both), adding their
    figures to ``report``."""
    wanted = [s for s in SCENARIOS if s in chosen or "environments" in chosen]
    if not wanted:
        return
    folder = root / "environments"
    wheels = folder / "wheels"
    if not any(wheels.glob("tinypkg-1.0-*.whl")):  # made once: --work keeps it
        tiny_wheel("tinypkg", "1.0", wheels)
    small = folder / "small.txt"
    small.write_text(f"--find-links {wheels}\ntinypkg==1.0\n")
    if "env-build" in wanted:
        _builds(folder, sizes, small, report)
    if "env-reuse" in wanted:
        _reuse(root, folder, sizes, rounds, small, report)


def _large_requirement() -> str:
    """scikit-learn at a version batchnb's environment does not have: an older minor version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = version("scikit-learn").split(".")[:2]
    except PackageNotFoundError:
        return "scikit-learn"
    return f"scikit-learn<{major}.{minor}"


def _builds(folder: Path, sizes: Any, small: Path, report: dict[str, Any]) -> None:
    from batchnb.environments import interpreter_for
    from batchnb.environments.build import freeze, size_on_disk
    from batchnb.environments.spec import from_requirements
    from batchnb.errors import EnvironmentBuildError

    large = _large_requirement()
    print(f"\n== env-build: a small specification (one pure-Python package) and a large one ({large}), "
          f"from uv's warm cache, median of {sizes.env_builds}", flush=True)  # fmt: skip
    ws = folder.parent / "ws-env-builds"
    out: dict[str, Any] = {"builds": sizes.env_builds}
    for label, text in (("small", small.read_text()), ("large", f"{large}\n")):
        spec = from_requirements(text, small.parent, f"the {label} specification")
        try:
            python = interpreter_for(spec, ws)  # untimed: warms uv's cache
        except EnvironmentBuildError as exc:
            if label == "large" and os.environ.get("UV_OFFLINE"):
                print(f"  {label}: skipped: offline and not in uv's cache ({exc})", flush=True)
                out[label] = {"skipped": str(exc)}
                continue
            raise
        assert python is not None
        build = Path(python).parent.parent
        times = []
        for _ in range(sizes.env_builds):
            shutil.rmtree(build)
            t0 = time.perf_counter()
            interpreter_for(spec, ws)
            times.append(time.perf_counter() - t0)
        out[label] = {"requirements": spec.requirements, "build_s": times, "median_s": med(times),
                      "packages": len(freeze(build)), "size_mb": size_on_disk(build) / 2**20}  # fmt: skip
        print(f"  {label}: {med(times):.2f} s ({out[label]['packages']} package(s), "
              f"{out[label]['size_mb']:.0f} MB)", flush=True)  # fmt: skip
    report["env_build"] = out


def _reuse(root: Path, folder: Path, sizes: Any, rounds: int, small: Path, report: dict[str, Any]) -> None:
    n = sizes.env_files
    print(f"\n== env-reuse: the second job of a deployment in a built environment vs one without, "
          f"{n} one-row files, trivial run(), {CORES} workers", flush=True)  # fmt: skip
    data = workload.tiny_files(root / "data" / f"tiny-{n}", n)
    client = workload.workspace(root / "ws-env-reuse")  # under root: bench.stop_agents finds it
    client.environments.create_or_update({"name": "small", "conda_file": str(small)})  # builds it
    workload.deploy_trivial(client, folder, "ep-env", CORES, 10, script=ENV_SCRIPT, environment="azureml:small@latest")
    workload.deploy_trivial(client, folder, "ep-plain", CORES, 10)
    run_job(client, "ep-env", data, cold=True)  # untimed: the deployment's first job
    results = alternate(
        {
            "environment": lambda: run_job(client, "ep-env", data, cold=True),
            "none": lambda: run_job(client, "ep-plain", data, cold=True),
        },
        rounds,
    )
    pairs = zip(results["environment"], results["none"], strict=True)
    ratio = med([plain["wall_s"] / env["wall_s"] for env, plain in pairs])
    report["env_reuse"] = {"files": n, "results": results, "none_over_environment": ratio}
    print(
        f"  environment {med([r['wall_s'] for r in results['environment']]):.2f} s, "
        f"none {med([r['wall_s'] for r in results['none']]):.2f} s: the environment's job is {ratio:.2f} x as fast "
        f"[target >= 0.9: {verdict(ratio >= 0.9)}]",
        flush=True,
    )
