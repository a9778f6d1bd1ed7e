// README estimator claims: the family read from a single file's safetensors header and from a
// downloaded hub repo's folder (text_encoder_2/), and the figures the README prints (the methods
// table's SD 1.5 memory, fits and time rows; the SDXL paragraph of "## Estimator") are the ones
// `sdlora estimate` prints. The figures are parsed out of README.md, so the test breaks when either
// the README or the estimator changes alone.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { familyOfModel } from '../../src/estimate/family-inputs.js';
import { DEVICES } from '../../src/estimate/gpus.js';
import { saveSingleFile } from '../../src/models/ldm-save.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';
import { tinySd2SingleFile, tinySd2Folder, tinySdxlSingleFile } from '../helpers/tiny-sd2.js';
import { tinySdxlFolder } from '../helpers/tiny-sdxl.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/sdlora.js');
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-estimate-claims-'));

interface Row { device: string; resolution: string; vramRangeGB: [number, number]; secondsPerStep: number; secondsRange: [number, number]; fits: boolean; breakdown: Record<string, number> }
/** `sdlora estimate --json` of a config, on the GPUs given (all when none). */
function estimateCli(config: Record<string, unknown>, gpus = 'all', env: Record<string, string> = {}): { family: string; familyFrom: string; rows: Row[] } {
  const file = path.join(tmp, `cfg-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ train_data_dir: '.', ...config }));
  return JSON.parse(execFileSync(process.execPath, [BIN, 'estimate', '--config', file, '--gpu', gpus, '--json'], { encoding: 'utf8', env: { ...process.env, ...env } }));
}
const row = (rows: Row[], name: string) => { const r = rows.find((x) => x.device === name); assert.ok(r, `no row for ${name}`); return r; };
/** How the CLI prints a figure. */
const f1 = (x: number) => x.toFixed(1), f2 = (x: number) => x.toFixed(2);
const GPU_BY_NAME = new Map(DEVICES.map((d) => [d.name, d]));

/** The cells of the methods table row whose first cell starts with `label`. */
function methodsRow(label: string): string[] {
  const line = README.split('\n').find((l) => l.startsWith(`| ${label}`));
  assert.ok(line, `README methods table: no "${label}" row`);
  return line.split(' | ').map((c) => c.replace(/^\| | \|$/g, '').trim());
}
const match = (text: string, re: RegExp, what: string) => { const m = re.exec(text); assert.ok(m, `README: ${what} not found (${re})`); return m; };

describe('estimator: README claims', () => {
  describe('the family, without loading the model', () => {
    before(() => E.initCpuBackend());

    it('from a single file\'s safetensors header: SDXL, SD 2.x and SD 1.x keys', async () => {
      const dir = path.join(tmp, 'files');
      // Neutral file names: the answer must come from the keys, not from an "xl" in the name.
      for (const [sub, src] of [['xl', (await tinySdxlSingleFile()).file], ['sd2', (await tinySd2SingleFile()).file]]) {
        mkdirSync(path.join(dir, sub), { recursive: true });
        copyFileSync(src, path.join(dir, sub, 'base.safetensors'));
      }
      mkdirSync(path.join(dir, 'sd1'), { recursive: true });
      await saveSingleFile(path.join(dir, 'sd1', 'base.safetensors'), await loadSDModel(await tinyModelFolder()), {}, 'F32');
      for (const [sub, id] of [['xl', 'sdxl'], ['sd2', 'sd2'], ['sd1', 'sd1']]) {
        const r = familyOfModel(path.join(dir, sub, 'base.safetensors'), false);
        assert.equal(r.id, id, sub);
        assert.equal(r.how, 'the keys of base.safetensors');
      }
      const cli = estimateCli({ pretrained_model_name_or_path: path.join(dir, 'xl', 'base.safetensors') }, 'rtx-4090');
      assert.equal(cli.family, 'sdxl');
      assert.equal(cli.familyFrom, 'the keys of base.safetensors');
    });

    it('from a downloaded hub repo\'s folder: text_encoder_2/ means SDXL; the first output line says which and from where', async () => {
      const cache = path.join(tmp, 'hub');
      const place = (repo: string, folder: string) => {
        for (const sub of ['text_encoder', 'text_encoder_2', 'unet']) {
          try { mkdirSync(path.join(cache, repo.replace('/', '--'), sub), { recursive: true }); copyFileSync(path.join(folder, sub, 'config.json'), path.join(cache, repo.replace('/', '--'), sub, 'config.json')); } catch { /* not in this family */ }
        }
      };
      place('someone/big-base', await tinySdxlFolder());
      place('someone/other-base', await tinySd2Folder());
      const before = process.env.SDLORA_CACHE;
      process.env.SDLORA_CACHE = cache;
      try {
        assert.equal(familyOfModel('someone/big-base', false).id, 'sdxl');
        assert.match(familyOfModel('someone/big-base', false).how, /someone--big-base/);
        assert.equal(familyOfModel('someone/other-base', false).id, 'sd2', 'no text_encoder_2/: not SDXL');
        assert.equal(familyOfModel('someone/not-downloaded', false).id, 'sd1');
      } finally {
        if (before === undefined) delete process.env.SDLORA_CACHE; else process.env.SDLORA_CACHE = before;
      }
      const file = path.join(tmp, 'hub.json');
      writeFileSync(file, JSON.stringify({ pretrained_model_name_or_path: 'someone/big-base', train_data_dir: '.' }));
      const out = execFileSync(process.execPath, [BIN, 'estimate', '--config', file, '--gpu', 'rtx-4090'], { encoding: 'utf8', env: { ...process.env, SDLORA_CACHE: cache } });
      assert.match(out.split('\n')[0], /^SDXL \(from the folder .*someone--big-base\)/);
      assert.match(out, /\| RTX 4090 \| 1024x1024 \|/, 'SDXL: 1024 px when the config gives none');
    });
  });

  it('the methods table\'s SD 1.5 memory, fits and time figures are what sdlora estimate prints', () => {
    const memory = methodsRow('SD 1.5 memory');
    const label = memory[0];
    const px = Number(match(label, /(\d+) px/, 'the resolution of the memory row')[1]);
    assert.match(label, /fp16, checkpointing, cached latents \(`sdlora estimate`/);
    const base = { pretrained_model_name_or_path: 'sd15', resolution: px, mixed_precision: 'fp16', gradient_checkpointing: true, cache_latents: true };
    const [loraLo, loraHi, rank] = match(memory[1], /^([\d.]+)-([\d.]+) GB \(rank (\d+)\)$/, 'the LoRA memory cell').slice(1);
    const [tiLo, tiHi] = match(memory[2], /^([\d.]+)-([\d.]+) GB$/, 'the TI memory cell').slice(1);
    const db = match(memory[3], /^([\d.]+) GB with AdamW \(([\d.]+) GB of .*before activations\); ([\d.]+) GB with AdamW8bit; ([\d.]+) GB with AdamW8bit and a frozen text encoder$/, 'the DreamBooth memory cell').slice(1);

    const lora = estimateCli({ ...base, network_dim: Number(rank) });
    const ti = estimateCli({ ...base, training_method: 'textual_inversion', token_string: 'zqx' });
    const dbAdamW = estimateCli({ ...base, training_method: 'dreambooth' });
    const db8 = estimateCli({ ...base, training_method: 'dreambooth', optimizer_type: 'AdamW8bit' });
    const db8Frozen = estimateCli({ ...base, training_method: 'dreambooth', optimizer_type: 'AdamW8bit', train_text_encoder: false });
    const any = (e: { rows: Row[] }) => e.rows[0];
    assert.ok([lora, ti, dbAdamW].every((e) => e.family === 'sd1' && e.rows.every((r) => r.resolution === `${px}x${px}`)));
    assert.deepEqual(any(lora).vramRangeGB.map(f1), [loraLo, loraHi], 'LoRA VRAM');
    assert.deepEqual(any(ti).vramRangeGB.map(f1), [tiLo, tiHi], 'TI VRAM');
    const b = any(dbAdamW).breakdown;
    assert.deepEqual([any(dbAdamW).vramRangeGB[0], b.weightsGB + b.gradientsAndOptimizerGB, any(db8).vramRangeGB[0], any(db8Frozen).vramRangeGB[0]].map(f1), db, 'DreamBooth VRAM');

    // fits: LoRA and TI on 8 GB cards; DreamBooth AdamW from 24 GB (the cards named), AdamW8bit from N GB.
    const fits = methodsRow('fits');
    for (const [i, e] of [[1, lora], [2, ti]] as const) {
      const gb = Number(match(fits[i], /^(\d+) GB cards and up$/, 'a LoRA/TI fits cell')[1]);
      assert.ok(e.rows.every((r) => r.vramRangeGB[1] <= gb), `${gb} GB cards hold even the kohya-practice figure`);
    }
    const [adamGB, cards, eightGB, moreGB] = match(fits[3], /^AdamW: (\d+) GB and up \(RTX ([\d/]+)\); AdamW8bit: (\d+) GB cards and up \(a frozen text encoder leaves (\d+) GB more\)$/, 'the DreamBooth fits cell').slice(1);
    for (const r of dbAdamW.rows) {
      const d = GPU_BY_NAME.get(r.device)!;
      if (d.id === 'cpu') continue;
      assert.equal(r.fits, d.memoryGB >= Number(adamGB), `AdamW on ${r.device} (${d.memoryGB} GB)`);
      assert.equal(row(db8.rows, r.device).fits, d.memoryGB >= Number(eightGB), `AdamW8bit on ${r.device} (${d.memoryGB} GB)`);
      assert.ok(row(db8Frozen.rows, r.device).fits || d.memoryGB < Number(eightGB));
    }
    for (const n of cards.split('/')) assert.ok(row(dbAdamW.rows, `RTX ${n}`).fits && GPU_BY_NAME.get(`RTX ${n}`)!.memoryGB >= Number(adamGB), `RTX ${n}`);
    assert.equal(Math.round(any(db8).vramRangeGB[0] - any(db8Frozen).vramRangeGB[0]), Number(moreGB), 'what a frozen text encoder saves, in whole GB');

    // time per step: the two GPUs named; TI and DreamBooth make the same UNet passes.
    const time = methodsRow('time per step');
    const t = match(time[1], /^about ([\d.]+) s \(([^)]+)\) to ([\d.]+) s \(([^)]+)\)$/, 'the LoRA time cell').slice(1);
    for (const [s, gpu] of [[t[0], t[1]], [t[2], t[3]]]) {
      assert.equal(f2(row(lora.rows, gpu).secondsPerStep), s, `s/step on ${gpu}`);
      assert.equal(f2(row(ti.rows, gpu).secondsPerStep), s, `TI: the same on ${gpu}`);
      assert.equal(f2(row(dbAdamW.rows, gpu).secondsPerStep), s, `DreamBooth: the same passes on ${gpu}`);
    }
    assert.equal(time[2], 'the same');
  });

  it('the SDXL paragraph\'s time and VRAM figures are what sdlora estimate prints', () => {
    const sec = README.slice(README.indexOf('## Estimator'), README.indexOf('## Models and parity'));
    const [s, gpu, px, batch] = match(sec, /the fit says ([\d.]+) s\/step on an (RTX \d+) at (\d+) px, batch (\d+)/, 'the SDXL s/step').slice(1);
    const published = Number(match(sec, /about [\d.]+ it\/s \(([\d.]+) s\)/, 'the published SDXL figure')[1]);
    const [lo, hi] = match(sec, /the SDXL range reaches down to it\s+\(([\d.]+)-([\d.]+) s;/, 'the SDXL range').slice(1);
    const v = match(sec, /its VRAM \((\d+) px, rank (\d+), fp16, checkpointing\) reads ([\d.]+)-([\d.]+) GB with a\s+trained text encoder and uncached latents, ([\d.]+)-([\d.]+) GB with cached latents and the UNet only/, 'the SDXL VRAM').slice(1);
    const card = Number(match(sec, /plausibly within a (\d+) GB card/, 'the card size')[1]);
    assert.equal(v[0], px);
    // An SDXL model by name only; no resolution: the 1024 px default.
    const xl = { pretrained_model_name_or_path: 'stabilityai/stable-diffusion-xl-base-1.0', mixed_precision: 'fp16', gradient_checkpointing: true, network_dim: Number(v[1]), train_batch_size: Number(batch) };
    const id = [...GPU_BY_NAME.values()].find((d) => d.name === gpu)!.id;
    const full = estimateCli(xl, id, { SDLORA_CACHE: path.join(tmp, 'empty-cache') }).rows[0];
    const cached = estimateCli({ ...xl, cache_latents: true, network_train_unet_only: true }, id, { SDLORA_CACHE: path.join(tmp, 'empty-cache') }).rows[0];
    assert.equal(full.resolution, `${px}x${px}`);
    assert.equal(f2(full.secondsPerStep), s, 's/step');
    assert.deepEqual(full.secondsRange.map(f2), [lo, hi], 'the printed range');
    assert.ok(full.secondsRange[0] <= published && full.secondsRange[1] >= published, 'the range holds the published figure');
    assert.deepEqual(full.vramRangeGB.map(f1), [v[2], v[3]], 'trained text encoder, uncached latents');
    assert.deepEqual(cached.vramRangeGB.map(f1), [v[4], v[5]], 'cached latents, UNet only');
    assert.ok(full.vramRangeGB[1] <= card && full.fits);
  });
});
