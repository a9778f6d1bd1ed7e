// A tiny SD 2.x model built from the golden files: the SD 2.x OpenCLIP text encoder (sd2-text case),
// a UNet shaped as SD 2.x's (linear proj_in/proj_out, cross-attention width = the text encoder's
// hidden size) from the tiny SD 1.x UNet case, and the tiny VAE. Written as a diffusers folder
// (unet/, vae/, text_encoder/, tokenizer/, scheduler/) and as a single file in the SD 2.x layout
// (model.diffusion_model.*, first_stage_model.*, cond_stage_model.model.* with fused in_proj) with a
// config folder for it. Also the SDXL single file (SGM UNet + both text encoders + VAE).
import { mkdtempSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Rng } from '../../src/engine/random.js';
import { type Tensor, tensor } from '../../src/engine/tensor.js';
import { reshape } from '../../src/engine/ops/layout.js';
import type { Prediction } from '../../src/families/index.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { diffusersToLdm, unetPrefixMap } from '../../src/models/ldm-keys.js';
import { loadStateDict, readJson } from '../../src/models/loader.js';
import { unetParamShapes } from '../../src/models/unet-params.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';
import { goldenCase, requireFile } from './golden.js';
import { byteVocab } from './tiny-model.js';
import { sdxlConfigs } from './tiny-sdxl.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** The sd2-text case's single-file text encoder (`*_sd2.safetensors`). */
export function sd2TextSingleFile(): string {
  const dir = goldenCase('sd2-text');
  const f = readdirSync(dir).find((n) => /_sd2\.safetensors$/.test(n));
  if (!f) throw new Error(`${dir}: no *_sd2.safetensors single-file text encoder`);
  return path.join(dir, f);
}

export function sd2Configs() {
  const unetDir = goldenCase('sd1-unet', 'unet.safetensors'), textDir = goldenCase('sd2-text'), vaeDir = goldenCase('vae');
  const textEncoder = readJson(requireFile(textDir, 'config.json'));
  const base = readJson(requireFile(unetDir, 'config.json'));
  // SD 2.x: linear projections in the transformers, cross-attention over the OpenCLIP width.
  const unet = { ...base, use_linear_projection: true, cross_attention_dim: textEncoder.hidden_size };
  return { unet, vae: readJson(requireFile(vaeDir, 'config.json')), textEncoder };
}

/**
 * The SD 2.x UNet's weights (diffusers names): the tiny UNet's where the sizes agree (1x1 conv
 * projections become linear ones, as SD 2.x stores them), seeded random ones where the case's
 * cross-attention width differs from the text encoder's.
 */
export async function sd2UNetWeights(): Promise<Map<string, Tensor>> {
  const src = await loadStateDict(requireFile(goldenCase('sd1-unet', 'unet.safetensors'), 'unet.safetensors'));
  const rng = new Rng(2);
  const out = new Map<string, Tensor>();
  for (const [k, shape] of unetParamShapes(parseUNetConfig(sd2Configs().unet))) {
    const t = src.get(k);
    if (t && numel(t.shape) === numel(shape)) { out.set(k, t.shape.join() === shape.join() ? t : reshape(t, shape)); continue; }
    const a = new Float32Array(numel(shape)), bound = 1 / Math.sqrt(numel(shape) / shape[0]);
    for (let i = 0; i < a.length; i++) a[i] = (rng.uniform() * 2 - 1) * bound;
    out.set(k, tensor(a, shape));
  }
  return out;
}

async function writeTokenizer(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'vocab.json'), JSON.stringify(byteVocab()));
  await writeFile(path.join(dir, 'merges.txt'), '#version: 0.2\n');
}

/** stabilityai/stable-diffusion-2-1 scheduler config (DDPM-style betas) with the prediction type. */
const scheduler = (prediction: Prediction) => ({
  _class_name: 'DDIMScheduler', beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', num_train_timesteps: 1000,
  clip_sample: false, set_alpha_to_one: false, steps_offset: 1, prediction_type: prediction,
});

/** Configs, tokenizer and scheduler of the tiny SD 2.x model (the folder a single file needs). */
async function writeConfigs(dir: string, prediction: Prediction): Promise<void> {
  const c = sd2Configs();
  for (const [sub, cfg] of [['unet', c.unet], ['vae', c.vae], ['text_encoder', c.textEncoder]] as const) {
    await mkdir(path.join(dir, sub), { recursive: true });
    await writeFile(path.join(dir, sub, 'config.json'), JSON.stringify(cfg));
  }
  await writeTokenizer(path.join(dir, 'tokenizer'));
  await mkdir(path.join(dir, 'scheduler'), { recursive: true });
  await writeFile(path.join(dir, 'scheduler', 'scheduler_config.json'), JSON.stringify(scheduler(prediction)));
}

export async function tinySd2Folder(prediction: Prediction = 'v_prediction'): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-tiny-sd2-'));
  await writeConfigs(dir, prediction);
  await saveSafetensors(path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors'), [...await sd2UNetWeights()]);
  await copyFile(requireFile(goldenCase('vae'), 'vae.safetensors'), path.join(dir, 'vae', 'diffusion_pytorch_model.safetensors'));
  await copyFile(requireFile(goldenCase('sd2-text'), 'text_encoder.safetensors'), path.join(dir, 'text_encoder', 'model.safetensors'));
  return dir;
}

/** The tiny SD 2.x model as one SD 2.x checkpoint, with its config folder (`--config-dir`). */
export async function tinySd2SingleFile(prediction: Prediction = 'v_prediction'): Promise<{ file: string; configDir: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-tiny-sd2-file-'));
  const configDir = path.join(dir, 'configs');
  await writeConfigs(configDir, prediction);
  const map = unetPrefixMap(parseUNetConfig(sd2Configs().unet));
  const entries: [string, Tensor][] = [...await sd2UNetWeights()].map(([k, t]) => [`model.diffusion_model.${diffusersToLdm(k, map)}`, t]);
  for (const f of [requireFile(goldenCase('vae'), 'vae_ldm.safetensors'), sd2TextSingleFile()]) entries.push(...await loadStateDict(f));
  const file = path.join(dir, 'sd2.safetensors');
  await saveSafetensors(file, entries);
  return { file, configDir };
}

/** The SDXL single file (SGM UNet, SGM/OpenCLIP text encoders, LDM VAE) with its config folder. */
export async function tinySdxlSingleFile(): Promise<{ file: string; configDir: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-tiny-xl-file-'));
  const configDir = path.join(dir, 'configs');
  const unetDir = goldenCase('sdxl-unet', 'unet_ldm.safetensors');
  // The UNet config from the case whose SGM weights are used.
  const c = { ...sdxlConfigs(), unet: readJson(requireFile(unetDir, 'config.json')) };
  for (const [sub, cfg] of [['unet', c.unet], ['vae', c.vae], ['text_encoder', c.textEncoder], ['text_encoder_2', c.textEncoder2]] as const) {
    await mkdir(path.join(configDir, sub), { recursive: true });
    await writeFile(path.join(configDir, sub, 'config.json'), JSON.stringify(cfg));
  }
  for (const sub of ['tokenizer', 'tokenizer_2']) await writeTokenizer(path.join(configDir, sub));
  const entries: [string, Tensor][] = [];
  for (const f of [
    requireFile(unetDir, 'unet_ldm.safetensors'),
    requireFile(goldenCase('sdxl-text'), 'text_encoders_sdxl.safetensors'),
    requireFile(goldenCase('vae'), 'vae_ldm.safetensors'),
  ]) entries.push(...await loadStateDict(f));
  const file = path.join(dir, 'sdxl.safetensors');
  await saveSafetensors(file, entries);
  return { file, configDir };
}
