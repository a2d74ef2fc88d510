"""Static HTML of what went on inside a batch job: its failed items and its per-worker timeline.

Parts of the summary card (:func:`batchnb.display.job_html`), so the notebook, the live widget's
final card, nbconvert reports and the REST ``summary`` show them alike, with no JavaScript: a
failed item's traceback opens in place from a ``<details>`` element, a bar of the timeline says
what it was in its ``<title>`` (the browser's tooltip). Everything from the store or the user's code
is escaped. Their ``<style>`` is scoped to the card's root class like the card's own,
in the theme's colours with light fallbacks (:data:`STYLE`, put in once by the card).

The timeline draws what Dask's task stream draws for tasks: one row per worker process, a bar per
mini-batch attempt from its start to its end, coloured by what came of it (ok, retried, failed).
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable
from typing import Any

from .display import ERROR_TEXT, MUTED, TONES

# An outcome's colour: a theme variable and the light theme's value (SVG attributes need a colour
# of their own where the stylesheet does not reach).
_OUTCOME_TONES = {"ok": TONES["success"], "retried": TONES["warn"], "failed": TONES["error"]}
# Past this many attempts, the bars of a worker that touch on screen are drawn as one (each says how
# many attempts it stands for): a 100 000 mini-batch job's card stays small, and nothing visible is lost.
MAX_BARS = 2000
# The muted text's light-theme colour, for SVG attributes (the stylesheet sets the theme's).
MUTED_FALLBACK = "#616161"

# The parts' stylesheet: the card puts it in once, before them.
STYLE = (
    "<style>"
    ".batchnb-card .batchnb-card-failures table{width:100%;table-layout:auto}"
    ".batchnb-card .batchnb-card-failures td.batchnb-card-item{overflow-wrap:anywhere;min-width:9em;font-size:12px}"
    f".batchnb-card .batchnb-card-failures summary{{cursor:pointer;color:{ERROR_TEXT}}}"
    ".batchnb-card .batchnb-card-failures pre{white-space:pre-wrap;word-break:break-word;font-size:11px;"
    "margin:4px 0;padding:4px 6px;max-height:320px;overflow:auto;color:var(--jp-content-font-color1,#000);"
    "background:var(--jp-layout-color2,#eee)}"
    f".batchnb-card .batchnb-card-more{{color:{MUTED};font-size:12px}}"
    ".batchnb-card .batchnb-card-charts{display:flex;flex-wrap:wrap;gap:4px 16px;align-items:flex-start}"
    f".batchnb-card .batchnb-timeline text{{fill:{MUTED}}}"
    f".batchnb-card .batchnb-timeline .batchnb-timeline-axis{{stroke:{MUTED}}}"
    ".batchnb-card .batchnb-timeline .batchnb-timeline-lane{fill:var(--jp-layout-color2,#eee)}"
    + "".join(
        f".batchnb-card .batchnb-timeline [data-outcome={outcome}]{{fill:var({var},{fallback})}}"
        for outcome, (var, fallback) in _OUTCOME_TONES.items()
    )
    + "</style>"
)


def failures_html(failed: list[dict[str, Any]], total: int, job_name: str) -> str:
    """The failed items table: item, mini-batch, attempts, why, and the error, whose traceback opens in place.

    Args:
        failed: The first failed items (``JobOperations.failures(..., tracebacks=True)``).
        total: How many the job has; a line says how many more there are and how to list them all.
        job_name: The job, for that command.

    Returns:
        The ``<div>``, or ``""`` when the job has none.
    """
    if not failed:
        return ""
    # Items are mostly files of one input folder: named once, so the table has room for the errors.
    # By characters, cut at the last separator: commonpath would turn a URL's "//" into "/".
    common = os.path.commonprefix([str(f["item"]) for f in failed])  # noqa: RUF071
    folder = common[: max(common.rfind("/"), common.rfind("\\")) + 1]
    rows = "".join(_failure_row(f, len(folder)) for f in failed)
    where = f" in <code>{html.escape(folder)}</code>" if folder else ""
    more = ""
    if total > len(failed):
        command = html.escape(f"batchnb job failures -n {job_name}")
        more = (
            f'<div class="batchnb-card-more">{total - len(failed):,} more failed item(s) not shown; '
            f"<code>{command}</code> lists them all.</div>"
        )
    return (
        f'<div class="batchnb-card-failures" data-failed-items="{total}">'
        f"<b>Failed items</b> ({total:,}){where}"
        "<table><tr><th>item</th><th>mini-batch</th><th>attempts</th><th>why</th><th>error</th></tr>"
        f"{rows}</table>{more}</div>"
    )


def _failure_row(f: dict[str, Any], cut: int) -> str:
    error = html.escape(str(f.get("error") or f.get("error_type") or ""))
    trace = f.get("traceback_text")
    if trace:
        error = f"<details><summary>{error or 'traceback'}</summary><pre>{html.escape(trace)}</pre></details>"
    return (
        f'<tr data-item="{html.escape(str(f["item"]))}" data-why="{html.escape(str(f["why"]))}">'
        f'<td class="batchnb-card-item">{html.escape(str(f["item"])[cut:])}</td><td>{f["mini_batch"]}</td>'
        f"<td>{f['attempts']}</td><td>{html.escape(str(f['why']))}</td><td>{error}</td></tr>"
    )


def nice_ticks(top: float) -> list[float]:
    """Round values from 0 to at least ``top``, about four steps of 1, 2, 2.5 or 5 times a power of ten."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _lanes(attempts: Iterable[dict[str, Any]]) -> list[str]:
    """The workers, in the order of their first attempt."""
    seen: dict[str, None] = {}
    for a in attempts:
        seen.setdefault(str(a["worker"]), None)
    return list(seen)


def _bars(attempts: list[dict[str, Any]], scale: float) -> list[tuple[dict[str, Any], int, float]]:
    """(first attempt, attempts it stands for, end) of each bar to draw: one per attempt, unless
    there are more than :data:`MAX_BARS`; then a worker's consecutive attempts of one outcome whose
    bars touch on screen (``scale`` pixels a second) are one bar."""
    if len(attempts) <= MAX_BARS:
        return [(a, 1, a["end"]) for a in attempts]
    bars: list[tuple[dict[str, Any], int, float]] = []
    last: dict[str, int] = {}  # worker -> index of its last bar
    for a in attempts:
        i = last.get(a["worker"])
        if i is not None:
            first, count, end = bars[i]
            if first["outcome"] == a["outcome"] and (a["start"] - end) * scale < 1:
                bars[i] = (first, count + 1, max(end, a["end"]))
                continue
        last[a["worker"]] = len(bars)
        bars.append((a, 1, a["end"]))
    return bars


def _bar_title(a: dict[str, Any], count: int, end: float) -> str:
    if count > 1:
        return f"{count} attempts, {a['outcome']}, {a['start']:.2f}-{end:.2f} s"
    error = f": {a['error']}" if a.get("error") and a["outcome"] != "ok" else ""
    return (
        f"mini-batch {a['mini_batch']} attempt {a['attempt']} ({a['items']} item(s)), {a['outcome']}{error}; "
        f"{a['start']:.2f}-{end:.2f} s ({end - a['start']:.2f} s)"
    )


def worker_timeline_svg(attempts: list[dict[str, Any]], width: int = 440) -> str:
    """The per-worker timeline as an inline SVG with axes: a row per worker process (named on the
    left), a bar per mini-batch attempt over the seconds since the job started, and a legend.

    Args:
        attempts: ``JobOperations.worker_timeline``: ``worker``, ``start``, ``end``, ``outcome``,
            ``mini_batch``, ``attempt``, ``items``, ``error``.
        width: The chart's width in pixels; its height grows with the workers.

    Returns:
        The ``<svg>`` element, or ``""`` when no attempt was recorded.
    """
    if not attempts:
        return ""
    lanes = _lanes(attempts)
    lane_h, left, right, top, bottom = 16, 96, 12, 20, 34
    plot_w = width - left - right
    height = top + lane_h * len(lanes) + bottom
    base = top + lane_h * len(lanes)
    ticks = nice_ticks(max(a["end"] for a in attempts))
    scale = plot_w / ticks[-1]
    row = {worker: i for i, worker in enumerate(lanes)}
    text = f'font-size="10" fill="{MUTED_FALLBACK}"'
    parts = []
    for i, worker in enumerate(lanes):
        y = top + i * lane_h
        label = worker if len(worker) <= 15 else worker[:14] + "…"
        parts.append(
            f'<g class="batchnb-timeline-worker" data-worker="{html.escape(worker)}">'
            f'<rect class="batchnb-timeline-lane" x="{left}" y="{y + 1}" width="{plot_w}" height="{lane_h - 2}" '
            f'fill="#eee" opacity="0.5"/>'
            f'<text {text} x="{left - 4}" y="{y + lane_h - 4}" text-anchor="end">{html.escape(label)}'
            f"<title>{html.escape(worker)}</title></text></g>"
        )
    for a, count, end in _bars(attempts, scale):
        y = top + row[str(a["worker"])] * lane_h
        x, w = left + a["start"] * scale, (end - a["start"]) * scale
        w = w - 1 if w >= 3 else max(1.0, w)  # a pixel between back-to-back bars, so each reads as one
        fill = _OUTCOME_TONES.get(a["outcome"], TONES["neutral"])[1]
        parts.append(
            f'<rect class="batchnb-timeline-bar" data-outcome="{html.escape(a["outcome"])}" '
            f'data-worker="{html.escape(str(a["worker"]))}" data-mini-batch="{a["mini_batch"]}" '
            f'data-attempts="{count}" x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{lane_h - 6}" '
            f'fill="{fill}"><title>{html.escape(_bar_title(a, count, end))}</title></rect>'
        )
    axis = f'class="batchnb-timeline-axis" stroke="{MUTED_FALLBACK}" stroke-width="1"'
    parts.append(f'<path {axis} fill="none" d="M{left},{top} V{base} H{left + plot_w}"/>')
    for t in ticks:
        x = left + t * scale
        parts.append(f'<path {axis} d="M{x:.1f},{base} v3"/>')
        parts.append(f'<text {text} x="{x:.1f}" y="{base + 13}" text-anchor="middle">{t:g}</text>')
    parts.append(
        f'<text {text} x="{left + plot_w / 2:.1f}" y="{height - 3}" text-anchor="middle">'
        "seconds since the job started</text>"
    )
    parts.append(f'<text {text} x="{left - 4}" y="11" text-anchor="end">worker</text>')
    x = left
    for outcome, (_var, fill) in _OUTCOME_TONES.items():
        parts.append(
            f'<rect class="batchnb-timeline-key" data-outcome="{outcome}" x="{x}" y="3" width="10" height="9" '
            f'fill="{fill}"/><text {text} x="{x + 13}" y="11">{outcome}</text>'
        )
        x += 60
    return (
        f'<svg class="batchnb-timeline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" data-workers="{len(lanes)}" '
        f'aria-label="mini-batch attempts per worker over the seconds since the job started">'
        + "".join(parts)
        + "</svg>"
    )
