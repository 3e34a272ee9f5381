/**
 * The one way the front end calls the server extension (`{baseUrl}subsidy/...`).
 *
 * A failed request rejects with a `SubsidyRequestError` whose message is the `message` the
 * service (or the server extension) sent, so what people read is the service's own words.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export class SubsidyRequestError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

export async function requestSubsidy<T>(
  endPoint: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'subsidy', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new SubsidyRequestError(
      0,
      `This server did not answer (${String(error)}).`
    );
  }
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message =
      body && typeof body === 'object' && 'message' in body
        ? String((body as { message: unknown }).message)
        : `The subsidy extension answered HTTP ${response.status}.`;
    throw new SubsidyRequestError(response.status, message);
  }
  return body as T;
}
