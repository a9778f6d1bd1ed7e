// The `vae` option (training) and an external VAE in txt2img: every file layout loads the same
// weights, and the VAE given is the one that encodes the training latents and decodes the images.
// VAEs are made from the golden tiny VAE: one perturbed by a rule that depends only on each value
// (so its LDM and diffusers files hold the same VAE), and "constant" ones whose latents or images
// are known in closed form.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { txt2img } from '../../src/infer/txt2img.js';
import { externalVaeSource, loadExternalVae } from '../../src/models/external-vae.js';
import { loadStateDict, readJson } from '../../src/models/loader.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import { AutoencoderKL, parseVAEConfig } from '../../src/models/vae.js';
import { Weights } from '../../src/models/weights.js';
import { resolveConfig } from '../../src/train/config.js';
import { type MicroBatchTrace, train } from '../../src/train/trainer.js';
import { goldenCase } from '../helpers/golden.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-vae-'));
const quiet = () => {};
let model: string;
let vaeDir: string;
const files: Record<string, string> = {};
/** Per-channel latent means the "constant-latent" VAE gives for any image. */
const LATENT = [0.7, -1.2, 0.3, 2.1];
/** Per-channel decoder outputs (in [-1, 1]) of the "constant-image" VAE. */
const PIXEL = [0.5, -0.5, 0.1];

type Sd = Map<string, E.Tensor>;
const mapValues = (sd: Sd, f: (v: number) => number): Sd => new Map([...sd].map(([k, t]) => [k, E.tensor(Float32Array.from(t.dataSync(), f), [...t.shape])]));
/** A perturbation that depends only on the value, so it is the same whatever the tensor is called. */
const perturb = (v: number) => v * 1.05 + 0.01 * Math.sin(1e4 * v);
const record = (sd: Sd, prefix = '') => Object.fromEntries([...sd].map(([k, t]) => [prefix + k, t]));

/** quant_conv outputs its bias: mean LATENT, logvar -30 (std e^-15), whatever the encoder gives. */
function constantLatents(sd: Sd): Sd {
  const out = new Map(sd), w = sd.get('quant_conv.weight')!;
  out.set('quant_conv.weight', E.zeros([...w.shape]));
  out.set('quant_conv.bias', E.tensor([...LATENT, -30, -30, -30, -30], [8]));
  return out;
}

/** decoder.conv_out outputs its bias: a flat image. */
function constantImage(sd: Sd): Sd {
  const out = new Map(sd), w = sd.get('decoder.conv_out.weight')!;
  out.set('decoder.conv_out.weight', E.zeros([...w.shape]));
  out.set('decoder.conv_out.bias', E.tensor(PIXEL, [3]));
  return out;
}

describe('external VAE', () => {
  before(async () => {
    await E.initCpuBackend();
    model = await tinyModelFolder();
    vaeDir = goldenCase('vae');
    const diffusers = await loadStateDict(path.join(vaeDir, 'vae.safetensors'));
    // The golden LDM file is a checkpoint's VAE part (first_stage_model.*): bare names without it.
    const ldm: Sd = new Map([...await loadStateDict(path.join(vaeDir, 'vae_ldm.safetensors'))].map(([k, t]) => [k.replace(/^first_stage_model\./, ''), t]));
    files.diffusers = path.join(tmp, 'vae-diffusers.safetensors');
    await saveSafetensors(files.diffusers, record(mapValues(diffusers, perturb)));
    files.ldm = path.join(tmp, 'vae-ldm.safetensors');
    await saveSafetensors(files.ldm, record(mapValues(ldm, perturb)));
    files.checkpoint = path.join(tmp, 'checkpoint.safetensors');
    await saveSafetensors(files.checkpoint, { ...record(mapValues(ldm, perturb), 'first_stage_model.'), 'model.diffusion_model.dummy': E.zeros([1]) });
    files.folder = path.join(tmp, 'vae-folder');
    mkdirSync(files.folder);
    copyFileSync(path.join(vaeDir, 'config.json'), path.join(files.folder, 'config.json'));
    await saveSafetensors(path.join(files.folder, 'diffusion_pytorch_model.safetensors'), record(mapValues(diffusers, perturb)));
    files.constLatent = path.join(tmp, 'const-latent.safetensors');
    await saveSafetensors(files.constLatent, record(constantLatents(ldm), 'first_stage_model.'));
    files.constImage = path.join(tmp, 'const-image');
    mkdirSync(path.join(files.constImage, 'vae'), { recursive: true });
    copyFileSync(path.join(vaeDir, 'config.json'), path.join(files.constImage, 'vae', 'config.json'));
    await saveSafetensors(path.join(files.constImage, 'vae', 'diffusion_pytorch_model.safetensors'), record(constantImage(diffusers)));
  });

  it('loads the same VAE from a diffusers file, a bare LDM file, a checkpoint and a diffusers folder', async () => {
    const base = (await loadSDModel(model)).vae;
    const cfg = parseVAEConfig(readJson(path.join(vaeDir, 'config.json')));
    const reference = new AutoencoderKL(cfg, new Weights(mapValues(await loadStateDict(path.join(vaeDir, 'vae.safetensors')), perturb), 'reference'));
    const image = E.tensor(Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37)), [1, 3, 32, 32]);
    const want = E.noGrad(() => reference.encode(image).mean.dataSync());
    const own = E.noGrad(() => base.encode(image).mean.dataSync());
    assert.ok(want.some((v, i) => Math.abs(v - own[i]) > 1e-3), 'the perturbed VAE differs from the model\'s');
    for (const [layout, f] of Object.entries(files).filter(([k]) => !k.startsWith('const'))) {
      const vae = await loadExternalVae(f, base);
      assert.equal(externalVaeSource(vae), f);
      const got = E.noGrad(() => vae.encode(image).mean.dataSync());
      assert.ok(got.every((v, i) => Math.abs(v - want[i]) <= 1e-5 * (1 + Math.abs(want[i]))), `${layout}: encodes as the reference`);
      const dec = E.noGrad(() => vae.decode(E.tensor(want, [1, 4, 16, 16])).dataSync());
      const ref = E.noGrad(() => reference.decode(E.tensor(want, [1, 4, 16, 16])).dataSync());
      assert.ok(dec.every((v, i) => Math.abs(v - ref[i]) <= 1e-5 * (1 + Math.abs(ref[i]))), `${layout}: decodes as the reference`);
    }
  });

  it('refuses files without VAE weights or with missing ones, naming the file', async () => {
    const base = (await loadSDModel(model)).vae;
    const none = path.join(tmp, 'none.safetensors');
    await saveSafetensors(none, { 'model.diffusion_model.x': E.zeros([1]) });
    await assert.rejects(loadExternalVae(none, base), /none\.safetensors: no VAE weights found/);
    const partial = path.join(tmp, 'partial.safetensors');
    const sd = await loadStateDict(path.join(vaeDir, 'vae.safetensors'));
    sd.delete('decoder.conv_out.weight');
    await saveSafetensors(partial, record(sd));
    await assert.rejects(loadExternalVae(partial, base), /partial\.safetensors \(external VAE, diffusers keys\).*missing weights \(decoder\.conv_out\.weight\)/);
    await assert.rejects(loadExternalVae(path.join(tmp, 'nope'), base), /vae: .*nope: no such file/);
  });

  it('training encodes its latents with the VAE given (per step and cached)', async () => {
    const data = path.join(tmp, 'data');
    writeShapeDataset(data, { name: 'sq', repeats: 1, count: 2, size: 32, shapes: ['square'], seed: 2 });
    for (const cache of [false, true]) {
      const traces: MicroBatchTrace[] = [];
      const cfg = resolveConfig([{ source: 'test', values: {
        pretrained_model_name_or_path: model, train_data_dir: data, caption_extension: '.txt', resolution: 32, train_batch_size: 2,
        max_train_steps: 1, learning_rate: 1e-3, network_dim: 4, seed: 1, output_dir: path.join(tmp, `out-${cache}`), vae: files.constLatent, cache_latents: cache,
      } }]);
      const logs: string[] = [];
      await train(cfg, { log: (m) => logs.push(m), onMicroBatch: (m) => traces.push(m) });
      assert.ok(!logs.some((l) => /"vae" has no effect/.test(l)), 'vae is not reported as ignored');
      const [B, C, h, w] = traces[0].shape;
      for (let i = 0; i < B * C * h * w; i++) {
        const want = 0.18215 * LATENT[Math.floor(i / (h * w)) % C];
        assert.ok(Math.abs(traces[0].latents[i] - want) < 1e-5, `cache ${cache}: latent ${i} ${traces[0].latents[i]} vs ${want}`);
      }
    }
  });

  it('a disk latent cache written with another VAE is encoded again', async () => {
    const data = path.join(tmp, 'data-disk');
    writeShapeDataset(data, { name: 'ci', repeats: 1, count: 2, size: 32, shapes: ['circle'], seed: 4 });
    const run = async (vae: string | undefined, out: string) => {
      const traces: MicroBatchTrace[] = [];
      await train(resolveConfig([{ source: 'test', values: {
        pretrained_model_name_or_path: model, train_data_dir: data, caption_extension: '.txt', resolution: 32, train_batch_size: 2,
        max_train_steps: 1, learning_rate: 1e-3, network_dim: 4, seed: 1, output_dir: path.join(tmp, out), cache_latents_to_disk: true, ...(vae ? { vae } : {}),
      } }]), { log: quiet, onMicroBatch: (m) => traces.push(m) });
      return traces[0];
    };
    const own = await run(undefined, 'disk-own');
    const ext = await run(files.constLatent, 'disk-ext');
    const [, C, h, w] = ext.shape;
    assert.ok(ext.latents.every((v, i) => Math.abs(v - 0.18215 * LATENT[Math.floor(i / (h * w)) % C]) < 1e-5), 'the external VAE\'s latents, not the cached ones');
    assert.ok(own.latents.some((v, i) => Math.abs(v - ext.latents[i]) > 1e-3));
    const again = await run(undefined, 'disk-own-2');
    assert.deepEqual([...again.latents], [...own.latents], 'the model\'s VAE again: encoded again, same latents');
  });

  it('txt2img decodes with the VAE given and names it in the infotext', async () => {
    const m = await loadSDModel(model);
    const opts = { prompt: 'a square', width: 32, height: 32, steps: 2, seed: 3, sampler: 'euler' };
    const own = await txt2img(m, opts);
    m.vae = await loadExternalVae(files.constImage, m.vae);
    const ext = await txt2img(m, opts);
    const want = PIXEL.map((p) => Math.round((p / 2 + 0.5) * 255));
    for (let i = 0; i < ext.rgb.length; i++) assert.ok(Math.abs(ext.rgb[i] - want[i % 3]) <= 1, `pixel ${i}: ${ext.rgb[i]} vs ${want[i % 3]}`);
    assert.ok(own.rgb.some((v, i) => v !== ext.rgb[i]), 'the model\'s own VAE gives another image');
    assert.match(ext.infotext, /, VAE: const-image(,|$)/);
    assert.doesNotMatch(own.infotext, /VAE:/);
  });
});
