/**
 * The charts of a comparison's tab (compare.tsx), as SVG: a numeric column's |A − B| where the two
 * deployments differ, binned, with both axes labelled (the differences in the column's units, rows
 * per bin); and a column of labels as a confusion matrix laid out as bars (each (A, B) pair of values
 * and its rows, the pairs that differ in the warning colour). The same charts as the notebook's
 * report (batchnb/comparison_charts.py). Colours come from CSS classes (style/compare.css).
 */
import * as React from 'react';

import type { DifferenceHistogram, LabelPair } from './wire';

/** A value for an axis or a cell: at most four significant digits. */
export function num(value: number | null | undefined): string {
  return value === null || value === undefined ? '' : Number(value.toPrecision(4)).toString();
}

/** |A − B| of a numeric column where they differ, binned: x the difference, y the rows. */
export function Histogram(props: { column: string; names: string[]; histogram: DifferenceHistogram }): JSX.Element {
  const { column, names, histogram } = props;
  const [width, height, left, right, top, bottom] = [400, 170, 46, 12, 10, 42];
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const base = top + plotH;
  const most = Math.max(1, ...histogram.counts);
  const barW = plotW / Math.max(histogram.counts.length, 1);
  const ticks = [0, Math.floor(histogram.edges.length / 2), histogram.edges.length - 1];
  return (
    <svg className="batchnb-compare-chart" data-chart="histogram" width={width} height={height} role="img"
      aria-label={`histogram of |${names[0]} - ${names[1]}| of ${column}`}>
      {histogram.counts.map((n, i) => (
        <rect key={i} className="batchnb-compare-different" data-rows={n} x={left + i * barW + 1}
          y={base - (n / most) * plotH} width={Math.max(barW - 2, 1)} height={(n / most) * plotH}>
          <title>{`${num(histogram.edges[i])} to ${num(histogram.edges[i + 1])}: ${n} rows`}</title>
        </rect>
      ))}
      <line className="batchnb-compare-axis" x1={left} y1={top} x2={left} y2={base} />
      <line className="batchnb-compare-axis" x1={left} y1={base} x2={left + plotW} y2={base} />
      {ticks.map(i => (
        <text key={i} x={left + i * barW} y={base + 15} textAnchor="middle">
          {num(histogram.edges[i])}
        </text>
      ))}
      <text x={left - 5} y={top + 9} textAnchor="end">{most}</text>
      <text x={left - 5} y={base} textAnchor="end">0</text>
      <text x={left + plotW / 2} y={height - 6} textAnchor="middle">
        {`|${names[0]} − ${names[1]}| of ${column} (in ${column}'s units)`}
      </text>
      <text x={12} y={top + plotH / 2} textAnchor="middle" transform={`rotate(-90 12 ${top + plotH / 2})`}>
        rows
      </text>
    </svg>
  );
}

/** The most frequent (A, B) pairs of a column of labels, as bars of their rows. */
export function Pairs(props: { column: string; names: string[]; pairs: LabelPair[] }): JSX.Element {
  const { column, names, pairs } = props;
  const [rowH, labelW, barW, top, bottom] = [18, 150, 200, 4, 34];
  const height = top + rowH * pairs.length + bottom;
  const width = labelW + barW + 70;
  const most = Math.max(1, ...pairs.map(p => p.rows));
  const base = top + rowH * pairs.length + 2;
  return (
    <svg className="batchnb-compare-chart" data-chart="pairs" width={width} height={height} role="img"
      aria-label={`${column}: pairs of ${names[0]} and ${names[1]} values`}>
      {pairs.map((p, i) => {
        const y = top + i * rowH;
        const w = (p.rows / most) * barW;
        const label = `${p.a.slice(0, 10)} → ${p.b.slice(0, 10)}`;
        return (
          <g key={i}>
            <text x={labelW - 6} y={y + 12} textAnchor="end">{label}</text>
            <rect className={p.a === p.b ? 'batchnb-compare-same' : 'batchnb-compare-different'} data-pair={label}
              x={labelW} y={y + 2} width={w} height={rowH - 6} />
            <text x={labelW + w + 4} y={y + 12}>{p.rows}</text>
          </g>
        );
      })}
      <line className="batchnb-compare-axis" x1={labelW} y1={top} x2={labelW} y2={base} />
      <line className="batchnb-compare-axis" x1={labelW} y1={base} x2={labelW + barW} y2={base} />
      <text x={labelW} y={base + 13} textAnchor="middle">0</text>
      <text x={labelW + barW} y={base + 13} textAnchor="middle">{most}</text>
      <text x={labelW + barW / 2} y={height - 5} textAnchor="middle">
        {`rows, by ${column}: ${names[0]} → ${names[1]}`}
      </text>
    </svg>
  );
}
