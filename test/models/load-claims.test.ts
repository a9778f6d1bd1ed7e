// README claims about weights in memory: a BF16 single-file checkpoint is widened to f32 on load
// (values: the bfloat16 ones exactly), and SDXL training under mixed_precision fp16 keeps the VAE
// in f32 (sd-scripts' no_half_vae) while the frozen UNet is stored in f16.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { SDXL } from '../../src/families/index.js';
import { SafetensorsFile, saveSafetensors } from '../../src/io/safetensors.js';
import { loadStateDict } from '../../src/models/loader.js';
import { type SDModel, loadSDModel } from '../../src/models/sd-model.js';
import type { Weights } from '../../src/models/weights.js';
import { resolveConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { goldenCase, requireFile } from '../helpers/golden.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';
import { tinySdxlFolder } from '../helpers/tiny-sdxl.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-load-claims-'));

/** float32 -> bfloat16 -> float32 with round-to-nearest-even (what a BF16 file holds). */
function bf16Round(x: Float32Array): Float32Array {
  const bits = new Uint32Array(Float32Array.from(x).buffer);
  for (let i = 0; i < bits.length; i++) bits[i] = ((bits[i] + 0x7fff + ((bits[i] >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(bits.buffer);
}

const componentWeights = (m: SDModel): [string, Weights][] => [['unet', m.unet.weights], ['vae', m.vae.weights], ...m.textEncoders.map((t, i) => [`te${i}`, t.weights] as [string, Weights])];

describe('load and precision claims', () => {
  before(() => E.initCpuBackend());

  it('widens a BF16 single-file checkpoint to f32 on load, each value the bfloat16 of the original', async () => {
    const all: [string, E.Tensor][] = [];
    for (const f of [requireFile(goldenCase('sd1-unet', 'unet_ldm.safetensors'), 'unet_ldm.safetensors'), requireFile(goldenCase('vae'), 'vae_ldm.safetensors'), requireFile(goldenCase('sd1-text'), 'text_encoder_ldm.safetensors')]) {
      all.push(...(await loadStateDict(f)).entries());
    }
    const f32 = path.join(tmp, 'tiny-f32.safetensors'), bf16 = path.join(tmp, 'tiny-bf16.safetensors');
    await saveSafetensors(f32, all);
    await saveSafetensors(bf16, all, {}, 'BF16');
    // The file really holds BF16 tensors.
    const file = await SafetensorsFile.open(bf16);
    try { assert.ok([...file.entries.values()].every((e) => e.dtype === 'BF16')); } finally { await file.close(); }
    const configDir = await tinyModelFolder();
    const ref = await loadSDModel(f32, { configDir }), got = await loadSDModel(bf16, { configDir });
    const refParts = componentWeights(ref);
    let n = 0, differ = 0;
    for (const [i, [what, w]] of componentWeights(got).entries()) {
      const r = refParts[i][1];
      assert.deepEqual([...w.tensors.keys()].sort(), [...r.tensors.keys()].sort(), what);
      for (const [k, t] of w.tensors) {
        assert.equal(t.dtype, 'f32', `${what} ${k}`);
        const orig = r.tensors.get(k)!.dataSync() as Float32Array;
        const want = bf16Round(orig);
        assert.deepEqual(t.dataSync(), want, `${what} ${k}`);
        n++;
        if (want.some((v, j) => v !== orig[j])) differ++;
      }
    }
    assert.ok(n > 100 && differ > n / 2, `${n} tensors, ${differ} changed by the bfloat16 rounding`);
  });

  it('SDXL training with mixed_precision fp16 keeps the VAE in f32 (no_half_vae) and stores the frozen UNet in f16', async () => {
    const model = await tinySdxlFolder();
    const vaeCfg = path.join(model, 'vae', 'config.json');
    writeFileSync(vaeCfg, JSON.stringify({ ...JSON.parse(readFileSync(vaeCfg, 'utf8')), scaling_factor: SDXL.vae.scalingFactor }));
    const data = path.join(tmp, 'data');
    writeShapeDataset(data, { name: 'sks star', repeats: 1, count: 1, size: 32, shapes: ['star'], seed: 2 });
    const logs: string[] = [];
    const cfg = resolveConfig([{ source: 'test', values: {
      pretrained_model_name_or_path: model, train_data_dir: data, caption_extension: '.txt', resolution: 32, output_dir: path.join(tmp, 'out'),
      max_train_steps: 1, network_dim: 2, network_alpha: 1, network_train_unet_only: true, mixed_precision: 'fp16', cache_latents: true, seed: 1,
    } }]);
    const r = await train(cfg, { log: (m) => logs.push(m) });
    assert.equal(r.model.family, SDXL);
    assert.equal(r.steps, 1);
    const dtypes = (w: Weights) => new Set([...w.tensors.values()].map((t) => t.dtype));
    assert.deepEqual(dtypes(r.model.vae.weights), new Set(['f32']), 'the VAE that encoded the latents is f32');
    assert.ok(dtypes(r.model.unet.weights).has('f16'), 'the frozen UNet weights are stored in f16');
    for (const te of r.model.textEncoders) assert.ok(dtypes(te.weights).has('f16'));
  });
});
