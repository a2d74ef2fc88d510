"""``job stream`` on a terminal: the job's events, with a live progress bar (rich) when stderr is a TTY."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ..client import BatchClient
from ..engine import state
from ..engine.logs import read_from


def stream_with_progress(client: BatchClient, name: str, poll: float = 0.5) -> Any:
    """Follow a job until it ends; events go to stderr, the final job is returned for stdout."""
    if not sys.stderr.isatty():
        return client.jobs.stream(name, out=sys.stderr, poll=poll)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    log = Path(client.jobs.get(name)["logs_dir"]) / "sys" / "master_role.txt"
    offset = 0
    with Progress(
        TextColumn("[bold]{task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("mini-batches  {task.fields[detail]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(name, total=None, status="Queued", detail="")
        while True:
            job = client.jobs.get(name)
            p = job["progress"]
            mb = p["mini_batches"]
            detail = (
                f"failed {mb['failed']}  retrying {mb['retrying']}  rows {p['rows_written']}  "
                f"{p['rows_per_second']:.0f} rows/s"
            )
            bar.update(
                task,
                total=mb["total"] or None,
                completed=mb["done"] + mb["failed"],
                status=job["status"],
                detail=detail,
            )
            chunk, offset = read_from(log, offset)
            for line in chunk.splitlines():
                bar.console.print(line, markup=False, highlight=False)
            if job["status"] in state.ENDED:
                return job
            time.sleep(poll)
