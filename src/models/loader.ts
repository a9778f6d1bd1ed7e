// Loading Stable Diffusion components (SD 1.x, SD 2.x, SDXL) from a diffusers folder (unet/, vae/,
// text_encoder/[, text_encoder_2/]) or from a single-file checkpoint (LDM/SGM names:
// model.diffusion_model.*, first_stage_model.*, and the family's text encoder prefixes), as
// diffusers' single_file_utils.py and sd-scripts' model_util.py / sdxl_model_util.py read them.
// The family is detected from the keys (src/families); weights in F16/BF16 are converted to f32 on load.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../engine/tensor.js';
import type { ModelFamily, Prediction, TextEncoderSpec } from '../families/family.js';
import { detectFamily, detectFolderFamily } from '../families/index.js';
import { parsePythonJson } from '../io/python-json.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { type CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, parseCLIPTextConfig } from './clip-text.js';
import { convertLdmKeys, unetPrefixMap, vaePrefixMap } from './ldm-keys.js';
import { clipParamShapes, vaeParamShapes } from './model-params.js';
import { openClipToTransformers } from './openclip-keys.js';
import { type UNetConfig, parseUNetConfig } from './unet-config.js';
import { unetParamShapes } from './unet-params.js';
import { UNet2DConditionModel, type UNetOptions } from './unet.js';
import { AutoencoderKL, type VAEConfig, parseVAEConfig } from './vae.js';
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
  family: ModelFamily;
  /** Prediction type the source declares (scheduler config) or its weights show (SD 2.x 768-v). */
  prediction: Prediction;
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  /** One per family text encoder, in the family's order (SDXL: CLIP-L, then OpenCLIP bigG with projection). */
  textEncoders: CLIPTextModel[];
  /** textEncoders[0] (SD 1.x/2.x's only one). */
  textEncoder: CLIPTextModel;
  /** Tokenizer folder per text encoder when the source has one. */
  tokenizerDirs: (string | undefined)[];
  tokenizerDir?: string;
}

/** The model class a text encoder spec calls for. */
export function makeTextEncoder(spec: TextEncoderSpec, cfg: CLIPTextConfig, w: Weights): CLIPTextModel {
  return spec.withProjection ? new CLIPTextModelWithProjection(cfg, w) : new CLIPTextModel(cfg, w);
}

/**
 * Refuses weights that do not fit the config: missing tensors or other shapes, named with the
 * file, the detected family and the config used (keys the config does not know are left to `unused()`).
 */
export function checkShapes(expected: Map<string, number[]>, w: Map<string, Tensor>, what: string): void {
  const missing = [...expected.keys()].filter((k) => !w.has(k));
  const wrong = [...expected].filter(([k, s]) => w.has(k) && w.get(k)!.shape.join() !== s.join())
    .map(([k, s]) => `${k} [${w.get(k)!.shape.join(', ')}] (config: [${s.join(', ')}])`);
  if (!missing.length && !wrong.length) return;
  const parts = [
    missing.length ? `${missing.length} missing weights (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''})` : '',
    wrong.length ? `${wrong.length} with other shapes: ${wrong.slice(0, 3).join('; ')}${wrong.length > 3 ? '; ...' : ''}` : '',
  ].filter(Boolean);
  throw new Error(`${what}: the weights do not fit the config: ${parts.join(', ')}`);
}

const textShapes = (spec: TextEncoderSpec, cfg: CLIPTextConfig) => clipParamShapes(cfg, spec.withProjection);

export async function loadUNetFolder(dir: string, opts?: UNetOptions): Promise<UNet2DConditionModel> {
  const cfg = parseUNetConfig(readJson(path.join(dir, 'config.json')), path.join(dir, 'config.json'));
  const file = componentWeights(dir, 'diffusion_pytorch_model');
  return new UNet2DConditionModel(cfg, new Weights(await loadStateDict(file), file), opts);
}

export async function loadDiffusersFolder(dir: string, opts?: UNetOptions): Promise<SDComponents> {
  for (const sub of ['unet', 'vae', 'text_encoder']) {
    if (!existsSync(path.join(dir, sub))) throw new Error(`${dir}: not a diffusers model folder (no ${sub}/)`);
  }
  const family = detectFolderFamily(dir, readJson(path.join(dir, 'text_encoder', 'config.json')));
  const vaeDir = path.join(dir, 'vae');
  const vaeFile = componentWeights(vaeDir, 'diffusion_pytorch_model');
  const textEncoders: CLIPTextModel[] = [];
  for (const spec of family.textEncoders) {
    const teDir = path.join(dir, spec.folder);
    if (!existsSync(teDir)) throw new Error(`${dir}: ${family.name} folder without ${spec.folder}/`);
    const cfgFile = path.join(teDir, 'config.json');
    const cfg = parseCLIPTextConfig(readJson(cfgFile), cfgFile);
    const file = componentWeights(teDir, 'model');
    const sd = await loadStateDict(file);
    sd.delete('text_model.embeddings.position_ids');
    checkShapes(textShapes(spec, cfg), sd, `${file} (${family.name} ${spec.folder})`);
    textEncoders.push(makeTextEncoder(spec, cfg, new Weights(sd, file)));
  }
  const tokenizerDirs = family.textEncoders.map((s) => (existsSync(path.join(dir, s.tokenizerFolder)) ? path.join(dir, s.tokenizerFolder) : undefined));
  const schedulerFile = path.join(dir, 'scheduler', 'scheduler_config.json');
  const prediction = existsSync(schedulerFile) && readJson(schedulerFile).prediction_type === 'v_prediction' ? 'v_prediction' : 'epsilon';
  return {
    family, prediction,
    unet: await loadUNetFolder(path.join(dir, 'unet'), opts),
    vae: new AutoencoderKL(parseVAEConfig(readJson(path.join(vaeDir, 'config.json'))), new Weights(await loadStateDict(vaeFile), vaeFile)),
    textEncoders, textEncoder: textEncoders[0], tokenizerDirs, tokenizerDir: tokenizerDirs[0],
  };
}

export interface SingleFileConfigs {
  unet?: Record<string, unknown>;
  vae?: Record<string, unknown>;
  /** First text encoder (SD 1.x/2.x's only one, SDXL's CLIP-L). */
  textEncoder?: Record<string, unknown>;
  /** SDXL's second text encoder. */
  textEncoder2?: Record<string, unknown>;
}

const strip = (m: Map<string, Tensor>, prefix: string) => new Map([...m].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));

export interface SingleFileParts {
  family: ModelFamily;
  prediction: Prediction;
  unet: Weights | null;
  vae: Weights | null;
  /** Per family text encoder; null where the file has none of its keys. */
  textEncoders: (Weights | null)[];
  /** textEncoders[0]. */
  textEncoder: Weights | null;
  unetCfg: UNetConfig;
  vaeCfg: VAEConfig;
  teCfgs: CLIPTextConfig[];
  teCfg: CLIPTextConfig;
}

/** One text encoder's transformers-named weights from a single file (prefix stripped). */
function textEncoderWeights(spec: TextEncoderSpec, raw: Map<string, Tensor>, cfg: CLIPTextConfig, what: string): Map<string, Tensor> {
  if (spec.layout === 'openclip') {
    const blocks = [...raw.keys()].filter((k) => /^transformer\.resblocks\.\d+\.ln_1\.weight$/.test(k)).length;
    const want = cfg.num_hidden_layers + (spec.dropLastBlock ? 1 : 0);
    if (blocks !== want) {
      throw new Error(`${what}: ${blocks} OpenCLIP resblocks, but the config's ${cfg.num_hidden_layers} layers need ${want}${spec.dropLastBlock ? ' (the conditioning drops the last block)' : ''}`);
    }
    const w = openClipToTransformers(raw, what, cfg.num_hidden_layers).weights;
    // SD 2.x conditions on hidden states only; diffusers and sd-scripts leave text_projection out.
    if (!spec.withProjection) w.delete('text_projection.weight');
    return w;
  }
  raw.delete('text_model.embeddings.position_ids');
  // Some old SD 1.x files lack the `text_model.` level (sd-scripts inserts it).
  const old = [...raw.keys()].some((k) => /^(embeddings|encoder|final_layer_norm)\./.test(k));
  return old ? new Map([...raw].map(([k, v]) => [k.startsWith('text_model.') ? k : `text_model.${k}`, v])) : raw;
}

/**
 * Splits a single-file state dict into diffusers-named component weights, detecting the family
 * from the keys. Configs default to the family's (full-size models); pass them for other sizes.
 */
export function splitSingleFile(all: Map<string, Tensor>, file: string, configs: SingleFileConfigs = {}, familyOverride?: ModelFamily): SingleFileParts {
  // A component-only file (a UNet or VAE alone) has no text encoder keys to tell the family: the caller names it.
  const family = familyOverride ?? detectFamily(new Set(all.keys()), file);
  const label = `${file} (${family.name})`;
  const unetCfg = parseUNetConfig(configs.unet ?? family.defaultConfigs.unet, `${label} unet config`);
  const vaeCfg = parseVAEConfig({ scaling_factor: family.vae.scalingFactor, ...(configs.vae ?? family.defaultConfigs.vae) });
  const given = [configs.textEncoder, configs.textEncoder2];
  const teCfgs = family.textEncoders.map((s, i) => parseCLIPTextConfig(given[i] ?? s.defaultConfig, `${label} ${s.folder} config`));
  const unetRaw = strip(all, family.unetPrefix);
  const vaeRaw = strip(all, family.vaePrefix);
  let unet: Weights | null = null, vae: Weights | null = null;
  if (unetRaw.size) {
    const w = convertLdmKeys(unetRaw, unetPrefixMap(unetCfg));
    checkShapes(unetParamShapes(unetCfg), w, `${label} UNet`);
    unet = new Weights(w, `${file} (unet)`);
  }
  if (vaeRaw.size) {
    const w = convertLdmKeys(vaeRaw, vaePrefixMap(vaeCfg));
    checkShapes(vaeParamShapes(vaeCfg), w, `${label} VAE`);
    vae = new Weights(w, `${file} (vae)`);
  }
  const textEncoders = family.textEncoders.map((spec, i) => {
    const raw = strip(all, spec.singleFilePrefix);
    if (!raw.size) return null;
    const what = `${label} ${spec.singleFilePrefix}*`;
    const w = textEncoderWeights(spec, raw, teCfgs[i], what);
    checkShapes(textShapes(spec, teCfgs[i]), w, what);
    return new Weights(w, `${file} (${spec.folder})`);
  });
  const prediction = family.predictionFromWeights(all, unetCfg);
  return { family, prediction, unet, vae, textEncoders, textEncoder: textEncoders[0], unetCfg, vaeCfg, teCfgs, teCfg: teCfgs[0] };
}

/** Former name of splitSingleFile. */
export const splitLdmStateDict = splitSingleFile;

/** A single-file checkpoint with every component (the detected family's configs unless others are given). */
export async function loadSingleFile(file: string, configs: SingleFileConfigs = {}, opts?: UNetOptions): Promise<SDComponents> {
  const parts = splitSingleFile(await loadStateDict(file), file, configs);
  const { family } = parts;
  const missing = [
    !parts.unet && `${family.unetPrefix}*`, !parts.vae && `${family.vaePrefix}*`,
    ...family.textEncoders.map((s, i) => !parts.textEncoders[i] && `${s.singleFilePrefix}*`),
  ].filter(Boolean);
  if (missing.length) throw new Error(`${file}: not a complete ${family.name} checkpoint (no ${missing.join(', ')} keys)`);
  const textEncoders = family.textEncoders.map((s, i) => makeTextEncoder(s, parts.teCfgs[i], parts.textEncoders[i]!));
  return {
    family, prediction: parts.prediction,
    unet: new UNet2DConditionModel(parts.unetCfg, parts.unet!, opts),
    vae: new AutoencoderKL(parts.vaeCfg, parts.vae!),
    textEncoders, textEncoder: textEncoders[0], tokenizerDirs: family.textEncoders.map(() => undefined),
  };
}
