/**
 * "Compare deployments…" on an endpoint with two or more deployments: a dialog (deployments A and B,
 * the input, an optional sample size) whose request (`POST endpoints/<ep>/compare`, the core's
 * compare) runs in a main-area tab. While the two jobs run the tab follows them (from the sidebar's
 * poll); then it shows the report: rows and agreement, each column's agreement, a chart per column
 * that disagrees (a histogram of |A − B| for numbers, the pairs of values for labels), each side's
 * throughput, and the disagreements.
 * Stable DOM hooks for tests: `data-state` (running, done, failed), `data-chart`, `data-column`,
 * `data-source-file`, `data-deployment`, classes `batchnb-compare-*`.
 */
import { Dialog, MainAreaWidget, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { Histogram, Pairs, num } from './comparecharts';
import { selectField, textField } from './invoke';
import { BatchModel } from './model';
import { requestAPI, seg } from './request';
import type {
  AnyJob,
  BatchEndpoint,
  ColumnAgreement,
  CompareRequest,
  Comparison
} from './wire';

/** What the user typed, kept to re-open the dialog after an error. */
export interface ICompareFormValues {
  a: string;
  b: string;
  input: string;
  sample: string;
}

export class CompareForm extends Widget implements Dialog.IBodyWidget<ICompareFormValues> {
  constructor(endpoint: BatchEndpoint, values: ICompareFormValues) {
    super({ node: document.createElement('form') });
    this.addClass('batchnb-compare-form');
    this.node.addEventListener('submit', event => event.preventDefault());
    const options = endpoint.deployments.map(d => [d, d] as [string, string]);
    const current = endpoint.defaults?.deployment_name ?? endpoint.deployments[0];
    const pair = document.createElement('div');
    pair.className = 'batchnb-compare-form-pair';
    this.node.appendChild(pair);
    this._a = selectField(pair, 'a', 'Deployment A', options, values.a || current);
    const other = endpoint.deployments.find(d => d !== this._a.value) ?? '';
    this._b = selectField(pair, 'b', 'Deployment B', options, values.b || other);
    this._input = textField(
      this.node,
      'input',
      'Input',
      values.input,
      'file or folder (relative to the server root), azureml:<data>@latest, URL'
    );
    this._input.required = true;
    this._sample = textField(this.node, 'sample', 'Sample', values.sample, 'all items, or the first N');
    this._sample.inputMode = 'numeric';
  }

  getValue(): ICompareFormValues {
    return {
      a: this._a.value,
      b: this._b.value,
      input: this._input.value.trim(),
      sample: this._sample.value.trim()
    };
  }

  private _a: HTMLSelectElement;
  private _b: HTMLSelectElement;
  private _input: HTMLInputElement;
  private _sample: HTMLInputElement;
}

/** The request body for the form's values, or what is wrong with them. */
export function toCompareRequest(values: ICompareFormValues): CompareRequest | string {
  if (!values.a || !values.b || values.a === values.b) {
    return 'Choose two different deployments, A and B.';
  }
  if (!values.input) {
    return 'Input is required: a file or folder path, a data asset or a URL.';
  }
  const body: CompareRequest = { deployments: [values.a, values.b], input: values.input };
  if (values.sample) {
    if (!/^\d+$/.test(values.sample) || Number(values.sample) < 1) {
      return `Sample must be a whole number of at least 1 (got ${values.sample}).`;
    }
    body.sample = Number(values.sample);
  }
  return body;
}

/** Ask what to compare; the request body, or null if the user cancelled. */
export async function compareDialog(
  endpoint: BatchEndpoint,
  initial: ICompareFormValues
): Promise<{ values: ICompareFormValues; body: CompareRequest } | null> {
  let values = initial;
  for (;;) {
    const result = await showDialog<ICompareFormValues>({
      title: `Compare deployments of ${endpoint.name}`,
      body: new CompareForm(endpoint, values),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Compare' })],
      focusNodeSelector: 'input[name="input"]'
    });
    if (!result.button.accept || result.value === null) {
      return null;
    }
    values = result.value;
    const body = toCompareRequest(values);
    if (typeof body !== 'string') {
      return { values, body };
    }
    await showErrorMessage(`Could not compare deployments of ${endpoint.name}`, body);
  }
}

/** A comparison in a main-area tab: its two jobs while they run, then the report. */
export class ComparisonView extends ReactWidget {
  constructor(model: BatchModel, endpoint: string, request: CompareRequest) {
    super();
    this.addClass('batchnb-compare');
    this.addClass('batchnb-panel');
    this.model = model;
    this.endpoint = endpoint;
    this.request = request;
    // The jobs that exist now are not this comparison's: its jobs are the new ones of A and B.
    this._before = new Set(model.groups.get(endpoint)?.jobs.map(j => j.name) ?? []);
    model.changed.connect(() => this.update(), this);
  }

  readonly model: BatchModel;
  readonly endpoint: string;
  readonly request: CompareRequest;

  get result(): Comparison | null {
    return this._result;
  }

  /** Send the request; the tab shows the result or the error when it answers. */
  async run(): Promise<void> {
    try {
      this._result = await requestAPI<Comparison>(
        `endpoints/${seg(this.endpoint)}/compare`,
        this.model.serverSettings,
        { method: 'POST', json: this.request }
      );
    } catch (error) {
      this._error = (error as Error).message ?? String(error);
    }
    this.update();
  }

  dispose(): void {
    Signal.disconnectReceiver(this);
    super.dispose();
  }

  /** This comparison's jobs seen so far (from the sidebar's poll), by deployment. */
  jobs(): Map<string, AnyJob> {
    const found = new Map<string, AnyJob>();
    for (const job of this.model.groups.get(this.endpoint)?.jobs ?? []) {
      const dep = job.deployment_name ?? '';
      if (!this._before.has(job.name) && this.request.deployments.includes(dep) && !found.has(dep)) {
        found.set(dep, job);
      }
    }
    return found;
  }

  protected render(): JSX.Element {
    const [a, b] = this.request.deployments;
    const state = this._result ? 'done' : this._error !== null ? 'failed' : 'running';
    return (
      <div className="batchnb-compare-content" data-state={state}>
        <h2 className="batchnb-compare-title">
          {a} / {b} <span className="batchnb-compare-muted">on {this.endpoint}</span>
        </h2>
        {this._error !== null && (
          <div className="batchnb-compare-error" role="alert">
            {this._error}
          </div>
        )}
        {state === 'running' && <Running view={this} />}
        {this._result && <Report result={this._result} />}
      </div>
    );
  }

  private _before: Set<string>;
  private _result: Comparison | null = null;
  private _error: string | null = null;
}

function Running(props: { view: ComparisonView }): JSX.Element {
  const { view } = props;
  const jobs = view.jobs();
  const input = typeof view.request.input === 'string' ? view.request.input : view.request.input.path;
  const sample = view.request.sample ? ` (its first ${view.request.sample} items)` : '';
  return (
    <div className="batchnb-compare-running">
      <p>
        Scoring {input}
        {sample} with each deployment, one after the other, then joining the two outputs row by row.
      </p>
      <table className="batchnb-compare-table">
        <tbody>
          {view.request.deployments.map(dep => {
            const job = jobs.get(dep);
            const p = job?.type === 'batch' ? job.progress.mini_batches : null;
            const share = p && p.total > 0 ? (p.done + p.failed) / p.total : 0;
            return (
              <tr key={dep} data-deployment={dep}>
                <th>{dep}</th>
                <td>{job ? `${job.name} · ${job.status}` : 'waiting'}</td>
                <td>
                  <div className="batchnb-compare-bar" title={p ? `${p.done + p.failed}/${p.total} mini-batches` : ''}>
                    <div className="batchnb-compare-bar-fill" style={{ width: `${Math.round(share * 100)}%` }} />
                  </div>
                </td>
                <td>{p ? `${p.done + p.failed}/${p.total} mini-batches` : ''}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

function cell(value: unknown): string {
  return value === null || value === undefined ? '' : String(value);
}

function Report(props: { result: Comparison }): JSX.Element {
  const r = props.result;
  const [a, b] = r.deployments;
  const only = [a, b].filter(d => r.rows[`only_${d}`]).map(d => `, ${r.rows[`only_${d}`]} only in ${d}`);
  const charted = Object.entries(r.columns)
    .filter(([, s]) => s.equal < 1 && (s.histogram || s.pairs?.length))
    .slice(0, 4);
  return (
    <div className="batchnb-compare-report">
      <table className="batchnb-compare-table batchnb-compare-summary">
        <tbody>
          <tr>
            <th>Input</th>
            <td>
              {r.input}
              {r.sample ? ` (first ${r.sample} items)` : ''}
            </td>
          </tr>
          <tr>
            <th>Rows</th>
            <td>{`${a}: ${r.rows[a]}, ${b}: ${r.rows[b]}, joined ${r.rows.joined}${only.join('')}`}</td>
          </tr>
          <tr>
            <th>Agreement</th>
            <td data-agreement={r.agreement}>
              {`${percent(r.agreement)} of joined rows (${r.rows_disagreeing} disagree)`}
            </td>
          </tr>
        </tbody>
      </table>
      <h3>Columns</h3>
      <table className="batchnb-compare-table batchnb-compare-columns">
        <thead>
          <tr>
            <th>column</th>
            <th>equal</th>
            <th>mean |diff|</th>
            <th>max |diff|</th>
          </tr>
        </thead>
        <tbody>
          {Object.entries(r.columns).map(([col, s]) => (
            <tr key={col} data-column={col}>
              <td>{col}</td>
              <td>{percent(s.equal)}</td>
              <td>{num(s.mean_abs_diff)}</td>
              <td>{num(s.max_abs_diff)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {charted.length > 0 && (
        <div className="batchnb-compare-charts">
          {charted.map(([col, s]) => (
            <ColumnChart key={col} column={col} names={[a, b]} stats={s} />
          ))}
        </div>
      )}
      <h3>Throughput</h3>
      <table className="batchnb-compare-table batchnb-compare-throughput">
        <thead>
          <tr>
            <th>deployment</th>
            <th>job</th>
            <th>items</th>
            <th>rows</th>
            <th>elapsed</th>
            <th>items/s</th>
            <th>rows/s</th>
          </tr>
        </thead>
        <tbody>
          {Object.entries(r.throughput).map(([dep, t]) => (
            <tr key={dep} data-deployment={dep}>
              <td>{dep}</td>
              <td>{t.job}</td>
              <td>{t.items}</td>
              <td>{t.rows}</td>
              <td>{`${t.elapsed_s.toFixed(1)} s`}</td>
              <td>{cell(t.items_per_second)}</td>
              <td>{cell(t.rows_per_second)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>
        Disagreements{' '}
        <span className="batchnb-compare-muted">
          {r.disagreements.length > 0
            ? `(${r.rows_disagreeing} rows; ${r.disagreements.length} values listed)`
            : '(none)'}
        </span>
      </h3>
      {r.disagreements.length > 0 && (
        <table className="batchnb-compare-table batchnb-compare-disagreements">
          <thead>
            <tr>
              <th>source file</th>
              <th>row</th>
              <th>column</th>
              <th>{a}</th>
              <th>{b}</th>
            </tr>
          </thead>
          <tbody>
            {r.disagreements.map((d, i) => (
              <tr key={i} data-source-file={cell(d.source_file)} data-column={d.column}>
                <td>{cell(d.source_file)}</td>
                <td>{cell(d.source_row)}</td>
                <td>{d.column}</td>
                <td>{cell(d[a])}</td>
                <td>{cell(d[b])}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function ColumnChart(props: { column: string; names: string[]; stats: ColumnAgreement }): JSX.Element {
  const { column, names, stats } = props;
  if (stats.histogram) {
    return (
      <figure className="batchnb-compare-figure">
        <figcaption>{`${column}: how far apart (${stats.histogram.zero} rows equal)`}</figcaption>
        <Histogram column={column} names={names} histogram={stats.histogram} />
      </figure>
    );
  }
  return (
    <figure className="batchnb-compare-figure">
      <figcaption>{`${column}: ${names[0]} → ${names[1]}`}</figcaption>
      <Pairs column={column} names={names} pairs={stats.pairs ?? []} />
    </figure>
  );
}

let opened = 0;

/** A main-area tab that runs the comparison and shows its report. */
export function createComparisonPanel(
  model: BatchModel,
  endpoint: string,
  request: CompareRequest
): MainAreaWidget<ComparisonView> {
  const content = new ComparisonView(model, endpoint, request);
  const panel = new MainAreaWidget({ content });
  panel.id = `batchnb-compare-${++opened}`;
  panel.title.label = `Compare ${request.deployments[0]} / ${request.deployments[1]}`;
  panel.title.caption = `Comparison of ${request.deployments.join(' and ')} on ${endpoint}`;
  panel.title.closable = true;
  return panel;
}
