// Test helpers for the studio: a studio on a free port over a fresh workspace, an API client
// that carries the token, bounded waits on conditions, and the demo dataset's images.
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Studio, type StudioOptions, startStudio } from '../../src/studio/server/studio-server.js';
import { DEMO_DATASET } from '../../src/cli/demo.js';

export const DEMO_IMAGES = path.join(DEMO_DATASET, '10_cross');
export const demoImage = (i: number) => readFileSync(path.join(DEMO_IMAGES, readdirSync(DEMO_IMAGES).filter((f) => f.endsWith('.png')).sort()[i]));

export async function tempStudio(o: Partial<StudioOptions> = {}): Promise<Studio & { base: string; api: Api }> {
  const dir = o.dir ?? mkdtempSync(path.join(os.tmpdir(), 'sdlora-studio-'));
  const s = await startStudio({ dir, port: 0, token: 'test-token-0123456789', ...o });
  const base = `http://127.0.0.1:${s.port}`;
  return { ...s, base, api: client(base, s.token) };
}

export interface Reply { status: number; body: any; text: string; headers: Headers }
export type Api = (method: string, url: string, body?: unknown, opts?: { raw?: Uint8Array | string; token?: string | null; headers?: Record<string, string> }) => Promise<Reply>;

export function client(base: string, token: string): Api {
  return async (method, url, body, opts = {}) => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const tok = opts.token === undefined ? token : opts.token;
    if (tok) headers['x-sdlora-token'] = tok;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + url, { method, headers, body: (opts.raw as BodyInit | undefined) ?? (body !== undefined ? JSON.stringify(body) : undefined), redirect: 'manual' });
    const text = await res.text();
    let parsed: any = null;
    try { parsed = JSON.parse(text); } catch { parsed = null; }
    return { status: res.status, body: parsed, text, headers: res.headers };
  };
}

/** Polls `check` until it returns a truthy value; fails after `ms` with `what`. */
export async function waitFor<T>(check: () => Promise<T> | T, ms: number, what: string, every = 200): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try { const v = await check(); if (v) return v; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Options of a tiny training run on the bundled model (a few seconds per step on 2 cores). */
export const tinyJob = (dataset: string, name: string, extra: Record<string, unknown> = {}) => ({
  pretrained_model_name_or_path: 'tiny', train_data_dir: dataset, output_name: name, resolution: 32, train_batch_size: 2, max_train_steps: 4,
  learning_rate: 5e-3, network_dim: 4, network_alpha: 4, optimizer_type: 'AdamW', cache_latents: true, seed: 1, ...extra,
});
