/**
 * The charts of a job's detail view, in SVG with both axes labelled and in units, drawn in the
 * theme's colours (so they read in the light and the dark theme alike):
 * - the throughput over time: rows per second (averaged over equal slices of the run) against the
 *   time since the job started;
 * - the worker timeline, as Dask's task stream draws tasks: a row per worker process, a bar per
 *   mini-batch attempt from its start to its end, coloured by what came of it (ok, retried,
 *   failed), each bar's tooltip saying which mini-batch and attempt it was.
 */
import * as React from 'react';

import type { TimelinePoint, WorkerAttempt } from './wire';

const WIDTH = 560;
const HEIGHT = 200;
const PAD = { left: 56, right: 12, top: 12, bottom: 40 };
const SLICES = 24;

/** Rows per second in each of `slices` equal slices of the run: [slice end (s), rows/s]. */
export function throughput(points: TimelinePoint[], slices = SLICES): Array<[number, number]> {
  const end = points.length ? points[points.length - 1].t : 0;
  if (end <= 0) {
    return [];
  }
  const width = end / slices;
  const out: Array<[number, number]> = [];
  let previousRows = 0;
  let i = 0;
  for (let s = 1; s <= slices; s++) {
    const until = s === slices ? end : s * width;
    let rows = previousRows;
    while (i < points.length && points[i].t <= until) {
      rows = points[i].rows;
      i++;
    }
    out.push([until, (rows - previousRows) / width]);
    previousRows = rows;
  }
  return out;
}

/** Round numbers for an axis from 0 to at least `max`: about 4 ticks. */
export function ticks(max: number): number[] {
  if (max <= 0) {
    return [0, 1];
  }
  const raw = max / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map(m => m * magnitude).find(m => m >= raw) ?? raw;
  const out: number[] = [];
  for (let v = 0; v < max + step / 2; v += step) {
    out.push(Number(v.toPrecision(6)));
  }
  if (out[out.length - 1] < max) {
    out.push(out[out.length - 1] + step);
  }
  return out;
}

function short(v: number): string {
  if (v >= 1e6) {
    return `${(v / 1e6).toFixed(v % 1e6 ? 1 : 0)}M`;
  }
  if (v >= 1e3) {
    return `${(v / 1e3).toFixed(v % 1e3 ? 1 : 0)}k`;
  }
  return v % 1 ? v.toFixed(1) : String(v);
}

export function ThroughputChart(props: { points: TimelinePoint[] }): JSX.Element {
  const series = throughput(props.points);
  if (series.length === 0) {
    return <div className="batchnb-empty">No mini-batch has finished yet.</div>;
  }
  const end = series[series.length - 1][0];
  const xTicks = ticks(end);
  const yTicks = ticks(Math.max(...series.map(([, r]) => r)));
  const xMax = xTicks[xTicks.length - 1];
  const yMax = yTicks[yTicks.length - 1];
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (t: number) => PAD.left + (plotW * t) / xMax;
  const y = (r: number) => PAD.top + plotH - (plotH * r) / yMax;
  const step = end / series.length;
  // A step line: each slice's rate held across the slice.
  const path = series
    .map(([t, r], i) => `${i === 0 ? 'M' : 'L'}${x(t - step).toFixed(1)},${y(r).toFixed(1)} L${x(t).toFixed(1)},${y(r).toFixed(1)}`)
    .join(' ');
  return (
    <svg
      className="batchnb-throughput"
      role="img"
      aria-label="Rows per second over the time since the job started"
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      width={WIDTH}
      height={HEIGHT}
      data-slices={series.length}
    >
      {yTicks.map(v => (
        <g key={`y${v}`} className="batchnb-axis-tick">
          <line className="batchnb-grid" x1={PAD.left} x2={WIDTH - PAD.right} y1={y(v)} y2={y(v)} />
          <text x={PAD.left - 6} y={y(v) + 4} textAnchor="end">
            {short(v)}
          </text>
        </g>
      ))}
      {xTicks.map(v => (
        <text key={`x${v}`} className="batchnb-axis-tick" x={x(v)} y={HEIGHT - PAD.bottom + 16} textAnchor="middle">
          {short(v)}
        </text>
      ))}
      <line className="batchnb-axis" x1={PAD.left} x2={PAD.left} y1={PAD.top} y2={HEIGHT - PAD.bottom} />
      <line className="batchnb-axis" x1={PAD.left} x2={WIDTH - PAD.right} y1={HEIGHT - PAD.bottom} y2={HEIGHT - PAD.bottom} />
      <path className="batchnb-series" d={path} />
      <text className="batchnb-axis-label" x={PAD.left + plotW / 2} y={HEIGHT - 6} textAnchor="middle">
        time since start (s)
      </text>
      <text
        className="batchnb-axis-label"
        x={14}
        y={PAD.top + plotH / 2}
        textAnchor="middle"
        transform={`rotate(-90 14 ${PAD.top + plotH / 2})`}
      >
        rows/s
      </text>
    </svg>
  );
}

const LANE = 18;
const TIMELINE_PAD = { left: 110, right: 12, top: 22, bottom: 40 };
/** What came of an attempt, in the legend's order. */
export const OUTCOMES: ReadonlyArray<WorkerAttempt['outcome']> = ['ok', 'retried', 'failed'];

/** The workers of a timeline, in the order of their first attempt. */
export function lanes(attempts: WorkerAttempt[]): string[] {
  return [...new Set(attempts.map(a => a.worker))];
}

function attemptTitle(a: WorkerAttempt): string {
  const error = a.error && a.outcome !== 'ok' ? `: ${a.error}` : '';
  return (
    `mini-batch ${a.mini_batch} attempt ${a.attempt} (${a.items} item(s)) on ${a.worker}, ${a.outcome}${error}; ` +
    `${a.start.toFixed(2)}–${a.end.toFixed(2)} s (${(a.end - a.start).toFixed(2)} s)`
  );
}

export function WorkerTimelineChart(props: { attempts: WorkerAttempt[]; ended: boolean }): JSX.Element {
  const { attempts, ended } = props;
  if (attempts.length === 0) {
    // Jobs run before batchnb recorded attempts (store migration 9) have none to draw.
    const why = ended ? 'No mini-batch attempt was recorded for this job.' : 'No mini-batch attempt has finished yet.';
    return <div className="batchnb-empty">{why}</div>;
  }
  const workers = lanes(attempts);
  const row = new Map(workers.map((w, i) => [w, i]));
  const height = TIMELINE_PAD.top + LANE * workers.length + TIMELINE_PAD.bottom;
  const base = TIMELINE_PAD.top + LANE * workers.length;
  const xTicks = ticks(Math.max(...attempts.map(a => a.end)));
  const xMax = xTicks[xTicks.length - 1];
  const plotW = WIDTH - TIMELINE_PAD.left - TIMELINE_PAD.right;
  const x = (t: number) => TIMELINE_PAD.left + (plotW * t) / xMax;
  return (
    <svg
      className="batchnb-timeline"
      role="img"
      aria-label="Mini-batch attempts per worker over the time since the job started"
      viewBox={`0 0 ${WIDTH} ${height}`}
      width={WIDTH}
      height={height}
      data-workers={workers.length}
    >
      {workers.map((worker, i) => (
        <g key={worker} className="batchnb-timeline-worker" data-worker={worker}>
          <rect className="batchnb-timeline-lane" x={TIMELINE_PAD.left} y={TIMELINE_PAD.top + i * LANE + 1} width={plotW} height={LANE - 2} />
          <text className="batchnb-axis-tick" x={TIMELINE_PAD.left - 6} y={TIMELINE_PAD.top + i * LANE + LANE - 5} textAnchor="end">
            {worker.length > 16 ? worker.slice(0, 15) + '…' : worker}
            <title>{worker}</title>
          </text>
        </g>
      ))}
      {attempts.map((a, i) => {
        const width = (plotW * (a.end - a.start)) / xMax;
        return (
          <rect
            key={i}
            className="batchnb-timeline-bar"
            data-outcome={a.outcome}
            data-worker={a.worker}
            data-mini-batch={a.mini_batch}
            data-attempt={a.attempt}
            x={x(a.start)}
            y={TIMELINE_PAD.top + (row.get(a.worker) ?? 0) * LANE + 3}
            // A pixel between back-to-back bars, so each reads as one; never thinner than a pixel.
            width={width >= 3 ? width - 1 : Math.max(1, width)}
            height={LANE - 6}
          >
            <title>{attemptTitle(a)}</title>
          </rect>
        );
      })}
      {xTicks.map(v => (
        <text key={`x${v}`} className="batchnb-axis-tick" x={x(v)} y={base + 16} textAnchor="middle">
          {short(v)}
        </text>
      ))}
      <line className="batchnb-axis" x1={TIMELINE_PAD.left} x2={TIMELINE_PAD.left} y1={TIMELINE_PAD.top} y2={base} />
      <line className="batchnb-axis" x1={TIMELINE_PAD.left} x2={WIDTH - TIMELINE_PAD.right} y1={base} y2={base} />
      <text className="batchnb-axis-label" x={TIMELINE_PAD.left + plotW / 2} y={height - 6} textAnchor="middle">
        time since start (s)
      </text>
      <text className="batchnb-axis-label" x={TIMELINE_PAD.left - 6} y={14} textAnchor="end">
        worker
      </text>
      {OUTCOMES.map((outcome, i) => (
        <g key={outcome} className="batchnb-timeline-key">
          <rect className="batchnb-timeline-swatch" data-outcome={outcome} x={TIMELINE_PAD.left + i * 72} y={5} width={11} height={10} />
          <text x={TIMELINE_PAD.left + i * 72 + 15} y={14}>
            {outcome}
          </text>
        </g>
      ))}
    </svg>
  );
}
