"""The REST handlers for finding and looking into jobs: the per-endpoint overview the sidebar
polls, archiving and restoring, a job's timeline and summary card, its log and output files (served
from their own folders only, so a workspace in a hidden ``.batchnb/`` folder is no obstacle), and a
preview of an output table. ``GET jobs`` (paging, filters, sorting) and ``DELETE jobs/<job>`` are in
:mod:`.handlers` with the other ``jobs`` verbs.
"""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from tornado.escape import url_escape

from .. import display
from ..engine import catalog
from ..errors import ValidationError
from . import files
from .base import BatchnbHandler

if TYPE_CHECKING:
    from ..client import BatchClient

_CHUNK = 256 * 1024


class JobOverviewHandler(BatchnbHandler):
    """``job-overview?per_endpoint=N``: each endpoint's newest N jobs, its job count and how many run."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        per_endpoint = self.query_int("per_endpoint", 8, 1, 100)
        assert per_endpoint is not None
        self.reply(await self.call(lambda c: catalog.overview(c, per_endpoint)))


class JobArchiveHandler(BatchnbHandler):
    """``jobs/<job>/archive|restore``: hide an ended job from listings, or show it again (409 while it runs)."""

    @tornado.web.authenticated
    @authorized
    async def post(self, job: str, action: str) -> None:
        self.reply(await self.call(lambda c: catalog.archive(c, job, archived=action == "archive")))


class JobTimelineHandler(BatchnbHandler):
    """``jobs/<job>/timeline``: (seconds since start, mini-batches finished, rows) at each finish."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job: str) -> None:
        def run(c: BatchClient) -> dict[str, Any]:
            record = c.jobs.get(job, metrics=False)
            points = c.jobs.timeline(job) if record["type"] == "batch" else []
            return {
                "name": record["name"],
                "started_at": record["started_at"],
                "points": [{"t": t, "mini_batches": n, "rows": rows} for t, n, rows in points],
            }

        self.reply(await self.call(run))


class JobFailuresHandler(BatchnbHandler):
    """``jobs/<job>/failures?limit=N&tracebacks=true``: a batch job's failed items, the first N, with
    their tracebacks, and how many it has (400 for a pipeline job)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job: str) -> None:
        limit = self.query_int("limit", None, 1, 1_000_000)
        tracebacks = self.query_bool("tracebacks")

        def run(c: BatchClient) -> dict[str, Any]:
            items = c.jobs.failures(job, limit=limit, tracebacks=tracebacks)
            total = len(c.jobs.failures(job)) if limit is not None and len(items) == limit else len(items)
            return {"name": job, "items": items, "total": total}

        self.reply(await self.call(run))


class WorkerTimelineHandler(BatchnbHandler):
    """``jobs/<job>/worker-timeline``: every mini-batch attempt of a batch job, by worker (400 for a pipeline job)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job: str) -> None:
        def run(c: BatchClient) -> dict[str, Any]:
            attempts = c.jobs.worker_timeline(job)
            record = c.jobs.get(job, metrics=False)
            workers = list(dict.fromkeys(a["worker"] for a in attempts))
            return {
                "name": record["name"],
                "started_at": record["started_at"],
                "workers": workers,
                "attempts": attempts,
            }

        self.reply(await self.call(run))


class JobSummaryHandler(BatchnbHandler):
    """``jobs/<job>/summary``: the summary card the notebook shows for the job (HTML and text)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job: str) -> None:
        def run(c: BatchClient) -> dict[str, Any]:
            record = c.jobs.get(job, metrics=False)
            return {
                "name": record["name"],
                "status": record["status"],
                "html": c.jobs.summary_html(record),
                "text": display.job_text(record),
            }

        self.reply(await self.call(run))


def _output_folder(record: dict[str, Any], given: str | None) -> tuple[str, str]:
    """The named output (``score`` by default) and its folder."""
    outputs = record["outputs"]
    name = given or ("score" if "score" in outputs or len(outputs) != 1 else next(iter(outputs)))
    if name not in outputs:
        raise ValidationError(
            f"job {record['name']} has no output {name!r}; its outputs are: {', '.join(outputs) or 'none'}",
            field="output",
        )
    folder: str = outputs[name]["path"]  # a folder, for a batch job's output (score) as for a pipeline's
    return name, folder


class JobFileHandler(BatchnbHandler):
    """``jobs/<job>/file?log=<path>`` or ``?path=<path>[&output=<name>]``: one file of the job's logs
    or of its output, read from that folder only; ``download=true`` makes it an attachment."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job: str) -> None:
        log = self.get_query_argument("log", None) or None
        path = self.get_query_argument("path", None) or None
        given = self.get_query_argument("output", None) or None
        download = self.query_bool("download")
        if (log is None) == (path is None):
            raise ValidationError("give one of the query parameters log or path", field="path" if log else "log")

        def run(c: BatchClient) -> Any:
            record = c.jobs.get(job, metrics=False)
            if log is not None:
                return files.resolve_in(record["logs_dir"], log, "log")
            _, folder = _output_folder(record, given)
            assert path is not None
            return files.resolve_in(folder, path, "path")

        target = await self.call(run)
        kind, _ = mimetypes.guess_type(target.name)
        text = kind is None or kind.startswith("text/") or target.suffix in (".txt", ".log", ".csv", ".jsonl")
        self.set_header("Content-Type", "text/plain; charset=utf-8" if text else kind or "application/octet-stream")
        disposition = "attachment" if download else "inline"
        self.set_header("Content-Disposition", f"{disposition}; filename*=UTF-8''{url_escape(target.name, plus=False)}")
        self.set_header("X-Content-Type-Options", "nosniff")
        with open(target, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish()


class JobPreviewHandler(BatchnbHandler):
    """``jobs/<job>/preview?output=&path=&rows=``: the first rows and column names of an output file."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job: str) -> None:
        given = self.get_query_argument("output", None) or None
        path = self.get_query_argument("path", None) or None
        rows = self.query_int("rows", 20, 1, 1000)
        assert rows is not None

        def run(c: BatchClient) -> dict[str, Any]:
            record = c.jobs.get(job, metrics=False)
            name, folder = _output_folder(record, given)
            chosen = path or files.first_table(folder, record["outputs"][name].get("file_name"))
            if chosen is None:
                raise ValidationError(f"output {name} of job {record['name']} has no files yet", field="path")
            target = files.resolve_in(folder, chosen, "path")
            own = (
                record["type"] == "batch"
                and record["settings"].get("output_action") == "append_row"
                and chosen == record["outputs"]["score"]["file_name"]
            )
            return {"name": record["name"], "output": name, "file": chosen, **files.preview(target, rows, own)}

        self.reply(await self.call(run))


ROUTES: list[tuple[str, type[BatchnbHandler]]] = [
    ("job-overview", JobOverviewHandler),
    ("jobs/(?P<job>[^/]+)/(?P<action>archive|restore)", JobArchiveHandler),
    ("jobs/(?P<job>[^/]+)/timeline", JobTimelineHandler),
    ("jobs/(?P<job>[^/]+)/failures", JobFailuresHandler),
    ("jobs/(?P<job>[^/]+)/worker-timeline", WorkerTimelineHandler),
    ("jobs/(?P<job>[^/]+)/summary", JobSummaryHandler),
    ("jobs/(?P<job>[^/]+)/file", JobFileHandler),
    ("jobs/(?P<job>[^/]+)/preview", JobPreviewHandler),
]
