// Training on the webgpu backend: the same run as on cpu (loss and LoRA within float rounding),
// and the options that touch device memory (f16 weights, checkpointing, LoCon, cached latents,
// samples, resume state) working there.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { train } from '../../src/train/trainer.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { TINY_LORA, trainFixture } from '../helpers/train-setup.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

const fx = trainFixture('sdlora-webgpu-train-', {
  dataset: { name: 'ring', repeats: 1, count: 4, size: 32, shapes: ['circle'], seed: 2 },
  defaults: { ...TINY_LORA, max_train_steps: 2, learning_rate: 0.5, optimizer_type: 'SGDNesterov', seed: 5 },
  dataSub: 'data/train',
});
const { tmp, cfg } = fx;
const quiet = () => {};

describe('training on webgpu', () => {
  before(fx.setup);

  it('matches the cpu run: losses and the saved LoRA (gradient checkpointing on the GPU side)', async (t) => {
    if (!(await webgpuOrSkip(t))) return;
    const cpu = await train(cfg({ output_dir: path.join(tmp, 'cpu') }), { log: quiet });
    const gpu = await train(cfg({ output_dir: path.join(tmp, 'gpu'), device: 'webgpu', gradient_checkpointing: true }), { log: quiet });
    assert.equal(gpu.losses.length, 2);
    gpu.losses.forEach((l, i) => assert.ok(Math.abs(l.loss - cpu.losses[i].loss) <= 1e-4 * Math.abs(cpu.losses[i].loss), `step ${i + 1}: ${l.loss} vs ${cpu.losses[i].loss}`));
    const a = (await loadSafetensors(cpu.finalPath!)).tensors, b = (await loadSafetensors(gpu.finalPath!)).tensors;
    assert.deepEqual(Object.keys(b), Object.keys(a));
    let moved = 0;
    for (const k of Object.keys(a)) {
      const scale = Math.max(1e-3, ...Array.from(a[k].dataSync(), Math.abs));
      assert.ok(maxAbsDiff(a[k].dataSync(), b[k].dataSync()) <= 1e-4 * scale, `${k} differs`);
      if (k.includes('lora_up')) moved = Math.max(moved, ...Array.from(b[k].dataSync(), Math.abs));
    }
    assert.ok(moved > 0, 'lora_up moved from zero on webgpu');
  });

  it('resumes exactly from a saved state on webgpu (disk latent cache too)', async (t) => {
    if (!(await webgpuOrSkip(t))) return;
    const opts = { device: 'webgpu', optimizer_type: 'AdamW8bit', learning_rate: 1e-3, max_train_steps: 3, cache_latents: true, cache_latents_to_disk: true, seed: 8 };
    const whole = await train(cfg({ ...opts, output_dir: path.join(tmp, 'whole') }), { log: quiet });
    const out = path.join(tmp, 'parts');
    const first = await train(cfg({ ...opts, output_dir: out, save_state: true }), { log: quiet, stopAfterSteps: 1 });
    assert.equal(first.finalPath, null);
    const rest = await train(cfg({ ...opts, output_dir: out, save_state: true, resume: path.join(out, 'last-state') }), { log: quiet });
    assert.equal(rest.steps, 3);
    assert.deepEqual(rest.losses.map((l) => l.loss), whole.losses.map((l) => l.loss));
    const a = (await loadSafetensors(whole.finalPath!)).tensors, b = (await loadSafetensors(rest.finalPath!)).tensors;
    for (const k of Object.keys(a)) assert.deepEqual(b[k].dataSync(), a[k].dataSync(), k);
  });

  it('runs f16 weights, checkpointing, LoCon, cached latents, samples and state saving', async (t) => {
    if (!(await webgpuOrSkip(t))) return;
    const prompts = path.join(tmp, 'prompts.txt');
    writeFileSync(prompts, 'a ring --w 32 --h 32 --d 3 --s 2\n');
    const r = await train(cfg({
      output_dir: path.join(tmp, 'gpu2'), device: 'webgpu', mixed_precision: 'fp16', gradient_checkpointing: true, cache_latents: true,
      network_args: ['conv_dim=2', 'conv_alpha=1'], optimizer_type: 'AdamW8bit', learning_rate: 1e-3, sample_prompts: prompts,
      sample_every_n_steps: 2, save_state: true, scale_weight_norms: 1, max_grad_norm: 1,
    }), { log: quiet });
    assert.equal(r.steps, 2);
    assert.ok(r.losses.every((l) => Number.isFinite(l.loss)));
    assert.equal(r.samples.length, 1);
    const lora = (await loadSafetensors(r.finalPath!)).tensors;
    assert.ok(Object.keys(lora).some((k) => /resnets_0_conv1\.lora_down/.test(k)), 'LoCon conv modules saved');
    assert.ok(Object.values(lora).every((x) => Array.from(x.dataSync()).every(Number.isFinite)));
  });
});
