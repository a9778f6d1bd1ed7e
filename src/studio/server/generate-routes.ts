// Generate page API: txt2img with LoRAs from the workspace library (prompt <lora:name:w> tags,
// as A1111), one image or a LoRA weight x saved epoch grid, run in a child process; a gallery of
// generated PNGs with their infotext.
import { fork } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodePng } from '../../io/png.js';
import type { GenerateItem, GenerateSpec } from '../jobs/generate-process.js';
import { withFileLock } from './file-locks.js';
import { HttpError, type Router, readJson, sendBytes, sendJson } from './http-kit.js';
import { type Workspace, checkSegment } from './workspace.js';

const CHILD = fileURLToPath(new URL('../jobs/generate-process.ts', import.meta.url));
const SAMPLERS = ['euler', 'euler_a', 'ddim', 'ddpm', 'dpmpp_2m', 'dpmpp_2m_karras'];
const MAX_IMAGES = 64;

interface GenerateBody {
  model?: string; device?: string; prompt: string; negativePrompt?: string; width?: number; height?: number; steps?: number; cfgScale?: number; seed?: number; sampler?: string;
  /** Weight x epoch grid: each weight for each LoRA file; the prompt's <lora:GRID:w> placeholder is replaced. */
  grid?: { loras: string[]; weights: number[] };
}

const int = (v: unknown, def: number, min: number, max: number, what: string) => {
  const n = v === undefined || v === null || v === '' ? def : Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new HttpError(400, `${what} must be an integer from ${min} to ${max}`);
  return n;
};

function runGenerate(spec: GenerateSpec): Promise<{ file: string; infotext: string; seed: number }[]> {
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const images: { file: string; infotext: string; seed: number }[] = [];
    let err = '', result = false;
    child.stderr?.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-2000); });
    child.on('message', (m: { type: string; file: string; infotext: string; seed: number; message: string }) => {
      if (m.type === 'image') images.push({ file: m.file, infotext: m.infotext, seed: m.seed });
      if (m.type === 'done') { result = true; resolve(images); }
      if (m.type === 'error') { result = true; reject(new HttpError(400, m.message)); }
    });
    child.on('exit', (code) => { if (!result) reject(new HttpError(500, `the generation process ended (code ${code}): ${err.trim().split('\n').at(-1) ?? ''}`)); });
    child.send({ type: 'start', spec });
  });
}

export function registerGenerateRoutes(r: Router, ws: Workspace): void {
  r.add('POST', '/api/generate', async (req, res) => {
    const b = await readJson<GenerateBody>(req);
    if (typeof b.prompt !== 'string' || !b.prompt.trim()) throw new HttpError(400, 'prompt is required');
    const sampler = b.sampler ?? 'euler_a';
    if (!SAMPLERS.includes(sampler)) throw new HttpError(400, `sampler must be one of ${SAMPLERS.join(', ')}`);
    const width = int(b.width, 512, 8, 2048, 'width'), height = int(b.height, 512, 8, 2048, 'height');
    const steps = int(b.steps, 20, 1, 150, 'steps'), seed = int(b.seed, Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1, 'seed');
    const cfgScale = Number(b.cfgScale ?? 7);
    if (!Number.isFinite(cfgScale) || cfgScale < 0 || cfgScale > 30) throw new HttpError(400, 'cfgScale must be a number from 0 to 30');
    const stamp = `${Date.now()}`;
    const base = { negativePrompt: b.negativePrompt ?? '', width, height, steps, cfgScale, sampler, seed };
    const items: (GenerateItem & { cell?: { lora: string; weight: number } })[] = [];
    if (b.grid) {
      if (!Array.isArray(b.grid.loras) || !Array.isArray(b.grid.weights) || !b.grid.loras.length || !b.grid.weights.length) throw new HttpError(400, 'grid needs loras and weights');
      if (b.grid.loras.length * b.grid.weights.length > MAX_IMAGES) throw new HttpError(400, `a grid has at most ${MAX_IMAGES} images`);
      if (!b.prompt.includes('<lora:GRID')) throw new HttpError(400, 'a grid prompt marks the LoRA with <lora:GRID>');
      for (const lora of b.grid.loras) {
        ws.resolve('loras', `${lora}.safetensors`, 'LoRA');
        for (const w of b.grid.weights) {
          if (!Number.isFinite(Number(w))) throw new HttpError(400, 'weights must be numbers');
          items.push({ ...base, prompt: b.prompt.replace(/<lora:GRID(:[^>]*)?>/g, `<lora:${lora}:${Number(w)}>`), file: path.join(ws.folder('generated'), `${stamp}-${items.length}.png`), cell: { lora, weight: Number(w) } });
        }
      }
    } else items.push({ ...base, prompt: b.prompt, file: path.join(ws.folder('generated'), `${stamp}-0.png`) });
    // One generation at a time: each loads a model and takes every core; a second waits its turn.
    const images = await withFileLock('studio:generate', () => runGenerate({ model: b.model || 'tiny', device: b.device || 'cpu', loraDir: ws.folder('loras'), items }));
    sendJson(res, 200, { images: images.map((im, i) => ({ ...im, cell: items[i].cell })) });
  });

  r.add('GET', '/api/gallery', (_q, res) => {
    const dir = ws.folder('generated');
    const files = readdirSync(dir).filter((f) => f.endsWith('.png')).sort((a, b) => b.localeCompare(a, undefined, { numeric: true })).slice(0, 200);
    sendJson(res, 200, { images: files.map((file) => ({ file, infotext: decodePng(readFileSync(path.join(dir, file))).text.parameters ?? '' })) });
  });

  r.add('GET', '/api/gallery/:file', (_q, res, p) => {
    const f = path.join(ws.folder('generated'), checkSegment(p.file, 'image'));
    if (!f.endsWith('.png') || !existsSync(f)) throw new HttpError(404, `no image "${p.file}"`);
    sendBytes(res, 'image/png', readFileSync(f));
  });
}
