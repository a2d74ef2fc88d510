"""A batch job's failed items with their tracebacks, its per-worker timeline and its summary card
through the REST API (what the sidebar's detail view reads), for a real job whose scoring script
fails on one file on purpose; a pipeline job has neither (400).
"""

# ruff: noqa: F811 - the fixtures imported from test_server are, as pytest wants, parameters of the same name

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_jupyter.jupyter_server import *  # noqa: F403 - pytest-jupyter's fixtures, for this module
from test_server import (  # noqa: F401 - the REST tests' fixtures, used by name
    Api,
    api,
    deployed,
    deployment_spec,
    extra_config,
    jp_asyncio_loop,
    jp_server_config,
    pipeline_body,
    project,
    store,
    wait_for_job,
    ws_dir,
)

from batchnb import BatchClient
from batchnb.server import models

# f001 and f002 fail (mini-batches of one, two attempts each); the others are scored.
BROKEN = """
import pandas as pd

def init():
    pass

def run(mini_batch):
    for f in mini_batch:
        if f.endswith(("f001.csv", "f002.csv")):
            raise ValueError("bad file " + f[-8:])
    return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
"""


def _failing_job(api: Api, project: Path) -> dict[str, Any]:
    (project / "code-blue" / "score.py").write_text(BROKEN)
    spec = deployment_spec("blue")
    spec["settings"].update(mini_batch_size=1, retry_settings={"max_retries": 2, "timeout": 30})
    code, dep = api("POST", "endpoints", "ep-rest", "deployments", body=spec)
    assert code == 200, dep
    code, job = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", "set": ["error_threshold=-1"]})
    assert code == 201, job
    done = wait_for_job(api, job["name"])
    assert done["status"] == "Completed", done["error"]
    return done


def test_failed_items_with_tracebacks_the_worker_timeline_and_the_card_through_rest(
    api: Api, deployed: dict[str, Any], project: Path, store: BatchClient
) -> None:
    name = _failing_job(api, project)["name"]

    code, failed = api("GET", "jobs", name, "failures", params={"tracebacks": "true"})
    assert code == 200, failed
    listed = models.JobFailures.model_validate(failed)
    assert listed.total == 2
    assert [(Path(f.item).name, f.error) for f in listed.items] == [
        ("f001.csv", "ValueError: bad file f001.csv"),
        ("f002.csv", "ValueError: bad file f002.csv"),
    ]
    for f in listed.items:
        assert f.traceback_text is not None and f.traceback_text.startswith("Traceback (most recent call last):")
        assert f.traceback_text.rstrip().endswith(f.error or "?")
    # The first only, and how many there are; without tracebacks unless asked.
    code, first = api("GET", "jobs", name, "failures", params={"limit": "1"})
    assert code == 200 and first["total"] == 2 and len(first["items"]) == 1, first
    assert first["items"][0].get("traceback_text") is None
    code, bad = api("GET", "jobs", name, "failures", params={"limit": "0"})
    assert code == 400 and bad["field"] == "limit", bad

    code, timeline = api("GET", "jobs", name, "worker-timeline")
    assert code == 200, timeline
    workers = models.WorkerTimeline.model_validate(timeline)
    # Four mini-batches of one file: two scored at once, two failed on both their attempts.
    outcomes = sorted((a.mini_batch, a.attempt, a.outcome) for a in workers.attempts)
    assert outcomes == [
        (0, 1, "ok"),
        (1, 1, "retried"),
        (1, 2, "failed"),
        (2, 1, "retried"),
        (2, 2, "failed"),
        (3, 1, "ok"),
    ]
    assert workers.workers == list(dict.fromkeys(a.worker for a in workers.attempts))
    assert workers.workers and all(w.startswith("process") for w in workers.workers)
    assert all(0 <= a.start <= a.end and a.ended_at >= a.started_at for a in workers.attempts)
    assert timeline["attempts"] == store.jobs.worker_timeline(name)  # what the core says, as is

    code, summary = api("GET", "jobs", name, "summary")
    assert code == 200, summary
    html = summary["html"]
    assert 'data-failed-items="2"' in html and html.count("<details>") == 2
    assert html.count('class="batchnb-timeline-bar"') == len(workers.attempts)


def test_a_pipeline_job_has_no_failed_items_nor_worker_timeline(api: Api, project: Path) -> None:
    code, job = api("POST", "jobs", body=pipeline_body())
    assert code == 201, job
    for route in ("failures", "worker-timeline"):
        code, err = api("GET", "jobs", job["name"], route)
        assert code == 400 and "batch jobs" in err["message"], (route, err)
    wait_for_job(api, job["name"])  # its runner ends before the server does
