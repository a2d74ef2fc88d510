/**
 * batchnb's JupyterLab extension: a left-panel sidebar with the workspace's batch endpoints,
 * their deployments and recent jobs (live), talking to the batchnb server extension's REST API.
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
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { EMPTY_VALUES, IInvokeFormValues, invokeDialog } from './invoke';
import { LogsView, createLogsPanel } from './logs';
import { browsablePath } from './paths';
import { firstOutput } from './model';
import { BatchSidebar, ISidebarActions } from './sidebar';
import type { AnyJob, BatchEndpoint, JobOutputs } from './wire';

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
    const logPanels = new Map<string, MainAreaWidget<LogsView>>();

    const fail = (title: string) => (error: unknown) =>
      void showErrorMessage(title, (error as Error).message ?? String(error));

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
      openLogs: (job: AnyJob) => {
        let panel = logPanels.get(job.name);
        if (!panel || panel.isDisposed) {
          const openFile = docManager
            ? async (logsDir: string) => {
                const file = `${logsDir}/job_result.txt`;
                const rel = await browsablePath(file, contents, 'file');
                if (rel === null) {
                  await showPathDialog('job_result.txt', file, 'The log file is not under the server root (or is in a hidden folder), so it cannot be opened here.');
                  return;
                }
                docManager.openOrReveal(rel);
              }
            : null;
          panel = createLogsPanel(sidebar.model, job.name, openFile);
          logPanels.set(job.name, panel);
          panel.disposed.connect(() => logPanels.delete(job.name));
          app.shell.add(panel, 'main', { mode: 'split-right' });
        }
        app.shell.activateById(panel.id);
        void panel.content.refresh();
      },
      openOutputs: (job: AnyJob) => {
        void openOutputs(job).catch(fail(`Could not show the output of ${job.name}`));
      }
    };

    async function openOutputs(job: AnyJob): Promise<void> {
      const output = firstOutput(job);
      if (!output) {
        throw new Error(`job ${job.name} has no output folder`);
      }
      const path = output.path;
      if (fileBrowser) {
        const rel = await browsablePath(path, contents, 'directory');
        if (rel !== null) {
          await fileBrowser.model.cd('/' + rel);
          app.shell.activateById(fileBrowser.id);
          return;
        }
      }
      let listing: JobOutputs | null = null;
      try {
        listing = await sidebar.model.outputs(job.name, output.name);
      } catch {
        listing = null;
      }
      await showPathDialog(
        `Output ${output.name} of ${job.name}`,
        path,
        'This folder is outside the server root (or in a hidden folder), so the file browser cannot open it.',
        listing
      );
    }

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
    }
  }
};

/** A dialog with a path to copy (and, for an output folder, its files). */
async function showPathDialog(
  title: string,
  path: string,
  note: string,
  listing: JobOutputs | null = null
): Promise<void> {
  const body = new Widget();
  body.addClass('batchnb-path-dialog');
  const p = document.createElement('p');
  p.textContent = note;
  const code = document.createElement('code');
  code.className = 'batchnb-path';
  code.textContent = path;
  body.node.append(p, code);
  if (listing) {
    const info = document.createElement('p');
    if (!listing.exists) {
      info.textContent = 'The folder does not exist yet.';
      body.node.appendChild(info);
    } else {
      info.textContent = `${listing.files.length} file(s), ${formatBytes(listing.total_size)}${listing.truncated ? ' (listing truncated)' : ''}:`;
      const ul = document.createElement('ul');
      ul.className = 'batchnb-output-files';
      for (const f of listing.files.slice(0, 50)) {
        const li = document.createElement('li');
        li.textContent = `${f.name} (${formatBytes(f.size)})`;
        ul.appendChild(li);
      }
      body.node.append(info, ul);
    }
  }
  const result = await showDialog({
    title,
    body,
    buttons: [Dialog.cancelButton({ label: 'Close' }), Dialog.okButton({ label: 'Copy path' })]
  });
  if (result.button.accept) {
    Clipboard.copyToSystem(path);
  }
}

function formatBytes(n: number): string {
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

export default plugin;
