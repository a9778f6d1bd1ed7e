// The engine in the page: a module worker that runs the very trainer, loaders and txt2img of the
// Node build over the page's file system (src/platform/browser). The page sends requests
// (protocol.ts); progress and log lines come back as events while a request runs.
import * as E from '../../src/engine/index.js';
import { CONCEPT, demoTrainValues } from '../../src/cli/demo.js';
import { txt2img } from '../../src/infer/txt2img.js';
import { applyLoRA, removeLoRA, type ApplyReport } from '../../src/lora/apply.js';
import { familyComponents } from '../../src/lora/components.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { TINY_MODEL_DIR } from '../../src/models/hub.js';
import { loadSDModel, moveModel, type SDModel } from '../../src/models/sd-model.js';
import { imageSize, prepareImageRgb } from '../../src/data/images.js';
import { resolveConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { probeAdapter } from '../../src/engine/webgpu/device.js';
import { isSoftwareAdapter } from '../../src/engine/select-backend.js';
import { blobReads, filesUnder, putFile } from '../../src/platform/browser/vfs.js';
import { readFileSync } from '../../src/platform/browser/fs.js';
import { keepLoRA, restoreLoRAs } from './opfs.js';
import { runParity } from './parity.js';
import type { BackendInfo, Event, Request } from './protocol.js';

const post = (m: unknown, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);
const emit = (e: Event) => post({ event: e });

let backend: E.Backend = E.cpuBackend;
let info: BackendInfo | undefined;
const models = new Map<string, SDModel>();

/** Copies the bundled tiny model, CLIP vocabulary and demo dataset into the page's file system. */
async function loadAssets(): Promise<number> {
  const list = (await (await fetch('assets.json')).json()) as string[];
  let bytes = 0;
  await Promise.all(list.map(async (rel) => {
    const r = await fetch(rel);
    if (!r.ok) throw new Error(`${rel}: HTTP ${r.status}`);
    const b = new Uint8Array(await r.arrayBuffer());
    bytes += b.length;
    putFile(`/${rel}`, b);
  }));
  return bytes;
}

/** WebGPU on a hardware adapter (or any adapter when asked for), else the wasm kernels in Web Workers. */
async function init(device: 'auto' | 'cpu' | 'webgpu', threads?: number, maxBinding?: number): Promise<BackendInfo> {
  if (threads) process.env.SDLORA_THREADS = String(threads);
  // Read by the webgpu backend when it is created (clamped to the adapter's limit).
  if (maxBinding !== undefined) process.env.SDLORA_WEBGPU_MAX_BINDING = String(maxBinding);
  const { availableThreads } = await import('../../src/platform/browser/kernel-threads.js');
  await E.initCpuBackend();
  const cpuInfo = (reason: string): BackendInfo => ({ name: 'cpu', reason, threads: availableThreads() });
  if (device === 'cpu') return cpuInfo('the wasm cpu backend was asked for');
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) {
    if (device === 'webgpu') throw new Error('WebGPU was asked for but this browser exposes no navigator.gpu (Chrome/Edge 113+, Safari 26+, or Chromium with --enable-unsafe-webgpu)');
    return cpuInfo(`this browser exposes no navigator.gpu; the wasm SIMD kernels run in ${availableThreads()} Web Workers`);
  }
  const report = await probeAdapter();
  if (!report.found) {
    report.reason = 'navigator.gpu gave no adapter (GPU disabled or blocklisted; chrome://gpu says why)';
    if (device === 'webgpu') throw new Error(`WebGPU was asked for but no adapter exists: ${report.reason}`);
    return cpuInfo(`no WebGPU adapter: ${report.reason}; the wasm SIMD kernels run in ${availableThreads()} Web Workers`);
  }
  const a = report;
  const adapterName = [a.vendor, a.architecture, a.description].filter(Boolean).join(' ') || 'unnamed';
  // As the CLI's device auto: a software rasterizer is slower than the wasm kernels.
  if (device === 'auto' && isSoftwareAdapter(a)) {
    return cpuInfo(`the only WebGPU adapter (${adapterName}) is a software rasterizer, slower than the wasm SIMD kernels, which run in ${availableThreads()} Web Workers (?device=webgpu uses it anyway)`);
  }
  const gpuBackend = await E.getWebGPUBackend();
  backend = gpuBackend;
  const deviceBinding = a.limits.maxStorageBufferBindingSize ?? 0;
  const lowered = gpuBackend.maxBinding < deviceBinding ? ` (lowered to ${gpuBackend.maxBinding} bytes by ?maxBinding)` : '';
  return {
    name: 'webgpu', threads: availableThreads(),
    reason: `navigator.gpu has an adapter (${adapterName}${isSoftwareAdapter(a) ? ', software: asked for with ?device=webgpu' : ''}); ${a.features.includes('shader-f16') ? 'shader-f16 available' : 'no shader-f16, so f32 kernels'}; largest buffer ${Math.round((a.limits.maxBufferSize ?? 0) / 2 ** 20)} MiB, binding ${Math.round(deviceBinding / 2 ** 20)} MiB${lowered}; larger weights are split across buffers`,
    adapter: { description: a.description, vendor: a.vendor, architecture: a.architecture, features: a.features, limits: a.limits },
  };
}

async function model(source = TINY_MODEL_DIR, configDir?: string): Promise<SDModel> {
  const key = configDir ? `${source}\n${configDir}` : source;
  let m = models.get(key);
  if (!m) {
    m = moveModel(await loadSDModel(source, { configDir }), backend);
    models.set(key, m);
  }
  return m;
}

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'init': {
      const t0 = performance.now();
      const bytes = await loadAssets();
      info = await init(req.device, req.threads, req.maxBinding);
      return { backend: info, assetsBytes: bytes, ms: performance.now() - t0, crossOriginIsolated, saved: await restoreLoRAs() };
    }
    case 'put':
      for (const f of req.files) putFile(f.path, f.data);
      return { files: req.files.map((f) => f.path) };
    case 'list':
      return filesUnder(req.dir);
    case 'io-stats':
      return { ...blobReads };
    case 'read': {
      const b = readFileSync(req.path) as Uint8Array;
      return new Uint8Array(b);
    }
    case 'image': {
      const original = await imageSize(req.path);
      const size = req.size ?? original;
      const rgb = await prepareImageRgb(req.path, { resized: size, bucket: size, offset: [0, 0], flip: false }, original);
      return { width: size[0], height: size[1], original, rgb };
    }
    case 'train': {
      const out = req.out ?? `/out/run-${Date.now()}`;
      const values: Record<string, unknown> = { ...demoTrainValues({ out, steps: req.steps, seed: req.seed, dataset: req.dataset }), ...(req.model ? { pretrained_model_name_or_path: req.model } : {}), ...req.values };
      values.device = info?.name === 'webgpu' ? 'webgpu' : 'cpu'; // the page's choice, not the trainer's auto
      const cfg = resolveConfig([{ source: 'web', values }]);
      let last = performance.now();
      const stepMs: number[] = [];
      const t0 = performance.now();
      const r = await train(cfg, {
        log: (text) => emit({ type: 'log', text }),
        onStep: (s) => {
          const now = performance.now();
          stepMs.push(now - last);
          last = now;
          emit({ type: 'progress', step: s.step, maxSteps: s.maxSteps, loss: s.loss, avgLoss: s.avgLoss, lr: s.lr, ms: now - t0 });
        },
      });
      // Kept in OPFS under a unique name, so the LoRA is still listed after a reload.
      const name = `${CONCEPT}-${new Date().toISOString().replace(/[:.]/g, '-')}.safetensors`;
      const kept = r.finalPath ? await keepLoRA(name, new Uint8Array(readFileSync(r.finalPath) as Uint8Array)).catch(() => false) : false;
      return { loraPath: r.finalPath, losses: r.losses, stepMs, files: filesUnder(out), concept: CONCEPT, kept: kept ? `/opfs/loras/${name}` : null };
    }
    case 'generate': {
      const m = await model(req.model, req.configDir);
      const comps = familyComponents(m);
      const reports: ApplyReport[] = [];
      try {
        for (const l of req.loras) reports.push(applyLoRA(await loadLoRA(l.path), { components: comps }, { unet: l.weight, te: l.weight }));
        const r = await txt2img(m, { prompt: req.prompt, negativePrompt: req.negativePrompt ?? '', width: req.width, height: req.height, steps: req.steps, cfgScale: req.cfgScale, seed: req.seed, sampler: req.sampler, onStep: (step, total) => emit({ type: 'image-step', step, total }) });
        return { rgb: r.rgb, width: r.width, height: r.height, infotext: r.infotext };
      } finally {
        for (const rep of reports.reverse()) removeLoRA(rep);
      }
    }
    case 'parity':
      return runParity(req.goldenUrl, req.cases, backend);
  }
}

/** Browser limits in words: an allocation failure means the tab's memory, not a bug. */
function explain(e: Error, op: string): string {
  const oom = e instanceof RangeError && /alloc|memory|Invalid typed array length|Array buffer/i.test(e.message);
  if (!oom) return e.message;
  const heap = (performance as unknown as { memory?: { usedJSHeapSize: number; jsHeapSizeLimit: number } }).memory;
  const used = heap ? ` (JS heap ${Math.round(heap.usedJSHeapSize / 2 ** 20)} of ${Math.round(heap.jsHeapSizeLimit / 2 ** 20)} MiB)` : '';
  return `${op}: the tab ran out of memory${used}: ${e.message}. Browsers give a tab far less memory than the machine has (WebAssembly at most 4 GiB); `
    + 'use a smaller model, batch or resolution, or the sdlora CLI';
}

self.onmessage = async (e: MessageEvent<{ id: number; req: Request }>) => {
  const { id, req } = e.data;
  try {
    const result = await handle(req);
    post({ id, result });
  } catch (err) {
    const x = err as Error;
    post({ id, error: explain(x, req.op), stack: x.stack });
  }
};
post({ ready: true });
