"""The live job display: a widget that follows a job from the store until it ends, then replaces
itself with the static summary (:func:`batchnb.display.job_html`), so an executed notebook or an
nbconvert report keeps a readable result and no empty widget placeholder.

The widget is created in the cell (the kernel's main thread) and only mutated by a daemon poller
thread (ipykernel >= 7.1 sends comm messages from threads; 7.0 broke this, see
jupyter-widgets/ipywidgets#4001). The poller reads the store, so it keeps going while the kernel
runs other cells, and the same job shown again anywhere shows the same state.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .. import display as static
from ..engine.state import ENDED

POLL_S = 0.5  # at most two widget updates a second: each one is a comm message
FINAL_UPDATE_WAIT_S = 5.0

_followers: dict[str, list[threading.Thread]] = {}
_followers_lock = threading.Lock()


def _finish_followers(job_name: str) -> None:
    """Hook for ``Job.wait()``: let the displays of this job make their final update first."""
    with _followers_lock:
        threads = _followers.pop(job_name, [])
    for thread in threads:
        thread.join(FINAL_UPDATE_WAIT_S)


def _register_hook() -> None:
    from ..engine.jobs import ON_JOB_END

    if _finish_followers not in ON_JOB_END:
        ON_JOB_END.append(_finish_followers)


_register_hook()


def live_frontend_available() -> bool:
    """True in a kernel with a widget-capable front end (not terminal IPython, not plain Python)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or type(shell).__name__ == "TerminalInteractiveShell":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return getattr(shell, "kernel", None) is not None


class JobProgress:
    """A live view of one job: status, a bar of finished mini-batches, counters, paths, a Cancel button."""

    def __init__(self, job: Any) -> None:
        import ipywidgets as w

        self.job = job._ops().get(job["name"])  # its own copy: the poller mutates it
        self.header = w.HTML()
        self.bar = w.IntProgress(min=0, max=1, value=0, layout=w.Layout(width="420px"))
        self.counters = w.HTML()
        self.paths = w.HTML()
        self.cancel_button = w.Button(description="Cancel", icon="stop", layout=w.Layout(width="90px"))
        self.cancel_button.on_click(self._cancel)
        self.widget = w.VBox([self.header, w.HBox([self.bar, self.cancel_button]), self.counters, self.paths])
        self.widget.add_class("batchnb-progress")
        self._stop = threading.Event()
        self.render()

    def _cancel(self, _button: Any) -> None:
        try:
            self.job._ops().cancel(self.job["name"])
        except Exception as exc:  # already finished, etc.: say so in the widget
            self.counters.value += f"<div style='color:#cf222e'>{type(exc).__name__}: {exc}</div>"

    def render(self) -> None:
        """Copy the job's current state into the widgets."""
        job = self.job
        p = job["progress"]
        mb, items = p["mini_batches"], p["items"]
        self.header.value = (
            f"<b>Job {job['name']}</b> &nbsp; {static.status_badge(job['status'])} &nbsp; "
            f"<span style='color:#57606a'>{job['endpoint_name']} / {job['deployment_name']}</span>"
        )
        self.bar.max = max(mb["total"], 1)
        self.bar.value = mb["done"] + mb["failed"]
        self.bar.bar_style = {
            "Completed": "success",
            "Failed": "danger",
            "Interrupted": "warning",
            "Canceled": "warning",
        }.get(job["status"], "info")
        eta = f", ETA {static._seconds(p['eta_s'])}" if p.get("eta_s") is not None else ""
        self.counters.value = (
            f"<span class='batchnb-counters'>{mb['done'] + mb['failed']}/{mb['total']} mini-batches "
            f"({mb['failed']} failed, {mb['retrying']} retrying) &middot; {items['succeeded']:,} items ok, "
            f"{items['failed']:,} failed &middot; {p['rows_written']:,} rows, {p['rows_per_second']:,.1f} rows/s"
            f"{eta}</span>"
        )
        self.paths.value = (
            f"<span style='color:#57606a;font-size:12px'>output: {job['outputs']['score']['path']}"
            f" &middot; logs: {job['logs_dir']}</span>"
        )
        self.cancel_button.disabled = job["status"] in ENDED

    def follow(self, on_end: Any = None) -> threading.Thread:
        """Poll the store in a daemon thread until the job ends; then call ``on_end(job)``."""

        def loop() -> None:
            last = None
            while not self._stop.is_set():
                try:
                    self.job.refresh()
                except Exception:  # a transient store error: try again next tick
                    time.sleep(POLL_S)
                    continue
                snapshot = (self.job["status"], repr(self.job["progress"]))
                if snapshot != last:
                    self.render()
                    last = snapshot
                if self.job["status"] in ENDED:
                    if on_end is not None:
                        on_end(self.job)
                    return
                time.sleep(POLL_S)

        thread = threading.Thread(target=loop, name=f"batchnb-follow-{self.job['name']}", daemon=True)
        with _followers_lock:
            _followers.setdefault(self.job["name"], []).append(thread)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop following (the widget keeps its last state)."""
        self._stop.set()


class _Summary:
    """The static rendering that replaces the widget when the job ends."""

    def __init__(self, job: Any) -> None:
        self.job = job

    def _repr_html_(self) -> str:
        return static.job_html(self.job, self.job._ops().timeline(self.job["name"]))

    def __repr__(self) -> str:
        return static.job_text(self.job)


def show_job(job: Any) -> JobProgress | None:
    """Display a job in the current cell: live while it runs (where a widget front end exists), the
    static summary once it has ended or where no live front end exists."""
    from IPython.display import display

    finished = job["status"] in ENDED
    if finished or not live_frontend_available():
        display(_Summary(job))
        return None
    view = JobProgress(job)
    handle = display(view.widget, display_id=True)
    view.follow(on_end=lambda final: handle.update(_Summary(final)))
    return view
