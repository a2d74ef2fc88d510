/**
 * The sidebar's state: endpoints and recent jobs, refreshed by a `Poll`, and the API's actions.
 */
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI, seg } from './request';
import type {
  AnyJob,
  BatchEndpoint,
  EndpointList,
  InvokeRequest,
  JobList,
  JobLogs,
  JobOutputs
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

/** How many recent jobs the sidebar fetches (all endpoints together). */
export const JOBS_FETCHED = 100;

/** The poll's frequency: every 2 s, backing off up to 30 s while the server fails. */
export const POLL_FREQUENCY = { interval: 2000, backoff: true, max: 30 * 1000 };

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

  /** Recent jobs (batch and pipeline jobs; not their steps), newest first. */
  get jobs(): readonly AnyJob[] {
    return this._jobs;
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

  // -- internals -----------------------------------------------------------------------------

  private _upsertJob(job: AnyJob): void {
    const others = this._jobs.filter(j => j.name !== job.name);
    this._jobs = [job, ...others].sort((a, b) => b.created_at - a.created_at);
    this._changed.emit();
  }

  /** The poll's factory: rejects on failure, so the poll backs off. */
  private async _fetch(): Promise<void> {
    try {
      const [endpoints, jobs] = await Promise.all([
        requestAPI<EndpointList>('endpoints', this.serverSettings),
        requestAPI<JobList>(`jobs?limit=${JOBS_FETCHED}`, this.serverSettings)
      ]);
      this._endpoints = [...endpoints.endpoints].sort((a, b) => a.name.localeCompare(b.name));
      this._jobs = jobs.jobs;
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

  private _endpoints: BatchEndpoint[] = [];
  private _jobs: AnyJob[] = [];
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
