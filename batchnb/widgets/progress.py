"""The live job display: a widget that follows a job from the store until it ends, then replaces
itself with the static summary (:func:`batchnb.display.job_html`), so an executed notebook or an
nbconvert report keeps a readable result and no empty widget placeholder.

The widget is created in the cell (the kernel's main thread) and only mutated by a daemon poller
thread (ipykernel >= 7.1 sends comm messages from threads; 7.0 broke this, see
jupyter-widgets/ipywidgets#4001). The poller reads the store, so it keeps going while the kernel
runs other cells, and the same job shown again anywhere shows the same state.

The widget becomes the summary itself too when the job ends (its children are replaced), so a
view of it that the display update cannot reach (a page reloaded while the job ran shows the
widget from the kernel's state, without the display id) ends as the summary card all the same.
Each display also carries :data:`JOB_MIME` (``{"name": <job>}``): the JupyterLab extension finds the
job of a widget whose kernel has gone (a restart) by it and puts the job's summary in its place.

The widget styles itself with a ``<style>`` element of its own, scoped to its root class
``batchnb-live`` (so it looks the same with or without the JupyterLab extension, and neither's CSS
reaches the other), in JupyterLab's theme colours.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

from .. import display as static
from ..engine.state import ENDED

_STYLE = (
    "<style>"
    + static.status_css(".batchnb-live .batchnb-live-status")
    + f".batchnb-live .batchnb-live-where,.batchnb-live .batchnb-live-paths{{color:{static.MUTED}}}"
    ".batchnb-live .batchnb-live-paths,.batchnb-live .batchnb-live-steps{font-size:12px;line-height:18px}"
    f".batchnb-live .batchnb-live-error{{color:{static.ERROR_TEXT}}}"
    "</style>"
)

# Carried by every display of a job, next to what renders it (no front end renders this type).
JOB_MIME = "application/vnd.batchnb.job+json"
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
    from ..jobs import ON_JOB_END

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
    """A live view of one job: status, a progress bar, counters, paths, a Cancel button.

    The bar counts finished mini-batches for a batch job and finished steps for a pipeline job (whose
    steps are listed under it); a step job shows its command and log, and is canceled with its pipeline.
    """

    def __init__(self, job: Any) -> None:
        import ipywidgets as w

        self.job = job._ops().get(job["name"])  # its own copy: the poller mutates it
        # Hidden: a <style> element applies wherever it sits, and this one takes no line of its own.
        style = w.HTML(_STYLE, layout=w.Layout(display="none"))
        self.header = w.HTML()
        self.bar = w.IntProgress(min=0, max=1, value=0, layout=w.Layout(width="420px"))
        self.counters = w.HTML()
        self.steps = w.HTML()
        self.paths = w.HTML()
        self.cancel_button = w.Button(description="Cancel", icon="stop", layout=w.Layout(width="90px"))
        self.cancel_button.on_click(self._cancel)
        self._style = style
        self.widget = w.VBox(
            [style, self.header, w.HBox([self.bar, self.cancel_button]), self.counters, self.steps, self.paths]
        )
        self.widget.add_class("batchnb-live")
        self._stop = threading.Event()
        self.render()

    def _cancel(self, _button: Any) -> None:
        try:
            self.job._ops().cancel(self.job["name"])
        except Exception as exc:  # already finished, etc.: say so in the widget
            problem = html.escape(f"{type(exc).__name__}: {exc}")
            self.counters.value += f"<div class='batchnb-live-error'>{problem}</div>"

    def render(self) -> None:
        """Copy the job's current state into the widgets."""
        job = self.job
        kind = job.get("type", "batch")
        if kind == "pipeline":
            title, where = "Pipeline job", job.get("display_name") or ""
            if job.get("endpoint_name"):
                where = f"{job['endpoint_name']} / {job['deployment_name']}"
        elif kind == "command":
            title, where = "Step job", f"step {job['step']} of {job['parent_job_name']}"
        else:
            title, where = "Job", f"{job['endpoint_name']} / {job['deployment_name']}"
        self.header.value = (
            f"<b>{title} {html.escape(job['name'])}</b> &nbsp; "
            f"{static.status_badge(job['status'], 'batchnb-live-status')} &nbsp; "
            f"<span class='batchnb-live-where'>{html.escape(where)}</span>"
        )
        self.bar.bar_style = {
            "Completed": "success",
            "Failed": "danger",
            "Interrupted": "warning",
            "Canceled": "warning",
        }.get(job["status"], "info")
        {"pipeline": self._render_pipeline, "command": self._render_step}.get(kind, self._render_batch)()
        # A step is canceled with its pipeline job (the core refuses to cancel a step alone).
        self.cancel_button.disabled = job["status"] in ENDED or kind == "command"

    def _render_batch(self) -> None:
        job = self.job
        p = job["progress"]
        mb, items = p["mini_batches"], p["items"]
        self.bar.max = max(mb["total"], 1)
        self.bar.value = mb["done"] + mb["failed"]
        eta = f", ETA {static._seconds(p['eta_s'])}" if p.get("eta_s") is not None else ""
        self.counters.value = (
            f"<span class='batchnb-live-counters'>{mb['done'] + mb['failed']}/{mb['total']} mini-batches "
            f"({mb['failed']} failed, {mb['retrying']} retrying) &middot; {items['succeeded']:,} items ok, "
            f"{items['failed']:,} failed &middot; {p['rows_written']:,} rows, {p['rows_per_second']:,.1f} rows/s"
            f"{eta}</span>"
        )
        self._paths(f"output: {job['outputs']['score']['path']}", f"logs: {job['logs_dir']}")

    def _render_pipeline(self) -> None:
        job = self.job
        counts = job["progress"]["steps"]
        self.bar.max = max(counts["total"], 1)
        self.bar.value = counts["completed"] + counts["failed"] + counts["canceled"]
        self.counters.value = (
            f"<span class='batchnb-live-counters'>{html.escape(static.steps_summary(job['progress']))} &middot; "
            f"elapsed {static._seconds(job['progress']['elapsed_s'])}</span>"
        )
        self.steps.value = (
            "<div class='batchnb-live-steps'>"
            + "".join(
                f"<div data-step='{html.escape(s['name'])}' data-status='{html.escape(s['status'])}'>"
                f"{static.status_badge(s['status'], 'batchnb-live-status')} {html.escape(s['name'])}"
                + (
                    f" <span class='batchnb-live-where'>{static._seconds(s['duration_s'])}</span>"
                    if s["duration_s"]
                    else ""
                )
                + (
                    f" <span class='batchnb-live-error'>{html.escape(static.first_line(s['error']))}</span>"
                    if s["error"]
                    else ""
                )
                + "</div>"
                for s in job["steps"]
            )
            + "</div>"
        )
        outputs = [f"{name}: {out['path']}" for name, out in job["outputs"].items()]
        self._paths(*outputs, f"logs: {job['logs_dir']}")

    def _render_step(self) -> None:
        job = self.job
        self.bar.max, self.bar.value = 1, int(job["status"] in ENDED)
        self.counters.value = (
            f"<span class='batchnb-live-counters'><code>{html.escape(job['command'])}</code> &middot; "
            f"elapsed {static._seconds(job['progress']['elapsed_s'])}</span>"
        )
        self._paths(f"log: {job['std_log']}")

    def _paths(self, *parts: str) -> None:
        self.paths.value = (
            "<span class='batchnb-live-paths'>" + " &middot; ".join(html.escape(p) for p in parts) + "</span>"
        )

    def follow(self, on_end: Any = None) -> threading.Thread:
        """Poll the store in a daemon thread until the job ends; then call ``on_end(job)``."""

        def loop() -> None:
            last = None
            while not self._stop.is_set():
                try:
                    self.job.refresh(metrics=False)
                except Exception:  # a transient store error: try again next tick
                    time.sleep(POLL_S)
                    continue
                snapshot = (self.job["status"], repr(self.job["progress"]), repr(self.job.get("steps")))
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

    def become_summary(self, job: Any) -> None:
        """Show the ended job's summary card in place of the live parts (in every view of the widget)."""
        import ipywidgets as w

        self.widget.children = [self._style, w.HTML(_Summary(job)._repr_html_())]

    def stop(self) -> None:
        """Stop following (the widget keeps its last state)."""
        self._stop.set()


class _Summary:
    """The static rendering that replaces the widget when the job ends."""

    def __init__(self, job: Any) -> None:
        self.job = job

    def _repr_html_(self) -> str:
        return str(self.job._ops().summary_html(self.job))

    def __repr__(self) -> str:
        return static.job_text(self.job)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return {"text/html": self._repr_html_(), "text/plain": repr(self), JOB_MIME: {"name": self.job["name"]}}


def show_job(job: Any) -> JobProgress | None:
    """Display a job in the current cell: live while it runs (where a widget front end exists), the
    static summary once it has ended or where no live front end exists."""
    from IPython.display import display

    from . import cells

    finished = job["status"] in ENDED
    if finished or not live_frontend_available():
        display(_Summary(job))
        cells.remember(job["name"], None)
        return None
    view = JobProgress(job)
    bundle = {**view.widget._repr_mimebundle_(), JOB_MIME: {"name": job["name"]}}
    handle = display(bundle, raw=True, display_id=True)
    cells.remember(job["name"], view.widget.model_id)

    def on_end(final: Any) -> None:
        view.become_summary(final)
        handle.update(_Summary(final))

    view.follow(on_end=on_end)
    return view
