"""Static renderings of entities: HTML for notebooks and reports, plain text elsewhere.

Pure string building, no widget or IPython import: the same HTML serves a notebook output, an
nbconvert report (it needs no JavaScript) and a terminal's ``repr``. The live widget
(:mod:`batchnb.widgets`) replaces itself with :func:`job_html` when its job ends.

Every CSS rule here is scoped to the card's own root class (``batchnb-card``), so it can neither
change the JupyterLab sidebar nor be changed by it. Colours come from JupyterLab's theme variables
(with light fallbacks for pages without them); text keeps the theme's font colours and a status
carries its hue in a tinted background, so the light and the dark theme both stay readable.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

# A status's hue: a JupyterLab theme variable, and the light theme's value where it is undefined.
TONES = {
    "success": ("--jp-success-color1", "#388e3c"),
    "error": ("--jp-error-color1", "#d32f2f"),
    "warn": ("--jp-warn-color1", "#f57c00"),
    "info": ("--jp-brand-color1", "#1976d2"),
    "neutral": ("--jp-layout-color4", "#757575"),
}
_STATUS_TONES = {
    "Completed": "success",
    "Failed": "error",
    "Interrupted": "warn",
    "CancelRequested": "warn",
    "Running": "info",
    "Finalizing": "info",
}
MUTED = "var(--jp-ui-font-color2,#616161)"
# Red text that stays readable on both themes' backgrounds: the theme's red darkened (light theme)
# or lightened (dark theme) towards the theme's strongest font colour.
ERROR_TEXT = "color-mix(in srgb,var(--jp-error-color1,#d32f2f) 70%,var(--jp-ui-font-color0,#000))"


def tone(status: str) -> str:
    """The hue of a status: ``success``, ``error``, ``warn``, ``info`` or ``neutral``."""
    return _STATUS_TONES.get(status, "neutral")


def status_css(selector: str) -> str:
    """CSS for status badges matched by ``selector``: the text in the theme's font colour on a tint
    of the status's hue (``data-tone``), which reads in the light and the dark theme alike."""
    rules = [f"{selector}{{border:1px solid;border-radius:3px;padding:0 5px;font-weight:600;white-space:nowrap}}"]
    for name, (var, fallback) in TONES.items():
        colour = f"var({var},{fallback})"
        rules.append(
            f"{selector}[data-tone={name}]{{border-color:{colour};"
            f"background:color-mix(in srgb,{colour} 22%,transparent)}}"
        )
    return "".join(rules)


_STYLE = (
    "<style>.batchnb-card{font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;max-width:760px}"
    ".batchnb-card table{border-collapse:collapse;margin:4px 0}"
    # !important: JupyterLab right-aligns the cells of rendered HTML tables and stripes their rows.
    ".batchnb-card td,.batchnb-card th{padding:2px 10px 2px 0;text-align:left!important;vertical-align:top}"
    ".batchnb-card tr{background:transparent!important}"
    f".batchnb-card th{{color:{MUTED};font-weight:normal;white-space:nowrap}}"
    + status_css(".batchnb-card .batchnb-card-status")
    + ".batchnb-card .batchnb-card-error{white-space:pre-wrap;font-size:12px;padding:4px 8px;margin-top:4px;"
    "border-left:3px solid var(--jp-error-color1,#d32f2f);"
    "background:color-mix(in srgb,var(--jp-error-color1,#d32f2f) 12%,transparent)}"
    f".batchnb-card td.batchnb-card-step-error{{color:{ERROR_TEXT};font-size:12px}}"
    ".batchnb-card code{font-size:12px}"
    f".batchnb-card .batchnb-chart text{{fill:{MUTED}}}"
    f".batchnb-card .batchnb-chart .batchnb-chart-axis{{stroke:{MUTED}}}"
    ".batchnb-card .batchnb-chart .batchnb-chart-bar{fill:var(--jp-brand-color2,#64b5f6);opacity:0.6}"
    ".batchnb-card .batchnb-chart .batchnb-chart-line{stroke:var(--jp-brand-color1,#1976d2)}</style>"
)


def local_time(ts: float | None, seconds: bool = False) -> str:
    """An epoch time as the reader's local time, ``2026-12-02 04:13`` (JSON keeps ISO 8601)."""
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    value = float(value)
    if 0 < value < 0.1:  # a fast run(): "0.0 s" would read as "nothing ran"
        return f"{value * 1000:.0f} ms" if value >= 0.0005 else "<1 ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes} min {seconds} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def status_badge(status: str, css_class: str = "batchnb-card-status") -> str:
    """The job status as a badge tinted with its hue (styled by :func:`status_css`)."""
    return f'<span class="{css_class}" data-tone="{tone(status)}">{html.escape(status)}</span>'


# How many failed items a summary card lists (the rest: ``batchnb job failures``).
FAILURES_SHOWN = 50


def _ticks(top: float) -> list[float]:
    return [0.0, top / 2, top] if top > 0 else [0.0]


def svg_chart(points: list[tuple[float, int, int]], width: int = 440, height: int = 150) -> str:
    """A small inline SVG with axes: mini-batches finished (line, left axis) and rows written per
    second (bars, right axis) against the time since the job started.

    Args:
        points: ``(seconds since start, mini-batches finished so far, rows written so far)``, in time order.
        width: The chart's width in pixels.
        height: The chart's height in pixels.

    Returns:
        The ``<svg>`` element, or ``""`` with fewer than two points.
    """
    if len(points) < 2:
        return ""
    left, right, top, bottom = 34, 46, 18, 32
    plot_w, plot_h = width - left - right, height - top - bottom
    base = top + plot_h
    t_max = max(p[0] for p in points) or 1.0
    done_max = max(p[1] for p in points) or 1
    # Throughput per bucket: rows written in each of up to 30 equal slices of the run.
    buckets = min(30, len(points))
    rates = [0.0] * buckets
    previous_rows = 0
    for t, _done, rows in points:
        b = min(buckets - 1, int(t / t_max * buckets))
        rates[b] += rows - previous_rows
        previous_rows = rows
    slice_s = t_max / buckets
    rates = [r / slice_s for r in rates]
    rate_max = max(rates) or 1.0
    bar_w = plot_w / buckets
    parts = [
        f'<rect class="batchnb-chart-bar" x="{left + i * bar_w:.1f}" y="{base - r / rate_max * plot_h:.1f}" '
        f'width="{bar_w * 0.8:.1f}" height="{r / rate_max * plot_h:.1f}" fill="#64b5f6" opacity="0.6"/>'
        for i, r in enumerate(rates)
    ]
    line = " ".join(f"{left + p[0] / t_max * plot_w:.1f},{base - p[1] / done_max * plot_h:.1f}" for p in points)
    parts.append(
        f'<polyline class="batchnb-chart-line" points="{line}" fill="none" stroke="#1976d2" stroke-width="2"/>'
    )
    axis = 'class="batchnb-chart-axis" stroke="#616161" stroke-width="1"'
    parts.append(f'<path {axis} fill="none" d="M{left},{top} V{base} H{left + plot_w} V{top}"/>')
    text = 'font-size="10" fill="#616161"'
    for t in _ticks(t_max):
        x = left + t / t_max * plot_w
        parts.append(f'<path {axis} d="M{x:.1f},{base} v3"/>')
        parts.append(f'<text {text} x="{x:.1f}" y="{base + 13}" text-anchor="middle">{_seconds(t)}</text>')
    for d in _ticks(float(done_max)):
        y = base - d / done_max * plot_h
        parts.append(f'<text {text} x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{d:g}</text>')
    for r in _ticks(rate_max):
        y = base - r / rate_max * plot_h
        parts.append(f'<text {text} x="{left + plot_w + 4}" y="{y + 3:.1f}">{r:,.0f}</text>')
    parts += [
        f'<text {text} x="{left}" y="11">mini-batches done (line)</text>',
        f'<text {text} x="{width - 2}" y="11" text-anchor="end">rows/s (bars)</text>',
        f'<text {text} x="{left + plot_w / 2:.1f}" y="{height - 3}" text-anchor="middle">time since start</text>',
    ]
    return (
        f'<svg class="batchnb-chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="mini-batches done and rows/s over time">'
        + "".join(parts)
        + "</svg>"
    )


def first_line(text: str | None) -> str:
    """The first line of a (multi-line) error message, or ``""``."""
    return text.strip().splitlines()[0] if text and text.strip() else ""


def error_summary(text: str | None) -> str:
    """The first line of an error message, and when a traceback follows it, the exception the
    traceback ends with if the first line does not say it (the first line names where a job failed,
    often ending with a colon; the exception says why), or ``""``."""
    lines = text.strip().splitlines() if text else []
    if not lines:
        return ""
    if "Traceback (most recent call last):" in lines:
        after = lines[lines.index("Traceback (most recent call last):") + 1 :]
        raised = next((line for line in after if line and not line[0].isspace()), "")
        if raised and raised != lines[0]:
            return f"{lines[0]} {raised}"
    return lines[0]


def steps_summary(progress: dict[str, Any]) -> str:
    """A pipeline job's step counts in words: ``2/4 steps, 1 running, 1 failed``."""
    counts = progress.get("steps") or {}
    parts = [f"{counts.get('completed', 0)}/{counts.get('total', 0)} steps"]
    parts += [f"{counts[key]} {key}" for key in ("running", "failed", "canceled") if counts.get(key)]
    return ", ".join(parts)


def _card(job: dict[str, Any], title: str, rows: list[tuple[str, str]], extra: str = "") -> str:
    # data-row names each row for tests and user styles: "Rows written" -> "rows-written".
    body = "".join(f'<tr data-row="{k.lower().replace(" ", "-")}"><th>{k}</th><td>{v}</td></tr>' for k, v in rows)
    error = f'<div class="batchnb-card-error">{html.escape(job["error"])}</div>' if job.get("error") else ""
    return (
        f'{_STYLE}<div class="batchnb-card batchnb-summary" data-job="{html.escape(job["name"])}" '
        f'data-type="{html.escape(str(job.get("type", "batch")))}" data-status="{html.escape(job["status"])}">'
        f"<b>{html.escape(title)}</b><table>{body}</table>{extra}{error}</div>"
    )


def _time_row(job: dict[str, Any]) -> tuple[str, str]:
    elapsed = (job.get("progress") or {}).get("elapsed_s")
    return "Time", f"started {local_time(job.get('started_at'), seconds=True)}, elapsed {_seconds(elapsed)}"


def _output_rows(job: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"Output {html.escape(name)}", html.escape(str(out.get("path", ""))))
        for name, out in (job.get("outputs") or {}).items()
    ]


def _input_text(value: dict[str, Any]) -> str:
    return str(value["path"]) if "path" in value else repr(value.get("value"))


def _pipeline_html(job: dict[str, Any]) -> str:
    title = job.get("display_name") or job["name"]
    component = job.get("component") or {}
    rows = [("Status", status_badge(job["status"]))]
    if job.get("endpoint_name"):
        rows.append(("Endpoint", html.escape(f"{job['endpoint_name']} / {job.get('deployment_name')}")))
    if component.get("name"):
        rows.append(("Component", html.escape(f"{component['name']}:{component.get('version')}")))
    rows += [
        ("Steps", html.escape(steps_summary(job.get("progress") or {}))),
        _time_row(job),
        *((f"Input {html.escape(n)}", html.escape(_input_text(v))) for n, v in (job.get("inputs") or {}).items()),
        *_output_rows(job),
        ("Logs", html.escape(str(job.get("logs_dir", "")))),
    ]
    steps = "".join(
        f'<tr data-step="{html.escape(s["name"])}" data-status="{html.escape(s["status"])}">'
        f"<td>{html.escape(s['name'])}</td><td>{status_badge(s['status'])}</td>"
        f"<td>{_seconds(s.get('duration_s'))}</td><td>{html.escape(', '.join(s.get('needs') or []))}</td>"
        f'<td class="batchnb-card-step-error">{html.escape(first_line(s.get("error")))}</td></tr>'
        for s in job.get("steps") or []
    )
    table = (
        '<table class="batchnb-card-steps"><tr><th>step</th><th>status</th><th>duration</th><th>after</th>'
        f"<th></th></tr>{steps}</table>"
    )
    heading = f"Pipeline job {job['name']}" + (f" ({title})" if title != job["name"] else "")
    return _card(job, heading, rows, table)


def _step_html(job: dict[str, Any]) -> str:
    rows = [
        ("Status", status_badge(job["status"])),
        ("Pipeline job", html.escape(f"{job.get('parent_job_name')} (step {job.get('step')})")),
        ("Command", f"<code>{html.escape(str(job.get('command', '')))}</code>"),
        ("Compute", html.escape(str(job.get("compute", "")))),
        _time_row(job),
        *_output_rows(job),
        ("Log", html.escape(str(job.get("std_log", "")))),
    ]
    return _card(job, f"Step job {job['name']}", rows)


def job_html(
    job: dict[str, Any],
    timeline: list[tuple[float, int, int]] | None = None,
    failed: list[dict[str, Any]] | None = None,
    failed_total: int | None = None,
    attempts: list[dict[str, Any]] | None = None,
) -> str:
    """A job as an HTML card: status, counters, timing, locations, error, and charts when finished.

    A pipeline job shows its step counts, outputs and a table of its steps; a step job its
    pipeline job, command and log. ``JobOperations.summary_html`` gives a batch job's card
    everything below from the store.

    Args:
        job: The job's record.
        timeline: ``JobOperations.timeline``: the throughput chart.
        failed: The first failed items with their tracebacks (``JobOperations.failures``): a table.
        failed_total: How many failed items the job has (default: ``len(failed)``).
        attempts: ``JobOperations.worker_timeline``: the per-worker timeline, beside the throughput.
    """
    if job.get("type") == "pipeline":
        return _pipeline_html(job)
    if job.get("type") == "command":
        return _step_html(job)
    p = job.get("progress") or {}
    mb, items = p.get("mini_batches", {}), p.get("items", {})
    rows = [
        ("Status", status_badge(job["status"])),
        ("Endpoint", html.escape(f"{job.get('endpoint_name')} / {job.get('deployment_name')}")),
        (
            "Mini-batches",
            f"{mb.get('done', 0)} done, {mb.get('failed', 0)} failed, {mb.get('running', 0)} running, "
            f"{mb.get('retrying', 0)} retrying, of {mb.get('total', 0)}",
        ),
        ("Items", f"{items.get('succeeded', 0):,} succeeded, {items.get('failed', 0):,} failed"),
        ("Rows written", f"{p.get('rows_written', 0):,} ({p.get('rows_per_second', 0):,.1f} rows/s)"),
        (
            "Time",
            f"started {local_time(job.get('started_at'), seconds=True)}, elapsed {_seconds(p.get('elapsed_s'))}"
            + (f", ETA {_seconds(p.get('eta_s'))}" if p.get("eta_s") is not None else ""),
        ),
        # Time inside run(), summed over the workers (init() and the pool's start are not in it).
        ("Worker time", f"{_seconds(p.get('worker_seconds', 0.0))} in run(), summed over the workers"),
        ("Output", html.escape(str((job.get("outputs") or {}).get("score", {}).get("path", "")))),
        ("Logs", html.escape(str(job.get("logs_dir", "")))),
    ]
    if job.get("lineage"):
        rows.append(("Lineage", html.escape(lineage_line(job["lineage"]))))
    if job.get("incremental"):
        rows.append(("Reused", html.escape(reused_line(job["incremental"]))))
    from .display_details import STYLE, failures_html, worker_timeline_svg

    charts = svg_chart(timeline or []) + worker_timeline_svg(attempts or [])
    failed = failed or []
    extra = failures_html(failed, len(failed) if failed_total is None else failed_total, job["name"])
    if charts:
        extra = f'<div class="batchnb-card-charts">{charts}</div>{extra}'
    return _card(job, f"Job {job['name']}", rows, STYLE + extra if attempts or failed else extra)


def lineage_line(lineage: dict[str, Any]) -> str:
    """A job's lineage in one line: ``deployment blue (revision 2), model tiny:1, code sha256:ab12…``."""
    code = str(lineage.get("code_hash") or "")
    parts = [
        f"deployment {lineage.get('deployment')} (revision {lineage.get('deployment_revision')})",
        f"model {lineage.get('model')}",
        f"code {code[:19]}…" if len(code) > 19 else f"code {code}",
    ]
    if lineage.get("environment"):
        parts.append(f"environment {lineage['environment']}")
    return ", ".join(parts)


def reused_line(incremental: dict[str, Any]) -> str:
    """What an incremental job reused: ``3 mini-batches (30 items) from J; 1 scored``."""
    sources = ", ".join(incremental.get("reused_from") or []) or "no earlier job"
    return (
        f"{incremental.get('mini_batches_reused', 0)} mini-batch(es) ({incremental.get('items_reused', 0)} "
        f"item(s)) from {sources}; {incremental.get('mini_batches_to_score', 0)} scored"
    )


def _pipeline_text(job: dict[str, Any]) -> list[str]:
    lines = [f"Pipeline job {job['name']}: {job['status']}"]
    if job.get("endpoint_name"):
        lines.append(f"  endpoint      {job['endpoint_name']} / {job.get('deployment_name')}")
    lines += [
        f"  steps         {steps_summary(job.get('progress') or {})}",
        f"  elapsed       {_seconds((job.get('progress') or {}).get('elapsed_s'))}",
        *(f"  output {n:<6} {o.get('path', '')}" for n, o in (job.get("outputs") or {}).items()),
    ]
    steps = job.get("steps") or []
    width = max((len(s["name"]) for s in steps), default=0)
    for s in steps:
        error = first_line(s.get("error"))
        lines.append(
            f"    {s['name']:<{width}}  {s['status']:<11} {_seconds(s.get('duration_s')):>9}"
            + (f"  {error}" if error else "")
        )
    return lines


def _step_text(job: dict[str, Any]) -> list[str]:
    return [
        f"Step job {job['name']}: {job['status']}",
        f"  pipeline job  {job.get('parent_job_name')} (step {job.get('step')})",
        f"  command       {job.get('command', '')}",
        f"  elapsed       {_seconds((job.get('progress') or {}).get('elapsed_s'))}",
        f"  log           {job.get('std_log', '')}",
        *(f"  output {n:<6} {o.get('path', '')}" for n, o in (job.get("outputs") or {}).items()),
    ]


def job_text(job: dict[str, Any]) -> str:
    """A job as plain text, for terminals and text-only reports."""
    if job.get("type") in ("pipeline", "command"):
        lines = _pipeline_text(job) if job["type"] == "pipeline" else _step_text(job)
        if job.get("error"):
            lines.append(f"  error         {first_line(job['error'])}")
        return "\n".join(lines)
    p = job.get("progress") or {}
    mb, items = p.get("mini_batches", {}), p.get("items", {})
    lines = [
        f"Job {job['name']}: {job['status']}",
        f"  endpoint      {job.get('endpoint_name')} / {job.get('deployment_name')}",
        f"  mini-batches  {mb.get('done', 0)} done, {mb.get('failed', 0)} failed of {mb.get('total', 0)}",
        f"  items         {items.get('succeeded', 0)} succeeded, {items.get('failed', 0)} failed",
        f"  rows written  {p.get('rows_written', 0)} ({p.get('rows_per_second', 0):.1f} rows/s)",
        f"  elapsed       {_seconds(p.get('elapsed_s'))}",
        f"  output        {(job.get('outputs') or {}).get('score', {}).get('path', '')}",
    ]
    if job.get("lineage"):
        lines.append(f"  lineage       {lineage_line(job['lineage'])}")
    if job.get("incremental"):
        lines.append(f"  reused        {reused_line(job['incremental'])}")
    if job.get("error"):
        lines.append(f"  error         {first_line(job['error'])}")
    return "\n".join(lines)


def entity_html(entity: dict[str, Any], title: str) -> str:
    """Any other entity (endpoint, deployment, model) as a small key/value table."""
    shown = {k: v for k, v in entity.items() if not isinstance(v, dict | list) and not k.startswith("_")}
    for key, value in shown.items():  # created_at, updated_at: epoch seconds in the record
        if key.endswith("_at") and isinstance(value, int | float) and not isinstance(value, bool):
            shown[key] = local_time(value)
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in shown.items())
    return f'{_STYLE}<div class="batchnb-card"><b>{html.escape(title)}</b><table>{body}</table></div>'
