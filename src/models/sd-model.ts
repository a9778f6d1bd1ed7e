// A complete Stable Diffusion model (the four parts txt2img and training need) from a diffusers
// folder or a single-file checkpoint.
import type { Backend } from '../engine/backend.js';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type SchedulerConfig, SD15_SCHEDULER, parseSchedulerConfig } from '../schedulers/config.js';
import type { CLIPTextModel } from './clip-text.js';
import { CLIPTokenizer } from './clip-tokenizer.js';
import { loadDiffusersFolder, loadSingleFile, readJson } from './loader.js';
import type { UNetOptions, UNet2DConditionModel } from './unet.js';
import type { AutoencoderKL } from './vae.js';

export interface SDModel {
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  textEncoder: CLIPTextModel;
  tokenizer: CLIPTokenizer;
  scheduler: SchedulerConfig;
  /** Where it came from (shown in infotext and metadata). */
  source: string;
}

/** Moves the three networks' weights to a backend (webgpu) in place. */
export function moveModel(m: SDModel, b: Backend): SDModel {
  for (const w of [m.unet.weights, m.textEncoder.weights, m.vae.weights]) w.toBackend(b);
  return m;
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const BUNDLED_BPE = path.resolve(here, '../../assets/clip/bpe_simple_vocab_16e6.txt.gz');

function tokenizerFrom(dir: string | undefined, padId?: number): CLIPTokenizer {
  if (dir && existsSync(path.join(dir, 'vocab.json'))) return CLIPTokenizer.fromFolder(dir, { padId });
  return CLIPTokenizer.fromBpeFile(BUNDLED_BPE, { padId });
}

function schedulerFrom(dir: string): SchedulerConfig {
  const p = path.join(dir, 'scheduler', 'scheduler_config.json');
  return existsSync(p) ? parseSchedulerConfig(readJson(p)) : SD15_SCHEDULER;
}

/**
 * `source` is a diffusers folder or a single .safetensors checkpoint. For a single file,
 * `configDir` (a diffusers-style folder holding unet/, vae/, text_encoder/ configs and optionally
 * tokenizer/ and scheduler/) replaces the SD 1.5 defaults.
 */
export async function loadSDModel(source: string, opts: { configDir?: string; unet?: UNetOptions } = {}): Promise<SDModel> {
  if (!existsSync(source)) throw new Error(`${source}: no such model file or folder`);
  if (statSync(source).isDirectory()) {
    const m = await loadDiffusersFolder(source, opts.unet);
    return { ...m, tokenizer: tokenizerFrom(m.tokenizerDir), scheduler: schedulerFrom(source), source };
  }
  const cd = opts.configDir;
  const cfg = (sub: string) => (cd && existsSync(path.join(cd, sub, 'config.json')) ? readJson(path.join(cd, sub, 'config.json')) : undefined);
  const m = await loadSingleFile(source, { unet: cfg('unet'), vae: cfg('vae'), textEncoder: cfg('text_encoder') }, opts.unet);
  return { ...m, tokenizer: tokenizerFrom(cd && path.join(cd, 'tokenizer')), scheduler: cd ? schedulerFrom(cd) : SD15_SCHEDULER, source };
}
