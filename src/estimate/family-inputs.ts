// The estimator's view of a model family (SD 1.x, SD 2.x, SDXL): its UNet config, text encoders
// and VAE, and which family a training config's base model is, without loading any weights.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { type FamilyId, SD2, detectFamily, detectFolderFamily, familyById } from '../families/index.js';
import { SD2_TEXT_CONFIG, SD2_UNET_CONFIG } from '../families/sd2.js';
import { SDXL_TEXT_CONFIG_1, SDXL_TEXT_CONFIG_2, SDXL_UNET_CONFIG } from '../families/sdxl.js';
import { hubCacheDir } from '../models/hub.js';
import { readJson } from '../models/loader.js';
import { SD15_TEXT_CONFIG, SD15_UNET_CONFIG } from '../models/sd15-configs.js';

export const FAMILY_IDS: readonly FamilyId[] = ['sd1', 'sd2', 'sdxl'];

export interface TextConfig { hidden_size: number; intermediate_size: number; num_hidden_layers: number; vocab_size: number; max_position_embeddings: number; projection_dim?: number }

/** Parameters of a CLIP text transformer: embeddings, blocks (attention, MLP, two LayerNorms), final LayerNorm, projection. */
export function clipTextParams(c: TextConfig, withProjection = false): number {
  const h = c.hidden_size, f = c.intermediate_size;
  const block = 4 * (h * h + h) + 2 * h * f + f + h + 4 * h;
  return (c.vocab_size + c.max_position_embeddings) * h + c.num_hidden_layers * block + 2 * h + (withProjection ? h * (c.projection_dim ?? h) : 0);
}

export interface FamilyParts {
  unetConfig: Record<string, unknown>;
  textEncoders: { params: number; layers: number; hidden: number }[];
  vaeParams: number;
  /** The VAE stays f32 under mixed precision (SDXL, sd-scripts' no_half_vae). */
  vaeF32: boolean;
}

/** The SD VAE (the same AutoencoderKL in all three families). */
const SD_VAE_PARAMS = 83.65e6;

/**
 * A family's parts; `textConfigs` (a model folder's text_encoder[_2]/config.json) replace the
 * family's text encoders, so a small or custom model is counted as it is.
 */
export function familyParts(id: FamilyId, textConfigs?: readonly TextConfig[]): FamilyParts {
  const te = (c: TextConfig, proj = false) => ({ params: clipTextParams(c, proj), layers: c.num_hidden_layers, hidden: c.hidden_size });
  const vaeF32 = familyById(id).vae.keepF32;
  if (textConfigs?.length) {
    const base = familyParts(id);
    return { ...base, textEncoders: textConfigs.map((c, i) => te(c, id === 'sdxl' && i === 1)) };
  }
  if (id === 'sdxl') return { unetConfig: SDXL_UNET_CONFIG, textEncoders: [te(SDXL_TEXT_CONFIG_1), te(SDXL_TEXT_CONFIG_2, true)], vaeParams: SD_VAE_PARAMS, vaeF32 };
  if (id === 'sd2') return { unetConfig: SD2_UNET_CONFIG, textEncoders: [te(SD2_TEXT_CONFIG)], vaeParams: SD_VAE_PARAMS, vaeF32 };
  return { unetConfig: SD15_UNET_CONFIG, textEncoders: [te(SD15_TEXT_CONFIG)], vaeParams: SD_VAE_PARAMS, vaeF32 };
}

function safetensorsKeys(file: string): Set<string> {
  const fd = openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE());
    if (n <= 0 || n > 100e6 || n + 8 > statSync(file).size) throw new Error(`${file}: not a safetensors file (header length ${n})`);
    const json = Buffer.alloc(n);
    readSync(fd, json, 0, n, 8);
    return new Set(Object.keys(JSON.parse(json.toString('utf8'))).filter((k) => k !== '__metadata__'));
  } finally { closeSync(fd); }
}

/**
 * The family of a base model reference, read the cheap way: a single file's safetensors header, a
 * diffusers folder's text encoder configs (a downloaded hub repo's cache folder too); else the
 * config's v2 flag. `how` says where the answer came from.
 */
export interface FamilyFound {
  id: FamilyId;
  how: string;
  /** A model folder's own UNet config and text encoder configs, where it has them. */
  unetConfig?: Record<string, unknown>;
  textConfigs?: TextConfig[];
}

export function familyOfModel(ref: string | undefined, v2: boolean): FamilyFound {
  const local = ref && existsSync(ref) ? ref : ref && /^[\w.-]+\/[\w.-]+$/.test(ref) && existsSync(hubCacheDir(ref)) ? hubCacheDir(ref) : undefined;
  if (local && statSync(local).isFile()) return { id: detectFamily(safetensorsKeys(local), local).id, how: `the keys of ${path.basename(local)}` };
  if (local && existsSync(path.join(local, 'text_encoder', 'config.json'))) {
    const unetJson = path.join(local, 'unet', 'config.json');
    const textConfigs = ['text_encoder', 'text_encoder_2'].map((d) => path.join(local, d, 'config.json')).filter((f) => existsSync(f)).map((f) => readJson(f) as unknown as TextConfig);
    return { id: detectFolderFamily(local, readJson(path.join(local, 'text_encoder', 'config.json'))).id, how: `the folder ${local}`, unetConfig: existsSync(unetJson) ? readJson(unetJson) : undefined, textConfigs };
  }
  if (ref && /(^|[^a-z])(sdxl|xl)([^a-z]|$)/i.test(ref)) return { id: 'sdxl', how: `"${ref}" is not on this machine; SDXL from its name` };
  return v2 ? { id: SD2.id, how: 'the config\'s v2 option' } : { id: 'sd1', how: ref ? `"${ref}" is not on this machine; SD 1.x assumed (give --family)` : 'no model given' };
}

