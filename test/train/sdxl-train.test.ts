// SDXL LoRA training end to end on a tiny SDXL diffusers folder built from the golden SDXL UNet
// and text encoders (and the tiny VAE with SDXL's latent scale): the command line writes a LoRA
// whose key set is sd-scripts' for that model (lora_modules.txt) and whose metadata names SDXL as
// sd-scripts does; time ids come from each image's bucket; cache_text_encoder_outputs(_to_disk)
// with network_train_unet_only; SDXL txt2img with several LoRAs and A1111 infotext.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { SDXL } from '../../src/families/index.js';
import { decodePng } from '../../src/io/png.js';
import { txt2img } from '../../src/infer/txt2img.js';
import { LoRALibrary } from '../../src/lora/library.js';
import { type LoRAFile, loadLoRA } from '../../src/lora/lora-file.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import { type AddedConditioning, UNet2DConditionModel } from '../../src/models/unet.js';
import { resolveConfig } from '../../src/train/config.js';
import { cropLtrb, imageSizeConditioning } from '../../src/train/size-conditioning.js';
import { textCachePath } from '../../src/train/text-cache.js';
import { train } from '../../src/train/trainer.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, loraModuleNames } from '../helpers/golden.js';
import { loraFiles } from '../helpers/golden-sdxl.js';
import { tinySdxlFolder } from '../helpers/tiny-sdxl.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

const cli = path.resolve('bin/sdlora.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-sdxl-train-'));
const data = path.join(tmp, 'data');
const quiet = () => {};
let model: string;
let golden: LoRAFile;

/** The golden file's network settings (rank, alpha, conv_dim/conv_alpha), so the run matches what sd-scripts made. */
function goldenNetwork(): { dim: number; alpha: number; args: string[] } {
  const md = golden.metadata;
  const args = Object.entries(JSON.parse(md.ss_network_args || '{}') as Record<string, string>).map(([k, v]) => `${k}=${v}`);
  return { dim: Number(md.ss_network_dim), alpha: Number(md.ss_network_alpha), args };
}

const cfg = (v: Record<string, unknown>) => resolveConfig([{ source: 'test', values: {
  pretrained_model_name_or_path: model, train_data_dir: data, caption_extension: '.txt', resolution: 32,
  max_train_steps: 2, learning_rate: 1e-3, network_dim: 2, network_alpha: 1, seed: 5, ...v,
} }]);

describe('SDXL LoRA training', () => {
  before(async () => {
    await E.initCpuBackend();
    model = await tinySdxlFolder();
    // SDXL's VAE config: the tiny VAE with the SDXL latent scale.
    const vaeCfg = path.join(model, 'vae', 'config.json');
    writeFileSync(vaeCfg, JSON.stringify({ ...JSON.parse(readFileSync(vaeCfg, 'utf8')), scaling_factor: SDXL.vae.scalingFactor }));
    writeShapeDataset(data, { name: 'sks star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 2 });
    golden = await loadLoRA(loraFiles(goldenCase('sdxl-lora')).get('a')!);
  });

  it('the command line trains 2 steps and writes sd-scripts\' SDXL key set and metadata', () => {
    const n = goldenNetwork();
    writeFileSync(path.join(tmp, 'xl.toml'), `network_args = ${JSON.stringify(n.args)}\n`);
    const r = spawnSync('node', [cli, 'train', '--config', 'xl.toml', '--pretrained_model_name_or_path', model, '--train_data_dir', 'data',
      '--caption_extension', '.txt', '--resolution', '32', '--max_train_steps', '2', '--network_dim', String(n.dim), '--network_alpha', String(n.alpha),
      '--learning_rate', '1e-3', '--output_dir', 'out', '--output_name', 'xl', '--seed', '4'], { encoding: 'utf8', cwd: tmp });
    assert.equal(r.status, 0, r.stderr);
    const file = path.join(tmp, 'out', 'xl.safetensors');
    assert.ok(existsSync(file), r.stdout);
    return loadLoRA(file).then((f) => {
      assert.deepEqual([...f.modules.keys()].sort(), [...loraModuleNames(goldenCase('sdxl-lora'))].sort(), 'exactly sd-scripts\' modules');
      for (const [name, m] of f.modules) {
        const g = golden.modules.get(name)!;
        assert.deepEqual([...m.down.shape], [...g.down.shape], `${name}: lora_down shape`);
        assert.deepEqual([...m.up.shape], [...g.up.shape], `${name}: lora_up shape`);
        assert.equal(m.alpha, g.alpha, `${name}: alpha`);
      }
      assert.equal(f.metadata.ss_base_model_version, golden.metadata.ss_base_model_version);
      assert.equal(f.metadata['modelspec.architecture'], 'stable-diffusion-xl-v1-base/lora');
      assert.equal(f.metadata['modelspec.implementation'], 'https://github.com/Stability-AI/generative-models');
      assert.equal(f.metadata.ss_v2, 'False');
      assert.equal(f.metadata.ss_network_args, golden.metadata.ss_network_args);
    });
  });

  it('conditions each image on its bucket: original size, sd-scripts\' notional crop, target size', async () => {
    // A wide image in a taller bucket: fitted inside the bucket, it is centred vertically.
    const img = { size: [60, 30] as [number, number], placement: { bucket: [32, 32] as [number, number], resized: [64, 32] as [number, number], arError: 0 } };
    const [l, t, rgt] = cropLtrb(img.placement.bucket, img.size);
    assert.deepEqual([l, t, rgt], [0, Math.floor((32 - 32 * 30 / 60) / 2), 32]);
    assert.deepEqual(imageSizeConditioning(img, false), { originalSize: [30, 60], cropTopLeft: [t, 0], targetSize: [32, 32] });
    const tall = { ...img, size: [30, 60] as [number, number] };
    const tl = cropLtrb(tall.placement.bucket, tall.size);
    assert.deepEqual(imageSizeConditioning(tall, true).cropTopLeft, [0, Math.trunc(32 - tl[2])], 'flipped: the left offset from the right edge');

    // In training: the UNet sees one row per image, from its size and bucket.
    const seen: number[][] = [];
    const forward = UNet2DConditionModel.prototype.forward;
    UNet2DConditionModel.prototype.forward = function (this: UNet2DConditionModel, x, ts, ctx, added?: AddedConditioning) {
      if (added && ts.shape[0] === x.shape[0]) seen.push([...added.timeIds.dataSync()]);
      return forward.call(this, x, ts, ctx, added);
    };
    try {
      const r = await train(cfg({ output_dir: path.join(tmp, 'ids'), train_batch_size: 2, max_train_steps: 1 }), { log: quiet });
      const want = r.data.datasets.flatMap((d) => d.images).map((im) => { const s = imageSizeConditioning(im, false); return [...s.originalSize, ...s.cropTopLeft, ...s.targetSize]; });
      assert.equal(seen.length, 1);
      const rows = [seen[0].slice(0, 6), seen[0].slice(6, 12)];
      assert.deepEqual(rows.map(String).sort(), want.map(String).sort());
    } finally {
      UNet2DConditionModel.prototype.forward = forward;
    }
  });

  it('uses the SDXL resolution default where none is given', async () => {
    // bucket_no_upscale keeps the small test images at their own size in the 1024 px bucket list.
    const c = resolveConfig([{ source: 'test', values: { pretrained_model_name_or_path: model, train_data_dir: data, caption_extension: '.txt', max_train_steps: 1, enable_bucket: true, bucket_no_upscale: true, output_dir: path.join(tmp, 'defaults') } }]);
    const logs: string[] = [];
    const r = await train(c, { log: (m) => logs.push(m) });
    const md = (await loadLoRA(r.finalPath!)).metadata;
    const d = SDXL.defaults('epsilon');
    assert.deepEqual(c.resolution, [d.resolution, d.resolution]);
    assert.equal(c.bucket_reso_steps, d.bucketResoSteps);
    assert.ok(logs.some((m) => m.includes(`resolution ${d.resolution}`)), logs.join('\n'));
    assert.equal(md['modelspec.resolution'], `${d.resolution}x${d.resolution}`);
    assert.equal(md.ss_resolution, `(${d.resolution}, ${d.resolution})`);
  });

  it('samples SDXL images during training, with A1111 infotext', async () => {
    const prompts = path.join(tmp, 'prompts.txt');
    writeFileSync(prompts, 'a sks star --w 64 --h 64 --s 2 --d 1\n');
    const r = await train(cfg({ output_dir: path.join(tmp, 'samples'), max_train_steps: 1, sample_prompts: prompts, sample_every_n_steps: 1 }), { log: quiet });
    assert.equal(r.samples.length, 1);
    const png = decodePng(readFileSync(r.samples[0]));
    assert.deepEqual([png.width, png.height], [64, 64]);
    assert.match(png.text.parameters, /^a sks star\nSteps: 2, .*Seed: 1, Size: 64x64/);
  });

  it('cache_text_encoder_outputs(_to_disk) with network_train_unet_only trains the same LoRA as encoding every step', async () => {
    const plain = await train(cfg({ output_dir: path.join(tmp, 'nocache'), network_train_unet_only: true }), { log: quiet });
    const logs: string[] = [];
    const cached = await train(cfg({ output_dir: path.join(tmp, 'cache'), network_train_unet_only: true, cache_text_encoder_outputs_to_disk: true }), { log: (m) => logs.push(m) });
    assert.ok(logs.some((m) => /caching text encoder outputs/.test(m)));
    const images = cached.data.datasets.flatMap((d) => d.images);
    for (const img of images) assert.ok(existsSync(textCachePath(img.path)), `${textCachePath(img.path)} written`);
    const [a, b] = await Promise.all([loadLoRA(plain.finalPath!), loadLoRA(cached.finalPath!)]);
    assert.ok([...a.modules.keys()].every((k) => k.startsWith('lora_unet_')), 'unet only');
    assert.deepEqual([...a.modules.keys()].sort(), [...b.modules.keys()].sort());
    for (const [k, m] of a.modules) assert.ok(maxAbsDiff(m.up.dataSync(), b.modules.get(k)!.up.dataSync()) <= 1e-6, `${k}: same update`);
    // A second run reads the disk cache.
    const again = await train(cfg({ output_dir: path.join(tmp, 'cache2'), network_train_unet_only: true, cache_text_encoder_outputs_to_disk: true }), { log: quiet });
    const c = await loadLoRA(again.finalPath!);
    for (const [k, m] of a.modules) assert.ok(maxAbsDiff(m.up.dataSync(), c.modules.get(k)!.up.dataSync()) <= 1e-6, `${k}: same update from the disk cache`);
  });

  it('refuses cached text encoder outputs with a text-encoder LoRA or changing captions', async () => {
    await assert.rejects(train(cfg({ output_dir: path.join(tmp, 'bad1'), cache_text_encoder_outputs: true }), { log: quiet }), /needs "network_train_unet_only"/);
    await assert.rejects(train(cfg({ output_dir: path.join(tmp, 'bad2'), cache_text_encoder_outputs: true, network_train_unet_only: true, shuffle_caption: true }), { log: quiet }), /"shuffle_caption"/);
    await assert.rejects(train(cfg({ output_dir: path.join(tmp, 'bad3'), clip_skip: 2 }), { log: quiet }), /SDXL has no clip skip/);
  });

  it('txt2img on SDXL with several LoRAs at once and A1111 infotext', async () => {
    const lib = path.join(tmp, 'loras');
    for (const [name, seed] of [['one', 6], ['two', 7]] as const) await train(cfg({ output_dir: lib, output_name: name, seed, learning_rate: 1e-2 }), { log: quiet });
    const m = await loadSDModel(model);
    assert.equal(m.family.id, 'sdxl');
    const library = await LoRALibrary.scan(lib);
    const o = { prompt: 'a star', width: 32, height: 32, steps: 2, seed: 9 };
    const base = await txt2img(m, o);
    const one = await txt2img(m, { ...o, prompt: 'a star <lora:one:1>' }, library);
    const both = await txt2img(m, { ...o, prompt: 'a star <lora:one:1> <lora:two:0.5>' }, library);
    assert.ok(maxAbsDiff(base.rgb, one.rgb) > 0 && maxAbsDiff(one.rgb, both.rgb) > 0, 'each LoRA changes the image');
    assert.match(both.infotext, /^a star <lora:one:1> <lora:two:0.5>\nSteps: 2, .*Size: 32x32/);
    assert.deepEqual([...m.unet.weights.adapters.keys(), ...m.textEncoders.flatMap((t) => [...t.weights.adapters.keys()])], [], 'LoRAs removed after the image');
    assert.ok(library.entries.every((e) => /^sdxl/.test(e.summary.family)), library.entries.map((e) => e.summary.family).join());
    assert.ok(readdirSync(lib).length >= 2);
  });

  it('trains the same SDXL LoRA on webgpu (with cached text encoder outputs)', async (t) => {
    if (!(await webgpuOrSkip(t))) return;
    const o = { network_train_unet_only: true, cache_text_encoder_outputs: true };
    const cpu = await train(cfg({ ...o, output_dir: path.join(tmp, 'gpu-ref') }), { log: quiet });
    const gpu = await train(cfg({ ...o, output_dir: path.join(tmp, 'gpu'), device: 'webgpu' }), { log: quiet });
    cpu.losses.forEach((l, i) => assert.ok(Math.abs(l.loss - gpu.losses[i].loss) <= 1e-4 * l.loss, `step ${l.step}: ${l.loss} vs ${gpu.losses[i].loss}`));
    const [a, b] = await Promise.all([loadLoRA(cpu.finalPath!), loadLoRA(gpu.finalPath!)]);
    for (const [k, m] of a.modules) assert.ok(maxAbsDiff(m.up.dataSync(), b.modules.get(k)!.up.dataSync()) <= 1e-4, k);
  });
});
