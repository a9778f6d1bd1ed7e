// Library page API: LoRA cards from the nested folders of <workspace>/loras (the CLI's
// LoRALibrary reads the headers): preview from the latest sample beside the file, base family,
// algorithm, dim/alpha, trigger tags from ss_tag_frequency, hash; rename and move that never
// overwrite; delete into the workspace trash.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { LoRALibrary } from '../../lora/library.js';
import { HttpError, type Router, readJson, sendBytes, sendJson } from './http-kit.js';
import type { Workspace } from './workspace.js';

const hashCache = new Map<string, { mtime: number; hash: string }>();

/** sha256 of the file (what A1111 shows as the full hash), cached by modification time. */
async function fileHash(file: string): Promise<string> {
  const mtime = statSync(file).mtimeMs;
  const c = hashCache.get(file);
  if (c && c.mtime === mtime) return c.hash;
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  const hash = h.digest('hex');
  hashCache.set(file, { mtime, hash });
  return hash;
}

/** Tags by how many training images carried them (kohya's ss_tag_frequency: {folder: {tag: n}}). */
export function triggerTags(meta: Record<string, string>, n = 8): string[] {
  try {
    const freq = JSON.parse(meta.ss_tag_frequency ?? '{}') as Record<string, Record<string, number>>;
    const sum = new Map<string, number>();
    for (const tags of Object.values(freq)) for (const [t, c] of Object.entries(tags)) sum.set(t.trim(), (sum.get(t.trim()) ?? 0) + c);
    return [...sum].sort((a, b) => b[1] - a[1]).slice(0, n).map(([t]) => t);
  } catch { return []; }
}

/** Skips training state folders (their tensors are optimizer state, not LoRAs). */
const isLoRAEntry = (p: string) => !p.split(path.sep).some((s) => s.endsWith('-state'));

export async function scanLibrary(ws: Workspace) {
  const lib = await LoRALibrary.scan(ws.folder('loras'));
  const cards = [];
  for (const e of lib.entries.filter((x) => isLoRAEntry(x.path))) {
    const sampleDir = path.join(path.dirname(e.path), 'sample');
    const samples = existsSync(sampleDir) ? readdirSync(sampleDir).filter((f) => f.endsWith('.png')).map((f) => ({ f, t: statSync(path.join(sampleDir, f)).mtimeMs })).sort((a, b) => a.t - b.t) : [];
    const m = e.metadata;
    cards.push({
      name: e.name, relName: e.relName, alias: e.alias, bytes: e.bytes, family: e.summary.family, algorithms: e.summary.algorithms,
      dim: e.summary.rank, alpha: e.summary.alpha, triggerTags: triggerTags(m), hash: m.sshs_model_hash || (await fileHash(e.path)),
      epoch: m.ss_epoch ? Number(m.ss_epoch) : null, steps: m.ss_steps ? Number(m.ss_steps) : null, outputName: m.ss_output_name ?? null,
      preview: samples.length ? ws.relative(path.join(sampleDir, samples[samples.length - 1].f)) : null, modified: statSync(e.path).mtimeMs,
    });
  }
  return { cards, problems: lib.problems.filter((p) => !p.includes('-state')).map((p) => p.split(ws.root + path.sep).join('')) };
}

export function registerLibraryRoutes(r: Router, ws: Workspace): void {
  const loraFile = (rel: unknown) => {
    if (typeof rel !== 'string') throw new HttpError(400, 'name the LoRA by its path in the library');
    const f = ws.resolve('loras', `${rel}.safetensors`, 'LoRA');
    return f;
  };

  r.add('GET', '/api/library', async (_q, res, _p, url) => {
    const q = (url.searchParams.get('q') ?? '').toLowerCase();
    const family = url.searchParams.get('family');
    const { cards, problems } = await scanLibrary(ws);
    const hit = cards.filter((c) => (!q || [c.relName, c.alias, ...c.triggerTags].some((s) => s.toLowerCase().includes(q))) && (!family || c.family.startsWith(family)));
    sendJson(res, 200, { loras: hit, problems });
  });

  // The preview image of a card: a PNG under loras/.
  r.add('GET', '/api/library/preview', (_q, res, _p, url) => {
    const rel = url.searchParams.get('path') ?? '';
    if (!rel.startsWith('loras/')) throw new HttpError(400, 'the preview must be under loras/');
    const f = ws.resolve('loras', rel.slice('loras/'.length), 'preview');
    if (!f.endsWith('.png') || !existsSync(f)) throw new HttpError(404, 'no such preview');
    sendBytes(res, 'image/png', readFileSync(f));
  });

  // Rename or move: { from, to } library paths without extension; never replaces a file.
  r.add('POST', '/api/library/move', async (req, res) => {
    const b = await readJson<{ from: string; to: string }>(req);
    const from = loraFile(b.from), to = loraFile(b.to);
    if (!existsSync(from)) throw new HttpError(404, `no LoRA "${b.from}"`);
    if (existsSync(to)) throw new HttpError(409, `"${b.to}" exists already; choose another name`);
    mkdirSync(path.dirname(to), { recursive: true });
    renameSync(from, to);
    sendJson(res, 200, { relName: b.to });
  });

  r.add('POST', '/api/library/delete', async (req, res) => {
    const b = await readJson<{ name: string }>(req);
    const f = loraFile(b.name);
    if (!existsSync(f)) throw new HttpError(404, `no LoRA "${b.name}"`);
    const dest = path.join(ws.folder('trash'), `${Date.now()}-loras`, `${b.name}.safetensors`);
    mkdirSync(path.dirname(dest), { recursive: true });
    renameSync(f, dest);
    sendJson(res, 200, { trashed: ws.relative(dest) });
  });
}
