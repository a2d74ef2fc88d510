/**
 * What a notebook's job outputs become when the page (re)connects to its kernel.
 *
 * A reload shows the notebook as last saved, so a cell that ran a job again since shows the job of
 * the save (issue 25). The kernel survives a reload and knows the job each cell showed last
 * (batchnb.widgets.cells, asked through a comm): that job goes in place of the saved one, live (its
 * widget, whose model the kernel still holds) while it runs, else its summary card. A kernel that
 * does not answer (a new one, or batchnb not loaded in it) holds no live widget: each job widget
 * becomes its job's summary, read from the server.
 */
import type { Kernel } from '@jupyterlab/services';

import { ACTIVE_STATUSES, BatchModel } from './model';

/** Every display of a job from the kernel carries its name under this type (batchnb.widgets). */
export const JOB_MIME = 'application/vnd.batchnb.job+json';
export const WIDGET_MIME = 'application/vnd.jupyter.widget-view+json';
/** The kernel's comm target that answers which job each cell showed last. */
export const CELLS_TARGET = 'batchnb.cells';

/** A job a cell showed, and the model of its live widget (null: shown as a static summary). */
export interface IShownJob {
  name: string;
  model_id: string | null;
}

export interface IOutputsLike {
  length: number;
  get(index: number): { toJSON(): { output_type: string; data?: Record<string, unknown> } };
  set(index: number, output: Record<string, unknown>): void;
  add(output: Record<string, unknown>): number;
}

/** The parts of a notebook's cells this module uses (duck-typed: no dependency on @jupyterlab/notebook). */
export interface ICellsLike {
  widgets: ReadonlyArray<{ model: { id: string; outputs?: IOutputsLike } }>;
}

/** Ask the kernel which job each cell showed last; null when it does not know. */
export function askKernel(kernel: Kernel.IKernelConnection): Promise<Map<string, IShownJob> | null> {
  return new Promise(resolve => {
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(CELLS_TARGET);
    } catch {
      resolve(null);
      return;
    }
    let answered = false;
    comm.onMsg = msg => {
      answered = true;
      const data = msg.content.data as { cells?: Record<string, IShownJob> };
      resolve(new Map(Object.entries(data.cells ?? {})));
    };
    // A kernel without the target closes the comm at once, unanswered.
    comm.onClose = () => {
      if (!answered) {
        resolve(null);
      }
    };
    try {
      comm.open({});
    } catch {
      resolve(null);
    }
  });
}

async function summaryOutput(model: BatchModel, name: string): Promise<Record<string, unknown>> {
  const summary = await model.summary(name);
  return {
    output_type: 'display_data',
    data: { 'text/html': summary.html, 'text/plain': summary.text, [JOB_MIME]: { name } },
    metadata: {}
  };
}

/** After a kernel restart the live widgets have lost their kernel: each shows its job's summary instead. */
export async function replaceLiveWidgets(model: BatchModel, cells: ICellsLike): Promise<void> {
  for (const cell of cells.widgets) {
    const outputs = cell.model.outputs;
    if (!outputs) {
      continue;
    }
    for (let i = 0; i < outputs.length; i++) {
      const data = outputs.get(i).toJSON().data ?? {};
      const marker = data[JOB_MIME] as { name?: string } | undefined;
      if (!marker?.name || !(WIDGET_MIME in data)) {
        continue;
      }
      try {
        outputs.set(i, await summaryOutput(model, marker.name));
      } catch {
        // The job was deleted: leave the output as it is.
      }
    }
  }
}

/** The output that shows a cell's last job: its live widget while it runs, else its summary. */
async function latestOutput(model: BatchModel, shown: IShownJob): Promise<Record<string, unknown>> {
  if (shown.model_id) {
    const job = await model.job(shown.name);
    if (ACTIVE_STATUSES.has(job.status)) {
      return {
        output_type: 'display_data',
        data: {
          [WIDGET_MIME]: { model_id: shown.model_id, version_major: 2, version_minor: 1 },
          [JOB_MIME]: { name: shown.name }
        },
        metadata: {}
      };
    }
  }
  return summaryOutput(model, shown.name);
}

/**
 * The page is connected to the notebook's kernel (a reload, or the notebook opened): each cell shows
 * the job the kernel says it showed last. Without the kernel's answer, job widgets become summaries.
 */
export async function restoreCells(
  model: BatchModel,
  cells: ICellsLike,
  kernel: Kernel.IKernelConnection | null | undefined
): Promise<void> {
  const latest = kernel ? await askKernel(kernel) : null;
  if (latest === null) {
    await replaceLiveWidgets(model, cells);
    return;
  }
  for (const cell of cells.widgets) {
    const shown = latest.get(cell.model.id);
    const outputs = cell.model.outputs;
    if (!shown || !outputs) {
      continue;
    }
    let stale = -1;
    let current = false;
    for (let i = 0; i < outputs.length; i++) {
      const marker = (outputs.get(i).toJSON().data ?? {})[JOB_MIME] as { name?: string } | undefined;
      if (marker?.name === shown.name) {
        current = true;
      } else if (marker?.name && stale < 0) {
        stale = i;
      }
    }
    if (current) {
      continue;
    }
    try {
      const output = await latestOutput(model, shown);
      if (stale >= 0) {
        outputs.set(stale, output);
      } else {
        outputs.add(output);
      }
    } catch {
      // The job was deleted since: the cell keeps what it shows.
    }
  }
}
