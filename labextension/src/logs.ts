/**
 * A main-area panel with the tails of a job's logs (`GET jobs/<name>/logs`), refreshed every 2 s
 * while the job runs and the panel is visible.
 */
import { MainAreaWidget, ToolbarButton } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { refreshIcon, textEditorIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { ACTIVE_STATUSES, BatchModel } from './model';
import type { JobLogs } from './wire';

export class LogsView extends Widget {
  constructor(model: BatchModel, job: string) {
    super();
    this.addClass('batchnb-logs');
    this.node.dataset.job = job;
    this._model = model;
    this._job = job;
    this._poll = new Poll({
      factory: () => this._fetch(),
      frequency: { interval: 2000, backoff: true, max: 30 * 1000 },
      standby: () => document.hidden || !this.isVisible || this._ended,
      name: `batchnb:logs:${job}`
    });
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  /** The last logs fetched. */
  get logs(): JobLogs | null {
    return this._logs;
  }

  async refresh(): Promise<void> {
    this._ended = false;
    await this._poll.refresh();
    await this._poll.tick;
  }

  private async _fetch(): Promise<void> {
    try {
      this._logs = await this._model.logs(this._job);
      this._ended = !ACTIVE_STATUSES.has(this._logs.status);
      this._render(null);
    } catch (error) {
      this._render((error as Error).message);
      throw error;
    }
  }

  private _render(error: string | null): void {
    const node = this.node;
    const scroll = node.scrollTop;
    node.textContent = '';
    if (error) {
      const div = document.createElement('div');
      div.className = 'batchnb-error';
      div.textContent = error;
      node.appendChild(div);
    }
    const logs = this._logs;
    if (!logs) {
      return;
    }
    const head = document.createElement('div');
    head.className = 'batchnb-logs-head';
    head.textContent = `${logs.name}: ${logs.status} · ${logs.logs_dir}`;
    node.appendChild(head);
    for (const [name, tail] of Object.entries(logs.files)) {
      const section = document.createElement('section');
      section.className = 'batchnb-log-file';
      section.dataset.file = name;
      const title = document.createElement('h3');
      title.textContent = name + (tail.exists ? '' : ' (not written yet)');
      title.title = tail.path;
      section.appendChild(title);
      if (tail.exists) {
        const pre = document.createElement('pre');
        pre.textContent =
          (tail.truncated ? `… (last ${logs.lines} lines)\n` : '') + (tail.lines ?? []).join('\n');
        section.appendChild(pre);
      }
      node.appendChild(section);
    }
    node.scrollTop = scroll;
  }

  private _model: BatchModel;
  private _job: string;
  private _poll: Poll;
  private _logs: JobLogs | null = null;
  private _ended = false;
}

/** The panel for a job's logs, with Refresh and (when the file is browsable) Open buttons. */
export function createLogsPanel(
  model: BatchModel,
  job: string,
  openFile: ((logsDir: string) => Promise<void>) | null
): MainAreaWidget<LogsView> {
  const content = new LogsView(model, job);
  const panel = new MainAreaWidget({ content });
  panel.id = `batchnb-logs-${job}`;
  panel.title.label = `Logs: ${job}`;
  panel.title.icon = textEditorIcon;
  panel.title.closable = true;
  panel.toolbar.addItem(
    'refresh',
    new ToolbarButton({
      icon: refreshIcon,
      tooltip: 'Refresh the logs',
      onClick: () => void content.refresh()
    })
  );
  if (openFile) {
    panel.toolbar.addItem(
      'open',
      new ToolbarButton({
        label: 'Open job_result.txt',
        tooltip: 'Open the whole log file in an editor',
        onClick: () => {
          if (content.logs) {
            void openFile(content.logs.logs_dir);
          }
        }
      })
    );
  }
  return panel;
}

/**
 * A read-only tab with a whole log file of a job, fetched from the server (`GET jobs/<job>/file`),
 * for files the contents API cannot open (the workspace's hidden `.batchnb/` folder).
 */
export function createFilePanel(model: BatchModel, job: string, log: string): MainAreaWidget<Widget> {
  const content = new Widget();
  content.addClass('batchnb-file-view');
  content.node.dataset.job = job;
  content.node.dataset.file = log;
  const pre = document.createElement('pre');
  content.node.appendChild(pre);
  const url = model.fileUrl(job, { log });
  const load = async () => {
    try {
      const response = await ServerConnection.makeRequest(url, {}, model.serverSettings);
      pre.textContent = response.ok ? await response.text() : `${response.status}: ${await response.text()}`;
    } catch (error) {
      pre.textContent = (error as Error).message;
    }
  };
  void load();
  const panel = new MainAreaWidget({ content });
  panel.id = `batchnb-file-${job}-${log.replace(/[^\w.-]/g, '_')}`;
  panel.title.label = `${log.split('/').pop()} (${job})`;
  panel.title.icon = textEditorIcon;
  panel.title.closable = true;
  panel.toolbar.addItem('refresh', new ToolbarButton({ icon: refreshIcon, tooltip: 'Read the file again', onClick: () => void load() }));
  panel.toolbar.addItem(
    'download',
    new ToolbarButton({
      label: 'Download',
      tooltip: 'Save the file',
      onClick: () => {
        const a = document.createElement('a');
        a.href = model.fileUrl(job, { log }, true);
        a.download = log.split('/').pop() ?? log;
        a.click();
      }
    })
  );
  return panel;
}
