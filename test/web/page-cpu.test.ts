// The page in Debian's Chromium on the wasm cpu backend (kernels in Web Workers): golden parity of
// the UNet, VAE, CLIP and LoRA application; the demo LoRA trained through the page's controls
// gives the Node run's loss curve for the same seed; its downloaded .safetensors loads in the CLI,
// which generates the same image the page does; generation with several LoRAs, and from a diffusers
// folder and a single-file checkpoint picked in the page (the latter read in Blob.slice ranges).
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import * as E from '../../src/engine/index.js';
import { demoTrainValues } from '../../src/cli/demo.js';
import { decodePng } from '../../src/io/png.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { saveSingleFile } from '../../src/models/ldm-save.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import { addnetHash } from '../../src/lora/lora-save.js';
import { resolveConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { type PageSession, chromiumMissing, openPage, waitForBackend } from '../helpers/browser.js';
import { spawnCli } from '../helpers/cli-child.js';
import { goldenCase, goldenDir } from '../helpers/golden.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const skip = chromiumMissing() ?? undefined;
const STEPS = 3, SEED = 7;
const engineCall = (s: PageSession, req: unknown) => s.page.evaluate((r) => (window as any).sdlora.engine.call(r), req);

describe('the page on the wasm cpu backend', { skip, timeout: 900_000 }, () => {
  let s: PageSession;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-web-'));
  let loraFile = '';
  let pageLosses: number[] = [];

  before(async () => {
    s = await openPage({ query: 'device=cpu', mounts: { '/golden/': goldenDir() } });
  });
  after(async () => {
    await s?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('starts the engine on the wasm backend in Web Workers and says why', async () => {
    const b = await waitForBackend(s.page);
    assert.equal(b.name, 'cpu');
    assert.match(b.reason, /wasm cpu backend was asked for/);
    assert.ok(b.threads >= 1);
    assert.equal(await s.page.evaluate(() => crossOriginIsolated), true);
    assert.match(await s.page.textContent('#backend') ?? '', /wasm cpu \(\d+ Web Workers\)/);
  });

  it('left to choose (no WebGPU in this Chromium), takes the wasm backend and says why', async () => {
    const p = await s.browser.newPage();
    try {
      await p.goto(s.server.url, { timeout: 30_000 });
      const b = await waitForBackend(p);
      assert.equal(b.name, 'cpu');
      assert.match(b.reason, /(no WebGPU adapter|exposes no navigator\.gpu).*wasm SIMD kernels run in \d+ Web Workers/);
      assert.match(await p.textContent('#backend') ?? '', /backend: wasm cpu .* — /);
    } finally {
      await p.close();
    }
  });

  it('served without COOP/COEP, says that SharedArrayBuffer needs them', async () => {
    const ctx = await s.browser.newContext();
    try {
      // The same server, with the isolation headers taken off every response.
      await ctx.route('**/*', async (route) => {
        const r = await route.fetch();
        const headers = { ...r.headers() };
        delete headers['cross-origin-opener-policy'];
        delete headers['cross-origin-embedder-policy'];
        await route.fulfill({ response: r, headers });
      });
      const p = await ctx.newPage();
      await p.goto(s.server.url, { timeout: 30_000 });
      await assert.rejects(waitForBackend(p, 30_000), /not cross-origin isolated.*Cross-Origin-Opener-Policy: same-origin.*Cross-Origin-Embedder-Policy: require-corp/);
      assert.match(await p.textContent('#backend') ?? '', /SharedArrayBuffer is missing/);
    } finally {
      await ctx.close();
    }
  });

  it('golden parity in the page: UNet, VAE, CLIP text model, two LoRAs at runtime', async () => {
    const name = (dir: string) => path.basename(dir);
    const cases = { unet: name(goldenCase('sd1-unet', 'unet.safetensors')), vae: name(goldenCase('vae')), text: name(goldenCase('sd1-text', 'text_encoder.safetensors')), lora: name(goldenCase('lora')) };
    const checks = await engineCall(s, { op: 'parity', goldenUrl: '/golden', cases }) as { name: string; maxDiff: number; tol: number; ok: boolean }[];
    assert.ok(checks.length >= 10, 'every part was checked');
    for (const c of checks) assert.ok(c.ok, `${c.name}: max |diff| ${c.maxDiff} > ${c.tol}`);
  });

  it('trains the demo LoRA through the page with the Node run\'s loss curve, then downloads it', async (t) => {
    await s.page.fill('#steps', String(STEPS));
    await s.page.fill('#seed', String(SEED));
    await s.page.click('#train');
    await s.page.waitForSelector('#downloads a[download$=".safetensors"]', { timeout: 600_000 });
    const st = await s.page.evaluate(() => (window as any).sdlora.state());
    assert.equal(st.error, undefined);
    pageLosses = st.losses.map((p: { loss: number }) => p.loss);
    assert.equal(pageLosses.length, STEPS);
    assert.match(await s.page.textContent('#train-status') ?? '', new RegExp(`done: ${STEPS} steps`));

    const download = s.page.waitForEvent('download', { timeout: 30_000 });
    await s.page.click('#downloads a[download$=".safetensors"]');
    loraFile = path.join(tmp, 'loras', 'cross.safetensors');
    mkdirSync(path.dirname(loraFile));
    await (await download).saveAs(loraFile);

    // The same run in Node: same settings, same seed.
    await E.initCpuBackend();
    const out = path.join(tmp, 'node-run');
    const r = await train(resolveConfig([{ source: 'test', values: demoTrainValues({ out, steps: STEPS, seed: SEED }) }]), {});
    const nodeLosses = r.losses.map((l) => l.loss);
    t.diagnostic(`page ${pageLosses.join(' ')} | node ${nodeLosses.join(' ')}`);
    for (let i = 0; i < STEPS; i++) assert.ok(Math.abs(pageLosses[i] - nodeLosses[i]) <= 1e-5 * Math.abs(nodeLosses[i]), `step ${i + 1}: page ${pageLosses[i]} vs node ${nodeLosses[i]}`);
    // The same modules and lora_down weights (seeded init plus the updates) come out. lora_up starts
    // at zero and after a few AdamW steps is about lr in size, with near-zero gradients normalised
    // to full steps, so rounding-level gradient differences move it by a whole step: not compared.
    const nodeLora = await loadLoRA(r.finalPath!), pageLora = await loadLoRA(loraFile);
    assert.deepEqual([...pageLora.modules.keys()].sort(), [...nodeLora.modules.keys()].sort());
    for (const [k, m] of nodeLora.modules) {
      const pm = pageLora.modules.get(k)!;
      for (const part of ['down'] as const) {
        const a = pm[part].dataSync(), b = m[part].dataSync();
        const scale = Math.max(...[...b].map(Math.abs));
        let d = 0;
        for (let i = 0; i < b.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
        assert.ok(d <= 1e-4 * scale, `${k} ${part}: max |diff| ${d} (scale ${scale})`);
      }
    }
  });

  it('the downloaded LoRA loads in the CLI, which draws the image the page draws', async () => {
    assert.ok(loraFile, 'trained in the previous test');
    const list = spawnCli(['lora', 'list', path.dirname(loraFile), '--json']);
    assert.equal(await list.exit(60_000), 0, list.stderr());
    const info = JSON.parse(list.stdout());
    assert.equal(info.loras.length, 1);
    assert.equal(Number(info.loras[0].rank), 16);
    // The sshs hash the page computed while saving is the file's real addnet hash.
    assert.equal(info.loras[0].hash, (await addnetHash(loraFile)).slice(0, 12));

    const png = path.join(tmp, 'cli.png');
    const gen = spawnCli(['txt2img', '--model', 'tiny', '-p', 'a red cross on a white background <lora:cross:1>', '--lora-dir', path.dirname(loraFile),
      '--width', '32', '--height', '32', '--steps', '6', '--cfg', '5', '--seed', '11', '--sampler', 'dpmpp_2m', '-o', png]);
    assert.equal(await gen.exit(180_000), 0, gen.stderr());
    const cli = decodePng(readFileSync(png)).rgb!;
    const page = await engineCall(s, { op: 'generate', prompt: 'a red cross on a white background', loras: [{ path: (await s.page.evaluate(() => (window as any).sdlora.state().loras[0].path)), weight: 1 }], width: 32, height: 32, steps: 6, cfgScale: 5, seed: 11, sampler: 'dpmpp_2m' }) as { rgb: Uint8Array };
    const rgb = Object.values(page.rgb) as number[];
    assert.equal(rgb.length, cli.length);
    let worst = 0;
    for (let i = 0; i < cli.length; i++) worst = Math.max(worst, Math.abs(rgb[i] - cli[i]));
    assert.ok(worst <= 1, `page and CLI images differ by up to ${worst}`);
  });

  it('generates with several LoRAs picked in the page', async () => {
    await s.page.setInputFiles('#lora-files', loraFile);
    await s.page.waitForFunction(() => (window as any).sdlora.state().loras.length === 2, undefined, { timeout: 10_000 });
    await s.page.fill('#gen-steps', '4');
    await s.page.click('#generate');
    await s.page.waitForFunction(() => (window as any).sdlora.state().images >= 1 || (window as any).sdlora.state().error, undefined, { timeout: 180_000, polling: 250 });
    assert.equal((await s.page.evaluate(() => (window as any).sdlora.state())).error, undefined);
    assert.equal(await s.page.textContent('#gen-status'), '2 LoRAs applied');
    assert.equal(await s.page.locator('#images img').count(), 1);
  });

  it('trains on images and captions dropped on the page, resized with lanczos3 as in Node: the Node run\'s loss', async (t) => {
    // 48x48 copies of demo images: the page must decode, resize to the 32 px bucket and crop them,
    // giving the pixels sharp gives in Node (src/platform/browser/resize.ts), so the same loss.
    const dir = path.join(tmp, 'dropped');
    mkdirSync(dir);
    const demo = path.dirname(demoTrainValues({ out: '', steps: 1, seed: 1 }).train_data_dir as string);
    const files: string[] = [];
    for (const n of ['001', '002', '003', '004']) {
      const src = path.join(demo, 'train', '10_cross', n);
      await sharp(`${src}.png`).resize(48, 48).png().toFile(path.join(dir, `${n}.png`));
      writeFileSync(path.join(dir, `${n}.txt`), readFileSync(`${src}.txt`));
      files.push(path.join(dir, `${n}.png`), path.join(dir, `${n}.txt`));
    }
    await s.page.setInputFiles('#data-files', files);
    assert.equal(await s.page.textContent('#data-status'), '4 images, 4 captions');
    await s.page.fill('#steps', '1');
    await s.page.fill('#seed', String(SEED));
    const before = await s.page.locator('#downloads a').count();
    await s.page.click('#train');
    await s.page.waitForFunction(() => /^done: 1 steps/.test(document.getElementById('train-status')!.textContent ?? '') || (window as any).sdlora.state().error, undefined, { timeout: 300_000, polling: 250 });
    const st = await s.page.evaluate(() => (window as any).sdlora.state());
    assert.equal(st.error, undefined);
    assert.equal(st.losses.length, 1);
    assert.ok(Number.isFinite(st.losses[0].loss) && st.losses[0].loss > 0);
    assert.ok(before >= 0 && await s.page.locator('#downloads a[download$=".safetensors"]').count() === 1);
    await s.page.check('input[name=data][value=demo]');
    // The same files in the page's folder layout, trained in Node with the same seed.
    const ds = path.join(tmp, 'dropped-ds');
    mkdirSync(path.join(ds, '10_concept'), { recursive: true });
    for (const f of files) writeFileSync(path.join(ds, '10_concept', path.basename(f)), readFileSync(f));
    await E.initCpuBackend();
    const r = await train(resolveConfig([{ source: 'test', values: demoTrainValues({ out: path.join(tmp, 'dropped-node'), steps: 1, seed: SEED, dataset: ds }) }]), {});
    const node = r.losses[0].loss, page = st.losses[0].loss;
    t.diagnostic(`dropped images, step 1: page ${page} | node ${node}`);
    assert.ok(Math.abs(page - node) <= 1e-5 * Math.abs(node), `page ${page} vs node ${node}`);
  });

  // Generation in the page without LoRAs: the page's form filled with the settings pageVsCli uses.
  const fillGeneration = async () => {
    for (const l of await s.page.locator('#loras input[type=checkbox]').all()) await l.uncheck();
    await s.page.fill('#prompt', 'a blue square');
    await s.page.fill('#gen-seed', '5');
    await s.page.fill('#gen-steps', '3');
  };
  const generateWithoutLoRAs = async () => {
    const before = await s.page.evaluate(() => (window as any).sdlora.state().images);
    await s.page.click('#generate');
    await s.page.waitForFunction((n) => (window as any).sdlora.state().images > n || (window as any).sdlora.state().error, before, { timeout: 180_000, polling: 250 });
    assert.equal((await s.page.evaluate(() => (window as any).sdlora.state())).error, undefined);
    assert.equal(await s.page.textContent('#gen-status'), '0 LoRAs applied');
  };
  /** The page engine's and the CLI's image for the same model and settings: their largest pixel difference. */
  const pageVsCli = async (model: { model: string; configDir?: string }, cliModel: string[], pngName: string): Promise<number> => {
    const page = await engineCall(s, { op: 'generate', ...model, prompt: 'a blue square', loras: [], width: 32, height: 32, steps: 3, cfgScale: 5, seed: 5, sampler: 'dpmpp_2m' }) as { rgb: Record<string, number> };
    const png = path.join(tmp, pngName);
    const gen = spawnCli(['txt2img', ...cliModel, '-p', 'a blue square', '--width', '32', '--height', '32', '--steps', '3', '--cfg', '5', '--seed', '5', '--sampler', 'dpmpp_2m', '-o', png]);
    assert.equal(await gen.exit(180_000), 0, gen.stderr());
    const cli = decodePng(readFileSync(png)).rgb!;
    const rgb = Object.values(page.rgb);
    assert.equal(rgb.length, cli.length);
    let worst = 0;
    for (let i = 0; i < cli.length; i++) worst = Math.max(worst, Math.abs(rgb[i] - cli[i]));
    return worst;
  };

  it('generates from a diffusers folder picked in the page, as the CLI does from the same folder', async () => {
    const dir = await tinyModelFolder();
    try {
      await s.page.setInputFiles('#model-dir', dir);
      assert.equal(await s.page.isChecked('input[name=model][value=dir]'), true);
      await fillGeneration();
      await generateWithoutLoRAs();
      const worst = await pageVsCli({ model: `/user/models/${path.basename(dir)}` }, ['--model', dir], 'folder.png');
      assert.ok(worst <= 1, `page and CLI images differ by up to ${worst}`);
    } finally {
      await s.page.check('input[name=model][value=tiny]');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('generates from a single-file .safetensors checkpoint picked in the page, read in ranges, as the CLI does from the same file', async (t) => {
    const dir = await tinyModelFolder();
    try {
      // The tiny model as one LDM-keyed checkpoint, written by the project's own single-file saver.
      const ckpt = path.join(tmp, 'tiny-single.safetensors');
      await E.initCpuBackend();
      await saveSingleFile(ckpt, await loadSDModel(dir), {}, 'F32');
      const size = statSync(ckpt).size;
      await s.page.setInputFiles('#model-file', ckpt);
      // Not a standard SD size, so its configs come from a folder, as with the CLI's --config-dir.
      await s.page.setInputFiles('#model-config', dir);
      assert.equal(await s.page.isChecked('input[name=model][value=file]'), true);
      await fillGeneration();
      type Reads = { ranges: number; rangeBytes: number; largestRange: number; whole: number; wholeBytes: number };
      const reads0 = await engineCall(s, { op: 'io-stats' }) as Reads;
      await generateWithoutLoRAs();
      const reads1 = await engineCall(s, { op: 'io-stats' }) as Reads;
      t.diagnostic(`checkpoint ${size} bytes; picked files read in ${reads1.ranges - reads0.ranges} ranges (${reads1.rangeBytes - reads0.rangeBytes} bytes, largest ${reads1.largestRange}), whole: ${reads1.whole - reads0.whole} files (${reads1.wholeBytes - reads0.wholeBytes} bytes: configs, tokenizer)`);
      // Every tensor of the checkpoint came through Blob.slice; the whole reads (configs, vocabulary) are far smaller than it.
      assert.ok(reads1.rangeBytes - reads0.rangeBytes >= size - 64 * 1024, 'the checkpoint was read in ranges');
      assert.ok(reads1.largestRange < size, 'no range is the whole checkpoint');
      assert.ok(reads1.wholeBytes - reads0.wholeBytes < size, 'the checkpoint was not read whole');
      const worst = await pageVsCli({ model: `/user/models/${path.basename(ckpt)}`, configDir: `/user/models/${path.basename(dir)}` }, ['--model', ckpt, '--config-dir', dir], 'single.png');
      t.diagnostic(`page vs CLI: max |diff| ${worst} of 255`);
      assert.ok(worst <= 1, `page and CLI images differ by up to ${worst}`);
    } finally {
      await s.page.check('input[name=model][value=tiny]');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps the trained LoRA in the origin private file system across a reload', async () => {
    await s.page.reload({ timeout: 30_000 });
    await waitForBackend(s.page);
    const saved = (await s.page.evaluate(() => (window as any).sdlora.state().loras)) as { path: string; name: string }[];
    assert.equal(saved.length, 2, `the demo LoRA and the dropped-images one: ${JSON.stringify(saved)}`);
    assert.match(saved[0].path, /^\/opfs\/loras\/cross-.*\.safetensors$/);
    const bytes = await engineCall(s, { op: 'read', path: saved[0].path }) as Record<string, number>;
    assert.deepEqual(Uint8Array.from(Object.values(bytes)), new Uint8Array(readFileSync(loraFile)));
  });
});
