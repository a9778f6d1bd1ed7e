// Finds the golden UNet and CLIP text model fixtures by their config class (not by folder name).
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { CLIPTextModel, parseCLIPTextConfig } from '../../src/models/clip-text.js';
import { loadStateDict, readJson } from '../../src/models/loader.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { Weights } from '../../src/models/weights.js';
import { goldenDir } from './golden.js';

function findCase(cls: string, weightsFile: string): string {
  const root = goldenDir();
  for (const d of readdirSync(root)) {
    const cfg = path.join(root, d, 'config.json');
    if (!existsSync(cfg) || !existsSync(path.join(root, d, weightsFile))) continue;
    const c = readJson(cfg);
    if (c._class_name === cls || c.model_type === cls) return path.join(root, d);
  }
  throw new Error(`no golden case with ${cls} and ${weightsFile} in ${root}`);
}

export async function goldenUNet(): Promise<UNet2DConditionModel> {
  const dir = findCase('UNet2DConditionModel', 'unet.safetensors');
  return new UNet2DConditionModel(parseUNetConfig(readJson(path.join(dir, 'config.json'))), new Weights(await loadStateDict(path.join(dir, 'unet.safetensors')), 'unet'));
}

export async function goldenTextEncoder(): Promise<CLIPTextModel> {
  const dir = findCase('clip_text_model', 'text_encoder.safetensors');
  return new CLIPTextModel(parseCLIPTextConfig(readJson(path.join(dir, 'config.json'))), new Weights(await loadStateDict(path.join(dir, 'text_encoder.safetensors')), 'text encoder'));
}
