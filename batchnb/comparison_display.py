"""How a comparison of two deployments shows: an HTML card with charts, and plain text.

Pure string building, like :mod:`batchnb.display` (whose card style it shares): the card lists the
rows and the agreement, each column's agreement (with the mean and largest absolute difference of
numbers), a chart of how each column that disagrees differs (:mod:`batchnb.comparison_charts`:
a histogram of the differences of numbers, the pairs of labels), each deployment's throughput,
and the first disagreements. The live widget (:mod:`batchnb.widgets.compare`) ends as this card.
"""

from __future__ import annotations

import html
from typing import Any

from . import comparison_charts as charts
from .display import _STYLE

MAX_CHARTS = 4  # of the columns that disagree, the first ones get a chart


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def _cell(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _summary(result: dict[str, Any]) -> str:
    a, b = result["deployments"]
    rows = result["rows"]
    only = [f"{rows[f'only_{n}']:,} only in {n}" for n in (a, b) if rows.get(f"only_{n}")]
    summary = [
        ("Endpoint", f"{result['endpoint']}: {a} vs {b}"),
        ("Input", str(result["input"]) + (f" (first {result['sample']} items)" if result.get("sample") else "")),
        ("Rows", f"{a}: {rows[a]:,}, {b}: {rows[b]:,}, joined {rows['joined']:,}" + "".join(f", {o}" for o in only)),
        ("Agreement", f"{_percent(result['agreement'])} of joined rows ({result['rows_disagreeing']:,} disagree)"),
    ]
    return (
        "<table>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary)
        + "</table>"
    )


def _columns(result: dict[str, Any]) -> str:
    head = "<tr><th>column</th><th>equal</th><th>mean |diff|</th><th>max |diff|</th></tr>"
    body = "".join(
        f"<tr data-column='{html.escape(col)}'><td>{html.escape(col)}</td><td>{_percent(s['equal'])}</td>"
        f"<td>{charts.number(s['mean_abs_diff']) if 'mean_abs_diff' in s else ''}</td>"
        f"<td>{charts.number(s['max_abs_diff']) if 'max_abs_diff' in s else ''}</td></tr>"
        for col, s in result["columns"].items()
    )
    return f"<table class='batchnb-comparison-columns'>{head}{body}</table>"


def _charts(result: dict[str, Any]) -> str:
    names = (result["deployments"][0], result["deployments"][1])
    figures: list[str] = []
    for col, s in result["columns"].items():
        if s["equal"] >= 1.0 or len(figures) >= MAX_CHARTS:
            continue
        if "histogram" in s:
            zero = s["histogram"].get("zero", 0)
            caption, chart = (
                f"{col}: how far apart ({zero:,} rows equal)",
                charts.difference_histogram(col, names, s["histogram"]),
            )
        elif s.get("pairs"):
            caption, chart = f"{col}: {names[0]} → {names[1]}", charts.label_pairs(col, names, s["pairs"])
        else:
            continue
        figures.append(f"<figure><figcaption>{html.escape(caption)}</figcaption>{chart}</figure>")
    speed = [
        (name, float(t.get("items_per_second") or 0.0), f"{t.get('items_per_second') or 0:,} items/s")
        for name, t in result["throughput"].items()
    ]
    figures.append(
        "<figure><figcaption>Throughput (items per second)</figcaption>"
        + charts.bars(speed, max((v for _, v, _ in speed), default=0.0), "throughput", "items per second")
        + "</figure>"
    )
    return f"<div class='batchnb-comparison-charts'>{''.join(figures)}</div>"


def _throughput(result: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr data-deployment='{html.escape(name)}'><td>{html.escape(name)}</td><td>{html.escape(t['job'])}</td>"
        f"<td>{t['items']:,}</td><td>{t['rows']:,}</td><td>{t['elapsed_s']:.1f} s</td>"
        f"<td>{_cell(t.get('items_per_second'))}</td><td>{_cell(t.get('rows_per_second'))}</td></tr>"
        for name, t in result["throughput"].items()
    )
    head = (
        "<tr><th>deployment</th><th>job</th><th>items</th><th>rows</th><th>elapsed</th>"
        "<th>items/s</th><th>rows/s</th></tr>"
    )
    return f"<table class='batchnb-comparison-throughput'>{head}{rows}</table>"


def _disagreements(result: dict[str, Any]) -> str:
    a, b = result["deployments"]
    found = result["disagreements"]
    if not found:
        return "<div><b>No disagreements</b></div>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("source file", "row", "column", a, b))
    cells = "".join(
        f"<tr data-source-file='{_cell(d.get('source_file'))}' data-column='{_cell(d.get('column'))}'>"
        + "".join(f"<td>{_cell(d.get(k))}</td>" for k in ("source_file", "source_row", "column", a, b))
        + "</tr>"
        for d in found
    )
    shown = f" ({result['rows_disagreeing']:,} rows; {len(found)} values listed)"
    return (
        f"<div><b>Disagreements</b>{html.escape(shown)}</div>"
        f"<table class='batchnb-comparison-disagreements'><tr>{head}</tr>{cells}</table>"
    )


def comparison_html(result: dict[str, Any]) -> str:
    """The comparison as a card: the summary, each column's agreement, the charts, each side's
    throughput, and the disagreements."""
    a, b = result["deployments"]
    return (
        f"{_STYLE}{charts.CHART_STYLE}"
        f'<div class="batchnb-card batchnb-comparison" data-agreement="{result["agreement"]}">'
        f"<b>Comparison {html.escape(a)} / {html.escape(b)}</b>{_summary(result)}{_columns(result)}"
        f"{_charts(result)}{_throughput(result)}{_disagreements(result)}</div>"
    )


def comparison_text(result: dict[str, Any]) -> str:
    """The comparison as plain text."""
    a, b = result["deployments"]
    rows = result["rows"]
    lines = [
        f"Comparison of {a} and {b} on endpoint {result['endpoint']}",
        f"  rows          {a}: {rows[a]}, {b}: {rows[b]}, joined {rows['joined']}",
        f"  agreement     {_percent(result['agreement'])} ({result['rows_disagreeing']} row(s) disagree)",
    ]
    for col, s in result["columns"].items():
        extra = f", mean |diff| {s['mean_abs_diff']:.4g}, max {s['max_abs_diff']:.4g}" if "max_abs_diff" in s else ""
        lines.append(f"  {col:<13} {_percent(s['equal'])} equal{extra}")
    for name, t in result["throughput"].items():
        lines.append(f"  {name:<13} job {t['job']}: {t['items_per_second']} items/s, {t['rows_per_second']} rows/s")
    return "\n".join(lines)
