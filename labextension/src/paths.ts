/**
 * Server paths: the API sends absolute local paths; the file browser and the contents API take
 * paths relative to the server's root folder.
 */
import { PageConfig } from '@jupyterlab/coreutils';
import { Contents } from '@jupyterlab/services';

/** `path` relative to the server's root, or null when it is outside the root (or a URL). */
export function relativeToServerRoot(path: string, root = PageConfig.getOption('serverRoot')): string | null {
  if (!path || !root || /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(path) || path.startsWith('azureml:')) {
    return null;
  }
  const norm = (p: string) => p.replace(/\\/g, '/').replace(/\/+$/, '');
  const base = norm(root);
  const full = norm(path);
  if (full === base) {
    return '';
  }
  if (base === '') {
    return full.startsWith('/') ? full.slice(1) : null;
  }
  return full.startsWith(base + '/') ? full.slice(base.length + 1) : null;
}

/**
 * `path` relative to the server's root when the contents API can reach it, else null (outside
 * the root, missing, or hidden: jupyter_server refuses dot-folders such as `.batchnb/` unless
 * `ContentsManager.allow_hidden` is set).
 */
export async function browsablePath(
  path: string,
  contents: Contents.IManager,
  type?: 'directory' | 'file'
): Promise<string | null> {
  const rel = relativeToServerRoot(path);
  if (rel === null) {
    return null;
  }
  try {
    const model = await contents.get(rel, { content: false });
    return type && model.type !== type ? null : rel;
  } catch {
    return null;
  }
}
