// What a saved LoRA's metadata and tensors claim about the run, against what ran: no library that
// did not run, the precision actually stored (bf16 training runs on f16 storage; save_precision
// bf16 writes real bf16), the base model family loaded, and v2 refused on an SD 1.x model.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { SafetensorsFile, loadSafetensors } from '../../src/io/safetensors.js';
import type { ModelFamily, Prediction } from '../../src/families/family.js';
import { SD1 } from '../../src/families/sd1.js';
import { SD2 } from '../../src/families/sd2.js';
import { SDXL } from '../../src/families/sdxl.js';
import { checkBaseModel } from '../../src/train/base-model-check.js';
import { train } from '../../src/train/trainer.js';
import { trainFixture } from '../helpers/train-setup.js';

const fx = trainFixture('sdlora-meta-', {
  dataset: { name: 'tri', repeats: 1, count: 2, size: 32, shapes: ['triangle'], seed: 6 },
  defaults: () => ({
    caption_extension: '.txt', resolution: 32, train_batch_size: 2, max_train_steps: 1, learning_rate: 1e-3, network_dim: 4, seed: 9,
    output_dir: path.join(tmp, `r${n++}`),
  }),
});
const { tmp, cfg } = fx;
let n = 0;

/** The bfloat16 nearest to a float32 value, ties to even, found by comparing the two candidates. */
function nearestBf16(v: number): number {
  const f = new Float32Array([v]), u = new Uint32Array(f.buffer);
  const lo = u[0] & 0xffff0000, hi = (lo + 0x10000) >>> 0;
  const val = (bits: number) => { u[0] = bits; return f[0]; };
  const a = val(lo), b = val(hi), da = Math.abs(v - a), db = Math.abs(v - b);
  if (da !== db) return da < db ? a : b;
  return ((lo >>> 16) & 1) === 0 ? a : b;
}

describe('run metadata and stored precision', () => {
  before(fx.setup);

  it('names no library that did not run, and records f16 storage for mixed_precision bf16', async () => {
    const logs: string[] = [];
    const r = await train(cfg({ mixed_precision: 'bf16', optimizer_type: 'AdamW8bit', optimizer_args: ['weight_decay=0.05'] }), { log: (m) => logs.push(m) });
    const md = (await loadSafetensors(r.finalPath!)).metadata;
    assert.ok(logs.some((l) => /mixed_precision bf16 stores the frozen weights in f16/.test(l)), 'bf16 is named as f16 storage');
    assert.equal(md.ss_mixed_precision, 'fp16');
    assert.equal(md.ss_full_fp16, 'False');
    assert.equal(md.ss_optimizer, 'sdlora.optimizers.AdamW8bit(weight_decay=0.05) (blockwise 8-bit state, not bitsandbytes)');
    for (const [k, v] of Object.entries(md)) {
      if (k === 'modelspec.implementation') continue; // the architecture the file is for (sd-scripts writes "diffusers")
      assert.doesNotMatch(k === 'ss_optimizer' ? v.replace('not bitsandbytes', '') : v, /\b(torch|bitsandbytes|prodigyopt|lion_pytorch|xformers|accelerate|diffusers)\b/, `${k} = ${v}`);
    }
    assert.equal(md['modelspec.implementation'], 'diffusers');
  });

  it('save_precision bf16 stores round-to-nearest-even bfloat16 of the trained weights', async () => {
    const f32 = await train(cfg({ save_precision: 'float' }), { log: () => {} });
    const b16 = await train(cfg({ save_precision: 'bf16' }), { log: () => {} });
    const file = await SafetensorsFile.open(b16.finalPath!);
    try {
      for (const e of file.entries.values()) assert.equal(e.dtype, 'BF16', e.name);
    } finally { await file.close(); }
    const a = (await loadSafetensors(f32.finalPath!)).tensors, b = (await loadSafetensors(b16.finalPath!)).tensors;
    let rounded = 0;
    for (const k of Object.keys(a)) {
      const want = a[k].dataSync().map(nearestBf16), got = b[k].dataSync();
      want.forEach((w, i) => assert.equal(got[i], w, `${k}[${i}]`));
      rounded += a[k].dataSync().filter((v, i) => v !== want[i]).length;
    }
    assert.ok(rounded > 0, 'some values needed rounding');
  });

  it('records the loaded family and the prediction trained, and refuses v2 on an SD 1.x model', async () => {
    const eps = (await loadSafetensors((await train(cfg({}), { log: () => {} })).finalPath!)).metadata;
    assert.equal(eps.ss_v2, 'False');
    assert.equal(eps.ss_base_model_version, 'sd_v1');
    assert.equal(eps['modelspec.architecture'], 'stable-diffusion-v1/lora');
    assert.equal(eps['modelspec.prediction_type'], 'epsilon');
    const v = (await loadSafetensors((await train(cfg({ v_parameterization: true }), { log: () => {} })).finalPath!)).metadata;
    assert.equal(v.ss_base_model_version, 'sd_v1_v');
    assert.equal(v['modelspec.prediction_type'], 'v');
    await assert.rejects(train(cfg({ v2: true }), { log: () => {} }), /v2 is set, but .* is an SD 1\.x model \(CLIP ViT-L text encoder, hidden size 32\); v2 means an SD 2\.x base/);
  });
});

describe('v2 / v_parameterization against the family loaded', () => {
  // The check reads only the family, the prediction and the text encoder's width.
  const model = (family: ModelFamily, prediction: Prediction, hidden: number) => ({ family, prediction, source: 'm.safetensors', textEncoder: { config: { hidden_size: hidden } } }) as unknown as Parameters<typeof checkBaseModel>[1];

  it('accepts v2 on SD 2.x only, notes SD 2.x without v2, warns when a v model trains epsilon', () => {
    const logs: string[] = [];
    const log = (m: string) => logs.push(m);
    checkBaseModel({ v2: true, v_parameterization: true }, model(SD2, 'v_prediction', 1024), log);
    assert.deepEqual(logs, []);
    assert.throws(() => checkBaseModel({ v2: true, v_parameterization: false }, model(SD1, 'epsilon', 768), log), /m\.safetensors is an SD 1\.x model \(CLIP ViT-L text encoder, hidden size 768\)/);
    assert.throws(() => checkBaseModel({ v2: true, v_parameterization: false }, model(SDXL, 'epsilon', 768), log), /is an SDXL model/);
    checkBaseModel({ v2: false, v_parameterization: false }, model(SD2, 'v_prediction', 1024), log);
    assert.match(logs[0], /is an SD 2\.x model \(OpenCLIP text encoder, hidden size 1024\)/);
    assert.match(logs[1], /predicts v \(v_prediction\) but v_parameterization is off/);
  });
});

describe('ss_* values as Python str() prints them', () => {
  it('floats in repr form (exponent below 1e-4, two exponent digits), whole numbers as ints, None and booleans', async () => {
    const { py } = await import('../../src/train/metadata.js');
    // Expected strings are Python 3's str() of the same values.
    const cases: [unknown, string][] = [
      [1e-4, '0.0001'], [5e-5, '5e-05'], [2e-6, '2e-06'], [1.5e-5, '1.5e-05'], [1e-7, '1e-07'], [3e-4, '0.0003'],
      [0.1, '0.1'], [0.05, '0.05'], [0.0357, '0.0357'], [1, '1'], [64, '64'],
      [undefined, 'None'], [null, 'None'], [true, 'True'], [false, 'False'], ['networks.lora', 'networks.lora'],
    ];
    for (const [v, want] of cases) assert.equal(py(v), want, `str(${String(v)})`);
  });

  it('a run with learning_rate 5e-5 and noise_offset 0.0357 writes them as sd-scripts does', async () => {
    const meta = (await loadSafetensors((await train(cfg({ learning_rate: 5e-5, noise_offset: 0.0357 }), { log: () => {} })).finalPath!)).metadata;
    assert.equal(meta.ss_learning_rate, '5e-05');
    assert.equal(meta.ss_noise_offset, '0.0357');
  });
});
