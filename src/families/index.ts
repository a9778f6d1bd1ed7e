// Every model family, and detection of a model's family from a single file's keys or a diffusers
// folder's layout. Adding a family means adding its file here.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../engine/index.js';
import { parseUNetConfig } from '../models/unet-config.js';
import type { FamilyId, ModelFamily, Prediction } from './family.js';
import { SD1 } from './sd1.js';
import { SD2 } from './sd2.js';
import { SDXL } from './sdxl.js';

export type { FamilyId, ModelFamily, Prediction, SizeConditioning, TextConditioning, TextEncoderSpec } from './family.js';
export { SD1, SD2, SDXL };

/** Most specific first (an SDXL file has no SD 1.x/2.x text encoder keys, but order keeps it safe). */
export const FAMILIES: readonly ModelFamily[] = [SDXL, SD2, SD1];

export function familyById(id: FamilyId): ModelFamily {
  const f = FAMILIES.find((x) => x.id === id);
  if (!f) throw new Error(`unknown model family ${id}`);
  return f;
}

/** The family of a single-file checkpoint from its keys; throws naming the file and what it found. */
export function detectFamily(keys: ReadonlySet<string>, file: string): ModelFamily {
  const f = FAMILIES.find((x) => x.detectKeys(keys));
  if (f) return f;
  if ([...keys].some((k) => k.startsWith('conditioner.embedders.0.model.'))) {
    throw new Error(`${file}: an SDXL refiner checkpoint (one OpenCLIP text encoder); only SDXL base-style models are supported`);
  }
  const unet = [...keys].some((k) => k.startsWith('model.diffusion_model.'));
  throw new Error(`${file}: no known text encoder keys (cond_stage_model.transformer.* for SD 1.x, cond_stage_model.model.* for SD 2.x, conditioner.embedders.* for SDXL)${unet ? '' : ' and no model.diffusion_model.* UNet'}; not a Stable Diffusion checkpoint of a supported family`);
}

/**
 * The family of a diffusers folder: text_encoder_2/ means SDXL; an OpenCLIP-style text encoder
 * (hidden_act gelu, as SD 2.x's ViT-H) means SD 2.x; else SD 1.x.
 */
export function detectFolderFamily(dir: string, textEncoderConfig: Record<string, unknown>): ModelFamily {
  if (existsSync(path.join(dir, 'text_encoder_2', 'config.json'))) return SDXL;
  return textEncoderConfig.hidden_act === 'gelu' ? SD2 : SD1;
}

/** The label users see: SD1, SD2, SD2-v or SDXL (v-prediction shown for any family that has it). */
export function familyLabel(f: ModelFamily, prediction: Prediction): string {
  const base = { sd1: 'SD1', sd2: 'SD2', sdxl: 'SDXL' }[f.id];
  return prediction === 'v_prediction' ? `${base}-v` : base;
}

/**
 * The label of a single-file checkpoint (`SDXL`, `SD2-v`, ...) from its keys and the few small
 * tensors the prediction check reads (full-size layout assumed); null when it is not one.
 */
export async function checkpointLabel(keys: ReadonlySet<string>, read: (key: string) => Promise<Tensor>): Promise<string | null> {
  const f = FAMILIES.find((x) => x.detectKeys(keys));
  if (!f) return null;
  const probe = new Map<string, Tensor>();
  for (const k of keys) if (k === 'v_pred' || /^model\.diffusion_model\.output_blocks\.\d+\.1\.transformer_blocks\.0\.norm1\.bias$/.test(k)) probe.set(k, await read(k));
  return familyLabel(f, f.predictionFromWeights(probe, parseUNetConfig(f.defaultConfigs.unet)));
}
