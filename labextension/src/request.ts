/**
 * Calls to batchnb's REST API (the server extension, routes under `<base_url>batchnb/api/`).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { ErrorResponse } from './wire';

/** The API's namespace under the server's base URL. */
export const API_PREFIX = 'batchnb/api';

/** A failed API call: the HTTP status and the server's `{error, message, field?}` body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body?: ErrorResponse
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/**
 * Call the API and parse its JSON answer.
 *
 * @param path - the route under `batchnb/api/`, e.g. `jobs?limit=50` (names must be encoded).
 * @param settings - the app's `serviceManager.serverSettings` (token, XSRF, base URL).
 * @param init - fetch options; a `json` body is serialized for you.
 */
export async function requestAPI<T>(
  path: string,
  settings: ServerConnection.ISettings,
  init: RequestInit & { json?: unknown } = {}
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_PREFIX, path);
  const { json, ...rest } = init;
  const request: RequestInit = { ...rest };
  if (json !== undefined) {
    request.body = JSON.stringify(json);
    request.headers = { 'Content-Type': 'application/json', ...(rest.headers ?? {}) };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, request, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = undefined;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    let message: string;
    if (data && typeof data === 'object' && typeof data.message === 'string') {
      message = data.message;
    } else if (response.status === 404 && typeof data !== 'object') {
      message =
        'The batchnb REST API is not available on this server: is the batchnb server ' +
        'extension enabled? (`jupyter server extension list`)';
    } else {
      message = `${response.status} ${response.statusText}`;
    }
    throw new ApiError(
      response.status,
      message,
      data && typeof data === 'object' ? (data as ErrorResponse) : undefined
    );
  }
  return data as T;
}

/** A path segment of a route: a name, URL-encoded. */
export function seg(name: string): string {
  return encodeURIComponent(name);
}
