"""The charts of a comparison of two deployments, as inline SVG (no JavaScript: nbconvert keeps them).

* :func:`difference_histogram`: a numeric column's absolute differences ``|A - B|``, binned, with
  both axes labelled (the differences in the column's own units, rows per bin);
* :func:`label_pairs`: a column of labels as a confusion matrix laid out as bars: each (A, B) pair
  of values and how many rows have it, the pairs that differ drawn in the warning hue;
* :func:`bars`: labelled horizontal bars (each column's share of equal values, each side's throughput).

Text and axes take their colours from CSS classes (``batchnb-comparison-*``, styled by
:data:`CHART_STYLE` under the card's root class ``batchnb-comparison``), so both JupyterLab themes
read them; the attributes hold the light theme's colours for pages without that style.
"""

from __future__ import annotations

import html
from typing import Any

from .display import MUTED

_SAME = "var(--jp-brand-color1,#1976d2)"
_DIFFERENT = "var(--jp-warn-color1,#f57c00)"

CHART_STYLE = (
    "<style>"
    f".batchnb-comparison svg.batchnb-comparison-chart text{{fill:{MUTED}}}"
    f".batchnb-comparison svg.batchnb-comparison-chart .batchnb-comparison-axis{{stroke:{MUTED}}}"
    f".batchnb-comparison svg.batchnb-comparison-chart .batchnb-comparison-same{{fill:{_SAME};opacity:0.7}}"
    f".batchnb-comparison svg.batchnb-comparison-chart .batchnb-comparison-different{{fill:{_DIFFERENT};opacity:0.8}}"
    ".batchnb-comparison .batchnb-comparison-charts{display:flex;flex-wrap:wrap;gap:4px 24px}"
    ".batchnb-comparison .batchnb-comparison-charts figure{margin:4px 0}"
    ".batchnb-comparison .batchnb-comparison-charts figcaption{font-weight:600}"
    "</style>"
)


def number(value: float) -> str:
    """A value for an axis or a cell: at most four significant digits."""
    return f"{value:.4g}"


def _svg(width: int, height: int, body: str, label: str, kind: str) -> str:
    return (
        f'<svg class="batchnb-comparison-chart" data-chart="{kind}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{html.escape(label)}">{body}</svg>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="11" fill="#616161"{extra}>'
        f"{html.escape(text)}</text>"
    )


def _axis(x1: float, y1: float, x2: float, y2: float) -> str:
    return (
        f'<line class="batchnb-comparison-axis" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        'stroke="#616161" stroke-width="1"/>'
    )


def difference_histogram(column: str, names: tuple[str, str], histogram: dict[str, Any]) -> str:
    """A histogram of ``|A - B|`` over the rows where one numeric column differs: x the difference
    (in the column's units), y the rows in each bin; the rows that agree are counted in the caption."""
    edges, counts = histogram["edges"], histogram["counts"]
    width, height, left, right, top, bottom = 400, 170, 46, 12, 10, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    base = top + plot_h
    most = max(counts, default=0) or 1
    bar_w = plot_w / max(len(counts), 1)
    parts = []
    for i, n in enumerate(counts):
        h = n / most * plot_h
        parts.append(
            f'<rect class="batchnb-comparison-different" data-rows="{n}" x="{left + i * bar_w + 1:.1f}" '
            f'y="{base - h:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" fill="#f57c00">'
            f"<title>{number(edges[i])} to {number(edges[i + 1])}: {n} rows</title></rect>"
        )
    parts.append(_axis(left, top, left, base) + _axis(left, base, left + plot_w, base))
    for i in (0, len(edges) // 2, len(edges) - 1):
        x = left + i * bar_w
        parts.append(_axis(x, base, x, base + 4) + _text(x, base + 15, number(edges[i]), "middle"))
    parts.append(_text(left - 5, top + 9, f"{most:,}", "end") + _text(left - 5, base, "0", "end"))
    parts.append(
        _text(left + plot_w / 2, height - 6, f"|{names[0]} − {names[1]}| of {column} (in {column}'s units)", "middle")
    )
    parts.append(_text(12, top + plot_h / 2, "rows", "middle", f' transform="rotate(-90 12 {top + plot_h / 2:.1f})"'))
    return _svg(width, height, "".join(parts), f"histogram of |{names[0]} - {names[1]}| of {column}", "histogram")


def label_pairs(column: str, names: tuple[str, str], pairs: list[dict[str, Any]]) -> str:
    """The most frequent (A, B) value pairs of a column as bars of their row counts (a confusion
    matrix flattened): equal pairs in the theme's hue, differing ones in the warning hue."""
    row_h, label_w, bar_w, top, bottom = 18, 150, 200, 4, 34
    height = top + row_h * len(pairs) + bottom
    width = label_w + bar_w + 70
    most = max((p["rows"] for p in pairs), default=0) or 1
    parts = []
    for i, pair in enumerate(pairs):
        y = top + i * row_h
        w = pair["rows"] / most * bar_w
        same = pair["a"] == pair["b"]
        label = f"{pair['a'][:10]} → {pair['b'][:10]}"
        parts.append(
            _text(label_w - 6, y + 12, label, "end")
            + f'<rect class="batchnb-comparison-{"same" if same else "different"}" data-pair="{html.escape(label)}" '
            f'x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" '
            f'fill="{"#1976d2" if same else "#f57c00"}"/>' + _text(label_w + w + 4, y + 12, f"{pair['rows']:,}")
        )
    base = top + row_h * len(pairs) + 2
    parts.append(_axis(label_w, top, label_w, base) + _axis(label_w, base, label_w + bar_w, base))
    parts.append(_text(label_w, base + 13, "0", "middle") + _text(label_w + bar_w, base + 13, f"{most:,}", "middle"))
    parts.append(_text(label_w + bar_w / 2, height - 5, f"rows, by {column}: {names[0]} → {names[1]}", "middle"))
    return _svg(width, height, "".join(parts), f"{column}: pairs of {names[0]} and {names[1]} values", "pairs")


def bars(items: list[tuple[str, float, str]], top: float, kind: str, label: str) -> str:
    """Horizontal bars: ``(label, value, shown text)``, scaled to ``top``."""
    row_h, label_w, bar_w = 18, 150, 220
    height = row_h * len(items) + 4
    parts = []
    for i, (name, value, text) in enumerate(items):
        y = 2 + i * row_h
        w = 0.0 if top <= 0 else max(0.0, min(1.0, value / top)) * bar_w
        parts.append(
            _text(label_w - 6, y + 12, name[:24], "end")
            + f'<rect class="batchnb-comparison-same" x="{label_w}" y="{y + 2}" width="{w:.1f}" '
            f'height="{row_h - 6}" fill="#1976d2"/>' + _text(label_w + w + 4, y + 12, text)
        )
    return _svg(label_w + bar_w + 110, height, "".join(parts), label, kind)
