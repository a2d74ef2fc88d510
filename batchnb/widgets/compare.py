"""``%batch compare`` live: each deployment's job with its progress while the two jobs run, then the
comparison's report (:func:`batchnb.comparison_display.comparison_html`) in its place.

The comparison runs in the cell, as on the command line (the cell ends with the report, and ``_`` is
the :class:`~batchnb.engine.compare.Comparison`); a daemon poller thread reads the running job from
the store and updates the widget meanwhile (ipykernel >= 7.1 sends comm messages from threads, as
:mod:`batchnb.widgets.progress` explains). When the comparison is done the widget becomes the
report (so a view of it restored from the kernel's state shows the report), and its display is
updated to the static report (so a saved notebook or an nbconvert export shows it without widgets).
The cell's result then adds nothing: the report is already on screen, once.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import display as static
from ..comparison_display import comparison_html
from ..engine.compare import Comparison
from ..engine.state import ENDED
from .progress import POLL_S

_STYLE = (
    "<style>"
    + static.status_css(".batchnb-compare-live .batchnb-compare-live-status")
    + f".batchnb-compare-live .batchnb-compare-live-counters{{color:{static.MUTED};font-size:12px}}"
    f".batchnb-compare-live .batchnb-compare-live-error{{color:{static.ERROR_TEXT}}}"
    ".batchnb-compare-live .batchnb-compare-live-side{width:120px;font-weight:600}"
    "</style>"
)


class LiveComparison(Comparison):
    """A comparison that a live display already shows: its first display (the cell's result) adds
    nothing, later ones (``display(_)``) show the report again."""

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self.__dict__.pop("_on_screen", False):
            return
        display(Comparison(self))


class ComparisonProgress:
    """The live view of a comparison: one line per deployment (its job, status and progress bar),
    a line that says what runs now, and at the end the report in their place."""

    def __init__(self, client: Any, endpoint: str, deployments: tuple[str, str]) -> None:
        import ipywidgets as w

        self.client = client
        self.endpoint, self.deployments = endpoint, deployments
        self._style = w.HTML(_STYLE, layout=w.Layout(display="none"))
        self.header = w.HTML(
            f"<b>Comparing {html.escape(deployments[0])} and {html.escape(deployments[1])}</b> on endpoint "
            f"{html.escape(endpoint)}"
        )
        self.stage = w.HTML("<span class='batchnb-compare-live-counters'>preparing the input…</span>")
        self.bars = {d: w.IntProgress(min=0, max=1, value=0, layout=w.Layout(width="300px")) for d in deployments}
        self.labels = {
            d: w.HTML(f"<span class='batchnb-compare-live-side'>{html.escape(d)}</span>") for d in deployments
        }
        self.counters = {d: w.HTML("<span class='batchnb-compare-live-counters'>waiting</span>") for d in deployments}
        rows = [w.HBox([self.labels[d], self.bars[d], self.counters[d]]) for d in deployments]
        self.widget = w.VBox([self._style, self.header, *rows, self.stage])
        self.widget.add_class("batchnb-compare-live")
        self.jobs: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- while the jobs run ------------------------------------------------------------------------

    def on_job(self, deployment: str, job: Any) -> None:
        """The core's hook: ``deployment``'s job was invoked; follow it until it ends."""
        with self._lock:
            self.jobs[deployment] = job
        self.render(deployment, job)
        self.stage.value = (
            f"<span class='batchnb-compare-live-counters'>scoring with {html.escape(deployment)} "
            f"(job {html.escape(job['name'])})</span>"
        )
        if self._thread is None:
            self._thread = threading.Thread(target=self._follow, name="batchnb-compare-follow", daemon=True)
            self._thread.start()

    def render(self, deployment: str, job: Any) -> None:
        """Copy one job's state into its deployment's line."""
        p = job["progress"]
        mb = p["mini_batches"]
        bar = self.bars[deployment]
        bar.max = max(mb["total"], 1)
        bar.value = mb["done"] + mb["failed"]
        bar.bar_style = {"Completed": "success", "Failed": "danger"}.get(job["status"], "info")
        eta = f", ETA {static._seconds(p['eta_s'])}" if p.get("eta_s") is not None else ""
        self.counters[deployment].value = (
            f"{static.status_badge(job['status'], 'batchnb-compare-live-status')} "
            f"<span class='batchnb-compare-live-counters' data-job='{html.escape(job['name'])}'>"
            f"{mb['done'] + mb['failed']}/{mb['total']} mini-batches &middot; {p['items']['succeeded']:,} items "
            f"&middot; {p['rows_per_second']:,.1f} rows/s{eta}</span>"
        )

    def _follow(self) -> None:
        shown: dict[str, str] = {}
        while not self._stop.is_set():
            with self._lock:
                followed = dict(self.jobs)
            for deployment, job in followed.items():
                if shown.get(deployment, "").startswith("ended"):
                    continue
                try:
                    job = self.client.jobs.get(job["name"])
                except Exception:  # a transient store error: try again next tick
                    continue
                snapshot = ("ended" if job["status"] in ENDED else "") + repr((job["status"], job["progress"]))
                if snapshot != shown.get(deployment):
                    self.render(deployment, job)
                    shown[deployment] = snapshot
            if len(followed) == len(self.deployments) and all(s.startswith("ended") for s in shown.values()):
                self.stage.value = "<span class='batchnb-compare-live-counters'>joining the two outputs…</span>"
                return
            time.sleep(POLL_S)

    # -- at the end --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop following (and wait for the poller's last update, so it cannot come after the report)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def become_report(self, comparison: Comparison) -> None:
        """Show the comparison's report in place of the progress lines (in every view of the widget)."""
        import ipywidgets as w

        self.stop()
        self.widget.children = [w.HTML(comparison_html(comparison))]

    def run(self, run: Callable[[Callable[[str, Any], None]], Comparison]) -> LiveComparison:
        """Display this view, run the comparison (``run(on_job)``) following its jobs, and end as its
        report; the returned comparison does not show itself a second time as the cell's result."""
        from IPython.display import display

        from ..errors import BatchnbError

        handle = display(self.widget._repr_mimebundle_(), raw=True, display_id=True)
        try:
            result = run(self.on_job)
        except BatchnbError as exc:
            self.fail(exc.message)
            raise
        except BaseException:
            self.stop()
            raise
        self.become_report(result)
        if handle is not None:
            handle.update(Comparison(result))
        shown = LiveComparison(result)
        shown.__dict__["_on_screen"] = True
        return shown

    def fail(self, message: str) -> None:
        """Say why the comparison stopped, under the lines of the jobs."""
        self.stop()
        self.stage.value = f"<span class='batchnb-compare-live-error'>{html.escape(message)}</span>"


def compare_live(
    client: Any, endpoint: str, deployments: list[str], run: Callable[[Callable[[str, Any], None]], Comparison]
) -> LiveComparison:
    """Run a comparison (``run(on_job)`` calls :func:`batchnb.engine.compare.compare` with the hook)
    in the cell with a live display of its two jobs, which ends as the report; returns the
    comparison (already on screen)."""
    names = (deployments[0], deployments[1]) if len(deployments) == 2 else ("A", "B")
    return ComparisonProgress(client, endpoint, names).run(run)
