"""The sidebar's time to first paint with a 500-job workspace, in a real JupyterLab and Chromium.

One real job is run, then copied 499 times (tests/seeding.py) across three endpoints. Each round
opens JupyterLab afresh, clicks the sidebar's tab and measures, in the page, the time until every
endpoint shows its job count and its newest jobs (the first paint a user waits for); it also
times the ``GET job-overview`` request the sidebar polls, from the server's side of the page.

    PYTHONPATH=. .venv/bin/python benchmarks/sidebar.py             # 5 rounds
    PYTHONPATH=. .venv/bin/python benchmarks/sidebar.py --rounds 3 --jobs 1000

Needs Debian's Chromium (``apt-get install chromium``) and the labextension built into
``batchnb/labextension`` (``jlpm build`` in labextension/; put it first with ``JUPYTER_PATH`` when
another copy is installed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser.conftest import CHROMIUM, CHROMIUM_ARGS, _running_lab  # noqa: E402
from seeding import seed_jobs  # noqa: E402

ENDPOINTS = ["ep-a", "ep-b", "ep-c"]
SCRIPT = """
import os
def init():
    pass
def run(mini_batch):
    return [os.path.basename(f) for f in mini_batch]
"""


def build_workspace(root: Path, jobs: int) -> None:
    """One real job on ep-a and ``jobs - 1`` copies of it across :data:`ENDPOINTS`."""
    from batchnb import BatchClient

    for sub in ("model", "code", "data"):
        (root / sub).mkdir(parents=True)
    (root / "model" / "w.txt").write_text("1")
    (root / "code" / "score.py").write_text(textwrap.dedent(SCRIPT))
    for i in range(4):
        (root / "data" / f"f{i}.txt").write_text(str(i))
    client = BatchClient(root / ".batchnb")
    client.models.create_or_update({"name": "m", "path": str(root / "model")})
    for ep in ENDPOINTS:
        client.batch_endpoints.create_or_update({"name": ep})
    client.batch_deployments.create_or_update(
        {
            "name": "blue",
            "endpoint_name": "ep-a",
            "model": "azureml:m@latest",
            "code_configuration": {"code": str(root / "code"), "scoring_script": "score.py"},
            "settings": {"mini_batch_size": 2},
        },
        set_default=True,
    )
    job = client.batch_endpoints.invoke("ep-a", input=str(root / "data")).wait(timeout=300)
    assert job["status"] == "Completed", job["error"]
    seed_jobs(client, job["name"], jobs - 1, ENDPOINTS, time.time() - jobs * 60)


PAINTED_JS = """
([endpoints, perEndpoint]) => endpoints.every(ep => {
  const s = document.querySelector(`#batchnb-sidebar section[data-endpoint="${ep}"]`);
  return s && s.querySelector('.batchnb-count[data-count]') &&
    s.querySelectorAll('.batchnb-job').length === perEndpoint;
})
"""


COUNTS_JS = """
endpoints => endpoints.map(ep => Number(
  document.querySelector(`#batchnb-sidebar section[data-endpoint="${ep}"] .batchnb-count`).dataset.count))
"""


def measure(url: str, rounds: int, jobs: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    paint, overview = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(rounds):
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.goto(f"{url}/lab?reset")
            tab = page.locator('.jp-SideBar [data-id="batchnb-sidebar"]')
            tab.wait_for(timeout=120_000)
            start = page.evaluate("() => performance.now()")
            tab.click()
            page.wait_for_function(PAINTED_JS, arg=[ENDPOINTS, 8], timeout=120_000, polling="raf")
            paint.append((page.evaluate("() => performance.now()") - start) / 1000)
            # What was painted is the whole workspace (else the figure would time a smaller one).
            counts = page.evaluate(COUNTS_JS, ENDPOINTS)
            assert sum(counts) == jobs, f"the sidebar counts {counts} jobs, the workspace has {jobs}"
            took = page.evaluate(
                """async () => {
                  const t = performance.now();
                  const r = await fetch('/batchnb/api/job-overview?per_endpoint=8');
                  await r.json();
                  return performance.now() - t;
                }"""
            )
            overview.append(took / 1000)
            page.close()
        browser.close()
    return {"first_paint_s": paint, "overview_request_s": overview}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="batchnb-sidebar-bench-") as tmp:
        root = Path(tmp)
        build_workspace(root, args.jobs)
        with _running_lab(root) as lab:
            figures = measure(lab.url, args.rounds, args.jobs)
    report = {"jobs": args.jobs, "rounds": args.rounds, **figures}
    for key in ("first_paint_s", "overview_request_s"):
        values = figures[key]
        print(f"{key:>20}: median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
