// Loading Stable Diffusion components from a diffusers folder (unet/, vae/, text_encoder/) or from
// a single-file LDM checkpoint (model.diffusion_model.*, first_stage_model.*,
// cond_stage_model.transformer.*). Weights in F16/BF16 are converted to f32 on load.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../engine/tensor.js';
import { parsePythonJson } from '../io/python-json.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { CLIPTextModel, parseCLIPTextConfig } from './clip-text.js';
import { convertLdmKeys, unetPrefixMap, vaePrefixMap } from './ldm-keys.js';
import { SD15_TEXT_CONFIG, SD15_UNET_CONFIG, SD15_VAE_CONFIG } from './sd15-configs.js';
import { parseUNetConfig } from './unet-config.js';
import { UNet2DConditionModel, type UNetOptions } from './unet.js';
import { AutoencoderKL, parseVAEConfig } from './vae.js';
import { Weights } from './weights.js';

export async function loadStateDict(file: string, keep?: (key: string) => boolean): Promise<Map<string, Tensor>> {
  if (/\.(bin|ckpt|pt|pth)$/i.test(file)) {
    throw new Error(`${file}: pickle checkpoints (.bin/.ckpt/.pt) are not loaded because unpickling can run code; convert it to .safetensors first`);
  }
  const f = await SafetensorsFile.open(file);
  try {
    const out = new Map<string, Tensor>();
    for (const k of f.keys()) if (!keep || keep(k)) out.set(k, await f.read(k));
    return out;
  } finally {
    await f.close();
  }
}

export function readJson(file: string): Record<string, unknown> {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch { throw new Error(`${file}: cannot read config`); }
  try { return parsePythonJson(text) as Record<string, unknown>; } catch (e) { throw new Error(`${file}: invalid JSON (${(e as Error).message})`); }
}

/** The weights file of one diffusers component folder. */
function componentWeights(dir: string, base: string): string {
  for (const name of [`${base}.safetensors`, `${base}.fp16.safetensors`]) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  if (existsSync(path.join(dir, `${base}.bin`)) || existsSync(path.join(dir, `${base}.fp16.bin`))) {
    throw new Error(`${dir}: only ${base}.bin found; pickle weights are not loaded, provide ${base}.safetensors`);
  }
  throw new Error(`${dir}: no ${base}.safetensors`);
}

export interface SDComponents {
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  textEncoder: CLIPTextModel;
  /** Tokenizer folder when the source has one. */
  tokenizerDir?: string;
}

export async function loadUNetFolder(dir: string, opts?: UNetOptions): Promise<UNet2DConditionModel> {
  const cfg = parseUNetConfig(readJson(path.join(dir, 'config.json')), path.join(dir, 'config.json'));
  const file = componentWeights(dir, 'diffusion_pytorch_model');
  return new UNet2DConditionModel(cfg, new Weights(await loadStateDict(file), file), opts);
}

export async function loadDiffusersFolder(dir: string, opts?: UNetOptions): Promise<SDComponents> {
  for (const sub of ['unet', 'vae', 'text_encoder']) {
    if (!existsSync(path.join(dir, sub))) throw new Error(`${dir}: not a diffusers model folder (no ${sub}/)`);
  }
  const vaeDir = path.join(dir, 'vae'), teDir = path.join(dir, 'text_encoder');
  const vaeFile = componentWeights(vaeDir, 'diffusion_pytorch_model');
  const teFile = componentWeights(teDir, 'model');
  return {
    unet: await loadUNetFolder(path.join(dir, 'unet'), opts),
    vae: new AutoencoderKL(parseVAEConfig(readJson(path.join(vaeDir, 'config.json'))), new Weights(await loadStateDict(vaeFile), vaeFile)),
    textEncoder: new CLIPTextModel(parseCLIPTextConfig(readJson(path.join(teDir, 'config.json'))), new Weights(await loadStateDict(teFile), teFile)),
    tokenizerDir: existsSync(path.join(dir, 'tokenizer')) ? path.join(dir, 'tokenizer') : undefined,
  };
}

export interface SingleFileConfigs {
  unet?: Record<string, unknown>;
  vae?: Record<string, unknown>;
  textEncoder?: Record<string, unknown>;
}

const strip = (m: Map<string, Tensor>, prefix: string) => new Map([...m].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));

/** Splits an LDM state dict into diffusers-named component weights. */
export function splitLdmStateDict(all: Map<string, Tensor>, file: string, configs: SingleFileConfigs = {}) {
  const unetCfg = parseUNetConfig(configs.unet ?? SD15_UNET_CONFIG);
  const vaeCfg = parseVAEConfig(configs.vae ?? SD15_VAE_CONFIG);
  const teCfg = parseCLIPTextConfig(configs.textEncoder ?? SD15_TEXT_CONFIG);
  const unetW = strip(all, 'model.diffusion_model.');
  const vaeW = strip(all, 'first_stage_model.');
  const teW = strip(all, 'cond_stage_model.transformer.');
  if ([...all.keys()].some((k) => k.startsWith('cond_stage_model.model.'))) {
    throw new Error(`${file}: an SD 2.x (OpenCLIP) text encoder is not supported yet`);
  }
  teW.delete('text_model.embeddings.position_ids');
  return {
    unet: unetW.size ? new Weights(convertLdmKeys(unetW, unetPrefixMap(unetCfg)), `${file} (unet)`) : null,
    vae: vaeW.size ? new Weights(convertLdmKeys(vaeW, vaePrefixMap(vaeCfg)), `${file} (vae)`) : null,
    textEncoder: teW.size ? new Weights(teW, `${file} (text encoder)`) : null,
    unetCfg, vaeCfg, teCfg,
  };
}

/** A single-file checkpoint with every component (SD 1.x configs unless others are given). */
export async function loadSingleFile(file: string, configs: SingleFileConfigs = {}, opts?: UNetOptions): Promise<SDComponents> {
  const parts = splitLdmStateDict(await loadStateDict(file), file, configs);
  if (!parts.unet || !parts.vae || !parts.textEncoder) {
    const missing = [!parts.unet && 'model.diffusion_model.*', !parts.vae && 'first_stage_model.*', !parts.textEncoder && 'cond_stage_model.transformer.*'].filter(Boolean);
    throw new Error(`${file}: not a complete Stable Diffusion checkpoint (no ${missing.join(', ')} keys)`);
  }
  return {
    unet: new UNet2DConditionModel(parts.unetCfg, parts.unet, opts),
    vae: new AutoencoderKL(parts.vaeCfg, parts.vae),
    textEncoder: new CLIPTextModel(parts.teCfg, parts.textEncoder),
  };
}
