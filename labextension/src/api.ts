/** Calls to the xpmagic server extension (token and XSRF handled by ServerConnection). */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export async function requestAPI<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'xpmagic', 'api', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) {
    throw new Error(data.error || response.statusText);
  }
  return data as T;
}

/** An image the server sends (a figure a run displayed), as a URL an <img> can show: the
 * request carries the token, which an <img>'s own request would not. */
export async function requestImageURL(path: string): Promise<string> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'xpmagic', 'api', path);
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (!response.ok) {
    throw new Error(response.statusText);
  }
  return URL.createObjectURL(await response.blob());
}

export interface IStudy {
  name: string;
  state: string;
  n_done: number;
  budget: number | null;
  best_value: number | null;
  message?: string | null;
}

export interface IExperiment {
  name: string;
  runs: number;
  last_activity: string | null;
  metric: string | null;
  best: number | null;
  studies: IStudy[];
}

export interface IRunSummary {
  id: number;
  experiment: string;
  status: string;
  params: Record<string, unknown>;
  metrics: Record<string, number | null>;
  started_at: string;
  duration_s: number | null;
  notebook: string | null;
  cell_id: string | null;
}

export interface IRunPage {
  total: number;
  offset: number;
  limit: number;
  runs: IRunSummary[];
}
