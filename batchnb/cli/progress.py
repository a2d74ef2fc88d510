"""``job stream`` on a terminal: the job's events, with a live progress bar (rich) when stderr is a TTY.

The bar counts mini-batches for a batch job and steps for a pipeline job; a step job's bar only
says whether it ended, and its events are its command's output (``std_log``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ..client import BatchClient
from ..display import first_line
from ..engine import state
from ..engine.logs import read_from


def progress_fields(job: dict[str, Any]) -> dict[str, Any]:
    """What the progress line shows for a job: ``total``/``completed`` (``None`` total: unknown yet),
    the ``unit`` counted and a ``detail`` in words."""
    p = job["progress"]
    if job["type"] == "pipeline":
        counts = p["steps"]
        running = [s["name"] for s in job["steps"] if s["status"] == state.RUNNING]
        failed = [s for s in job["steps"] if s["status"] == state.FAILED]
        detail = f"completed {counts['completed']}  running {counts['running']}  failed {counts['failed']}"
        if counts["canceled"]:
            detail += f"  canceled {counts['canceled']}"
        if running:
            detail += f"  now: {', '.join(running)}"
        if failed:
            detail += f"  {failed[0]['name']}: {first_line(failed[0]['error'])}"
        finished = counts["completed"] + counts["failed"] + counts["canceled"]
        return {"total": counts["total"] or None, "completed": finished, "unit": "steps", "detail": detail}
    if job["type"] == "command":
        ended = job["status"] in state.ENDED
        detail = f"step {job['step']} of {job['parent_job_name']}"
        return {"total": 1, "completed": int(ended), "unit": "step", "detail": detail}
    mb = p["mini_batches"]
    detail = (
        f"failed {mb['failed']}  retrying {mb['retrying']}  rows {p['rows_written']}  {p['rows_per_second']:.0f} rows/s"
    )
    return {
        "total": mb["total"] or None,
        "completed": mb["done"] + mb["failed"],
        "unit": "mini-batches",
        "detail": detail,
    }


def stream_with_progress(client: BatchClient, name: str, poll: float = 0.5) -> Any:
    """Follow a job until it ends; events go to stderr, the final job is returned for stdout."""
    if not sys.stderr.isatty():
        return client.jobs.stream(name, out=sys.stderr, poll=poll)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    job = client.jobs.get(name, metrics=False)
    # The events: the supervisor's (or pipeline runner's) log; a step job's command output.
    log = Path(job["std_log"]) if job["type"] == "command" else Path(job["logs_dir"]) / "sys" / "master_role.txt"
    offset = 0
    with Progress(
        TextColumn("[bold]{task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}  {task.fields[detail]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(name, total=None, status="Queued", unit="", detail="")
        while True:
            job = client.jobs.get(name, metrics=False)
            bar.update(task, status=job["status"], **progress_fields(job))
            chunk, offset = read_from(log, offset)
            for line in chunk.splitlines():
                bar.console.print(line, markup=False, highlight=False)
            if job["status"] in state.ENDED:
                return job
            time.sleep(poll)
