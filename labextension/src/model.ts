/**
 * The sidebar's state: endpoints and each endpoint's newest jobs with its job count (`GET
 * job-overview`), refreshed by a `Poll`, and the API's actions. The poll runs every 2 s, backs off
 * up to 30 s while the server fails, and stands by while the panel is hidden.
 */
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { URLExt } from '@jupyterlab/coreutils';

import { API_PREFIX, requestAPI, seg } from './request';
import type {
  AnyJob,
  BatchEndpoint,
  EndpointList,
  InvokeRequest,
  JobGroup,
  JobList,
  JobLogs,
  JobOutputs,
  JobOverview,
  JobSummary,
  JobTimeline,
  OutputPreview,
  WorkspaceInfo
} from './wire';

/** A job's status, as the API sends it (a pipeline's step waits as `NotStarted`). */
export type JobStatus = AnyJob['status'];

/** Statuses of a job that may still change (cancel applies to these). */
export const ACTIVE_STATUSES: ReadonlySet<JobStatus> = new Set<JobStatus>([
  'Queued',
  'Preparing',
  'Running',
  'Finalizing',
  'CancelRequested'
]);

/** Statuses from which `resume` finishes a job. */
export const RESUMABLE_STATUSES: ReadonlySet<JobStatus> = new Set<JobStatus>([
  'Interrupted',
  'Canceled'
]);

/** The first named output of a job: `score` for a batch job, a pipeline job's first output. */
export function firstOutput(job: AnyJob): { name: string; path: string } | null {
  const entries = Object.entries(job.outputs ?? {});
  const [name, out] = entries.find(([n]) => n === 'score') ?? entries[0] ?? [];
  return name && out?.path ? { name, path: out.path } : null;
}

/** How many of each endpoint's newest jobs the sidebar shows (the rest are a "more" link away). */
export const JOBS_PER_ENDPOINT = 8;

/** The poll's frequency: every 2 s, backing off up to 30 s while the server fails. */
export const POLL_FREQUENCY = { interval: 2000, backoff: true, max: 30 * 1000 };

/** The filters, sorting and page of `GET jobs`. */
export interface IJobQuery {
  endpoint?: string;
  deployment?: string;
  status?: string;
  search?: string;
  since?: string;
  until?: string;
  archived?: 'exclude' | 'only' | 'include';
  sort?: string;
  limit?: number;
  offset?: number;
}

/** A query string of the set values (`?a=1&b=x`), or ''. */
export function queryString(values: object): string {
  const parts = Object.entries(values)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

export class BatchModel implements IDisposable {
  constructor(options: BatchModel.IOptions) {
    this.serverSettings = options.serverSettings;
    this._poll = new Poll({
      factory: () => this._fetch(),
      frequency: POLL_FREQUENCY,
      standby: options.standby,
      name: 'batchnb:sidebar'
    });
  }

  readonly serverSettings: ServerConnection.ISettings;

  /** Endpoints, sorted by name. */
  get endpoints(): readonly BatchEndpoint[] {
    return this._endpoints;
  }

  /** The newest jobs of every endpoint (batch and pipeline jobs; not their steps), newest first. */
  get jobs(): readonly AnyJob[] {
    return this._jobs;
  }

  /** Each endpoint's newest jobs and job count, by endpoint name ('' for jobs of no endpoint). */
  get groups(): ReadonlyMap<string, JobGroup> {
    return this._groups;
  }

  /** Whether a job seen in the last refresh is queued or running. */
  get hasActive(): boolean {
    return this._jobs.some(j => ACTIVE_STATUSES.has(j.status)) || this._watching.size > 0;
  }

  /** Emitted with a job seen running (or queued) that has now ended: the notification's cue. */
  get jobEnded(): ISignal<this, AnyJob> {
    return this._jobEnded;
  }

  /** The last refresh's error message, or null when it succeeded. */
  get error(): string | null {
    return this._error;
  }

  /** Whether one refresh has succeeded. */
  get loaded(): boolean {
    return this._loaded;
  }

  /** Emitted after every refresh (success or failure) and local change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** The poll (exposed for tests and for diagnosis). */
  get poll(): Poll {
    return this._poll;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._poll.dispose();
    Signal.clearData(this);
  }

  /** Refresh now (an immediate poll tick); resolves after the fetch ran. */
  async refresh(): Promise<void> {
    await this._poll.refresh();
    await this._poll.tick;
  }

  // -- actions (each refreshes afterwards) ---------------------------------------------------

  /** Invoke an endpoint: `POST endpoints/<name>/jobs`. */
  async invoke(endpoint: string, body: InvokeRequest): Promise<AnyJob> {
    const job = await requestAPI<AnyJob>(`endpoints/${seg(endpoint)}/jobs`, this.serverSettings, {
      method: 'POST',
      json: body
    });
    this._upsertJob(job);
    void this.refresh();
    return job;
  }

  /** Make a deployment the endpoint's default: `PATCH endpoints/<name>`. */
  async setDefault(endpoint: string, deployment: string): Promise<BatchEndpoint> {
    const updated = await requestAPI<BatchEndpoint>(`endpoints/${seg(endpoint)}`, this.serverSettings, {
      method: 'PATCH',
      json: { defaults: { deployment_name: deployment } }
    });
    this._endpoints = this._endpoints.map(e => (e.name === updated.name ? updated : e));
    this._changed.emit();
    void this.refresh();
    return updated;
  }

  /** `POST jobs/<name>/cancel` (or `resume`, `rerun-failed`). */
  async jobAction(name: string, action: 'cancel' | 'resume' | 'rerun-failed'): Promise<AnyJob> {
    const job = await requestAPI<AnyJob>(`jobs/${seg(name)}/${action}`, this.serverSettings, {
      method: 'POST'
    });
    this._upsertJob(job);
    void this.refresh();
    return job;
  }

  /** `GET jobs/<name>/logs?lines=N`. */
  logs(name: string, lines = 500): Promise<JobLogs> {
    return requestAPI<JobLogs>(`jobs/${seg(name)}/logs?lines=${lines}`, this.serverSettings);
  }

  /** `GET jobs/<name>/outputs?output=<output>` (a batch job's output is `score`). */
  outputs(name: string, output?: string): Promise<JobOutputs> {
    const query = output ? `?output=${encodeURIComponent(output)}` : '';
    return requestAPI<JobOutputs>(`jobs/${seg(name)}/outputs${query}`, this.serverSettings);
  }

  /** `GET jobs/<name>`. */
  job(name: string): Promise<AnyJob> {
    return requestAPI<AnyJob>(`jobs/${seg(name)}`, this.serverSettings);
  }

  /** `GET jobs?...`: a page of jobs with the total that match. */
  page(query: IJobQuery): Promise<JobList> {
    return requestAPI<JobList>(`jobs${queryString(query)}`, this.serverSettings);
  }

  /** `POST jobs/<name>/archive|restore`. */
  async archive(name: string, archived = true): Promise<AnyJob> {
    const job = await requestAPI<AnyJob>(`jobs/${seg(name)}/${archived ? 'archive' : 'restore'}`, this.serverSettings, {
      method: 'POST'
    });
    void this.refresh();
    return job;
  }

  /** `DELETE jobs/<name>`: an ended job, with its folder. */
  async deleteJob(name: string): Promise<void> {
    await requestAPI<void>(`jobs/${seg(name)}`, this.serverSettings, { method: 'DELETE' });
    void this.refresh();
  }

  /** `GET jobs/<name>/timeline`. */
  timeline(name: string): Promise<JobTimeline> {
    return requestAPI<JobTimeline>(`jobs/${seg(name)}/timeline`, this.serverSettings);
  }

  /** `GET jobs/<name>/summary`: the summary card the notebook shows. */
  summary(name: string): Promise<JobSummary> {
    return requestAPI<JobSummary>(`jobs/${seg(name)}/summary`, this.serverSettings);
  }

  /** `GET jobs/<name>/preview`: the first rows of an output file. */
  preview(name: string, output?: string, path?: string, rows = 20): Promise<OutputPreview> {
    return requestAPI<OutputPreview>(
      `jobs/${seg(name)}/preview${queryString({ output, path, rows })}`,
      this.serverSettings
    );
  }

  /** `GET workspace`. */
  workspace(): Promise<WorkspaceInfo> {
    return requestAPI<WorkspaceInfo>('workspace', this.serverSettings);
  }

  /** The URL of a job's log file (`log`) or output file (`path`), to open or download. */
  fileUrl(name: string, file: { log?: string; path?: string; output?: string }, download = false): string {
    const query = queryString({ ...file, download: download ? 'true' : undefined });
    return URLExt.join(this.serverSettings.baseUrl, API_PREFIX, `jobs/${seg(name)}/file`) + query;
  }

  // -- internals -----------------------------------------------------------------------------

  private _upsertJob(job: AnyJob): void {
    const others = this._jobs.filter(j => j.name !== job.name);
    this._jobs = [job, ...others].sort((a, b) => b.created_at - a.created_at);
    const key = job.endpoint_name ?? '';
    const group = this._groups.get(key);
    if (group) {
      const known = group.jobs.some(j => j.name === job.name);
      const jobs = [job, ...group.jobs.filter(j => j.name !== job.name)].sort((a, b) => b.created_at - a.created_at);
      this._groups.set(key, { ...group, total: group.total + (known ? 0 : 1), jobs });
    } else {
      this._groups.set(key, { endpoint: job.endpoint_name ?? null, total: 1, active: 1, jobs: [job] });
    }
    if (ACTIVE_STATUSES.has(job.status)) {
      this._watching.add(job.name);
    }
    this._changed.emit();
  }

  /** The poll's factory: rejects on failure, so the poll backs off. */
  private async _fetch(): Promise<void> {
    try {
      const [endpoints, overview] = await Promise.all([
        requestAPI<EndpointList>('endpoints', this.serverSettings),
        requestAPI<JobOverview>(`job-overview?per_endpoint=${JOBS_PER_ENDPOINT}`, this.serverSettings)
      ]);
      this._endpoints = [...endpoints.endpoints].sort((a, b) => a.name.localeCompare(b.name));
      this._groups = new Map(overview.groups.map(g => [g.endpoint ?? '', g]));
      this._jobs = overview.groups
        .flatMap(g => g.jobs)
        .sort((a, b) => b.created_at - a.created_at);
      await this._noticeEnded();
      this._error = null;
      this._loaded = true;
    } catch (error) {
      this._error = (error as Error).message || String(error);
      throw error;
    } finally {
      if (!this._isDisposed) {
        this._changed.emit();
      }
    }
  }

  /** Emit `jobEnded` for the jobs seen active before that have ended (fetched one by one when they
   * are no longer among their endpoint's newest). */
  private async _noticeEnded(): Promise<void> {
    const seen = new Map(this._jobs.map(j => [j.name, j]));
    for (const name of [...this._watching]) {
      let job = seen.get(name);
      if (!job) {
        try {
          job = await this.job(name);
        } catch {
          this._watching.delete(name); // deleted, or archived and gone: nothing to say
          continue;
        }
      }
      if (!ACTIVE_STATUSES.has(job.status)) {
        this._watching.delete(name);
        this._jobEnded.emit(job);
      }
    }
    for (const job of this._jobs) {
      if (ACTIVE_STATUSES.has(job.status)) {
        this._watching.add(job.name);
      } else if (this._loaded && !this._known.has(job.name) && job.ended_at && job.ended_at > this._newest) {
        // New since the last refresh and already ended (a short job, seen first between two polls).
        this._jobEnded.emit(job);
      }
    }
    this._known = new Set(this._jobs.map(j => j.name));
    this._newest = Math.max(this._newest, ...this._jobs.map(j => j.created_at));
  }

  private _endpoints: BatchEndpoint[] = [];
  private _jobs: AnyJob[] = [];
  private _groups = new Map<string, JobGroup>();
  private _watching = new Set<string>();
  private _known = new Set<string>();
  private _newest = 0;
  private _jobEnded = new Signal<this, AnyJob>(this);
  private _error: string | null = null;
  private _loaded = false;
  private _isDisposed = false;
  private _changed = new Signal<this, void>(this);
  private _poll: Poll;
}

export namespace BatchModel {
  export interface IOptions {
    serverSettings: ServerConnection.ISettings;
    /** When the poll stands by; the sidebar passes `() => document.hidden || !sidebar.isVisible`. */
    standby: Poll.Standby | (() => boolean | Poll.Standby);
  }
}
