"""How a comparison of two deployments shows: an HTML card with a chart, and plain text.

Pure string building, like :mod:`batchnb.display` (whose card style it shares): the card lists the
rows and the agreement, draws each column's share of equal values and each deployment's
throughput as horizontal bars (inline SVG, no JavaScript), and shows the first disagreements.
"""

from __future__ import annotations

import html
from typing import Any

from .display import _STYLE, MUTED

_BAR_W = 220


def _bars(items: list[tuple[str, float, str]], top: float) -> str:
    """Horizontal bars: ``(label, value, shown text)``, scaled to ``top``."""
    row_h, label_w = 18, 150
    height = row_h * len(items) + 4
    parts = []
    for i, (label, value, text) in enumerate(items):
        y = 2 + i * row_h
        w = 0.0 if top <= 0 else max(0.0, min(1.0, value / top)) * _BAR_W
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" font-size="11" fill="{MUTED}">'
            f"{html.escape(label[:24])}</text>"
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" fill="#64b5f6" opacity="0.8"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" font-size="11" fill="{MUTED}">{html.escape(text)}</text>'
        )
    width = label_w + _BAR_W + 90
    return (
        f'<svg class="batchnb-chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img">' + "".join(parts) + "</svg>"
    )


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def comparison_html(result: dict[str, Any]) -> str:
    """The comparison as a card: summary rows, a chart of agreement and throughput, disagreements."""
    a, b = result["deployments"]
    rows = result["rows"]
    summary = [
        ("Endpoint", f"{result['endpoint']}: {a} vs {b}"),
        ("Input", str(result["input"]) + (f" (first {result['sample']} items)" if result.get("sample") else "")),
        ("Rows", f"{a}: {rows[a]:,}, {b}: {rows[b]:,}, joined {rows['joined']:,}"),
        ("Agreement", f"{_percent(result['agreement'])} of joined rows ({result['rows_disagreeing']:,} disagree)"),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary)
    equal = [(col, s["equal"], _percent(s["equal"])) for col, s in result["columns"].items()]
    speed = [
        (name, float(t.get("items_per_second") or 0.0), f"{t.get('items_per_second') or 0:,} items/s")
        for name, t in result["throughput"].items()
    ]
    charts = (
        "<div><b>Equal values, by column</b></div>"
        + _bars(equal, 1.0)
        + "<div><b>Throughput</b></div>"
        + _bars(speed, max((v for _, v, _ in speed), default=0.0))
    )
    table = ""
    if result["disagreements"]:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in ("source file", "row", "column", a, b))
        cells = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape('' if d.get(k) is None else str(d.get(k)))}</td>"
                for k in ("source_file", "source_row", "column", a, b)
            )
            + "</tr>"
            for d in result["disagreements"]
        )
        table = f'<div><b>Disagreements</b></div><table class="batchnb-disagreements"><tr>{head}</tr>{cells}</table>'
    return (
        f'{_STYLE}<div class="batchnb-card batchnb-comparison" data-agreement="{result["agreement"]}">'
        f"<b>Comparison {html.escape(a)} / {html.escape(b)}</b><table>{body}</table>{charts}{table}</div>"
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
