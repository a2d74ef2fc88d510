/**
 * A batch job's failed items in its detail view: a table (item, mini-batch, attempts, why, error)
 * whose rows open their traceback in place, how many more there are past the first ones, and the
 * "Rerun failed" action, which asks whether to score them on the job's own snapshot of the
 * deployment or on its current revision (`POST jobs/<job>/rerun-failed?latest=`).
 * Stable DOM hooks: `.batchnb-failures[data-total]`, `tr[data-item][data-why]`,
 * `[data-action="traceback"]` (`aria-expanded`), `.batchnb-failure-trace`, `[data-action="rerun-failed"]`.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import * as React from 'react';

import { requestAPI, seg } from './request';
import type { AnyJob, FailedItem, JobFailures, WorkerTimeline } from './wire';

/** How many failed items the detail view lists (with their tracebacks). */
export const FAILURES_SHOWN = 100;

/** `GET jobs/<name>/failures?limit=N&tracebacks=true`: the first failed items, and how many there are. */
export function fetchFailures(settings: ServerConnection.ISettings, name: string): Promise<JobFailures> {
  return requestAPI<JobFailures>(`jobs/${seg(name)}/failures?limit=${FAILURES_SHOWN}&tracebacks=true`, settings);
}

/** `GET jobs/<name>/worker-timeline`: every mini-batch attempt, by worker. */
export function fetchWorkerTimeline(settings: ServerConnection.ISettings, name: string): Promise<WorkerTimeline> {
  return requestAPI<WorkerTimeline>(`jobs/${seg(name)}/worker-timeline`, settings);
}

/**
 * Ask how to rerun a job's failed items, then `POST jobs/<name>/rerun-failed`. Resolves to the job
 * (null when the user declined).
 */
export async function rerunFailed(settings: ServerConnection.ISettings, job: AnyJob): Promise<AnyJob | null> {
  const revision = job.type === 'batch' && job.deployment_revision ? ` (revision ${job.deployment_revision})` : '';
  const result = await showDialog({
    title: `Rerun the failed items of ${job.name}?`,
    body:
      `Same snapshot: the model, code and environment the job was invoked on${revision}. ` +
      `Current revision: what the deployment ${job.deployment_name ?? ''} is now (after an update that fixes them). ` +
      'Either way its output is rebuilt with one row per item.',
    buttons: [
      Dialog.cancelButton(),
      Dialog.okButton({ label: 'Current revision', displayType: 'default' }),
      Dialog.okButton({ label: 'Same snapshot' })
    ]
  });
  if (!result.button.accept) {
    return null;
  }
  const latest = result.button.label === 'Current revision';
  return requestAPI<AnyJob>(`jobs/${seg(job.name)}/rerun-failed?latest=${latest}`, settings, { method: 'POST' });
}

function FailureRow(props: { item: FailedItem }): JSX.Element {
  const { item } = props;
  const [open, setOpen] = React.useState(false);
  const trace = item.traceback_text;
  return (
    <>
      <tr data-item={item.item} data-why={item.why}>
        <td className="batchnb-failure-item">{item.item}</td>
        <td>{item.mini_batch}</td>
        <td>{item.attempts}</td>
        <td>{item.why}</td>
        <td className="batchnb-failure-error">
          {trace ? (
            <button
              className="jp-Button jp-mod-minimal batchnb-link-button"
              data-action="traceback"
              aria-expanded={open}
              title={open ? 'Hide the traceback' : 'Show the traceback'}
              onClick={() => setOpen(!open)}
            >
              {`${open ? '▾' : '▸'} ${item.error || item.error_type || 'traceback'}`}
            </button>
          ) : (
            item.error || item.error_type || ''
          )}
        </td>
      </tr>
      {trace && open && (
        <tr className="batchnb-failure-trace" data-trace-of={item.item}>
          <td colSpan={5}>
            <pre>{trace}</pre>
          </td>
        </tr>
      )}
    </>
  );
}

/** The failed items table with the "Rerun failed" action. */
export function FailedItemsView(props: {
  job: AnyJob;
  failures: JobFailures | null;
  onRerun: () => void;
}): JSX.Element {
  const { job, failures, onRerun } = props;
  const ended = job.status === 'Completed' || job.status === 'Failed';
  const rerun = ended && (failures?.total ?? 0) > 0 && (
    <button className="jp-Button jp-mod-minimal batchnb-link-button" data-action="rerun-failed" onClick={onRerun}>
      Rerun failed…
    </button>
  );
  if (!failures || failures.total === 0) {
    return <div className="batchnb-muted">{failures ? 'No item failed.' : 'Loading…'}</div>;
  }
  const more = failures.total - failures.items.length;
  return (
    <div className="batchnb-failures" data-total={failures.total}>
      <div className="batchnb-failures-head">
        <span>{`${failures.total.toLocaleString()} failed item${failures.total === 1 ? '' : 's'}`}</span>
        {rerun}
      </div>
      <table className="batchnb-failures-table">
        <thead>
          <tr>
            <th>item</th>
            <th>mini-batch</th>
            <th>attempts</th>
            <th>why</th>
            <th>error</th>
          </tr>
        </thead>
        <tbody>
          {failures.items.map((item, i) => (
            <FailureRow key={`${item.mini_batch}:${item.item}:${i}`} item={item} />
          ))}
        </tbody>
      </table>
      {more > 0 && (
        <div className="batchnb-muted" data-more={more}>
          {`${more.toLocaleString()} more not shown; `}
          <code>{`batchnb job failures -n ${job.name}`}</code>
          {' lists them all.'}
        </div>
      )}
    </div>
  );
}
