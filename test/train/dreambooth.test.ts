// DreamBooth / fine-tuning (training_method dreambooth): the UNet and (until stop_text_encoder_training)
// the text encoder train, the VAE and a frozen text encoder stay bit-identical, the LDM single file and
// the diffusers folder load back and reproduce the trained model's outputs, resume is exact, and
// lora extract of the result against its base works.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { SafetensorsFile, loadSafetensors } from '../../src/io/safetensors.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { type SDModel, loadSDModel } from '../../src/models/sd-model.js';
import type { Weights } from '../../src/models/weights.js';
import { resolveConfig } from '../../src/train/config.js';
import { trainDreamBooth } from '../../src/train/dreambooth.js';
import { estimateMethod } from '../../src/estimate/method-estimate.js';
import { findDevice } from '../../src/estimate/gpus.js';
import { SD15_UNET_CONFIG } from '../../src/models/sd15-configs.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-db-'));
const dataDir = path.join(tmp, 'train'), regDir = path.join(tmp, 'reg');
let model: string;
let base: SDModel;
const quiet = () => {};
const cfg = (v: Record<string, unknown>) => resolveConfig([{ source: 'test', values: {
  training_method: 'dreambooth', pretrained_model_name_or_path: model, train_data_dir: dataDir, reg_data_dir: regDir, caption_extension: '.txt',
  resolution: 32, train_batch_size: 2, max_train_steps: 4, learning_rate: 1e-3, seed: 5, ...v,
} }]);
const same = (a: Weights, b: Weights, what: string) => { for (const [k, t] of a.tensors) assert.deepEqual(b.get(k).dataSync(), t.to('f32').dataSync(), `${what} ${k}`); };
const differs = (a: Weights, b: Weights) => [...a.tensors].some(([k, t]) => b.get(k).dataSync().some((x, i) => x !== t.dataSync()[i]));
/** The UNet's prediction on fixed inputs (what the loaded file must reproduce). */
const unetOut = (m: SDModel) => E.noGrad(() => {
  const r = new E.Rng(1);
  const x = E.randn([1, 4, 4, 4], r), ctx = E.randn([1, 77, m.unet.config.cross_attention_dim], r);
  return m.unet.forward(x, E.tensor([500], [1]), ctx).dataSync();
});

describe('dreambooth', () => {
  before(async () => {
    await E.initCpuBackend();
    model = await tinyModelFolder();
    base = await loadSDModel(model);
    writeShapeDataset(dataDir, { name: 'sks star', repeats: 2, count: 2, size: 32, shapes: ['star'], seed: 1 });
    writeShapeDataset(regDir, { name: 'star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 2 });
  });

  it('trains the UNet and the text encoder until stop_text_encoder_training, writes an LDM checkpoint that loads back', async () => {
    const out = path.join(tmp, 'run');
    const r = await trainDreamBooth(cfg({ output_dir: out, stop_text_encoder_training: 2, save_every_n_steps: 2, prior_loss_weight: 0.5 }), { log: quiet });
    assert.equal(r.steps, 4);
    assert.equal(r.data.numRegImages, 2);
    assert.equal(r.finalPath, path.join(out, 'last.safetensors'));
    const f = await SafetensorsFile.open(r.finalPath!);
    const keys = [...f.keys()], meta = f.metadata;
    await f.close();
    assert.ok(keys.includes('model.diffusion_model.input_blocks.0.0.weight') && keys.includes('model.diffusion_model.out.2.weight'));
    assert.ok(keys.some((k) => k.startsWith('first_stage_model.encoder.down.0.block.0.')));
    assert.ok(keys.includes('cond_stage_model.transformer.text_model.embeddings.token_embedding.weight'));
    assert.equal(meta['modelspec.architecture'], 'stable-diffusion-v1');
    assert.equal(meta['modelspec.implementation'], 'https://github.com/Stability-AI/generative-models');
    assert.ok(!Object.keys(meta).some((k) => k.startsWith('ss_')));
    const loaded = await loadSDModel(r.finalPath!, { configDir: model });
    same(r.model.unet.weights, loaded.unet.weights, 'unet');
    same(r.model.textEncoder.weights, loaded.textEncoder.weights, 'te');
    same(base.vae.weights, loaded.vae.weights, 'the VAE never trains:');
    assert.deepEqual(unetOut(loaded), unetOut(r.model));
    assert.ok(differs(base.unet.weights, loaded.unet.weights), 'the UNet trained');
    assert.ok(differs(base.textEncoder.weights, loaded.textEncoder.weights), 'the text encoder trained');
    // After step 2 the text encoder stops: the final one is the step-2 one.
    const step2 = await loadSDModel(path.join(out, 'last-step00000002.safetensors'), { configDir: model });
    same(step2.textEncoder.weights, loaded.textEncoder.weights, 'te after stop_text_encoder_training');
    assert.ok(differs(step2.unet.weights, loaded.unet.weights), 'the UNet kept training');
  });

  it('keeps a frozen text encoder bit-identical, f32 master weights under mixed precision, a diffusers folder at save_precision fp16', async () => {
    const r = await trainDreamBooth(cfg({ output_dir: path.join(tmp, 'diff'), train_text_encoder: false, mixed_precision: 'fp16', save_model_as: 'diffusers', save_precision: 'fp16', max_train_steps: 2 }), { log: quiet });
    assert.equal(r.finalPath, path.join(tmp, 'diff', 'last'));
    assert.ok([...r.model.unet.weights.tensors.values()].every((t) => t.dtype === 'f32'), 'trained weights stay f32');
    assert.ok([...r.model.textEncoder.weights.tensors.values()].every((t) => t.dtype === 'f16'), 'the frozen text encoder is stored in f16');
    const uf = await SafetensorsFile.open(path.join(r.finalPath!, 'unet', 'diffusion_pytorch_model.safetensors'));
    assert.ok([...uf.entries.values()].every((e) => e.dtype === 'F16'), 'save_precision fp16');
    await uf.close();
    const loaded = await loadSDModel(r.finalPath!);
    for (const [k, t] of r.model.unet.weights.tensors) assert.deepEqual(loaded.unet.weights.get(k).dataSync(), t.to('f16').to('f32').dataSync(), k);
    for (const [k, t] of base.textEncoder.weights.tensors) assert.deepEqual(loaded.textEncoder.weights.get(k).dataSync(), t.to('f16').to('f32').dataSync(), `frozen te ${k} (f16 storage)`);
    assert.ok(existsSync(path.join(r.finalPath!, 'tokenizer', 'vocab.json')) && existsSync(path.join(r.finalPath!, 'model_index.json')));
  });

  it('keeps a frozen text encoder bit-identical (train_text_encoder false)', async () => {
    const r = await trainDreamBooth(cfg({ output_dir: path.join(tmp, 'frozen'), train_text_encoder: false, max_train_steps: 1 }), { log: quiet });
    const loaded = await loadSDModel(r.finalPath!, { configDir: model });
    same(base.textEncoder.weights, loaded.textEncoder.weights, 'frozen te');
    assert.ok(differs(base.unet.weights, loaded.unet.weights));
  });

  it('resumes exactly (AdamW8bit, gradient checkpointing)', async () => {
    const o = { optimizer_type: 'AdamW8bit', gradient_checkpointing: true, lr_scheduler: 'cosine', stop_text_encoder_training: 3 };
    const a = await trainDreamBooth(cfg({ output_dir: path.join(tmp, 'a'), ...o }), { log: quiet });
    const outB = path.join(tmp, 'b');
    await trainDreamBooth(cfg({ output_dir: outB, save_state: true, ...o }), { log: quiet, stopAfterSteps: 2 });
    const b = await trainDreamBooth(cfg({ output_dir: outB, save_state: true, resume: path.join(outB, 'last-state'), ...o }), { log: quiet });
    assert.equal(b.steps, 4);
    assert.deepEqual(b.losses.map((l) => l.loss), a.losses.map((l) => l.loss));
    const ta = (await loadSafetensors(a.finalPath!)).tensors, tb = (await loadSafetensors(b.finalPath!)).tensors;
    for (const k of Object.keys(ta)) assert.deepEqual(tb[k].dataSync(), ta[k].dataSync(), k);
  });

  it('runs from the CLI on the bundled tiny model, and lora extract of the result against its base gives a LoRA', () => {
    const root = path.resolve(import.meta.dirname, '../..');
    const cli = (...args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const out = path.join(tmp, 'cli');
    cli('train', '--training_method', 'dreambooth', '--pretrained_model_name_or_path', 'tiny', '--train_data_dir', dataDir, '--reg_data_dir', regDir,
      '--caption_extension', '.txt', '--resolution', '32', '--max_train_steps', '2', '--learning_rate', '1e-3', '--seed', '1', '--output_dir', out, '--output_name', 'db');
    const tuned = path.join(out, 'db.safetensors');
    assert.ok(existsSync(tuned));
    const lora = path.join(tmp, 'extracted.safetensors');
    const tinyDir = path.join(root, 'assets', 'tiny-sd');
    const msg = cli('lora', 'extract', '--base', tinyDir, '--tuned', tuned, '--config-dir', tinyDir, '--dim', '2', '--min-diff', '0', '--out', lora);
    assert.match(msg, /modules \(text encoder included\)/);
    return loadLoRA(lora).then((f) => {
      assert.ok(f.modules.size > 0);
      assert.ok([...f.modules.keys()].some((k) => k.startsWith('lora_unet_')) && [...f.modules.keys()].some((k) => k.startsWith('lora_te_')));
      assert.ok([...f.modules.values()].some((m) => m.up.dataSync().some((v) => v !== 0)));
    });
  });

  it('is covered by the estimator: SD 1.5 full AdamW holds about 14 GB of weights, gradients and optimizer state before activations', () => {
    const i = { unet: parseUNetConfig(SD15_UNET_CONFIG), textEncoderParams: 123e6, vaeParams: 83.65e6, textEncoderLayers: 12, textHidden: 768, resolution: [512, 512] as [number, number], batch: 1, rank: 32, mixedPrecision: true, gradientCheckpointing: true, cacheLatents: true, trainTextEncoder: true, optimizer: 'AdamW', steps: 1000, naiveAttention: false };
    const d = findDevice('rtx-5080');
    const full = estimateMethod('dreambooth', i, d);
    const state = full.breakdown.weightsGB + full.breakdown.gradientsAndOptimizerGB;
    assert.ok(state > 13.5 && state < 15.5, `${state} GB`);
    assert.equal(full.fits, false, 'does not fit 16 GB with AdamW');
    assert.ok(estimateMethod('dreambooth', i, findDevice('rtx-5090')).fits);
    const eight = estimateMethod('dreambooth', { ...i, optimizer: 'AdamW8bit' }, d);
    assert.ok(eight.fits && eight.vramGB < full.vramGB - 5, 'AdamW8bit saves 6 B per trained value');
    assert.ok(estimateMethod('dreambooth', { ...i, trainTextEncoder: false }, d).vramGB < full.vramGB);
    assert.ok(estimateMethod('lora', i, d).vramGB < eight.vramGB);
    const conf = path.join(tmp, 'db.json');
    writeFileSync(conf, JSON.stringify({ training_method: 'dreambooth', pretrained_model_name_or_path: 'sd15', train_data_dir: '.', mixed_precision: 'fp16', gradient_checkpointing: true }));
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'estimate', '--config', conf, '--gpu', 'rtx-5080,rtx-5090'], { cwd: path.resolve(import.meta.dirname, '../..'), encoding: 'utf8' });
    assert.match(out, /^SD1 \(.*\), dreambooth, batch 1, fp16, gradient checkpointing on, AdamW/m);
    assert.match(out, /\| RTX 5080 \| 512x512 \| [\d.]+ - [\d.]+ \| NO \|/);
    assert.match(out, /\| RTX 5090 \| 512x512 \| [\d.]+ - [\d.]+ \| yes \|/);
    assert.match(out, /dreambooth: every UNet weight/);
  });
});
