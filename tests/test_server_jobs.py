"""Finding and looking into jobs through the REST API: a page of a 500-job workspace with its
total, filters and sorting; the per-endpoint overview the sidebar polls; archiving, restoring and
deleting ended jobs; and a job's timeline, summary card, files (from the hidden workspace folder)
and output preview, in CSV and Parquet.

One real job is run; the others are copies of it (tests/seeding.py), as the listing is the point.
"""

# ruff: noqa: F811 - the fixtures imported from test_server are, as pytest wants, parameters of the same name

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
from pytest_jupyter.jupyter_server import *  # noqa: F403 - pytest-jupyter's fixtures, for this module
from seeding import seed_jobs
from test_server import (  # noqa: F401 - the REST tests' fixtures, used by name
    Api,
    api,
    deployed,
    extra_config,
    jp_asyncio_loop,
    jp_server_config,
    project,
    store,
    wait_for_job,
    ws_dir,
)

from batchnb import BatchClient
from batchnb.server import models


def _run_job(api: Api, **body: Any) -> dict[str, Any]:
    code, job = api("POST", "endpoints", "ep-rest", "jobs", body={"input": "data", **body})
    assert code == 201, job
    job = wait_for_job(api, job["name"])
    assert job["status"] == "Completed", job["error"]
    return job


def _names(page: dict[str, Any]) -> list[str]:
    return [j["name"] for j in page["jobs"]]


def test_a_500_job_workspace_is_paged_filtered_sorted_and_counted(
    api: Api, deployed: dict[str, Any], store: BatchClient
) -> None:
    real = _run_job(api)
    for ep in ("ep-a", "ep-b"):
        store.batch_endpoints.create_or_update({"name": ep})
    start = time.time() - 499 * 60 - 3600
    # ep-rest's own 100 copies are the oldest: with the newest 100 of 500 fetched, it had no jobs shown.
    old = seed_jobs(store, real["name"], 100, ["ep-rest"], start - 200 * 60, prefix="old")
    new = seed_jobs(store, real["name"], 399, ["ep-a", "ep-b"], start)

    code, page = api("GET", "jobs", params={"limit": 50})
    assert code == 200, page
    models.JobList.model_validate(page)
    assert page["total"] == 500 and len(page["jobs"]) == 50
    assert _names(page)[:2] == [real["name"], new[-1]]  # newest first
    assert page["status_counts"] == {"Completed": 301, "Failed": 100, "Canceled": 99}
    _, last = api("GET", "jobs", params={"limit": 50, "offset": 450})
    assert len(last["jobs"]) == 50 and _names(last)[-1] == old[0]
    _, beyond = api("GET", "jobs", params={"limit": 50, "offset": 500})
    assert beyond["jobs"] == [] and beyond["total"] == 500
    # Every job once across the pages.
    pages = [api("GET", "jobs", params={"limit": 100, "offset": off})[1] for off in range(0, 500, 100)]
    seen = [n for p in pages for n in _names(p)]
    assert len(seen) == len(set(seen)) == 500

    # Filters: endpoint, status (one or several), a search, dates; and their totals.
    _, rest = api("GET", "jobs", params={"endpoint": "ep-rest", "limit": 5})
    assert rest["total"] == 101 and _names(rest)[0] == real["name"]
    _, failed = api("GET", "jobs", params={"endpoint": "ep-a", "status": "Failed", "limit": 500})
    assert failed["total"] == len(failed["jobs"]) > 0
    assert {(j["endpoint_name"], j["status"]) for j in failed["jobs"]} == {("ep-a", "Failed")}
    _, ended = api("GET", "jobs", params={"status": "Failed,Canceled"})
    assert ended["total"] == 199
    _, found = api("GET", "jobs", params={"search": "old-009"})
    assert sorted(_names(found)) == [f"old-{i:04d}" for i in range(90, 100)]
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start + 10 * 60))
    until = start + 20 * 60
    _, window = api("GET", "jobs", params={"since": since, "until": str(until)})
    assert sorted(_names(window)) == new[10:20]
    # Sorting: by name ascending, by duration descending.
    _, by_name = api("GET", "jobs", params={"sort": "name", "limit": 3})
    assert _names(by_name) == ["new-0000", "new-0001", "new-0002"] or _names(by_name) == sorted(_names(by_name))
    _, longest = api("GET", "jobs", params={"sort": "-duration", "limit": 10, "endpoint": "ep-b"})
    durations = [j["ended_at"] - j["started_at"] for j in longest["jobs"]]
    assert durations == sorted(durations, reverse=True) and durations[0] == 60

    # The sidebar's overview: 8 newest per endpoint, with counts; the oldest endpoint has its jobs.
    code, overview = api("GET", "job-overview", params={"per_endpoint": 8})
    assert code == 200, overview
    models.JobOverview.model_validate(overview)
    groups = {g["endpoint"]: g for g in overview["groups"]}
    assert {ep: g["total"] for ep, g in groups.items()} == {"ep-a": 200, "ep-b": 199, "ep-rest": 101}
    assert all(len(g["jobs"]) == 8 for g in groups.values())
    assert [j["name"] for j in groups["ep-rest"]["jobs"]] == [real["name"], *old[::-1][:7]]
    assert overview["total"] == 500

    # Bad values are 400s naming the parameter.
    for params, field in (
        ({"sort": "size"}, "sort"),
        ({"status": "Done"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"archived": "maybe"}, "archived"),
        ({"offset": "-1"}, "offset"),
    ):
        code, error = api("GET", "jobs", params=params)
        assert code == 400 and error["field"] == field, (params, error)
    code, error = api("GET", "job-overview", params={"per_endpoint": "0"})
    assert code == 400 and error["field"] == "per_endpoint"


def test_ended_jobs_are_archived_restored_and_deleted_and_running_ones_refused(
    api: Api, deployed: dict[str, Any], store: BatchClient
) -> None:
    real = _run_job(api)
    done, running = seed_jobs(store, real["name"], 2, ["ep-rest"], time.time() - 600)
    with store.store.write() as tx:  # a job whose supervisor (this process) is alive and beating
        tx.execute(
            "UPDATE jobs SET status = 'Running', ended_at = NULL, supervisor_pid = ?, supervisor_started = ?, "
            "heartbeat_at = ? WHERE name = ?",
            (os.getpid(), psutil.Process().create_time(), time.time() + 3600, running),
        )

    code, job = api("POST", "jobs", done, "archive")
    assert code == 200 and job["archived_at"] is not None
    _, page = api("GET", "jobs")
    assert done not in _names(page) and page["total"] == 2
    _, overview = api("GET", "job-overview")
    assert done not in [j["name"] for g in overview["groups"] for j in g["jobs"]]
    assert overview["groups"][0]["total"] == 2 and overview["groups"][0]["active"] == 1
    _, archived = api("GET", "jobs", params={"archived": "only"})
    assert _names(archived) == [done]
    assert done not in [j["name"] for j in store.jobs.list()]
    code, job = api("POST", "jobs", done, "restore")
    assert code == 200 and job["archived_at"] is None
    _, page = api("GET", "jobs")
    assert page["total"] == 3

    folder = store.workspace.job_dir(done)
    assert (folder / "logs" / "job_result.txt").exists()
    code, _ = api("DELETE", "jobs", done)
    assert code == 204
    assert not folder.exists()
    code, error = api("GET", "jobs", done)
    assert code == 404, error
    assert Path(real["outputs"]["score"]["path"]).is_dir()  # its output outside its folder is the user's

    for method, path in (("DELETE", ("jobs", running)), ("POST", ("jobs", running, "archive"))):
        code, error = api(method, *path)
        assert code == 409 and "Running" in error["message"], error
    assert store.jobs.get(running)["status"] == "Running"


def _fetch(api: Api, *path: str, params: dict[str, Any]) -> Any:
    got: list[Any] = []
    with contextlib.suppress(ValueError):  # not JSON: the file itself
        api("GET", *path, params=params, response=got)
    return got[0]


def test_timeline_summary_files_and_previews_of_a_job_in_the_hidden_workspace(
    api: Api, deployed: dict[str, Any], ws_dir: Path
) -> None:
    job = _run_job(api)
    name = job["name"]
    assert Path(job["logs_dir"]).is_relative_to(ws_dir)  # in .batchnb/: hidden from the contents API

    code, timeline = api("GET", "jobs", name, "timeline")
    assert code == 200, timeline
    models.JobTimeline.model_validate(timeline)
    assert [p["mini_batches"] for p in timeline["points"]] == [0, 1, 2]
    assert timeline["points"][-1]["rows"] == 4

    code, summary = api("GET", "jobs", name, "summary")
    assert code == 200 and f"data-job='{name}'" in summary["html"].replace('"', "'"), summary
    assert "Completed" in summary["text"]

    log = _fetch(api, "jobs", name, "file", params={"log": "job_result.txt"})
    assert log.code == 200 and log.body.decode().startswith("Completed: 2 of 2")
    assert log.headers["Content-Type"].startswith("text/plain")
    out_file = job["outputs"]["score"]["file_name"]
    download = _fetch(api, "jobs", name, "file", params={"path": out_file, "download": "true"})
    assert download.headers["Content-Disposition"].startswith("attachment")
    written = Path(job["outputs"]["score"]["path"]) / out_file
    assert download.body.decode().splitlines() == written.read_text().splitlines()
    for params, field in (({"log": "../../../batchnb.db"}, "log"), ({"path": "../logs/job_result.txt"}, "path")):
        code, error = api("GET", "jobs", name, "file", params=params)
        assert code == 400 and error["field"] == field, error
    code, error = api("GET", "jobs", name, "file", params={"log": "nope.txt"})
    assert code == 404, error

    # The output table: append_row's space-separated rows, no header (columns numbered).
    code, preview = api("GET", "jobs", name, "preview", params={"rows": 3})
    assert code == 200, preview
    models.OutputPreview.model_validate(preview)
    assert preview["file"] == out_file and preview["format"] == "csv" and not preview["header"]
    assert preview["columns"] == ["column 1", "column 2"]
    assert preview["rows"] == [["0", "blue"], ["1", "blue"], ["2", "blue"]] and preview["truncated"]

    # A Parquet output: its column names and first rows, and how many rows it has.
    job = _run_job(api, set=["output_file_name=predictions.parquet", "lineage_columns=false"])
    table = pq.read_table(Path(job["outputs"]["score"]["path"]) / "predictions.parquet")
    code, preview = api("GET", "jobs", job["name"], "preview", params={"rows": 2})
    assert code == 200, preview
    assert preview["format"] == "parquet" and preview["columns"] == table.column_names == ["x", "dep"]
    assert preview["total_rows"] == 4 and preview["rows"] == [[0, "blue"], [1, "blue"]]
