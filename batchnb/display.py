"""Static renderings of entities: HTML for notebooks and reports, plain text elsewhere.

Pure string building, no widget or IPython import: the same HTML serves a notebook output, an
nbconvert report (it needs no JavaScript) and a terminal's ``repr``. The live widget
(:mod:`batchnb.widgets`) replaces itself with :func:`job_html` when its job ends.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

_STATUS_COLOURS = {
    "Completed": "#1a7f37",
    "Failed": "#cf222e",
    "Canceled": "#6e7781",
    "Interrupted": "#bf8700",
    "Running": "#0969da",
    "Queued": "#6e7781",
    "Preparing": "#6e7781",
    "Finalizing": "#0969da",
    "CancelRequested": "#bf8700",
    "NotStarted": "#6e7781",
}

_STYLE = (
    "<style>.batchnb-card{font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;max-width:760px}"
    ".batchnb-card table{border-collapse:collapse;margin:4px 0}"
    # !important: JupyterLab right-aligns the cells of rendered HTML tables.
    ".batchnb-card td,.batchnb-card th{padding:2px 10px 2px 0;text-align:left!important;vertical-align:top}"
    ".batchnb-card th{color:#57606a;font-weight:normal}"
    ".batchnb-status{font-weight:bold}.batchnb-error{white-space:pre-wrap;color:#cf222e;font-size:12px}"
    ".batchnb-steps td.batchnb-step-error{color:#cf222e;font-size:12px}.batchnb-card code{font-size:12px}</style>"
)


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes} min {seconds} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def status_badge(status: str) -> str:
    """The job status in its colour."""
    colour = _STATUS_COLOURS.get(status, "#24292f")
    return f'<span class="batchnb-status" style="color:{colour}">{html.escape(status)}</span>'


def svg_chart(points: list[tuple[float, int, int]], width: int = 360, height: int = 90) -> str:
    """A small inline SVG: mini-batches finished (line) and rows written per second (bars) over time.

    Args:
        points: ``(seconds since start, mini-batches finished so far, rows written so far)``, in time order.
    """
    if len(points) < 2:
        return ""
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
    bar_w = width / buckets
    bars = "".join(
        f'<rect x="{i * bar_w:.1f}" y="{height - r / rate_max * (height - 14):.1f}" width="{bar_w * 0.8:.1f}" '
        f'height="{r / rate_max * (height - 14):.1f}" fill="#afc8f0"/>'
        for i, r in enumerate(rates)
    )
    line = " ".join(f"{p[0] / t_max * width:.1f},{height - p[1] / done_max * (height - 14):.1f}" for p in points)
    return (
        f'<svg class="batchnb-chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="progress and throughput over time">'
        f'{bars}<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="2"/>'
        f'<text x="2" y="11" font-size="10" fill="#57606a">mini-batches done (line), rows/s (bars, peak '
        f"{rate_max:,.0f}) over {_seconds(t_max)}</text></svg>"
    )


def first_line(text: str | None) -> str:
    """The first line of a (multi-line) error message, or ``""``."""
    return text.strip().splitlines()[0] if text and text.strip() else ""


def steps_summary(progress: dict[str, Any]) -> str:
    """A pipeline job's step counts in words: ``2/4 steps, 1 running, 1 failed``."""
    counts = progress.get("steps") or {}
    parts = [f"{counts.get('completed', 0)}/{counts.get('total', 0)} steps"]
    parts += [f"{counts[key]} {key}" for key in ("running", "failed", "canceled") if counts.get(key)]
    return ", ".join(parts)


def _card(job: dict[str, Any], title: str, rows: list[tuple[str, str]], extra: str = "") -> str:
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    error = f'<div class="batchnb-error">{html.escape(job["error"])}</div>' if job.get("error") else ""
    return (
        f'{_STYLE}<div class="batchnb-card batchnb-summary" data-job="{html.escape(job["name"])}" '
        f'data-type="{html.escape(str(job.get("type", "batch")))}" data-status="{html.escape(job["status"])}">'
        f"<b>{html.escape(title)}</b><table>{body}</table>{extra}{error}</div>"
    )


def _time_row(job: dict[str, Any]) -> tuple[str, str]:
    elapsed = (job.get("progress") or {}).get("elapsed_s")
    return "Time", f"started {_when(job.get('started_at'))}, elapsed {_seconds(elapsed)}"


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
        f'<td class="batchnb-step-error">{html.escape(first_line(s.get("error")))}</td></tr>'
        for s in job.get("steps") or []
    )
    table = (
        '<table class="batchnb-steps"><tr><th>step</th><th>status</th><th>duration</th><th>after</th>'
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


def job_html(job: dict[str, Any], timeline: list[tuple[float, int, int]] | None = None) -> str:
    """A job as an HTML card: status, counters, timing, locations, error, and a chart when finished.

    A pipeline job shows its step counts, outputs and a table of its steps; a step job its
    pipeline job, command and log.
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
            f"started {_when(job.get('started_at'))}, elapsed {_seconds(p.get('elapsed_s'))}"
            + (f", ETA {_seconds(p.get('eta_s'))}" if p.get("eta_s") is not None else ""),
        ),
        ("Worker time", _seconds(p.get("worker_seconds"))),
        ("Output", html.escape(str((job.get("outputs") or {}).get("score", {}).get("path", "")))),
        ("Logs", html.escape(str(job.get("logs_dir", "")))),
    ]
    return _card(job, f"Job {job['name']}", rows, svg_chart(timeline or []))


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
    if job.get("error"):
        lines.append(f"  error         {first_line(job['error'])}")
    return "\n".join(lines)


def entity_html(entity: dict[str, Any], title: str) -> str:
    """Any other entity (endpoint, deployment, model) as a small key/value table."""
    shown = {k: v for k, v in entity.items() if not isinstance(v, dict | list) and not k.startswith("_")}
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in shown.items())
    return f'{_STYLE}<div class="batchnb-card"><b>{html.escape(title)}</b><table>{body}</table></div>'
