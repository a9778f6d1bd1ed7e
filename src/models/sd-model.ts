// A complete Stable Diffusion model of any family (SD 1.x, SD 2.x, SDXL): the networks txt2img and
// training need, its tokenizers and scheduler config, from a diffusers folder or a single-file
// checkpoint. The family object (src/families) says how its parts condition the UNet.
import type { Backend } from '../engine/backend.js';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelFamily, Prediction, TextEncoderSpec } from '../families/family.js';
import { familyLabel } from '../families/index.js';
import { type SchedulerConfig, SD15_SCHEDULER, parseSchedulerConfig } from '../schedulers/config.js';
import type { CLIPTextModel } from './clip-text.js';
import { CLIPTokenizer } from './clip-tokenizer.js';
import { loadDiffusersFolder, loadSingleFile, readJson } from './loader.js';
import type { UNetOptions, UNet2DConditionModel } from './unet.js';
import type { AutoencoderKL } from './vae.js';

export interface SDModel {
  family: ModelFamily;
  /** The model's prediction type (also in scheduler.prediction_type). */
  prediction: Prediction;
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  /** Every text encoder in the family's order (SDXL: te1 CLIP-L, te2 OpenCLIP bigG with projection). */
  textEncoders: CLIPTextModel[];
  /** Tokenizer per text encoder (SDXL's second pads with 0). */
  tokenizers: CLIPTokenizer[];
  /** textEncoders[0] / tokenizers[0]: SD 1.x/2.x's only ones. */
  textEncoder: CLIPTextModel;
  tokenizer: CLIPTokenizer;
  scheduler: SchedulerConfig;
  /** Where it came from (shown in infotext and metadata). */
  source: string;
}

/** "SDXL", "SD2-v", ... for logs, inspect and errors. */
export const modelLabel = (m: Pick<SDModel, 'family' | 'prediction'>): string => familyLabel(m.family, m.prediction);

/** Moves the networks' weights to a backend (webgpu) in place. */
export function moveModel(m: SDModel, b: Backend): SDModel {
  for (const w of [m.unet.weights, ...m.textEncoders.map((t) => t.weights), m.vae.weights]) w.toBackend(b);
  return m;
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const BUNDLED_BPE = path.resolve(here, '../../assets/clip/bpe_simple_vocab_16e6.txt.gz');

/** The tokenizer of one text encoder: its folder if the source has one, else the bundled CLIP BPE; padding from the family. */
export function tokenizerFor(spec: TextEncoderSpec, dir: string | undefined): CLIPTokenizer {
  const padId = spec.padId === 'eos' ? undefined : spec.padId;
  if (dir && existsSync(path.join(dir, 'vocab.json'))) return CLIPTokenizer.fromFolder(dir, { padId });
  return CLIPTokenizer.fromBpeFile(BUNDLED_BPE, { padId });
}

function schedulerFrom(dir: string): SchedulerConfig {
  const p = path.join(dir, 'scheduler', 'scheduler_config.json');
  return existsSync(p) ? parseSchedulerConfig(readJson(p)) : SD15_SCHEDULER;
}

export interface LoadModelOptions {
  /** For a single file: a diffusers-style folder with unet/, vae/, text_encoder/[, text_encoder_2/] configs, tokenizer(s) and scheduler/. */
  configDir?: string;
  unet?: UNetOptions;
  /** sd-scripts v_parameterization: the model predicts v, whatever the source says. */
  vParameterization?: boolean;
}

/**
 * `source` is a diffusers folder or a single .safetensors checkpoint of any supported family. For a
 * single file, `configDir` replaces the family's default (full-size) configs.
 */
export async function loadSDModel(source: string, opts: LoadModelOptions = {}): Promise<SDModel> {
  if (!existsSync(source)) throw new Error(`${source}: no such model file or folder`);
  let m, scheduler: SchedulerConfig;
  if (statSync(source).isDirectory()) {
    m = await loadDiffusersFolder(source, opts.unet);
    scheduler = schedulerFrom(source);
  } else {
    const cd = opts.configDir;
    const cfg = (sub: string) => (cd && existsSync(path.join(cd, sub, 'config.json')) ? readJson(path.join(cd, sub, 'config.json')) : undefined);
    m = await loadSingleFile(source, { unet: cfg('unet'), vae: cfg('vae'), textEncoder: cfg('text_encoder'), textEncoder2: cfg('text_encoder_2') }, opts.unet);
    m.tokenizerDirs = m.family.textEncoders.map((s) => (cd ? path.join(cd, s.tokenizerFolder) : undefined));
    scheduler = cd ? schedulerFrom(cd) : { ...SD15_SCHEDULER, prediction_type: m.prediction };
  }
  const prediction: Prediction = opts.vParameterization ? 'v_prediction' : scheduler.prediction_type === 'v_prediction' ? 'v_prediction' : m.prediction;
  const tokenizers = m.family.textEncoders.map((s, i) => tokenizerFor(s, m.tokenizerDirs[i]));
  return {
    family: m.family, prediction,
    unet: m.unet, vae: m.vae, textEncoders: m.textEncoders, textEncoder: m.textEncoder,
    tokenizers, tokenizer: tokenizers[0],
    scheduler: { ...scheduler, prediction_type: prediction }, source,
  };
}
