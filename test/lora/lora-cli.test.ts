// What users see of the LoRA-family formats: `lora list` / `inspect` name the algorithm, rank,
// alpha and base family; txt2img (library API and command line) refuses a file with modules of a
// format sdlora does not apply, or skips them one by one with --allow-partial; `lora resize`
// refuses non-LoRA algorithms.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { txt2img } from '../../src/infer/txt2img.js';
import { loadSafetensors, saveSafetensors, SafetensorsFile } from '../../src/io/safetensors.js';
import { describeLoRA } from '../../src/lora/formats/describe.js';
import { rankOfModule } from '../../src/lora/formats/kinds.js';
import { LoRALibrary } from '../../src/lora/library.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { UNET_PREFIX } from '../../src/lora/names.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import { goldenCase, requireFile } from '../helpers/golden.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const cli = path.resolve('bin/sdlora.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-lora-cli-'));
const run = (args: string[]) => spawnSync('node', [cli, ...args], { encoding: 'utf8', cwd: tmp });
const lib = path.join(tmp, 'lib'), partial = path.join(tmp, 'partial');
const KINDS = ['loha', 'lokr', 'dora', 'peft'];
const span = (xs: number[]) => (Math.min(...xs) === Math.max(...xs) ? String(xs[0]) : `${Math.min(...xs)}..${Math.max(...xs)}`);
let model: string, nanModule: string;

before(async () => {
  E.initCpuBackend();
  mkdirSync(lib); mkdirSync(partial);
  for (const k of KINDS) copyFileSync(requireFile(goldenCase('lycoris'), `${k}.safetensors`), path.join(lib, `${k}.safetensors`));
  // A kohya LoRA with one module added in IA3 form (weight + on_input), as LyCORIS writes it.
  const a = await loadSafetensors(requireFile(goldenCase('lora'), 'lora_a.safetensors'));
  const ia3Module = Object.keys(a.tensors).find((k) => k.startsWith(UNET_PREFIX))!.split('.')[0];
  const tensors: [string, Tensor][] = [...Object.entries(a.tensors), [`${ia3Module}_ia3.weight`, E.ones([4])], [`${ia3Module}_ia3.on_input`, E.tensor([0], [])]];
  await saveSafetensors(path.join(partial, 'mixed.safetensors'), tensors, a.metadata);
  // The same LoRA with a NaN in one up weight, as a diverged run writes it.
  const upKey = Object.keys(a.tensors).find((k) => k.endsWith('.lora_up.weight'))!;
  const nan = Float32Array.from(a.tensors[upKey].dataSync()); nan[0] = Number.NaN;
  mkdirSync(path.join(tmp, 'nan'));
  await saveSafetensors(path.join(tmp, 'nan', 'diverged.safetensors'), Object.entries(a.tensors).map(([k, t]): [string, Tensor] => [k, k === upKey ? E.tensor(nan, t.shape) : t]), a.metadata);
  nanModule = upKey.split('.')[0];
  model = await tinyModelFolder();
});

describe('LoRA-family files in the library, inspect and the tools', () => {
  it('describes each golden file with its algorithm, rank and alpha as its tensors give them', async () => {
    for (const k of KINDS) {
      const p = path.join(lib, `${k}.safetensors`);
      const f = await SafetensorsFile.open(p);
      const d = await describeLoRA(f);
      await f.close();
      const loaded = await loadLoRA(p);
      assert.deepEqual(d.algorithms, [k]);
      assert.equal(d.modules, loaded.adapters.size);
      assert.equal(d.rank, span([...loaded.adapters.values()].map(rankOfModule).filter((r): r is number => r !== null)));
      // alpha as stored, where it means something (a LoKr without a decomposed factor ignores it).
      const alphas = [...loaded.adapters.values()].flatMap((m) => (m.kind === 'lora' ? [m.weights.alpha] : m.kind !== 'full' && m.alpha !== undefined && rankOfModule(m) !== null ? [m.alpha] : []));
      const stored = f.keys().some((key) => key.endsWith('.alpha'));
      assert.equal(d.alpha, stored ? span(alphas) : '= rank');
    }
  });

  it('names the base family from metadata, SDXL module names or the cross-attention width', async () => {
    const family = async (name: string, tensors: [string, Tensor][], md: Record<string, string> = {}) => {
      const p = path.join(tmp, name);
      await saveSafetensors(p, tensors, md);
      const f = await SafetensorsFile.open(p);
      try { return (await describeLoRA(f)).family; } finally { await f.close(); }
    };
    const pair = (n: string, width: number): [string, Tensor][] => [[`${n}.lora_down.weight`, E.zeros([2, width])], [`${n}.lora_up.weight`, E.zeros([8, 2])]];
    const toK = 'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k';
    assert.equal(await family('sd1.safetensors', pair(toK, 768)), 'sd1 (from keys)');
    assert.equal(await family('sd2.safetensors', pair(toK, 1024)), 'sd2 (from keys)');
    assert.equal(await family('xl-keys.safetensors', pair('lora_te2_text_model_encoder_layers_0_mlp_fc1', 1280)), 'sdxl (from keys)');
    assert.equal(await family('xl-md.safetensors', pair(toK, 768), { ss_base_model_version: 'sdxl_base_v1-0' }), 'sdxl (from metadata)');
  });

  it('lora list --json and inspect show the algorithm, rank, alpha and family', () => {
    const r = run(['lora', 'list', lib, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const rows = JSON.parse(r.stdout).loras as { name: string; algorithm: string; rank: string; alpha: string; family: string }[];
    assert.deepEqual(rows.map((x) => [x.name, x.algorithm]).sort(), KINDS.map((k) => [k, k]).sort());
    assert.ok(rows.every((x) => x.rank && x.alpha && x.family));
    const i = run(['inspect', path.join(lib, 'loha.safetensors')]);
    assert.equal(i.status, 0, i.stderr);
    assert.match(i.stdout, new RegExp(`LoRA: loha, \\d+ modules, rank ${rows.find((x) => x.name === 'loha')!.rank}, alpha`));
  });

  it('lora resize refuses a LoHa file instead of dropping its modules', () => {
    const r = run(['lora', 'resize', path.join(lib, 'loha.safetensors'), '--rank', '2', '--out', 'resized.safetensors']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /loha/);
    assert.ok(!existsSync(path.join(tmp, 'resized.safetensors')));
  });
});

describe('txt2img with a LoRA partly in a format sdlora does not apply', () => {
  const args = ['txt2img', '--model', '', '-p', 'a red circle <lora:mixed:1>', '--lora-dir', partial, '--width', '32', '--height', '32', '--steps', '2', '--seed', '5'];
  const withModel = (extra: string[]) => args.map((a, i) => (i === 2 ? model : a)).concat(extra);

  it('library API: refuses the file naming the format, applies the rest with allowPartial', async () => {
    const m = await loadSDModel(model);
    const library = await LoRALibrary.scan(partial);
    const o = { prompt: 'a red circle <lora:mixed:1>', width: 32, height: 32, steps: 2, seed: 5 };
    await assert.rejects(txt2img(m, o, library), /mixed\.safetensors.*IA3.*allow-partial/s);
    assert.equal(m.unet.weights.adapters.size + m.textEncoder.weights.adapters.size, 0);
    const base = await txt2img(m, { ...o, prompt: 'a red circle' }, library);
    const part = await txt2img(m, { ...o, allowPartial: true }, library);
    assert.notDeepEqual(part.rgb, base.rgb, 'the modules sdlora applies change the image');
  });

  it('command line: exits non-zero without an image, or warns per skipped module with --allow-partial', () => {
    const refused = run(withModel(['-o', 'refused.png']));
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /IA3/);
    assert.ok(!existsSync(path.join(tmp, 'refused.png')), 'no image is written for a refused LoRA');
    const ok = run(withModel(['-o', 'partial.png', '--allow-partial']));
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stderr, /mixed\.safetensors: module \S+_ia3 skipped: .*IA3/);
    assert.ok(readFileSync(path.join(tmp, 'partial.png')).length > 0);
  });

  it('command line: refuses a LoRA holding NaN, naming the module, and writes no image', () => {
    const r = run(['txt2img', '--model', model, '-p', 'a red circle <lora:diverged:1>', '--lora-dir', path.join(tmp, 'nan'), '--width', '32', '--height', '32', '--steps', '2', '-o', 'nan.png']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /NaN/);
    assert.ok(r.stderr.includes(nanModule), r.stderr);
    assert.ok(!existsSync(path.join(tmp, 'nan.png')));
  });
});
