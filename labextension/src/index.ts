/**
 * batchnb's JupyterLab extension: a left-panel sidebar with the workspace's batch endpoints,
 * their deployments and newest jobs (live), the job list and a job's detail view as main-area tabs,
 * a notification when a job ends, and a menu on every job (copy its name or command, show it in a
 * notebook, archive, delete), comparing two deployments in a tab, talking to the batchnb server
 * extension's REST API. After a kernel restart, a notebook's live job widgets (whose kernel state is
 * gone) become their jobs' summaries; after a reload, each cell shows the job it showed last (cells.ts).
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Clipboard,
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import type { Kernel } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';
import { Menu, Widget } from '@lumino/widgets';

import { ICellsLike, replaceLiveWidgets, restoreCells } from './cells';
import { ICompareFormValues, compareDialog, createComparisonPanel } from './compare';
import { JobDetailView, createDetailPanel } from './detail';
import { EMPTY_VALUES, IInvokeFormValues, invokeDialog } from './invoke';
import { JobListView, createJobListPanel } from './joblist';
import { LogsView, createFilePanel, createLogsPanel } from './logs';
import { ACTIVE_STATUSES, IJobQuery, firstOutput } from './model';
import { browsablePath } from './paths';
import { BatchSidebar, ISidebarActions } from './sidebar';
import type { AnyJob, BatchEndpoint } from './wire';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="3" y="4" width="18" height="4" rx="1"/>
    <rect x="3" y="10" width="12" height="4" rx="1"/>
    <rect x="3" y="16" width="7" height="4" rx="1"/>
    <path d="M14 15.5l6 3.5-6 3.5z"/>
  </g>
</svg>`;

export const batchIcon = new LabIcon({ name: 'batchnb:batch', svgstr: ICON_SVG });

namespace CommandIDs {
  export const open = 'batchnb:open-sidebar';
  export const refresh = 'batchnb:refresh';
  export const jobList = 'batchnb:job-list';
  export const details = 'batchnb:job-details';
  export const logs = 'batchnb:job-logs';
  export const output = 'batchnb:job-output';
  export const copyName = 'batchnb:copy-job-name';
  export const copyCommand = 'batchnb:copy-job-command';
  export const showInNotebook = 'batchnb:show-job-in-notebook';
  export const archive = 'batchnb:archive-job';
  export const remove = 'batchnb:delete-job';
}

/** The parts of a notebook panel this extension uses (duck-typed: no dependency on @jupyterlab/notebook). */
interface INotebookLike extends Widget {
  sessionContext: {
    ready: Promise<void>;
    statusChanged: ISignal<unknown, string>;
    kernelChanged: ISignal<unknown, unknown>;
    session: { kernel: Kernel.IKernelConnection | null } | null;
  };
  content: ICellsLike & {
    activeCellIndex: number;
    model: { sharedModel: { insertCell(index: number, cell: { cell_type: string; source: string }): unknown } } | null;
  };
}

function isNotebook(widget: Widget | null | undefined): widget is INotebookLike {
  const w = widget as Partial<INotebookLike> | null | undefined;
  return !!w && !!w.sessionContext && !!w.content && Array.isArray((w.content as { widgets?: unknown }).widgets);
}

/** A shell word: quoted when it needs to be. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'"'"'`)}'`;
}

/** The CLI command that runs the job again (the same endpoint, deployment and input), or shows it. */
export function jobCommand(job: AnyJob): string {
  if (job.type === 'batch' && job.endpoint_name) {
    const input = job.inputs.input_data;
    return [
      'batchnb batch-endpoint invoke -n',
      shellWord(job.endpoint_name),
      '--deployment-name',
      shellWord(job.deployment_name ?? ''),
      '--input',
      shellWord(input.path),
      '--input-type',
      input.type
    ].join(' ');
  }
  if (job.type === 'pipeline' && job.endpoint_name && job.deployment_name) {
    return `batchnb batch-endpoint invoke -n ${shellWord(job.endpoint_name)} --deployment-name ${shellWord(job.deployment_name)}`;
  }
  return `batchnb job show -n ${shellWord(job.name)}`;
}

/** The notification of an ended job: its kind, and one line on what happened. */
export function endedMessage(job: AnyJob): { type: 'success' | 'warning' | 'error' | 'info'; text: string } {
  const where = [job.endpoint_name, job.deployment_name].filter(Boolean).join('/');
  const head = `Job ${job.name}${where ? ` (${where})` : ''}`;
  if (job.type === 'batch') {
    const p = job.progress;
    const counts = `${p.mini_batches.done}/${p.mini_batches.total} mini-batches, ${p.rows_written.toLocaleString()} rows`;
    if (job.status === 'Completed') {
      return p.items.failed > 0
        ? { type: 'warning', text: `${head} completed with ${p.items.failed} failed items: ${counts}` }
        : { type: 'success', text: `${head} completed: ${counts}` };
    }
  } else if (job.status === 'Completed') {
    return { type: 'success', text: `${head} completed` };
  }
  const why = job.error ? `: ${job.error.trim().split('\n')[0]}` : '';
  const type = job.status === 'Failed' ? 'error' : job.status === 'Interrupted' ? 'warning' : 'info';
  return { type, text: `${head} ended ${job.status}${why}` };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'batchnb:sidebar',
  description: 'Batch endpoints, deployments and live jobs in the left panel.',
  autoStart: true,
  optional: [ILabShell, ILayoutRestorer, IDefaultFileBrowser, IDocumentManager, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null,
    fileBrowser: IDefaultFileBrowser | null,
    docManager: IDocumentManager | null,
    palette: ICommandPalette | null
  ) => {
    const contents = app.serviceManager.contents;
    const lastValues = new Map<string, IInvokeFormValues>();
    const lastCompared = new Map<string, ICompareFormValues>();
    const logPanels = new Map<string, MainAreaWidget<LogsView>>();
    const detailPanels = new Map<string, MainAreaWidget<JobDetailView>>();
    let listPanel: MainAreaWidget<JobListView> | null = null;

    const fail = (title: string) => (error: unknown) =>
      void showErrorMessage(title, (error as Error).message ?? String(error));

    /** A log file of a job: in an editor when the contents API reaches it, else read through the API. */
    async function openLogFile(job: string, log: string, logsDir?: string): Promise<void> {
      if (docManager && logsDir) {
        const rel = await browsablePath(`${logsDir}/${log}`, contents, 'file');
        if (rel !== null) {
          docManager.openOrReveal(rel);
          return;
        }
      }
      const panel = createFilePanel(sidebar.model, job, log);
      const existing = find(panel.id);
      if (existing) {
        panel.dispose();
        app.shell.activateById(existing.id);
        return;
      }
      app.shell.add(panel, 'main', { mode: 'split-right' });
      app.shell.activateById(panel.id);
    }

    function find(id: string): Widget | undefined {
      for (const w of app.shell.widgets('main')) {
        if (w.id === id) {
          return w;
        }
      }
      return undefined;
    }

    function openDetails(name: string, section?: string): void {
      let panel = detailPanels.get(name);
      if (!panel || panel.isDisposed) {
        panel = createDetailPanel(sidebar.model, name, {
          openLog: (job, log) => void openLogFile(job, log).catch(fail(`Could not open ${log}`)),
          jobMenu: (job, x, y) => showJobMenu(job, x, y)
        });
        detailPanels.set(name, panel);
        panel.disposed.connect(() => detailPanels.delete(name));
        app.shell.add(panel, 'main');
      }
      app.shell.activateById(panel.id);
      const content = panel.content;
      void content.refresh().then(() => {
        if (section) {
          content.node.querySelector(`[data-section="${section}"]`)?.scrollIntoView();
        }
      });
    }

    function openJobList(query: IJobQuery): void {
      if (!listPanel || listPanel.isDisposed) {
        listPanel = createJobListPanel(
          sidebar.model,
          {
            openDetails: job => openDetails(job.name),
            archive: (job, archived) =>
              sidebar.model.archive(job.name, archived).then(
                () => undefined,
                fail(`Could not ${archived ? 'archive' : 'restore'} ${job.name}`)
              ),
            remove: job => confirmDelete(job)
          },
          query
        );
        app.shell.add(listPanel, 'main');
        app.shell.activateById(listPanel.id);
        return;
      }
      app.shell.activateById(listPanel.id);
      void listPanel.content.setQuery({
        endpoint: query.endpoint ?? '',
        deployment: query.deployment ?? '',
        status: query.status ?? ''
      });
    }

    async function confirmDelete(job: AnyJob): Promise<void> {
      const result = await showDialog({
        title: `Delete ${job.name}?`,
        body: 'Its record, logs and everything in its folder under the workspace are removed. An output written elsewhere is kept.',
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
      });
      if (result.button.accept) {
        await sidebar.model.deleteJob(job.name).catch(fail(`Could not delete ${job.name}`));
        detailPanels.get(job.name)?.dispose();
      }
    }

    function openLogs(job: AnyJob): void {
      let panel = logPanels.get(job.name);
      if (!panel || panel.isDisposed) {
        panel = createLogsPanel(sidebar.model, job.name, logsDir =>
          openLogFile(job.name, 'job_result.txt', logsDir).catch(fail('Could not open job_result.txt'))
        );
        logPanels.set(job.name, panel);
        panel.disposed.connect(() => logPanels.delete(job.name));
        app.shell.add(panel, 'main', { mode: 'split-right' });
      }
      app.shell.activateById(panel.id);
      void panel.content.refresh();
    }

    /** The output folder in the file browser when it can go there, else the detail view's output section. */
    async function openOutputs(job: AnyJob): Promise<void> {
      const output = firstOutput(job);
      if (!output) {
        throw new Error(`job ${job.name} has no output folder`);
      }
      if (fileBrowser) {
        const rel = await browsablePath(output.path, contents, 'directory');
        if (rel !== null) {
          await fileBrowser.model.cd('/' + rel);
          app.shell.activateById(fileBrowser.id);
          return;
        }
      }
      openDetails(job.name, 'output');
    }

    // -- notebooks: re-attaching, and what a kernel restart leaves -------------------------------

    let lastNotebook: INotebookLike | null = null;
    const hooked = new WeakSet<Widget>();

    // One restore at a time per notebook: a kernel that (re)connects while one runs waits for it.
    const restoring = new WeakMap<Widget, Promise<void>>();
    function restore(notebook: INotebookLike, restarted: boolean): void {
      const previous = restoring.get(notebook) ?? Promise.resolve();
      const next = previous.then(() =>
        restarted
          ? replaceLiveWidgets(sidebar.model, notebook.content)
          : restoreCells(sidebar.model, notebook.content, notebook.sessionContext.session?.kernel)
      );
      restoring.set(notebook, next.catch(() => undefined));
    }

    function hook(widget: Widget | null): void {
      if (!isNotebook(widget)) {
        return;
      }
      lastNotebook = widget;
      if (hooked.has(widget)) {
        return;
      }
      hooked.add(widget);
      widget.sessionContext.statusChanged.connect((_, status) => {
        if (status === 'restarting' || status === 'autorestarting') {
          restore(widget, true);
        }
      });
      // Connected to a kernel (a reload, an open, a change of kernel): each cell's last job in place.
      widget.sessionContext.kernelChanged.connect(() => restore(widget, false));
      void widget.sessionContext.ready.then(() => restore(widget, false));
    }

    async function showInNotebook(name: string): Promise<void> {
      let notebook = lastNotebook && !lastNotebook.isDisposed ? lastNotebook : null;
      if (!notebook) {
        for (const w of app.shell.widgets('main')) {
          if (isNotebook(w)) {
            notebook = w;
          }
        }
      }
      if (!notebook || !notebook.content.model) {
        throw new Error('Open a notebook first: the cell that shows the job is inserted into it.');
      }
      const workspace = await sidebar.model.workspace();
      const source = [
        `# Job ${name}, live (inserted by the batchnb sidebar)`,
        'import batchnb',
        `batchnb.BatchClient(${JSON.stringify(workspace.root)}).jobs.get(${JSON.stringify(name)})`
      ].join('\n');
      const index = notebook.content.activeCellIndex + 1;
      notebook.content.model.sharedModel.insertCell(index, { cell_type: 'code', source });
      notebook.content.activeCellIndex = index;
      app.shell.activateById(notebook.id);
      await notebook.sessionContext.ready;
      await app.commands.execute('notebook:run-cell');
    }

    if (labShell) {
      labShell.currentChanged.connect((_, change) => hook(change.newValue));
      hook(labShell.currentWidget);
    }

    // -- the job's commands and menu -------------------------------------------------------------

    const withJob =
      (action: (job: AnyJob) => Promise<unknown> | unknown, what: string) =>
      (args: ReadonlyPartialJSONObject) => {
        const name = String(args.name ?? '');
        return sidebar.model
          .job(name)
          .then(action)
          .catch(fail(`Could not ${what} ${name}`));
      };
    app.commands.addCommand(CommandIDs.details, {
      label: 'Details',
      caption: 'Inputs, settings, timings, throughput, logs and output',
      execute: args => openDetails(String(args.name ?? ''))
    });
    app.commands.addCommand(CommandIDs.logs, { label: 'Logs', execute: withJob(openLogs, 'show the logs of') });
    app.commands.addCommand(CommandIDs.output, { label: 'Output', execute: withJob(openOutputs, 'show the output of') });
    app.commands.addCommand(CommandIDs.copyName, {
      label: 'Copy Name',
      execute: args => Clipboard.copyToSystem(String(args.name ?? ''))
    });
    app.commands.addCommand(CommandIDs.copyCommand, {
      label: 'Copy Command',
      caption: 'The batchnb command that runs this job again (same endpoint, deployment and input)',
      execute: withJob(job => Clipboard.copyToSystem(jobCommand(job)), 'copy the command of')
    });
    app.commands.addCommand(CommandIDs.showInNotebook, {
      label: 'Show in Notebook',
      caption: 'Insert and run a cell that shows the job live in the current notebook',
      execute: args => showInNotebook(String(args.name ?? '')).catch(fail('Could not show the job in a notebook'))
    });
    app.commands.addCommand(CommandIDs.archive, {
      label: 'Archive',
      execute: withJob(job => sidebar.model.archive(job.name, true), 'archive')
    });
    app.commands.addCommand(CommandIDs.remove, { label: 'Delete…', execute: withJob(confirmDelete, 'delete') });
    app.commands.addCommand(CommandIDs.jobList, {
      label: 'Show All Batch Jobs',
      execute: () => openJobList({})
    });

    function showJobMenu(job: AnyJob, x: number, y: number): void {
      const menu = new Menu({ commands: app.commands });
      menu.addClass('batchnb-job-menu');
      const args = { name: job.name };
      for (const command of [CommandIDs.details, CommandIDs.copyName, CommandIDs.copyCommand, CommandIDs.showInNotebook]) {
        menu.addItem({ command, args });
      }
      if (!ACTIVE_STATUSES.has(job.status)) {
        menu.addItem({ type: 'separator' });
        menu.addItem({ command: CommandIDs.archive, args });
        menu.addItem({ command: CommandIDs.remove, args });
      }
      menu.aboutToClose.connect(() => setTimeout(() => menu.dispose(), 0));
      menu.open(x, y);
    }

    const actions: ISidebarActions = {
      invoke: (endpoint: BatchEndpoint) => {
        const initial = lastValues.get(endpoint.name) ?? EMPTY_VALUES;
        void invokeDialog(endpoint, initial, body => sidebar.model.invoke(endpoint.name, body)).then(
          values => {
            if (values) {
              lastValues.set(endpoint.name, values);
            }
          }
        );
      },
      compare: (endpoint: BatchEndpoint) => {
        const initial = lastCompared.get(endpoint.name) ?? { a: '', b: '', input: '', sample: '' };
        void compareDialog(endpoint, initial).then(chosen => {
          if (!chosen) {
            return;
          }
          lastCompared.set(endpoint.name, chosen.values);
          const panel = createComparisonPanel(sidebar.model, endpoint.name, chosen.body);
          app.shell.add(panel, 'main');
          app.shell.activateById(panel.id);
          void sidebar.model.refresh();
          void panel.content.run();
        });
      },
      setDefault: (endpoint: string, deployment: string) => {
        sidebar.model
          .setDefault(endpoint, deployment)
          .catch(fail(`Could not make ${deployment} the default of ${endpoint}`));
      },
      cancel: (job: AnyJob) => {
        void showDialog({
          title: `Cancel ${job.name}?`,
          body:
            job.type === 'pipeline'
              ? 'Running steps are stopped; completed steps and their outputs are kept and the job can be resumed.'
              : 'Dispatch stops and running mini-batches are stopped; committed outputs are kept and the job can be resumed.',
          buttons: [Dialog.cancelButton({ label: 'Keep running' }), Dialog.warnButton({ label: 'Cancel job' })]
        }).then(result => {
          if (result.button.accept) {
            sidebar.model.jobAction(job.name, 'cancel').catch(fail(`Could not cancel ${job.name}`));
          }
        });
      },
      resume: (job: AnyJob) => {
        sidebar.model.jobAction(job.name, 'resume').catch(fail(`Could not resume ${job.name}`));
      },
      rerunFailed: (job: AnyJob) => {
        sidebar.model
          .jobAction(job.name, 'rerun-failed')
          .catch(fail(`Could not rerun the failed parts of ${job.name}`));
      },
      openLogs,
      openOutputs: (job: AnyJob) => {
        void openOutputs(job).catch(fail(`Could not show the output of ${job.name}`));
      },
      openDetails: (job: AnyJob) => openDetails(job.name),
      openJobList,
      jobMenu: showJobMenu
    };

    const sidebar = new BatchSidebar({ serverSettings: app.serviceManager.serverSettings, actions });
    sidebar.title.icon = batchIcon;
    sidebar.title.caption = 'Batch endpoints and jobs';
    if (labShell) {
      labShell.add(sidebar, 'left', { rank: 600 });
    } else {
      app.shell.add(sidebar, 'left', { rank: 600 });
    }
    if (restorer) {
      restorer.add(sidebar, sidebar.id);
    }

    // A job seen running that ends: a notification, with the way to its details, logs and output.
    sidebar.model.jobEnded.connect((_, job) => {
      const { type, text } = endedMessage(job);
      const buttons: Notification.IAction[] = [
        { label: 'Details', callback: () => openDetails(job.name), displayType: 'accent' },
        { label: 'Logs', callback: () => openLogs(job) }
      ];
      if (firstOutput(job)) {
        buttons.push({ label: 'Output', callback: () => void openOutputs(job).catch(fail('Could not show the output')) });
      }
      Notification.emit(text, type, { autoClose: type === 'success' ? 8000 : false, actions: buttons });
    });

    app.commands.addCommand(CommandIDs.open, {
      label: 'Show Batch Endpoints',
      caption: 'Open the batchnb sidebar',
      icon: batchIcon,
      execute: () => app.shell.activateById(sidebar.id)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Batch Endpoints and Jobs',
      execute: () => sidebar.model.refresh()
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.open, category: 'Batch' });
      palette.addItem({ command: CommandIDs.refresh, category: 'Batch' });
      palette.addItem({ command: CommandIDs.jobList, category: 'Batch' });
    }
  }
};

export default plugin;
