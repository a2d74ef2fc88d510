/**
 * A job's detail view, a main-area tab: its status (a Completed job with failed items says so),
 * inputs, deployment and revision, model, settings, timings and counters, a throughput-over-time
 * chart and a per-worker timeline of its mini-batch attempts, its failed items with their
 * tracebacks and a "Rerun failed" action (see ./failures), the tails of its logs (each openable in full and downloadable), and its output: the files
 * with their sizes and a preview of a table (CSV or Parquet: column names and first rows), each
 * downloadable. It reads everything through the REST API, so a workspace in the hidden `.batchnb/`
 * folder is no obstacle. While the job runs and the tab is visible it refreshes every 2 s.
 * Stable DOM hooks: `.batchnb-detail[data-job][data-status]`, `data-section`, `data-file`.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget, UseSignal, listIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { Signal } from '@lumino/signaling';
import * as React from 'react';

import { ThroughputChart, WorkerTimelineChart } from './chart';
import { FailedItemsView, fetchFailures, fetchWorkerTimeline, rerunFailed } from './failures';
import { ACTIVE_STATUSES, BatchModel, firstOutput } from './model';
import { failedItems, formatDuration, formatTime } from './sidebar';
import type { AnyJob, JobFailures, JobLogs, JobOutputs, JobTimeline, OutputPreview, WorkerTimeline } from './wire';

/** What the detail view's buttons do beyond reading (implemented by the plugin). */
export interface IDetailActions {
  openLog(job: string, log: string): void;
  jobMenu(job: AnyJob, x: number, y: number): void;
}

interface IState {
  job: AnyJob | null;
  timeline: JobTimeline | null;
  workers: WorkerTimeline | null;
  failures: JobFailures | null;
  logs: JobLogs | null;
  outputs: JobOutputs | null;
  preview: OutputPreview | null;
  previewError: string | null;
  error: string | null;
}

export class JobDetailView extends ReactWidget {
  constructor(model: BatchModel, name: string, actions: IDetailActions) {
    super();
    this.addClass('batchnb-detail-panel');
    this.addClass('batchnb-panel');
    this.model = model;
    this.name = name;
    this.actions = actions;
    this._poll = new Poll({
      factory: () => this._fetch(),
      frequency: { interval: 2000, backoff: true, max: 30 * 1000 },
      standby: () => document.hidden || !this.isVisible || this._ended,
      name: `batchnb:detail:${name}`
    });
  }

  readonly model: BatchModel;
  readonly name: string;
  readonly actions: IDetailActions;

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  /** Fetch again now (an ended job too). */
  async refresh(): Promise<void> {
    this._ended = false;
    await this._poll.refresh();
    await this._poll.tick;
  }

  /** Preview another file of the output. */
  async previewFile(path: string): Promise<void> {
    const output = this._state.job ? firstOutput(this._state.job) : null;
    try {
      this._state.preview = await this.model.preview(this.name, output?.name, path);
      this._state.previewError = null;
    } catch (error) {
      this._state.previewError = (error as Error).message;
    }
    this._changed.emit();
  }

  /** Ask how to rerun the job's failed items, rerun them, and follow the job again. */
  async rerunFailed(): Promise<void> {
    const job = this._state.job;
    if (!job) {
      return;
    }
    try {
      if ((await rerunFailed(this.model.serverSettings, job)) === null) {
        return;
      }
      this._state.error = null;
      void this.model.refresh();
      await this.refresh();
    } catch (error) {
      this._state.error = (error as Error).message;
      this._changed.emit();
    }
  }

  private async _fetch(): Promise<void> {
    try {
      const [job, timeline, logs] = await Promise.all([
        this.model.job(this.name),
        this.model.timeline(this.name),
        this.model.logs(this.name, 200)
      ]);
      const settings = this.model.serverSettings;
      const [workers, failures] =
        job.type === 'batch'
          ? await Promise.all([fetchWorkerTimeline(settings, this.name), fetchFailures(settings, this.name)])
          : [null, null];
      const output = firstOutput(job);
      const outputs = output ? await this.model.outputs(this.name, output.name).catch(() => null) : null;
      let preview = this._state.preview;
      let previewError: string | null = null;
      const file = preview?.file;
      if (outputs?.exists && outputs.files.length > 0 && (!preview || !ACTIVE_STATUSES.has(job.status))) {
        try {
          preview = await this.model.preview(this.name, output?.name, file);
        } catch (error) {
          previewError = (error as Error).message;
        }
      }
      this._state = { job, timeline, workers, failures, logs, outputs, preview, previewError, error: null };
      this._ended = !ACTIVE_STATUSES.has(job.status);
      this.node.dataset.status = job.status;
    } catch (error) {
      this._state.error = (error as Error).message;
      throw error;
    } finally {
      this._changed.emit();
    }
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this._changed}>
        {() => <DetailView view={this} state={this._state} />}
      </UseSignal>
    );
  }

  private _state: IState = {
    job: null,
    timeline: null,
    workers: null,
    failures: null,
    logs: null,
    outputs: null,
    preview: null,
    previewError: null,
    error: null
  };
  private _ended = false;
  private _poll: Poll;
  private _changed = new Signal<this, void>(this);
}

/** The main-area tab of a job's detail view. */
export function createDetailPanel(
  model: BatchModel,
  name: string,
  actions: IDetailActions
): MainAreaWidget<JobDetailView> {
  const content = new JobDetailView(model, name, actions);
  content.node.dataset.job = name;
  const panel = new MainAreaWidget({ content });
  panel.id = `batchnb-detail-${name}`;
  panel.title.label = `Job ${name}`;
  panel.title.icon = listIcon;
  panel.title.closable = true;
  return panel;
}

function DetailView(props: { view: JobDetailView; state: IState }): JSX.Element {
  const { view, state } = props;
  const job = state.job;
  if (!job) {
    return <div className="batchnb-detail">{state.error ? <Problem text={state.error} /> : 'Loading…'}</div>;
  }
  const failed = failedItems(job);
  return (
    <div className="batchnb-detail" data-job={job.name} data-status={job.status}>
      <header className="batchnb-detail-head">
        <h2>{job.name}</h2>
        <span className={'batchnb-status batchnb-status-' + job.status.toLowerCase()}>{job.status}</span>
        {failed > 0 && (
          <span className="batchnb-failed-items" data-failed-items={failed}>
            {`with ${failed.toLocaleString()} failed item${failed === 1 ? '' : 's'}`}
          </span>
        )}
        <button
          className="jp-Button jp-mod-minimal batchnb-link-button"
          data-action="refresh"
          onClick={() => void view.refresh()}
        >
          Refresh
        </button>
        <button
          className="jp-Button jp-mod-minimal batchnb-link-button batchnb-menu-button"
          data-action="menu"
          aria-label={`More actions on ${job.name}`}
          onClick={event => {
            const r = (event.currentTarget as HTMLElement).getBoundingClientRect();
            view.actions.jobMenu(job, r.left, r.bottom);
          }}
        >
          ⋯
        </button>
      </header>
      {state.error && <Problem text={state.error} />}
      {job.error && <pre className="batchnb-detail-error">{job.error}</pre>}
      <section data-section="overview">
        <h3>Job</h3>
        <Facts job={job} />
      </section>
      {job.type === 'batch' && (
        <section data-section="throughput">
          <h3>Throughput</h3>
          <ThroughputChart points={state.timeline?.points ?? []} />
        </section>
      )}
      {job.type === 'batch' && (
        <section data-section="workers">
          <h3>Workers</h3>
          <WorkerTimelineChart attempts={state.workers?.attempts ?? []} ended={!ACTIVE_STATUSES.has(job.status)} />
        </section>
      )}
      {job.type === 'batch' && (
        <section data-section="failures">
          <h3>Failed items</h3>
          <FailedItemsView job={job} failures={state.failures} onRerun={() => void view.rerunFailed()} />
        </section>
      )}
      <section data-section="output">
        <h3>Output</h3>
        <OutputView view={view} state={state} />
      </section>
      <section data-section="logs">
        <h3>Logs</h3>
        {state.logs &&
          Object.entries(state.logs.files).map(([name, tail]) => (
            <div key={name} className="batchnb-detail-log" data-file={name}>
              <div className="batchnb-detail-file-head">
                <code title={tail.path}>{name}</code>
                {tail.exists ? (
                  <>
                    <button
                      className="jp-Button jp-mod-minimal batchnb-link-button"
                      data-action="open-log"
                      onClick={() => view.actions.openLog(job.name, name)}
                    >
                      Open
                    </button>
                    <a
                      className="batchnb-link"
                      data-action="download-log"
                      href={view.model.fileUrl(job.name, { log: name }, true)}
                      download={name.split('/').pop()}
                    >
                      Download
                    </a>
                  </>
                ) : (
                  <span className="batchnb-muted">not written</span>
                )}
              </div>
              {tail.exists && (tail.lines ?? []).length > 0 && (
                <pre>{(tail.truncated ? `… (last ${state.logs?.lines} lines)\n` : '') + (tail.lines ?? []).join('\n')}</pre>
              )}
            </div>
          ))}
      </section>
    </div>
  );
}

function Problem(props: { text: string }): JSX.Element {
  return (
    <div className="batchnb-error" role="alert">
      {props.text}
    </div>
  );
}

/** Inputs, deployment, settings, timings and counters, as a two-column table. */
function Facts(props: { job: AnyJob }): JSX.Element {
  const { job } = props;
  const rows: Array<[string, string]> = [];
  if (job.endpoint_name) {
    rows.push(['Endpoint', job.endpoint_name]);
  }
  if (job.type === 'batch') {
    const revision = job.deployment_revision ? ` (revision ${job.deployment_revision})` : '';
    rows.push(['Deployment', `${job.deployment_name ?? ''}${revision}`]);
    if (job.model) {
      rows.push(['Model', typeof job.model === 'string' ? job.model : JSON.stringify(job.model)]);
    }
    rows.push(['Compute', `${job.compute ?? 'local'} · ${job.instance_count} instance(s), ${job.workers} worker(s)`]);
  } else if (job.deployment_name) {
    rows.push(['Deployment', job.deployment_name]);
  }
  for (const [name, input] of Object.entries(job.inputs ?? {})) {
    const inp = input as { type?: string; path?: string | null; value?: unknown };
    rows.push([`Input ${name}`, inp.path ? `${inp.path} (${inp.type})` : JSON.stringify(inp.value)]);
  }
  for (const [name, out] of Object.entries(job.outputs ?? {})) {
    const o = out as { path: string; file_name?: string };
    rows.push([`Output ${name}`, o.file_name ? `${o.path}/${o.file_name}` : o.path]);
  }
  rows.push(['Invoked by', job.invoked_by ?? '']);
  rows.push(['Created', formatTime(job.created_at)]);
  if (job.started_at) {
    rows.push(['Started', formatTime(job.started_at)]);
  }
  if (job.ended_at) {
    rows.push(['Ended', formatTime(job.ended_at)]);
  }
  rows.push(['Duration', formatDuration(job.progress.elapsed_s)]);
  if (job.type === 'batch') {
    const p = job.progress;
    const mb = p.mini_batches;
    rows.push(['Mini-batches', `${mb.done} done, ${mb.failed} failed, ${mb.running} running, ${mb.pending} pending of ${mb.total}`]);
    rows.push(['Items', `${p.items.succeeded.toLocaleString()} succeeded, ${p.items.failed.toLocaleString()} failed of ${p.items.total.toLocaleString()}`]);
    rows.push(['Rows written', `${p.rows_written.toLocaleString()} (${p.rows_per_second.toLocaleString()} rows/s)`]);
    rows.push(['Worker time', formatDuration(p.worker_seconds)]);
  }
  for (const [key, value] of flatten((job.settings ?? {}) as Record<string, unknown>)) {
    rows.push([`Setting ${key}`, value]);
  }
  return (
    <table className="batchnb-facts">
      <tbody>
        {rows.map(([k, v]) => (
          <tr key={k} data-fact={k}>
            <th>{k}</th>
            <td>{v}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function flatten(value: Record<string, unknown>, prefix = ''): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(value)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      out.push(...flatten(v as Record<string, unknown>, `${prefix}${k}.`));
    } else if (v !== null && v !== undefined) {
      out.push([`${prefix}${k}`, typeof v === 'string' ? v : JSON.stringify(v)]);
    }
  }
  return out;
}

function OutputView(props: { view: JobDetailView; state: IState }): JSX.Element {
  const { view, state } = props;
  const job = state.job as AnyJob;
  const output = firstOutput(job);
  const listing = state.outputs;
  if (!output) {
    return <div className="batchnb-muted">This job has no output.</div>;
  }
  if (!listing) {
    return <div className="batchnb-muted">{output.path}</div>;
  }
  if (!listing.exists || listing.files.length === 0) {
    return <div className="batchnb-muted">{`Nothing written yet in ${listing.path}`}</div>;
  }
  const preview = state.preview;
  return (
    <div className="batchnb-output">
      <div className="batchnb-muted" title={listing.path}>
        {`${listing.files.length} file(s), ${formatBytes(listing.total_size)} in ${listing.path}`}
      </div>
      <ul className="batchnb-output-list">
        {listing.files.slice(0, 50).map(f => (
          <li key={f.name} data-file={f.name}>
            <code>{f.name}</code> <span className="batchnb-muted">{formatBytes(f.size)}</span>{' '}
            <button
              className="jp-Button jp-mod-minimal batchnb-link-button"
              data-action="preview"
              onClick={() => void view.previewFile(f.name)}
            >
              Preview
            </button>
            <a
              className="batchnb-link"
              data-action="download"
              href={view.model.fileUrl(job.name, { path: f.name, output: output.name }, true)}
              download={f.name.split('/').pop()}
            >
              Download
            </a>
          </li>
        ))}
      </ul>
      {state.previewError && <Problem text={state.previewError} />}
      {preview && (
        <div className="batchnb-preview" data-file={preview.file} data-format={preview.format}>
          <div className="batchnb-muted">
            {`${preview.file}: ${preview.format.toUpperCase()}, first ${preview.rows.length} row(s)` +
              (preview.total_rows !== null && preview.total_rows !== undefined
                ? ` of ${preview.total_rows.toLocaleString()}`
                : preview.truncated
                  ? ' (more follow)'
                  : '') +
              (preview.format === 'csv' && !preview.header ? '; no header row, columns numbered' : '')}
          </div>
          <div className="batchnb-preview-scroll">
            <table className="batchnb-preview-table">
              <thead>
                <tr>
                  {preview.columns.map((c, i) => (
                    <th key={i}>{c}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {preview.rows.map((row, i) => (
                  <tr key={i}>
                    {row.map((cell, j) => (
                      <td key={j}>{cell === null ? '' : String(cell)}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </div>
      )}
    </div>
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) {
    return `${n} B`;
  }
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}
