// The SD 1.x golden UNet and CLIP text model, found by case kind (not by folder name).
import path from 'node:path';
import { CLIPTextModel, parseCLIPTextConfig } from '../../src/models/clip-text.js';
import { loadStateDict, readJson } from '../../src/models/loader.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { Weights } from '../../src/models/weights.js';
import { goldenCase } from './golden.js';

export async function goldenUNet(): Promise<UNet2DConditionModel> {
  const dir = goldenCase('sd1-unet', 'unet.safetensors');
  return new UNet2DConditionModel(parseUNetConfig(readJson(path.join(dir, 'config.json'))), new Weights(await loadStateDict(path.join(dir, 'unet.safetensors')), 'unet'));
}

export async function goldenTextEncoder(): Promise<CLIPTextModel> {
  const dir = goldenCase('sd1-text', 'text_encoder.safetensors');
  return new CLIPTextModel(parseCLIPTextConfig(readJson(path.join(dir, 'config.json'))), new Weights(await loadStateDict(path.join(dir, 'text_encoder.safetensors')), 'text encoder'));
}
