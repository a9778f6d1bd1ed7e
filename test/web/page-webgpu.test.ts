// The page in Debian's Chromium with --enable-unsafe-webgpu: left to choose, the engine takes WebGPU
// on a hardware adapter only (SwiftShader here is software: f32 only, slower than the wasm kernels);
// asked for WebGPU (?device=webgpu) it runs on SwiftShader: golden parity of the UNet, VAE,
// CLIP and LoRA application on it, the CLIP text model again with ?maxBinding lowered so that its token
// embedding is split across buffers, and the demo LoRA's first steps against the Node cpu run.
// Without an adapter the tests are skipped, unless SDLORA_REQUIRE_WEBGPU=1 (CI).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { demoTrainValues } from '../../src/cli/demo.js';
import { resolveConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { type PageSession, chromiumMissing, openPage, waitForBackend } from '../helpers/browser.js';
import { goldenCase, goldenDir } from '../helpers/golden.js';

const skip = chromiumMissing() ?? undefined;
const STEPS = 2, SEED = 7;
const engineCall = (s: PageSession, req: unknown) => s.page.evaluate((r) => (window as any).sdlora.engine.call(r), req);

describe('the page on WebGPU', { skip, timeout: 1_800_000 }, () => {
  let s: PageSession;
  let gpu = false;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-webgpu-'));

  before(async () => {
    s = await openPage({ webgpu: true, query: 'device=webgpu', mounts: { '/golden/': goldenDir() } });
  });
  after(async () => {
    await s?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('left to choose, takes WebGPU on a hardware adapter and the wasm backend on a software one, saying why', async (t) => {
    const p = await s.browser.newPage();
    try {
      await p.goto(s.server.url, { timeout: 30_000 });
      const b = await waitForBackend(p);
      if (b.name === 'cpu') assert.match(b.reason, /(software rasterizer, slower than the wasm SIMD kernels|no WebGPU adapter)/);
      else assert.match(b.reason, /navigator\.gpu has an adapter/);
      t.diagnostic(`auto: ${b.name}: ${b.reason}`);
    } finally {
      await p.close();
    }
  });

  it('asked for WebGPU (?device=webgpu), uses the adapter navigator.gpu gives and shows why', async (t) => {
    const b = await waitForBackend(s.page);
    if (b.name !== 'webgpu') {
      if (process.env.SDLORA_REQUIRE_WEBGPU === '1') assert.fail(`no WebGPU in Chromium: ${b.reason}`);
      assert.match(b.reason, /no WebGPU adapter/);
      t.skip(`Chromium has no WebGPU adapter here: ${b.reason}`);
      return;
    }
    gpu = true;
    assert.match(b.reason, /navigator\.gpu has an adapter/);
    assert.match(b.reason, /shader-f16/, 'says whether f16 kernels can run');
    assert.match(b.reason, /largest buffer \d+ MiB, binding \d+ MiB; larger weights are split across buffers/, 'names the buffer limits');
    assert.match(await s.page.textContent('#backend') ?? '', /backend: WebGPU/);
  });

  it('golden parity on WebGPU in the page: UNet, VAE, CLIP text model, two LoRAs at runtime', async (t) => {
    if (!gpu) return t.skip('no WebGPU adapter');
    const name = (dir: string) => path.basename(dir);
    const cases = { unet: name(goldenCase('sd1-unet', 'unet.safetensors')), vae: name(goldenCase('vae')), text: name(goldenCase('sd1-text', 'text_encoder.safetensors')), lora: name(goldenCase('lora')) };
    const checks = await engineCall(s, { op: 'parity', goldenUrl: '/golden', cases }) as { name: string; maxDiff: number; tol: number; ok: boolean }[];
    assert.ok(checks.length >= 10, 'every part was checked');
    for (const c of checks) assert.ok(c.ok, `${c.name}: max |diff| ${c.maxDiff} > ${c.tol}`);
  });

  it('with ?maxBinding below the CLIP token embedding, the page splits that weight across buffers, says so, still matches transformers, and refuses a larger activation naming both sizes', async (t) => {
    if (!gpu) return t.skip('no WebGPU adapter');
    const dir = goldenCase('sd1-text', 'text_encoder.safetensors');
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as { vocab_size: number; hidden_size: number };
    const limit = Math.floor((cfg.vocab_size * cfg.hidden_size * 4) / 3);
    const inUse = Math.floor(limit / 4) * 4;
    const blocks = Math.ceil(cfg.vocab_size / Math.floor(inUse / (4 * cfg.hidden_size)));
    const p = await s.browser.newPage();
    try {
      const t0 = Date.now();
      await p.goto(`${s.server.url}?device=webgpu&maxBinding=${limit}`, { timeout: 30_000 });
      const b = await waitForBackend(p);
      assert.equal(b.name, 'webgpu');
      assert.match(await p.textContent('#backend') ?? '', new RegExp(`binding \\d+ MiB \\(lowered to ${inUse} bytes by \\?maxBinding\\); larger weights are split across buffers`));
      const checks = await p.evaluate((r) => (window as any).sdlora.engine.call(r), { op: 'parity', goldenUrl: '/golden', cases: { text: path.basename(dir) } }) as { name: string; maxDiff: number; tol: number; ok: boolean }[];
      t.diagnostic(`${checks.map((c) => `${c.name}: ${c.maxDiff}`).join('; ')} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      assert.ok(checks.some((c) => c.name === `clip token_embedding held in ${blocks} buffers`), `the token embedding was split in ${blocks}`);
      assert.ok(checks.filter((c) => c.name.startsWith('clip ') && c.tol > 0).length >= 2, 'last_hidden_state and pooler_output were checked');
      for (const c of checks) assert.ok(c.ok, `${c.name}: max |diff| ${c.maxDiff} > ${c.tol}`);
      // An activation above the limit cannot be split: generating refuses it, naming both sizes.
      const gen = { op: 'generate', prompt: 'a cross', loras: [], width: 32, height: 32, steps: 1, cfgScale: 5, seed: 1, sampler: 'euler' };
      const err = await p.evaluate((r) => (window as any).sdlora.engine.call(r).then(() => 'no error', (e: Error) => String(e?.message ?? e)), gen);
      t.diagnostic(`generate at the lowered limit: ${err}`);
      assert.match(err, new RegExp(`a f32 tensor of \\d+ values \\([\\d.]+ KiB\\) exceeds the binding limit of ${(inUse / 1024).toFixed(1)} KiB set by SDLORA_WEBGPU_MAX_BINDING / maxBinding \\(this adapter's maxStorageBufferBindingSize is \\d+ MiB\\)`));
    } finally {
      await p.close();
    }
  });

  it('trains the demo LoRA on WebGPU with the Node run\'s losses (f32 tolerance)', async (t) => {
    if (!gpu) return t.skip('no WebGPU adapter');
    const r = await engineCall(s, { op: 'train', steps: STEPS, seed: SEED, out: '/out/webgpu' }) as { losses: { loss: number }[]; stepMs: number[]; loraPath: string };
    const page = r.losses.map((l) => l.loss);
    await E.initCpuBackend();
    const node = (await train(resolveConfig([{ source: 'test', values: demoTrainValues({ out: path.join(tmp, 'node'), steps: STEPS, seed: SEED }) }]), {})).losses.map((l) => l.loss);
    t.diagnostic(`page webgpu ${page.join(' ')} (${r.stepMs.map((m) => (m / 1000).toFixed(1)).join(' s, ')} s) | node cpu ${node.join(' ')}`);
    assert.equal(page.length, STEPS);
    // Different summation orders on the GPU: agreement to f32 accumulation, not bit for bit.
    for (let i = 0; i < STEPS; i++) assert.ok(Math.abs(page[i] - node[i]) <= 1e-3 * Math.abs(node[i]), `step ${i + 1}: page ${page[i]} vs node ${node[i]}`);
  });
});
