// Textual Inversion and DreamBooth on the webgpu backend: the trained tensors follow the model to the
// device (the TI vectors stay the text encoder's extra rows), and the run matches the cpu one.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { runTraining } from '../../src/train/run-training.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { trainFixture } from '../helpers/train-setup.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

const fx = trainFixture('sdlora-webgpu-methods-', {
  dataset: { name: 'ring', repeats: 1, count: 4, size: 32, shapes: ['circle'], seed: 2 },
  defaults: { caption_extension: '.txt', resolution: 32, train_batch_size: 2, max_train_steps: 2, optimizer_type: 'SGDNesterov', seed: 5 },
});
const { tmp, cfg } = fx;

async function compare(v: Record<string, unknown>, rtol: number): Promise<void> {
  const cpu = await runTraining(cfg({ ...v, output_dir: path.join(tmp, `${v.training_method}-cpu`) }), { log: () => {} });
  const gpu = await runTraining(cfg({ ...v, output_dir: path.join(tmp, `${v.training_method}-gpu`), device: 'webgpu' }), { log: () => {} });
  const a = (await loadSafetensors(cpu.finalPath!)).tensors, b = (await loadSafetensors(gpu.finalPath!)).tensors;
  for (const k of Object.keys(a)) {
    const scale = Math.max(1e-3, ...Array.from(a[k].dataSync(), Math.abs));
    assert.ok(maxAbsDiff(a[k].dataSync(), b[k].dataSync()) <= rtol * scale, `${k} differs`);
  }
}

describe('textual inversion and dreambooth on webgpu', () => {
  before(fx.setup);

  it('textual inversion matches the cpu run, and the vectors moved', async (t) => {
    if (!(await webgpuOrSkip(t))) return;
    const v = { training_method: 'textual_inversion', token_string: 'zqx', init_word: 'ring', num_vectors_per_token: 2, learning_rate: 0.5, use_style_template: true };
    await compare(v, 1e-4);
    const zero = await runTraining(cfg({ ...v, learning_rate: 0, output_dir: path.join(tmp, 'ti-zero'), device: 'webgpu' }), { log: () => {} });
    const init = (await loadSafetensors(zero.finalPath!)).tensors.emb_params.dataSync();
    const trained = (await loadSafetensors(path.join(tmp, 'textual_inversion-gpu', 'zqx.safetensors'))).tensors.emb_params.dataSync();
    assert.ok(maxAbsDiff(init, trained) > 1e-4, 'the vectors trained on the device');
  });

  it('dreambooth matches the cpu run', async (t) => {
    if (!(await webgpuOrSkip(t))) return;
    await compare({ training_method: 'dreambooth', learning_rate: 1e-2 }, 1e-3);
  });
});
