// The page: model and dataset choice, training with progress and a loss chart, downloads, and
// generation with any number of LoRAs. All work happens in the engine worker (client.ts).
import { EngineClient } from './client.js';
import type { BackendInfo, Event } from './protocol.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const engine = new EngineClient();
(window as unknown as { sdlora: unknown }).sdlora = { engine, state: () => state };

const state = {
  backend: undefined as BackendInfo | undefined,
  error: undefined as string | undefined,
  losses: [] as { step: number; loss: number; avg: number }[],
  training: false,
  loras: [] as { path: string; name: string; weight: number; on: boolean }[],
  images: 0,
};

function setStatus(id: string, text: string, error = false): void {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('error', error);
}

function fail(id: string, e: unknown): void {
  const msg = (e as Error).message ?? String(e);
  state.error = msg;
  setStatus(id, msg, true);
}

/** Loss per step (thin) and its running average (thick), drawn on a plain canvas. */
function drawChart(maxSteps: number): void {
  const c = $<HTMLCanvasElement>('chart'), g = c.getContext('2d')!;
  const W = c.width, H = c.height, L = 44, B = 20;
  g.clearRect(0, 0, W, H);
  g.fillStyle = '#556'; g.font = '11px system-ui';
  g.textAlign = 'right';
  g.fillText('loss per step (thin), running average (thick)', W - 8, 14);
  g.textAlign = 'left';
  if (!state.losses.length) return;
  const ys = state.losses.map((p) => p.loss);
  const lo = Math.min(...ys), hi = Math.max(...ys), span = hi - lo || 1;
  const x = (s: number) => L + ((s - 1) / Math.max(1, maxSteps - 1)) * (W - L - 8);
  const y = (v: number) => 22 + (1 - (v - lo) / span) * (H - B - 30);
  g.strokeStyle = '#dde'; g.beginPath(); g.moveTo(L, 20); g.lineTo(L, H - B); g.lineTo(W - 4, H - B); g.stroke();
  g.fillText(hi.toFixed(3), 4, y(hi) + 4); g.fillText(lo.toFixed(3), 4, y(lo) + 4);
  g.fillText(`step ${maxSteps}`, W - 60, H - 5);
  const line = (key: 'loss' | 'avg', color: string, width: number) => {
    g.strokeStyle = color; g.lineWidth = width; g.beginPath();
    state.losses.forEach((p, i) => (i ? g.lineTo(x(p.step), y(p[key])) : g.moveTo(x(p.step), y(p[key]))));
    g.stroke(); g.lineWidth = 1;
  };
  line('loss', '#9bb3e0', 1);
  line('avg', '#1f4fb4', 2.5);
}

function downloadLink(parent: HTMLElement, name: string, bytes: Uint8Array, type: string): HTMLAnchorElement {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes as BlobPart], { type }));
  a.download = name;
  a.textContent = `download ${name}`;
  a.className = 'download';
  parent.append(a);
  return a;
}

function renderLoras(): void {
  const box = $('loras');
  box.textContent = state.loras.length ? '' : 'none yet';
  for (const l of state.loras) {
    const lab = document.createElement('label');
    const on = Object.assign(document.createElement('input'), { type: 'checkbox', checked: l.on });
    on.onchange = () => { l.on = on.checked; };
    const w = Object.assign(document.createElement('input'), { type: 'number', step: '0.1', value: String(l.weight), size: 4 });
    w.style.width = '4em';
    w.onchange = () => { l.weight = Number(w.value); };
    lab.append(on, ` ${l.name} × `, w);
    box.append(lab);
  }
}

/** A picked folder's files placed under /user/models/; returns the folder's path there. */
async function putFolder(files: File[]): Promise<string> {
  // A folder pick gives every file with its path below the picked folder's parent.
  const top = files[0].webkitRelativePath.split('/')[0];
  await engine.call({ op: 'put', files: files.map((f) => ({ path: `/user/models/${f.webkitRelativePath}`, data: f })) });
  return `/user/models/${top}`;
}

/** The config folder picked for a single-file checkpoint (generation only, as the CLI's txt2img --config-dir). */
async function userConfigDir(): Promise<string | undefined> {
  const choice = (document.querySelector('input[name=model]:checked') as HTMLInputElement).value;
  const files = Array.from($<HTMLInputElement>('model-config').files ?? []);
  return choice === 'file' && files.length ? putFolder(files) : undefined;
}

async function userModel(): Promise<string | undefined> {
  const choice = (document.querySelector('input[name=model]:checked') as HTMLInputElement).value;
  if (choice === 'tiny') return undefined;
  if (choice === 'dir') {
    const files = Array.from($<HTMLInputElement>('model-dir').files ?? []);
    if (!files.length) throw new Error('pick a diffusers model folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/)');
    return putFolder(files);
  }
  const f = $<HTMLInputElement>('model-file').files?.[0];
  if (!f) throw new Error('pick a .safetensors checkpoint, or choose the bundled tiny model');
  const p = `/user/models/${f.name}`;
  await engine.call({ op: 'put', files: [{ path: p, data: f }] });
  return p;
}

let dropped: File[] = [];
async function userDataset(): Promise<string | undefined> {
  const choice = (document.querySelector('input[name=data]:checked') as HTMLInputElement).value;
  if (choice === 'demo') return undefined;
  const images = dropped.filter((f) => /\.(png|jpe?g|webp|bmp|gif)$/i.test(f.name));
  if (!images.length) throw new Error('drop some images (with .txt captions of the same name), or choose the demo dataset');
  // sd-scripts' folder layout: <repeats>_<name>/image + caption.
  const dir = `/user/dataset-${Date.now()}`;
  await engine.call({ op: 'put', files: dropped.map((f) => ({ path: `${dir}/10_concept/${f.name}`, data: f })) });
  return dir;
}

function onDrop(files: File[]): void {
  dropped = [...dropped, ...files];
  (document.querySelector('input[name=data][value=drop]') as HTMLInputElement).checked = true;
  const imgs = dropped.filter((f) => !f.name.endsWith('.txt')).length;
  setStatus('data-status', `${imgs} images, ${dropped.length - imgs} captions`);
}

async function trainClicked(): Promise<void> {
  if (state.training) return;
  state.training = true;
  state.losses = [];
  $('downloads').textContent = '';
  const steps = Number($<HTMLInputElement>('steps').value), seed = Number($<HTMLInputElement>('seed').value);
  const bar = $<HTMLProgressElement>('progress');
  bar.max = steps; bar.value = 0;
  const off = engine.on((e: Event) => {
    if (e.type === 'log') setStatus('train-status', e.text);
    if (e.type !== 'progress') return;
    state.losses.push({ step: e.step, loss: e.loss, avg: e.avgLoss });
    bar.value = e.step;
    setStatus('train-status', `step ${e.step}/${e.maxSteps}  loss ${e.loss.toFixed(4)} (avg ${e.avgLoss.toFixed(4)})  ${(e.ms / e.step / 1000).toFixed(2)} s/step`);
    drawChart(e.maxSteps);
  });
  try {
    const [model, dataset] = [await userModel(), await userDataset()];
    const r = await engine.call({ op: 'train', steps, seed, model, dataset });
    const bytes: Uint8Array = await engine.call({ op: 'read', path: r.loraPath });
    const name = r.loraPath.split('/').pop();
    downloadLink($('downloads'), name, bytes, 'application/octet-stream');
    const svg = r.files.find((f: string) => f.endsWith('.svg'));
    if (svg) downloadLink($('downloads'), svg.split('/').pop(), await engine.call({ op: 'read', path: svg }), 'image/svg+xml');
    state.loras.push({ path: r.loraPath, name, weight: 1, on: true });
    renderLoras();
    const mean = r.stepMs.reduce((a: number, b: number) => a + b, 0) / r.stepMs.length;
    setStatus('train-status', `done: ${steps} steps, final loss ${r.losses.at(-1).loss.toFixed(4)}, ${(mean / 1000).toFixed(2)} s/step`);
  } catch (e) {
    fail('train-status', e);
  } finally {
    off();
    state.training = false;
  }
}

async function generateClicked(): Promise<void> {
  setStatus('gen-status', 'generating…');
  const off = engine.on((e) => { if (e.type === 'image-step') setStatus('gen-status', `denoising ${e.step}/${e.total}`); });
  try {
    const loras = state.loras.filter((l) => l.on).map((l) => ({ path: l.path, weight: l.weight }));
    const size = Number($<HTMLInputElement>('gen-size').value);
    const r = await engine.call({
      op: 'generate', model: await userModel(), configDir: await userConfigDir(), prompt: $<HTMLInputElement>('prompt').value, loras, width: size, height: size,
      steps: Number($<HTMLInputElement>('gen-steps').value), cfgScale: 5, seed: Number($<HTMLInputElement>('gen-seed').value), sampler: 'dpmpp_2m',
    });
    const c = new OffscreenCanvas(r.width, r.height), g = c.getContext('2d')!;
    const img = g.createImageData(r.width, r.height);
    for (let i = 0; i < r.width * r.height; i++) { img.data.set(r.rgb.subarray(i * 3, i * 3 + 3), i * 4); img.data[i * 4 + 3] = 255; }
    g.putImageData(img, 0, 0);
    const el = Object.assign(document.createElement('img'), { src: URL.createObjectURL(await c.convertToBlob()), title: r.infotext });
    $('images').prepend(el);
    state.images++;
    setStatus('gen-status', `${loras.length} LoRA${loras.length === 1 ? '' : 's'} applied`);
  } catch (e) {
    fail('gen-status', e);
  } finally {
    off();
  }
}

async function main(): Promise<void> {
  $('train').onclick = () => void trainClicked();
  $('generate').onclick = () => void generateClicked();
  for (const [id, value] of [['model-file', 'file'], ['model-config', 'file'], ['model-dir', 'dir']]) {
    $<HTMLInputElement>(id).onchange = () => { (document.querySelector(`input[name=model][value=${value}]`) as HTMLInputElement).checked = true; };
  }
  $<HTMLInputElement>('data-files').onchange = (e) => onDrop([...((e.target as HTMLInputElement).files ?? [])]);
  $<HTMLInputElement>('lora-files').onchange = async (e) => {
    for (const f of Array.from((e.target as HTMLInputElement).files ?? [])) {
      const p = `/user/loras/${f.name}`;
      await engine.call({ op: 'put', files: [{ path: p, data: f }] });
      state.loras.push({ path: p, name: f.name, weight: 1, on: true });
    }
    renderLoras();
  };
  const drop = $('drop');
  drop.ondragover = (e) => { e.preventDefault(); drop.classList.add('over'); };
  drop.ondragleave = () => drop.classList.remove('over');
  drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove('over'); onDrop([...(e.dataTransfer?.files ?? [])]); };
  renderLoras();
  drawChart(1);
  const query = new URLSearchParams(location.search);
  const device = (query.get('device') ?? 'auto') as 'auto' | 'cpu' | 'webgpu';
  // ?maxBinding=<bytes>: a storage binding limit below the adapter's, so weights are split across buffers (tests).
  const maxBinding = query.get('maxBinding') ? Number(query.get('maxBinding')) : undefined;
  try {
    if (!crossOriginIsolated) throw new Error('this page is not cross-origin isolated, so SharedArrayBuffer is missing: serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp (`sdlora web` does)');
    const r = await engine.call({ op: 'init', device, maxBinding });
    state.backend = r.backend;
    for (const p of r.saved as string[]) state.loras.push({ path: p, name: `${p.split('/').pop()} (saved)`, weight: 1, on: false });
    renderLoras();
    const el = $('backend');
    el.textContent = `backend: ${r.backend.name === 'webgpu' ? 'WebGPU' : `wasm cpu (${r.backend.threads} Web Workers)`} — ${r.backend.reason}`;
    el.classList.toggle('cpu', r.backend.name === 'cpu');
  } catch (e) {
    fail('backend', e);
  }
}

void main();
