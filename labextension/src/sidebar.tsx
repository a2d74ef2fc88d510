/**
 * The left-panel sidebar: endpoints -> deployments (the default marked) -> recent jobs with live
 * status and a progress bar. Stable DOM hooks for tests: `data-endpoint`, `data-deployment`,
 * `data-job`, `data-status`, `data-action`, classes `batchnb-job`, `batchnb-progress`.
 */
import { ServerConnection } from '@jupyterlab/services';
import { ReactWidget, UseSignal, refreshIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { ACTIVE_STATUSES, BatchModel, RESUMABLE_STATUSES } from './model';
import type { BatchEndpoint, Job } from './wire';

/** What the sidebar's buttons do (implemented by the plugin: dialogs, the file browser...). */
export interface ISidebarActions {
  invoke(endpoint: BatchEndpoint): void;
  setDefault(endpoint: string, deployment: string): void;
  cancel(job: Job): void;
  resume(job: Job): void;
  openLogs(job: Job): void;
  openOutputs(job: Job): void;
}

/** Recent jobs shown under each endpoint. */
export const JOBS_PER_ENDPOINT = 8;

export class BatchSidebar extends ReactWidget {
  constructor(options: BatchSidebar.IOptions) {
    super();
    this.id = 'batchnb-sidebar';
    this.addClass('batchnb-sidebar');
    this.actions = options.actions;
    this.model = new BatchModel({
      serverSettings: options.serverSettings,
      // Poll only while this panel is shown and the browser tab is visible.
      standby: () => document.hidden || !this.isVisible
    });
  }

  readonly model: BatchModel;
  readonly actions: ISidebarActions;

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    // Fresh data as soon as the panel opens, rather than at the next tick.
    void this.model.refresh();
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => <SidebarView model={this.model} actions={this.actions} />}
      </UseSignal>
    );
  }
}

export namespace BatchSidebar {
  export interface IOptions {
    serverSettings: ServerConnection.ISettings;
    actions: ISidebarActions;
  }
}

function SidebarView(props: { model: BatchModel; actions: ISidebarActions }): JSX.Element {
  const { model, actions } = props;
  const byEndpoint = new Map<string, Job[]>();
  const orphans: Job[] = [];
  const known = new Set(model.endpoints.map(e => e.name));
  for (const job of model.jobs) {
    const ep = job.endpoint_name;
    if (ep && known.has(ep)) {
      const list = byEndpoint.get(ep) ?? [];
      list.push(job);
      byEndpoint.set(ep, list);
    } else {
      orphans.push(job);
    }
  }
  return (
    <div className="batchnb-sidebar-content">
      <div className="batchnb-header">
        <h2 className="batchnb-title">Batch endpoints</h2>
        <button
          className="jp-Button jp-mod-minimal batchnb-icon-button"
          title="Refresh"
          data-action="refresh"
          onClick={() => void model.refresh()}
        >
          <refreshIcon.react tag="span" elementSize="normal" />
        </button>
      </div>
      {model.error !== null && (
        <div className="batchnb-error" role="alert">
          {model.error}
        </div>
      )}
      {!model.loaded && model.error === null && <div className="batchnb-empty">Loading…</div>}
      {model.loaded && model.endpoints.length === 0 && (
        <div className="batchnb-empty">
          No batch endpoints in this workspace yet. Create one with{' '}
          <code>batchnb batch-endpoint create</code> or <code>BatchClient</code>.
        </div>
      )}
      {model.endpoints.map(endpoint => (
        <EndpointView
          key={endpoint.name}
          endpoint={endpoint}
          jobs={byEndpoint.get(endpoint.name) ?? []}
          actions={actions}
        />
      ))}
      {orphans.length > 0 && (
        <section className="batchnb-endpoint batchnb-orphans" data-endpoint="">
          <div className="batchnb-endpoint-header">
            <span className="batchnb-endpoint-name">Other jobs</span>
          </div>
          <JobListView jobs={orphans.slice(0, JOBS_PER_ENDPOINT)} actions={actions} />
        </section>
      )}
    </div>
  );
}

function EndpointView(props: {
  endpoint: BatchEndpoint;
  jobs: Job[];
  actions: ISidebarActions;
}): JSX.Element {
  const { endpoint, jobs, actions } = props;
  const current = endpoint.defaults?.deployment_name ?? null;
  return (
    <section className="batchnb-endpoint" data-endpoint={endpoint.name}>
      <div className="batchnb-endpoint-header">
        <span className="batchnb-endpoint-name" title={endpoint.description ?? endpoint.name}>
          {endpoint.name}
        </span>
        <button
          className="jp-Button jp-mod-styled jp-mod-accept batchnb-small-button"
          data-action="invoke"
          title={`Invoke ${endpoint.name}: start a batch job`}
          disabled={endpoint.deployments.length === 0}
          onClick={() => actions.invoke(endpoint)}
        >
          Invoke…
        </button>
      </div>
      <ul className="batchnb-deployments">
        {endpoint.deployments.length === 0 && <li className="batchnb-empty">No deployments</li>}
        {endpoint.deployments.map(name => {
          const isDefault = name === current;
          return (
            <li
              key={name}
              className={'batchnb-deployment' + (isDefault ? ' batchnb-mod-default' : '')}
              data-deployment={name}
              data-default={isDefault ? 'true' : 'false'}
            >
              <span className="batchnb-deployment-name">{name}</span>
              {isDefault ? (
                <span className="batchnb-badge" title="Invocations that name no deployment use this one">
                  default
                </span>
              ) : (
                <button
                  className="jp-Button jp-mod-minimal batchnb-link-button"
                  data-action="set-default"
                  title={`Make ${name} the default deployment of ${endpoint.name}`}
                  onClick={() => actions.setDefault(endpoint.name, name)}
                >
                  Set default
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {jobs.length > 0 ? (
        <JobListView jobs={jobs.slice(0, JOBS_PER_ENDPOINT)} actions={actions} />
      ) : (
        <div className="batchnb-empty batchnb-no-jobs">No jobs yet</div>
      )}
    </section>
  );
}

function JobListView(props: { jobs: Job[]; actions: ISidebarActions }): JSX.Element {
  return (
    <ul className="batchnb-jobs">
      {props.jobs.map(job => (
        <JobView key={job.name} job={job} actions={props.actions} />
      ))}
    </ul>
  );
}

function JobView(props: { job: Job; actions: ISidebarActions }): JSX.Element {
  const { job, actions } = props;
  const mb = job.progress.mini_batches;
  const finished = mb.done + mb.failed;
  const pct = mb.total > 0 ? Math.round((100 * finished) / mb.total) : 0;
  const okPct = mb.total > 0 ? (100 * mb.done) / mb.total : 0;
  const failedPct = mb.total > 0 ? (100 * mb.failed) / mb.total : 0;
  const active = ACTIVE_STATUSES.has(job.status);
  const statusClass = 'batchnb-status batchnb-status-' + job.status.toLowerCase();
  const details: string[] = [`${mb.done}/${mb.total} mini-batches`];
  if (mb.failed) {
    details.push(`${mb.failed} failed`);
  }
  if (mb.retrying) {
    details.push(`${mb.retrying} retrying`);
  }
  details.push(`${job.progress.rows_written.toLocaleString()} rows`);
  if (active && job.progress.rows_per_second > 0) {
    details.push(`${formatRate(job.progress.rows_per_second)} rows/s`);
  }
  if (active && job.progress.eta_s !== null && job.progress.eta_s !== undefined) {
    details.push(`ETA ${formatDuration(job.progress.eta_s)}`);
  }
  return (
    <li
      className={'batchnb-job' + (active ? ' batchnb-mod-active' : '')}
      data-job={job.name}
      data-status={job.status}
      data-endpoint={job.endpoint_name ?? ''}
      data-deployment={job.deployment_name ?? ''}
    >
      <div className="batchnb-job-head">
        <span className={statusClass}>{job.status}</span>
        <span className="batchnb-job-name" title={`${job.name}\ncreated ${formatTime(job.created_at)}`}>
          {job.name}
        </span>
        {job.deployment_name && <span className="batchnb-job-deployment">{job.deployment_name}</span>}
      </div>
      <div
        className="batchnb-progress"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
        data-done={mb.done}
        data-failed={mb.failed}
        data-total={mb.total}
        title={`${finished}/${mb.total} mini-batches finished (${pct}%)`}
      >
        <div className="batchnb-progress-done" style={{ width: `${okPct}%` }} />
        <div className="batchnb-progress-failed" style={{ width: `${failedPct}%` }} />
      </div>
      <div className="batchnb-job-detail">{details.join(' · ')}</div>
      {job.error && (
        <div className="batchnb-job-error" title={job.error}>
          {job.error}
        </div>
      )}
      <div className="batchnb-job-actions">
        {active && (
          <button
            className="jp-Button jp-mod-minimal batchnb-link-button"
            data-action="cancel"
            disabled={job.status === 'CancelRequested'}
            onClick={() => actions.cancel(job)}
          >
            Cancel
          </button>
        )}
        {RESUMABLE_STATUSES.has(job.status) && (
          <button
            className="jp-Button jp-mod-minimal batchnb-link-button"
            data-action="resume"
            title="Finish the job; committed mini-batches are kept"
            onClick={() => actions.resume(job)}
          >
            Resume
          </button>
        )}
        <button
          className="jp-Button jp-mod-minimal batchnb-link-button"
          data-action="logs"
          title={job.logs_dir}
          onClick={() => actions.openLogs(job)}
        >
          Logs
        </button>
        <button
          className="jp-Button jp-mod-minimal batchnb-link-button"
          data-action="outputs"
          title={job.outputs?.score?.path ?? ''}
          onClick={() => actions.openOutputs(job)}
        >
          Output folder
        </button>
      </div>
    </li>
  );
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) {
    return `${s}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  }
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function formatRate(rate: number): string {
  return rate >= 100 ? Math.round(rate).toLocaleString() : rate.toFixed(1);
}

export function formatTime(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toLocaleString();
}
