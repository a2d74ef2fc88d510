/**
 * The left-panel sidebar: endpoints -> deployments (the default marked) -> recent jobs with live
 * status and a progress bar (of mini-batches, or of steps for a pipeline job, whose steps expand).
 * Each endpoint shows its newest jobs, how many it has in all and a link to all of them (the job
 * list), so an endpoint with older jobs never looks empty.
 * Stable DOM hooks for tests: `data-endpoint`, `data-deployment`, `data-job`, `data-type`,
 * `data-status`, `data-action`, `data-step`, `data-count`, classes `batchnb-job`, `batchnb-progress`,
 * `batchnb-step`.
 */
import { ServerConnection } from '@jupyterlab/services';
import { ReactWidget, UseSignal, refreshIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import {
  ACTIVE_STATUSES,
  BatchModel,
  IJobQuery,
  JOBS_PER_ENDPOINT,
  RESUMABLE_STATUSES,
  firstOutput
} from './model';
import type { AnyJob, BatchEndpoint, JobStep } from './wire';

/** What the sidebar's buttons do (implemented by the plugin: dialogs, the file browser...). */
export interface ISidebarActions {
  invoke(endpoint: BatchEndpoint): void;
  /** Score one input with two of the endpoint's deployments and compare the outputs (a main-area tab). */
  compare(endpoint: BatchEndpoint): void;
  setDefault(endpoint: string, deployment: string): void;
  cancel(job: AnyJob): void;
  resume(job: AnyJob): void;
  rerunFailed(job: AnyJob): void;
  openLogs(job: AnyJob): void;
  openOutputs(job: AnyJob): void;
  openDetails(job: AnyJob): void;
  openJobList(query: IJobQuery): void;
  /** The job's menu (copy its name or command, show it in a notebook, archive, delete) at a point. */
  jobMenu(job: AnyJob, x: number, y: number): void;
}

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
  const known = new Set(model.endpoints.map(e => e.name));
  const orphans: AnyJob[] = [];
  let orphanTotal = 0;
  for (const [endpoint, group] of model.groups) {
    if (!known.has(endpoint)) {
      orphans.push(...group.jobs);
      orphanTotal += group.total;
    }
  }
  orphans.sort((a, b) => b.created_at - a.created_at);
  return (
    <div className="batchnb-sidebar-content">
      <div className="batchnb-header">
        <h2 className="batchnb-title">Batch endpoints</h2>
        <button
          className="jp-Button jp-mod-minimal batchnb-link-button"
          title="All jobs of the workspace: search, filter, sort, archive"
          data-action="job-list"
          onClick={() => actions.openJobList({})}
        >
          All jobs
        </button>
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
      {model.loaded && model.endpoints.length === 0 && orphanTotal === 0 && <GettingStarted />}
      {model.endpoints.map(endpoint => {
        const group = model.groups.get(endpoint.name);
        return (
          <EndpointView
            key={endpoint.name}
            endpoint={endpoint}
            jobs={group?.jobs ?? []}
            total={group?.total ?? 0}
            actions={actions}
          />
        );
      })}
      {orphans.length > 0 && (
        <section className="batchnb-endpoint batchnb-orphans" data-endpoint="">
          <div className="batchnb-endpoint-header">
            <span className="batchnb-endpoint-name">Other jobs</span>
            <JobCount total={orphanTotal} />
          </div>
          <JobListView jobs={orphans.slice(0, JOBS_PER_ENDPOINT)} actions={actions} />
          {orphanTotal > JOBS_PER_ENDPOINT && <MoreLink total={orphanTotal} onClick={() => actions.openJobList({})} />}
        </section>
      )}
    </div>
  );
}

/** How many jobs an endpoint has in all. */
function JobCount(props: { total: number }): JSX.Element {
  return (
    <span className="batchnb-count" data-count={props.total} title={`${props.total} job(s) in all`}>
      {props.total === 1 ? '1 job' : `${props.total.toLocaleString()} jobs`}
    </span>
  );
}

/** "All N jobs…": the job list, filtered to the endpoint. */
function MoreLink(props: { total: number; onClick: () => void }): JSX.Element {
  return (
    <button
      className="jp-Button jp-mod-minimal batchnb-link-button batchnb-more"
      data-action="more"
      title="Open the job list: search, filter, sort, archive or delete"
      onClick={props.onClick}
    >
      {`All ${props.total.toLocaleString()} jobs…`}
    </button>
  );
}

/** The empty workspace: the three ways to a first deployment, from where a data scientist already is. */
function GettingStarted(): JSX.Element {
  return (
    <div className="batchnb-getting-started" data-empty="workspace">
      <p>No batch endpoints in this workspace yet. Deploy a model from a notebook:</p>
      <ul>
        <li>
          <code>%load_ext batchnb</code>, then a cell that starts with{' '}
          <code>%%batch deploy my-endpoint/blue --model my-model@latest</code>: the cell is the scoring script
          (<code>init()</code> and <code>run(mini_batch)</code>), and the endpoint is created with it.
        </li>
        <li>
          Or the forms: <code>from batchnb.widgets import ModelForm, EndpointForm, DeploymentForm</code>.
        </li>
        <li>
          Or a terminal: <code>batchnb batch-endpoint create -f endpoint.yml</code> with Azure&apos;s YAML.
        </li>
      </ul>
      <p>Endpoints, their jobs and live progress show up here as they are made.</p>
    </div>
  );
}

function EndpointView(props: {
  endpoint: BatchEndpoint;
  jobs: AnyJob[];
  total: number;
  actions: ISidebarActions;
}): JSX.Element {
  const { endpoint, jobs, total, actions } = props;
  const current = endpoint.defaults?.deployment_name ?? null;
  return (
    <section className="batchnb-endpoint" data-endpoint={endpoint.name}>
      <div className="batchnb-endpoint-header">
        <span className="batchnb-endpoint-name" title={endpoint.description ?? endpoint.name}>
          {endpoint.name}
        </span>
        <JobCount total={total} />
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
      {endpoint.deployments.length >= 2 && (
        <button
          className="jp-Button jp-mod-minimal batchnb-link-button batchnb-compare-action"
          data-action="compare"
          title={`Score one input with two deployments of ${endpoint.name} and compare their outputs row by row`}
          onClick={() => actions.compare(endpoint)}
        >
          Compare deployments…
        </button>
      )}
      {jobs.length > 0 && <JobListView jobs={jobs.slice(0, JOBS_PER_ENDPOINT)} actions={actions} />}
      {total === 0 && <div className="batchnb-empty batchnb-no-jobs">No jobs yet</div>}
      {total > Math.min(jobs.length, JOBS_PER_ENDPOINT) && (
        <MoreLink total={total} onClick={() => actions.openJobList({ endpoint: endpoint.name })} />
      )}
    </section>
  );
}

function JobListView(props: { jobs: AnyJob[]; actions: ISidebarActions }): JSX.Element {
  return (
    <ul className="batchnb-jobs">
      {props.jobs.map(job => (
        <JobView key={job.name} job={job} actions={props.actions} />
      ))}
    </ul>
  );
}

/** What a job's progress bar and detail line show: mini-batches, or steps for a pipeline job. */
interface IProgressSummary {
  done: number;
  failed: number;
  total: number;
  unit: string;
  details: string[];
}

export function progressSummary(job: AnyJob, active: boolean): IProgressSummary {
  if (job.type === 'pipeline') {
    const c = job.progress.steps;
    const details = [`${c.completed}/${c.total} steps`];
    for (const [count, word] of [
      [c.running, 'running'],
      [c.failed, 'failed'],
      [c.canceled, 'canceled']
    ] as const) {
      if (count) {
        details.push(`${count} ${word}`);
      }
    }
    return { done: c.completed, failed: c.failed + c.canceled, total: c.total, unit: 'steps', details };
  }
  if (job.type === 'command') {
    return {
      done: job.status === 'Completed' ? 1 : 0,
      failed: job.status === 'Failed' ? 1 : 0,
      total: 1,
      unit: 'step',
      details: [`step ${job.step} of ${job.parent_job_name}`]
    };
  }
  const mb = job.progress.mini_batches;
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
  return { done: mb.done, failed: mb.failed, total: mb.total, unit: 'mini-batches', details };
}

/** A batch job's failed items (a job can complete with some: its status alone says Completed). */
export function failedItems(job: AnyJob): number {
  return job.type === 'batch' ? job.progress.items.failed : 0;
}

/** Whether "Rerun failed" applies: a failed pipeline job, or a finished batch job with failed mini-batches. */
function canRerunFailed(job: AnyJob): boolean {
  if (job.type === 'pipeline') {
    return job.status === 'Failed';
  }
  return (
    job.type === 'batch' &&
    (job.status === 'Completed' || job.status === 'Failed') &&
    job.progress.mini_batches.failed > 0
  );
}

function JobView(props: { job: AnyJob; actions: ISidebarActions }): JSX.Element {
  const { job, actions } = props;
  const [expanded, setExpanded] = React.useState(false);
  const active = ACTIVE_STATUSES.has(job.status);
  const p = progressSummary(job, active);
  const finished = p.done + p.failed;
  const pct = p.total > 0 ? Math.round((100 * finished) / p.total) : 0;
  const okPct = p.total > 0 ? (100 * p.done) / p.total : 0;
  const failedPct = p.total > 0 ? (100 * p.failed) / p.total : 0;
  const statusClass = 'batchnb-status batchnb-status-' + job.status.toLowerCase();
  // A pipeline job run with `job create` belongs to no deployment: its display name instead.
  const label = job.deployment_name ?? (job.type === 'pipeline' ? job.display_name : null);
  const output = firstOutput(job);
  return (
    <li
      className={'batchnb-job' + (active ? ' batchnb-mod-active' : '')}
      data-job={job.name}
      data-type={job.type}
      data-status={job.status}
      data-endpoint={job.endpoint_name ?? ''}
      data-deployment={job.deployment_name ?? ''}
    >
      <div className="batchnb-job-head">
        <span className={statusClass}>{job.status}</span>
        {failedItems(job) > 0 && (
          <span className="batchnb-failed-items" data-failed-items={failedItems(job)}>
            {`${failedItems(job).toLocaleString()} failed`}
          </span>
        )}
        <span className="batchnb-job-name" title={`${job.name}\ncreated ${formatTime(job.created_at)}`}>
          {job.name}
        </span>
        {label && <span className="batchnb-job-deployment">{label}</span>}
      </div>
      <div
        className="batchnb-progress"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
        data-unit={p.unit}
        data-done={p.done}
        data-failed={p.failed}
        data-total={p.total}
        title={`${finished}/${p.total} ${p.unit} finished (${pct}%)`}
      >
        <div className="batchnb-progress-done" style={{ width: `${okPct}%` }} />
        <div className="batchnb-progress-failed" style={{ width: `${failedPct}%` }} />
      </div>
      <div className="batchnb-job-detail">{p.details.join(' · ')}</div>
      <JobTimeView job={job} active={active} />
      {job.error && (
        <div className="batchnb-job-error" title={job.error}>
          {job.error}
        </div>
      )}
      {job.type === 'pipeline' && expanded && <StepListView steps={job.steps} />}
      <div className="batchnb-job-actions">
        <button
          className="jp-Button jp-mod-minimal batchnb-link-button"
          data-action="details"
          title="Inputs, settings, timings, throughput, logs and the output, in a tab"
          onClick={() => actions.openDetails(job)}
        >
          Details
        </button>
        {job.type === 'pipeline' && (
          <button
            className="jp-Button jp-mod-minimal batchnb-link-button"
            data-action="steps"
            aria-expanded={expanded}
            title={expanded ? 'Hide the steps' : 'Show the steps and their statuses'}
            onClick={() => setExpanded(!expanded)}
          >
            {expanded ? 'Hide steps' : `Steps (${job.steps.length})`}
          </button>
        )}
        {active && job.type !== 'command' && (
          <button
            className="jp-Button jp-mod-minimal batchnb-link-button"
            data-action="cancel"
            disabled={job.status === 'CancelRequested'}
            onClick={() => actions.cancel(job)}
          >
            Cancel
          </button>
        )}
        {RESUMABLE_STATUSES.has(job.status) && job.type !== 'command' && (
          <button
            className="jp-Button jp-mod-minimal batchnb-link-button"
            data-action="resume"
            title={
              job.type === 'pipeline'
                ? 'Finish the job; completed steps are kept'
                : 'Finish the job; committed mini-batches are kept'
            }
            onClick={() => actions.resume(job)}
          >
            Resume
          </button>
        )}
        {canRerunFailed(job) && (
          <button
            className="jp-Button jp-mod-minimal batchnb-link-button"
            data-action="rerun-failed"
            title={
              job.type === 'pipeline'
                ? 'Run the failed (and canceled) steps again; completed steps are kept'
                : 'Run the failed mini-batches again and rebuild the output'
            }
            onClick={() => actions.rerunFailed(job)}
          >
            Rerun failed
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
        {output && (
          <button
            className="jp-Button jp-mod-minimal batchnb-link-button"
            data-action="outputs"
            title={`${output.name}: ${output.path}`}
            onClick={() => actions.openOutputs(job)}
          >
            Output
          </button>
        )}
        <button
          className="jp-Button jp-mod-minimal batchnb-link-button batchnb-menu-button"
          data-action="menu"
          aria-label={`More actions on ${job.name}`}
          title="Copy name, copy command, show in notebook, archive, delete"
          onClick={event => {
            const r = (event.currentTarget as HTMLElement).getBoundingClientRect();
            actions.jobMenu(job, r.left, r.bottom);
          }}
        >
          ⋯
        </button>
      </div>
    </li>
  );
}

/** When a job started (relative, the local time on hover) and how long it ran, or has been running. */
function JobTimeView(props: { job: AnyJob; active: boolean }): JSX.Element {
  const { job, active } = props;
  const now = Date.now() / 1000;
  const started = job.started_at ?? null;
  if (started === null) {
    return (
      <div className="batchnb-job-time" title={`created ${formatTime(job.created_at)}`}>
        {`created ${formatAgo(now - job.created_at)}`}
      </div>
    );
  }
  const ran = (job.ended_at ?? (active ? now : started)) - started;
  return (
    <div
      className="batchnb-job-time"
      data-started={started}
      title={`started ${formatTime(started)}` + (job.ended_at ? `\nended ${formatTime(job.ended_at)}` : '')}
    >
      {`started ${formatAgo(now - started)} · ${active ? 'running for' : 'took'} ${formatDuration(ran)}`}
    </div>
  );
}

/** A pipeline job's steps, in run order: status, name, duration, and the first line of an error. */
function StepListView(props: { steps: JobStep[] }): JSX.Element {
  return (
    <ul className="batchnb-step-list">
      {props.steps.map(step => {
        const error = step.error ? step.error.trim().split('\n')[0] : '';
        return (
          <li key={step.name} className="batchnb-step" data-step={step.name} data-status={step.status}>
            <span className={'batchnb-status batchnb-status-' + step.status.toLowerCase()}>{step.status}</span>
            <span
              className="batchnb-step-name"
              title={step.needs.length ? `${step.job_name}\nafter ${step.needs.join(', ')}` : step.job_name}
            >
              {step.name}
            </span>
            {step.duration_s !== null && step.duration_s !== undefined && (
              <span className="batchnb-step-duration">{formatDuration(step.duration_s)}</span>
            )}
            {error && (
              <div className="batchnb-step-error" title={step.error ?? ''}>
                {error}
              </div>
            )}
          </li>
        );
      })}
    </ul>
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

/** How long ago, in the words of a person: "just now", "3 min ago", "2 h ago", "4 days ago". */
export function formatAgo(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 45) {
    return 'just now';
  }
  if (s < 3600) {
    return `${Math.max(1, Math.round(s / 60))} min ago`;
  }
  if (s < 86400) {
    return `${Math.round(s / 3600)} h ago`;
  }
  const days = Math.round(s / 86400);
  return days === 1 ? 'yesterday' : `${days} days ago`;
}

/** A local time as people read it in a table: `2026-12-02 04:13`. */
export function formatTime(epochSeconds: number): string {
  const d = new Date(epochSeconds * 1000);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}
