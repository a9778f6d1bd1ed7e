// The README's SDXL example config trains: the TOML block of README.md's "**SDXL.**" paragraph,
// read from the README itself (so the test breaks when the example does), with only the model, the
// data and output folders swapped for the tiny SDXL model and a tiny dataset, and the run cut to one
// step at a small resolution (command-line options over the file, as `sdlora train --config` takes
// them). Every option of the example must be in effect in the run and its LoRA's metadata.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { SDXL } from '../../src/families/index.js';
import { configFromArgs } from '../../src/cli/train-command.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { applyFamilyOptions } from '../../src/train/family-training.js';
import { train } from '../../src/train/trainer.js';
import { tinySdxlFolder } from '../helpers/tiny-sdxl.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-sdxl-readme-'));
const data = path.join(tmp, 'data');

/** The ```toml block that follows "**SDXL.**" in README.md. */
export function readmeSdxlToml(): string {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf('**SDXL.**');
  assert.ok(at >= 0, 'README.md has an **SDXL.** paragraph');
  const m = /```toml\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, 'a TOML example follows it');
  return m[1];
}

/** `key = value` pairs of a flat TOML text (comments dropped), values as TOML literals. */
const tomlKeys = (toml: string) => new Map([...toml.matchAll(/^(\w+)\s*=\s*("[^"]*"|[^#\n]*?)\s*(#.*)?$/gm)].map((m) => [m[1], m[2]]));

describe('README SDXL example', () => {
  let model: string;
  before(async () => {
    await E.initCpuBackend();
    model = await tinySdxlFolder();
    const vaeCfg = path.join(model, 'vae', 'config.json');
    writeFileSync(vaeCfg, JSON.stringify({ ...JSON.parse(readFileSync(vaeCfg, 'utf8')), scaling_factor: SDXL.vae.scalingFactor }));
    writeShapeDataset(data, { name: 'sks star', repeats: 1, count: 2, size: 48, shapes: ['star'], seed: 2 });
  });

  it('the README SDXL TOML trains an SDXL LoRA with every option it sets in effect', async () => {
    const toml = readmeSdxlToml();
    const keys = tomlKeys(toml);
    // Swap only the paths; the rest of the text is the README's.
    const swapped = toml
      .replace(/^pretrained_model_name_or_path\s*=.*$/m, `pretrained_model_name_or_path = ${JSON.stringify(model)}`)
      .replace(/^train_data_dir\s*=.*$/m, `train_data_dir = ${JSON.stringify(data)}`)
      .replace(/^output_dir\s*=.*$/m, `output_dir = ${JSON.stringify(path.join(tmp, 'out'))}`);
    assert.equal(swapped.split('\n').length, toml.split('\n').length);
    const file = path.join(tmp, 'sdxl.toml');
    writeFileSync(file, swapped);
    const logs: string[] = [];
    // One step, tiny images: resolution and the bucket range on the command line, over the file.
    const cfg = configFromArgs(['--config', file, '--max_train_steps', '1', '--resolution', '64', '--min_bucket_reso', '64', '--max_bucket_reso', '128', '--seed', '1']);
    const r = await train(cfg, { log: (m) => logs.push(m) });
    assert.equal(r.steps, 1);
    assert.equal(r.model.family.id, 'sdxl', 'no SDXL flag: the family comes from the model');
    const { tensors, metadata: md } = await loadSafetensors(r.finalPath!);
    const names = Object.keys(tensors);
    // What the example sets, as the file records it (each value read from the README's TOML).
    assert.equal(md.ss_network_module, JSON.parse(keys.get('network_module')!));
    assert.equal(md.ss_network_dim, keys.get('network_dim'));
    assert.equal(md.ss_network_alpha, String(Number(keys.get('network_alpha'))));
    assert.equal(md.ss_mixed_precision, JSON.parse(keys.get('mixed_precision')!));
    for (const k of ['gradient_checkpointing', 'cache_latents', 'enable_bucket']) {
      assert.equal(keys.get(k), 'true', `the example sets ${k}`);
      assert.equal(md[`ss_${k}`], 'True', `ss_${k}`);
    }
    assert.equal(keys.get('network_train_unet_only'), 'true');
    assert.ok(names.length > 0 && names.every((n) => n.startsWith('lora_unet_')), 'UNet only: no text-encoder modules');
    assert.equal(keys.get('cache_text_encoder_outputs'), 'true');
    assert.ok(logs.some((l) => /caching text encoder outputs of \d+ images/.test(l)), 'text encoder outputs cached');
    assert.equal(md.ss_base_model_version, 'sdxl_base_v1-0');
    assert.ok(names.some((n) => n.startsWith('lora_unet_input_blocks_')), 'SGM-named UNet modules');
    // Not given in the example: the SDXL bucket step, as the comment says (the run's datasets used it).
    assert.ok(!keys.has('bucket_reso_steps') && !keys.has('resolution'));
    assert.match(toml, /resolution 1024 and bucket_reso_steps 32 when not given/);
    assert.ok(r.data.datasets.every((d) => d.spec.bucketResoSteps === 32), 'bucket_reso_steps 32');
    // And the resolution the example's file alone gives on an SDXL model: 1024 px.
    const alone = configFromArgs(['--config', file]);
    applyFamilyOptions(alone, r.model.family, r.model.prediction);
    assert.deepEqual(alone.resolution, [1024, 1024]);
    assert.equal(alone.bucket_reso_steps, 32);
    // "the VAE stays f32": frozen UNet weights in f16 storage, the VAE's in f32.
    assert.ok([...r.model.vae.weights.tensors.values()].every((t) => t.dtype === 'f32'), 'VAE f32');
    assert.ok([...r.model.unet.weights.tensors.values()].some((t) => t.dtype === 'f16'), 'fp16 storage of the frozen UNet');
  });
});
