// The LoRA-family parts the golden case does not hold (LoKr Tucker w2 core, LoCon lora_mid, full
// diffs with diff_b, DoRA on the input axis, PEFT's DoRA magnitude), checked against einsums written
// out as loops here; and the refusals: formats sdlora does not apply, files that would change
// nothing, non-finite values, the SVD tools on non-LoRA files.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { applyLoRA, mergeLoRA, removeLoRA } from '../../src/lora/apply.js';
import { moduleDelta } from '../../src/lora/formats/delta.js';
import { assertPlainLoRA, loadLoRA } from '../../src/lora/lora-file.js';
import { UNET_PREFIX, kohyaName } from '../../src/lora/names.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, requireFile } from '../helpers/golden.js';
import { goldenUNet } from '../helpers/golden-models.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-formats-'));
const rng = new E.Rng(11);
const randn = (shape: number[], s = 0.3) => E.mulScalar(E.randn(shape, rng), s);
const write = async (name: string, tensors: [string, Tensor][]) => { const p = path.join(tmp, name); await saveSafetensors(p, tensors); return p; };
/** Row-major strides of a shape. */
const strides = (s: readonly number[]) => s.map((_, i) => s.slice(i + 1).reduce((a, b) => a * b, 1));

/** The first 3x3 conv of the golden UNet and its kohya name. */
let unet: UNet2DConditionModel, conv: string, convShape: readonly number[], convName: string;

before(async () => {
  E.initCpuBackend();
  unet = await goldenUNet();
  for (const [k, t] of unet.weights.tensors) {
    if (k.endsWith('.weight') && t.rank === 4 && t.shape[2] === 3 && k.includes('resnets')) { conv = k.slice(0, -'.weight'.length); convShape = t.shape; break; }
  }
  convName = kohyaName(UNET_PREFIX, conv);
});

/** einsum("i j k l, i p, j r -> p r k l") as loops. */
function tuckerLoops(t: Tensor, a: Tensor, b: Tensor): { data: Float64Array; shape: number[] } {
  const [r1, r2, kh, kw] = t.shape, p = a.shape[1], q = b.shape[1];
  const td = t.dataSync(), ad = a.dataSync(), bd = b.dataSync();
  const out = new Float64Array(p * q * kh * kw);
  for (let i = 0; i < r1; i++) for (let j = 0; j < r2; j++) for (let x = 0; x < p; x++) for (let y = 0; y < q; y++) {
    const f = ad[i * p + x] * bd[j * q + y];
    for (let k = 0; k < kh * kw; k++) out[(x * q + y) * kh * kw + k] += td[(i * r2 + j) * kh * kw + k] * f;
  }
  return { data: out, shape: [p, q, kh, kw] };
}

describe('LoRA-family parts beyond the golden case', () => {
  it('LoKr with a Tucker core on w2: kron(w1, einsum(t2, w2_a, w2_b)) * alpha / rank', async () => {
    const [o, i] = convShape, o1 = 4, i1 = 4, r = 3, alpha = 2;
    const w1 = randn([o1, i1]), t2 = randn([r, r, 3, 3]), w2a = randn([r, o / o1]), w2b = randn([r, i / i1]);
    const file = await loadLoRA(await write('lokr-t2.safetensors', [
      [`${convName}.lokr_w1`, w1], [`${convName}.lokr_t2`, t2], [`${convName}.lokr_w2_a`, w2a], [`${convName}.lokr_w2_b`, w2b], [`${convName}.alpha`, E.tensor([alpha], [])],
    ]));
    assert.deepEqual(file.algorithms, ['lokr']);
    const w2 = tuckerLoops(t2, w2a, w2b), w1d = w1.dataSync();
    const want = new Float64Array(convShape.reduce((a, b) => a * b, 1)), st = strides(convShape), s2 = strides(w2.shape);
    for (let a = 0; a < o1; a++) for (let b = 0; b < i1; b++) for (let p = 0; p < o / o1; p++) for (let q = 0; q < i / i1; q++) for (let k = 0; k < 9; k++) {
      want[(a * (o / o1) + p) * st[0] + (b * (i / i1) + q) * st[1] + k] = w1d[a * i1 + b] * w2.data[p * s2[0] + q * s2[1] + k] * alpha / r;
    }
    const got = moduleDelta(file.adapters.get(convName)!, unet.weights.get(`${conv}.weight`));
    assert.ok(maxAbsDiff(got.dataSync(), want) < 1e-5, `max |diff| ${maxAbsDiff(got.dataSync(), want)}`);
  });

  it('LoCon with a Tucker lora_mid: einsum(mid, up, down) * alpha / rank', async () => {
    const [o, i] = convShape, r = 3, alpha = 1.5;
    const down = randn([r, i, 1, 1]), mid = randn([r, r, 3, 3]), up = randn([o, r, 1, 1]);
    const file = await loadLoRA(await write('locon-mid.safetensors', [
      [`${convName}.lora_down.weight`, down], [`${convName}.lora_mid.weight`, mid], [`${convName}.lora_up.weight`, up], [`${convName}.alpha`, E.tensor([alpha], [])],
    ]));
    assert.deepEqual(file.algorithms, ['locon']);
    assert.equal(file.modules.size, 0, 'a Tucker LoCon is not a plain down/up pair for the SVD tools');
    const upT = E.transpose(E.reshape(up, [o, r])), want = tuckerLoops(mid, upT, E.reshape(down, [r, i]));
    const got = moduleDelta(file.adapters.get(convName)!, unet.weights.get(`${conv}.weight`));
    assert.ok(maxAbsDiff(got.dataSync(), want.data.map((v) => v * alpha / r)) < 1e-5);
  });

  it('full diffs change weight and bias by multiplier * diff, the same merged and at runtime', async () => {
    const diff = randn([...convShape], 0.05), diffB = randn([convShape[0]], 0.05), m = 0.7;
    const file = await loadLoRA(await write('full.safetensors', [[`${convName}.diff`, diff], [`${convName}.diff_b`, diffB]]));
    assert.deepEqual(file.algorithms, ['full']);
    const merged = mergeLoRA(file, { unet: unet.weights }, { unet: m, te: m }).unet!;
    const expect = (key: string, d: Tensor) => E.add(unet.weights.get(key), E.mulScalar(d, m)).dataSync();
    assert.ok(maxAbsDiff(merged.get(`${conv}.weight`).dataSync(), expect(`${conv}.weight`, diff)) < 1e-6);
    assert.ok(maxAbsDiff(merged.get(`${conv}.bias`).dataSync(), expect(`${conv}.bias`, diffB)) < 1e-6);
    const io = (await loadSafetensors(requireFile(goldenCase('lycoris'), 'io.safetensors'))).tensors;
    const fwd = (u: UNet2DConditionModel) => E.noGrad(() => u.forward(io.sample, io.timestep, io.encoder_hidden_states)).dataSync();
    const base = fwd(unet), viaMerge = fwd(new UNet2DConditionModel(unet.config, merged));
    const r = applyLoRA(file, { unet: unet.weights }, { unet: m, te: m });
    const viaRuntime = fwd(unet);
    removeLoRA(r);
    assert.ok(maxAbsDiff(viaMerge, base) > 1e-3, 'the diff changes the output');
    assert.ok(maxAbsDiff(viaMerge, viaRuntime) < 1e-4);
  });

  it('DoRA on the input axis (dora_scale [1, in]) and PEFT magnitude vectors ([out], output axis)', async () => {
    const [o, i] = convShape, r = 2;
    const down = randn([r, i, 3, 3]), up = randn([o, r, 1, 1]), byIn = E.addScalar(E.abs(randn([1, i, 1, 1])), 1), byOut = E.addScalar(E.abs(randn([o])), 1);
    const W = unet.weights.get(`${conv}.weight`);
    const W1 = E.add(W, E.reshape(E.matmul(E.reshape(up, [o, r]), E.reshape(down, [r, -1])), [...convShape])).dataSync();
    const st = strides(convShape);
    const expected = (axis: 0 | 1, s: ArrayLike<number>) => {
      const n = convShape[axis], norm = new Float64Array(n);
      for (let x = 0; x < W1.length; x++) norm[Math.floor(x / st[axis]) % n] += W1[x] ** 2;
      return Array.from(W1, (v, x) => { const c = Math.floor(x / st[axis]) % n; return v * s[c] / (Math.sqrt(norm[c]) + 1.1920929e-7) - W.dataSync()[x]; });
    };
    const inFile = await loadLoRA(await write('dora-in.safetensors', [[`${convName}.lora_down.weight`, down], [`${convName}.lora_up.weight`, up], [`${convName}.dora_scale`, byIn]]));
    assert.deepEqual(inFile.algorithms, ['dora']);
    assert.ok(maxAbsDiff(moduleDelta(inFile.adapters.get(convName)!, W).dataSync(), expected(1, byIn.dataSync())) < 1e-5);
    const p = `unet.${conv}`;
    const peft = await loadLoRA(await write('peft-dora.safetensors', [[`${p}.lora_A.weight`, down], [`${p}.lora_B.weight`, up], [`${p}.lora_magnitude_vector`, byOut]]));
    assert.deepEqual([...peft.adapters.keys()], [convName]);
    assert.ok(maxAbsDiff(moduleDelta(peft.adapters.get(convName)!, W).dataSync(), expected(0, byOut.dataSync())) < 1e-5);
  });

  it('diffusers/PEFT keys: alpha when present, text_encoder / text_encoder_2 named as kohya SDXL names them', async () => {
    const [o, i] = convShape, r = 2, alpha = 3;
    const down = randn([r, i, 3, 3]), up = randn([o, r, 1, 1]), p = `unet.${conv}`;
    const file = await loadLoRA(await write('peft-alpha.safetensors', [[`${p}.lora_A.weight`, down], [`${p}.lora_B.weight`, up], [`${p}.alpha`, E.tensor([alpha], [])]]));
    assert.deepEqual(file.algorithms, ['peft']);
    const want = E.mulScalar(E.reshape(E.matmul(E.reshape(up, [o, r]), E.reshape(down, [r, -1])), [...convShape]), alpha / r);
    assert.ok(maxAbsDiff(moduleDelta(file.adapters.get(convName)!, unet.weights.get(`${conv}.weight`)).dataSync(), want.dataSync()) < 1e-6);
    const xl = await loadLoRA(await write('peft-xl.safetensors', [
      ['text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_A.weight', randn([r, 8])], ['text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_B.weight', randn([8, r])],
      ['text_encoder_2.text_model.encoder.layers.0.mlp.fc1.lora_A.weight', randn([r, 8])], ['text_encoder_2.text_model.encoder.layers.0.mlp.fc1.lora_B.weight', randn([8, r])],
    ]));
    assert.deepEqual([...xl.adapters.keys()].sort(), ['lora_te1_text_model_encoder_layers_0_mlp_fc1', 'lora_te2_text_model_encoder_layers_0_mlp_fc1']);
  });
});

describe('LoRA files that must not apply as a no-op', () => {
  const plain = async () => {
    const a = await loadSafetensors(requireFile(goldenCase('lora'), 'lora_a.safetensors'));
    const name = Object.keys(a.tensors).find((k) => k.startsWith(UNET_PREFIX) && k.endsWith('.lora_down.weight'))!.split('.')[0];
    return Object.entries(a.tensors).filter(([k]) => k.startsWith(`${name}.`));
  };
  const o = 8; // unsupported modules are never applied, so their tensors' sizes do not matter
  const FORMATS: [string, RegExp, (n: string) => [string, Tensor][]][] = [
    ['ia3', /IA3/, (n) => [[`${n}.weight`, randn([o])], [`${n}.on_input`, E.tensor([0], [])]]],
    ['glora', /GLoRA/, (n) => [[`${n}.a1.weight`, randn([2, o])], [`${n}.a2.weight`, randn([o, 2])], [`${n}.b1.weight`, randn([2, o])], [`${n}.b2.weight`, randn([o, 2])]]],
    ['oft', /OFT/, (n) => [[`${n}.oft_blocks`, randn([4, 16, 16])]]],
    ['boft', /OFT/, (n) => [[`${n}.oft_blocks`, randn([2, 4, 16, 16])], [`${n}.rescale`, randn([o, 1])]]],
    ['unknown', /unrecognised keys \(mystery_tensor\)/, (n) => [[`${n}.mystery_tensor`, randn([o])]]],
  ];
  for (const [fmt, named, parts] of FORMATS) {
    it(`${fmt}: refused naming the format, or skipped module by module when partial application is allowed`, async () => {
      const other = convName;
      const file = await loadLoRA(await write(`${fmt}.safetensors`, [...await plain(), ...parts(other)]));
      assert.equal(file.unsupported.length, 1);
      assert.match(file.unsupported[0].format, named);
      for (const f of [applyLoRA, mergeLoRA]) {
        assert.throws(() => f(file, { unet: unet.weights }, { unet: 1, te: 1 }), (e: Error) => named.test(e.message) && e.message.includes(file.path) && /allow-partial/.test(e.message));
      }
      assert.equal(unet.weights.adapters.size, 0, 'nothing stays attached after a refusal');
      const r = applyLoRA(file, { unet: unet.weights }, { unet: 1, te: 1 }, { allowPartial: true });
      assert.equal(r.applied, 1);
      assert.deepEqual(r.skipped.map((s) => s.name), [other]);
      removeLoRA(r);
      const only = await loadLoRA(await write(`${fmt}-only.safetensors`, parts(other)));
      assert.throws(() => applyLoRA(only, { unet: unet.weights }, { unet: 1, te: 1 }, { allowPartial: true }), /would change nothing/);
    });
  }

  it('refuses a file none of whose modules matches the model', async () => {
    const file = await loadLoRA(await write('elsewhere.safetensors', (await plain()).map(([k, t]) => [k.replace(UNET_PREFIX, 'lora_te2_'), t])));
    assert.throws(() => applyLoRA(file, { unet: unet.weights }, { unet: 1, te: 1 }), /none of its 1 modules matches a layer.*change nothing/);
  });

  it('refuses files holding NaN or Inf, naming the modules', async () => {
    const tensors = await plain();
    const bad = tensors.map(([k, t]): [string, Tensor] => {
      if (!k.endsWith('lora_up.weight')) return [k, t];
      const d = Float32Array.from(t.dataSync()); d[1] = Number.NaN;
      return [k, E.tensor(d, t.shape)];
    });
    const name = tensors[0][0].split('.')[0];
    await assert.rejects(loadLoRA(await write('nan.safetensors', bad)), (e: Error) => e.message.includes(name) && /NaN or Inf/.test(e.message) && e.message.includes('nan.safetensors'));
  });

  it('the SVD tools take plain LoRA / LoCon / PEFT files and refuse the other algorithms', async () => {
    const dir = goldenCase('lycoris');
    assert.doesNotThrow(() => assertPlainLoRA(file0, 'resize'));
    for (const kind of ['loha', 'lokr', 'dora']) {
      const f = await loadLoRA(requireFile(dir, `${kind}.safetensors`));
      assert.throws(() => assertPlainLoRA(f, 'resize'), (e: Error) => e.message.includes(kind) && e.message.includes('resize') && e.message.includes(f.path));
    }
    const peft = await loadLoRA(requireFile(dir, 'peft.safetensors'));
    assert.doesNotThrow(() => assertPlainLoRA(peft, 'merge-loras'));
  });
  let file0: Awaited<ReturnType<typeof loadLoRA>>;
  before(async () => { file0 = await loadLoRA(requireFile(goldenCase('lora'), 'lora_a.safetensors')); });
});
