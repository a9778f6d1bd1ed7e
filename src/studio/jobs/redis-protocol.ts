// What the studio and `sdlora worker` processes exchange through BullMQ: the job data (paths
// relative to the shared workspace, since each machine mounts it elsewhere), progress reports,
// the result, and the Redis keys that ask a worker to stop-and-save or cancel a job.
import path from 'node:path';

export const QUEUE_NAME = 'sdlora-train';
export const WS_TOKEN = '${WORKSPACE}';

export interface RedisJobData {
  studioJobId: number;
  /** Options with workspace paths written as ${WORKSPACE}/... */
  config: Record<string, unknown>;
  resumeFrom: string | null;
}

export type RedisProgress =
  | { kind: 'step'; step: number; maxSteps: number; epoch: number; epochs: number; loss: number; avgLoss: number; time: number; worker: string }
  | { kind: 'log'; line: string; worker: string };

export interface RedisResult { finalPath: string | null; saved: string[]; interrupted: boolean; stateDir: string | null; steps: number; cancelled?: boolean }

export const stopKey = (id: number) => `sdlora:stop:${id}`;
export const cancelKey = (id: number) => `sdlora:cancel:${id}`;

/** Absolute paths under `root` become ${WORKSPACE}/rel, in strings and string lists. */
export function toPortable(v: unknown, root: string): unknown {
  if (typeof v === 'string') return v === root || v.startsWith(root + path.sep) ? WS_TOKEN + v.slice(root.length).split(path.sep).join('/') : v;
  if (Array.isArray(v)) return v.map((x) => toPortable(x, root));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toPortable(x, root)]));
  return v;
}

export function fromPortable(v: unknown, root: string): unknown {
  if (typeof v === 'string') return v.startsWith(WS_TOKEN) ? path.join(root, ...v.slice(WS_TOKEN.length).split('/').filter(Boolean)) : v;
  if (Array.isArray(v)) return v.map((x) => fromPortable(x, root));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromPortable(x, root)]));
  return v;
}

export function redisConnection(url: string): { host: string; port: number; password?: string; db?: number; maxRetriesPerRequest: null } {
  let u: URL;
  try { u = new URL(url); } catch { throw new Error(`--redis must be a URL like redis://127.0.0.1:6379, got "${url}"`); }
  if (u.protocol !== 'redis:') throw new Error(`--redis must be a redis:// URL, got "${url}"`);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379), password: u.password || undefined, db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined, maxRetriesPerRequest: null };
}
