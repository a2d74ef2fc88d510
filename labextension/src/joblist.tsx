/**
 * The job list, a main-area tab: every job of the workspace, a page at a time from the server
 * (`GET jobs` with limit and offset, and the total), searched and filtered by endpoint,
 * deployment, status and date, sorted, and with archive, restore and delete for ended jobs.
 * Stable DOM hooks: `.batchnb-joblist[data-total]`, inputs named after the query parameters,
 * rows `tr[data-job][data-status]`, buttons `data-action`.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget, UseSignal, listIcon } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';
import * as React from 'react';

import { ACTIVE_STATUSES, BatchModel, IJobQuery } from './model';
import { failedItems, formatAgo, formatDuration, formatTime, progressSummary } from './sidebar';
import type { AnyJob, JobList } from './wire';

export const PAGE_SIZE = 50;

const STATUSES = [
  'Queued',
  'Preparing',
  'Running',
  'Finalizing',
  'Completed',
  'Failed',
  'CancelRequested',
  'Canceled',
  'Interrupted'
];

const SORTS: Array<[string, string]> = [
  ['-created_at', 'Newest first'],
  ['created_at', 'Oldest first'],
  ['-duration', 'Longest first'],
  ['name', 'Name'],
  ['status', 'Status'],
  ['endpoint', 'Endpoint']
];

/** What the list's row buttons do (implemented by the plugin: dialogs, the detail tab). */
export interface IJobListActions {
  openDetails(job: AnyJob): void;
  archive(job: AnyJob, archived: boolean): Promise<void>;
  remove(job: AnyJob): Promise<void>;
}

export class JobListView extends ReactWidget {
  constructor(model: BatchModel, actions: IJobListActions, query: IJobQuery = {}) {
    super();
    this.addClass('batchnb-joblist-panel');
    this.addClass('batchnb-panel');
    this.model = model;
    this.actions = actions;
    this._query = { sort: '-created_at', archived: 'exclude', ...query, limit: PAGE_SIZE, offset: 0 };
    // Follow the sidebar's poll (while this tab is shown): statuses change, jobs come and go.
    model.changed.connect(() => {
      if (this.isVisible && !this._loading) {
        void this.refresh();
      }
    }, this);
  }

  readonly model: BatchModel;
  readonly actions: IJobListActions;

  get query(): IJobQuery {
    return this._query;
  }

  get page(): JobList | null {
    return this._page;
  }

  dispose(): void {
    Signal.disconnectReceiver(this);
    super.dispose();
  }

  /** Change the filters (back to the first page) or the page, and fetch. */
  async setQuery(change: Partial<IJobQuery>): Promise<void> {
    const offset = 'offset' in change ? (change.offset ?? 0) : 0;
    this._query = { ...this._query, ...change, offset };
    await this.refresh();
  }

  async refresh(): Promise<void> {
    const asked = this._query;
    this._loading = true;
    try {
      const page = await this.model.page(untilInclusive(asked));
      if (asked === this._query) {
        this._page = page;
        this._error = null;
      }
    } catch (error) {
      this._error = (error as Error).message;
    } finally {
      this._loading = false;
      this._changed.emit();
    }
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  protected render(): JSX.Element {
    return <UseSignal signal={this._changed}>{() => <ListView view={this} error={this._error} />}</UseSignal>;
  }

  private _query: IJobQuery;
  private _page: JobList | null = null;
  private _error: string | null = null;
  private _loading = false;
  private _changed = new Signal<this, void>(this);
}

/** A date typed in "to" means through that day: the API's `until` is exclusive. */
function untilInclusive(query: IJobQuery): IJobQuery {
  if (query.until && /^\d{4}-\d{2}-\d{2}$/.test(query.until)) {
    return { ...query, until: `${query.until}T23:59:59.999` };
  }
  return query;
}

export function createJobListPanel(
  model: BatchModel,
  actions: IJobListActions,
  query: IJobQuery
): MainAreaWidget<JobListView> {
  const content = new JobListView(model, actions, query);
  const panel = new MainAreaWidget({ content });
  panel.id = 'batchnb-job-list';
  panel.title.label = 'Batch jobs';
  panel.title.icon = listIcon;
  panel.title.closable = true;
  return panel;
}

function ListView(props: { view: JobListView; error: string | null }): JSX.Element {
  const { view, error } = props;
  const q = view.query;
  const page = view.page;
  const total = page?.total ?? 0;
  const offset = q.offset ?? 0;
  const shown = page?.jobs.length ?? 0;
  const counts = page?.status_counts ?? {};
  const set = (change: Partial<IJobQuery>) => void view.setQuery(change);
  return (
    <div className="batchnb-joblist" data-total={page ? total : ''}>
      <form className="batchnb-joblist-filters" onSubmit={e => e.preventDefault()}>
        <input
          className="jp-mod-styled"
          type="search"
          name="search"
          placeholder="Search name, endpoint, deployment, user"
          aria-label="Search"
          defaultValue={q.search ?? ''}
          onChange={e => set({ search: e.currentTarget.value })}
        />
        <select
          className="jp-mod-styled"
          name="endpoint"
          aria-label="Endpoint"
          value={q.endpoint ?? ''}
          onChange={e => set({ endpoint: e.currentTarget.value })}
        >
          <option value="">All endpoints</option>
          {view.model.endpoints.map(ep => (
            <option key={ep.name} value={ep.name}>
              {ep.name}
            </option>
          ))}
        </select>
        <input
          className="jp-mod-styled"
          name="deployment"
          placeholder="Deployment"
          aria-label="Deployment"
          defaultValue={q.deployment ?? ''}
          onChange={e => set({ deployment: e.currentTarget.value })}
        />
        <select
          className="jp-mod-styled"
          name="status"
          aria-label="Status"
          value={q.status ?? ''}
          onChange={e => set({ status: e.currentTarget.value })}
        >
          <option value="">Any status</option>
          {STATUSES.map(s => (
            <option key={s} value={s}>
              {counts[s] !== undefined ? `${s} (${counts[s]})` : s}
            </option>
          ))}
        </select>
        <label>
          From{' '}
          <input
            className="jp-mod-styled"
            type="date"
            name="since"
            value={q.since ?? ''}
            onChange={e => set({ since: e.currentTarget.value })}
          />
        </label>
        <label>
          To{' '}
          <input
            className="jp-mod-styled"
            type="date"
            name="until"
            value={q.until ?? ''}
            onChange={e => set({ until: e.currentTarget.value })}
          />
        </label>
        <select
          className="jp-mod-styled"
          name="sort"
          aria-label="Sort"
          value={q.sort ?? '-created_at'}
          onChange={e => set({ sort: e.currentTarget.value })}
        >
          {SORTS.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
        <select
          className="jp-mod-styled"
          name="archived"
          aria-label="Archived"
          value={q.archived ?? 'exclude'}
          onChange={e => set({ archived: e.currentTarget.value as IJobQuery['archived'] })}
        >
          <option value="exclude">Not archived</option>
          <option value="only">Archived</option>
          <option value="include">All</option>
        </select>
      </form>
      {error && (
        <div className="batchnb-error" role="alert">
          {error}
        </div>
      )}
      <div className="batchnb-joblist-summary">
        {page
          ? total === 0
            ? 'No jobs match.'
            : `Jobs ${(offset + 1).toLocaleString()}–${(offset + shown).toLocaleString()} of ${total.toLocaleString()}`
          : 'Loading…'}
      </div>
      {page && page.jobs.length > 0 && (
        <table className="batchnb-joblist-table">
          <thead>
            <tr>
              <th>Status</th>
              <th>Name</th>
              <th>Endpoint / deployment</th>
              <th>Progress</th>
              <th>Started</th>
              <th>Duration</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {page.jobs.map(job => (
              <Row key={job.name} job={job} view={view} />
            ))}
          </tbody>
        </table>
      )}
      <div className="batchnb-pager">
        <button
          className="jp-Button jp-mod-styled"
          data-action="previous-page"
          disabled={offset === 0}
          onClick={() => set({ offset: Math.max(0, offset - PAGE_SIZE) })}
        >
          Previous
        </button>
        <span>{`Page ${Math.floor(offset / PAGE_SIZE) + 1} of ${Math.max(1, Math.ceil(total / PAGE_SIZE))}`}</span>
        <button
          className="jp-Button jp-mod-styled"
          data-action="next-page"
          disabled={offset + shown >= total}
          onClick={() => set({ offset: offset + PAGE_SIZE })}
        >
          Next
        </button>
      </div>
    </div>
  );
}

function Row(props: { job: AnyJob; view: JobListView }): JSX.Element {
  const { job, view } = props;
  const active = ACTIVE_STATUSES.has(job.status);
  const p = progressSummary(job, active);
  const failed = failedItems(job);
  const now = Date.now() / 1000;
  const started = job.started_at ?? null;
  const ran = started === null ? null : (job.ended_at ?? now) - started;
  return (
    <tr data-job={job.name} data-status={job.status} data-archived={job.archived_at ? 'true' : 'false'}>
      <td>
        <span className={'batchnb-status batchnb-status-' + job.status.toLowerCase()}>{job.status}</span>
        {failed > 0 && <span className="batchnb-failed-items">{`${failed} failed`}</span>}
      </td>
      <td>
        <button
          className="jp-Button jp-mod-minimal batchnb-link-button batchnb-job-link"
          data-action="details"
          title="Open the job's details"
          onClick={() => view.actions.openDetails(job)}
        >
          {job.name}
        </button>
      </td>
      <td>{[job.endpoint_name, job.deployment_name].filter(Boolean).join(' / ')}</td>
      <td>{p.details[0]}</td>
      <td title={started ? formatTime(started) : `created ${formatTime(job.created_at)}`}>
        {started ? formatAgo(now - started) : '—'}
      </td>
      <td>{ran === null ? '—' : formatDuration(ran)}</td>
      <td className="batchnb-row-actions">
        {!active && (
          <button
            className="jp-Button jp-mod-minimal batchnb-link-button"
            data-action={job.archived_at ? 'restore' : 'archive'}
            onClick={() => void view.actions.archive(job, !job.archived_at).then(() => view.refresh())}
          >
            {job.archived_at ? 'Restore' : 'Archive'}
          </button>
        )}
        {!active && (
          <button
            className="jp-Button jp-mod-minimal batchnb-link-button"
            data-action="delete"
            onClick={() => void view.actions.remove(job).then(() => view.refresh())}
          >
            Delete
          </button>
        )}
      </td>
    </tr>
  );
}
