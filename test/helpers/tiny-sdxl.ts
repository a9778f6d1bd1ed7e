// An SDXL diffusers folder (unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/)
// assembled from the golden SDXL UNet and text encoders and the tiny VAE, with byte-level tokenizers.
import { mkdtempSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readJson } from '../../src/models/loader.js';
import { goldenCase, requireFile } from './golden.js';
import { byteVocab } from './tiny-model.js';

export function sdxlConfigs() {
  const unetDir = goldenCase('sdxl-unet', 'unet.safetensors'), textDir = goldenCase('sdxl-text'), vaeDir = goldenCase('vae');
  return {
    unet: readJson(requireFile(unetDir, 'config.json')),
    vae: readJson(requireFile(vaeDir, 'config.json')),
    textEncoder: readJson(requireFile(textDir, 'config_te1.json')),
    textEncoder2: readJson(requireFile(textDir, 'config_te2.json')),
  };
}

export async function tinySdxlFolder(): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-tiny-xl-'));
  const unetDir = goldenCase('sdxl-unet', 'unet.safetensors'), textDir = goldenCase('sdxl-text'), vaeDir = goldenCase('vae');
  const c = sdxlConfigs();
  const parts: [string, string, Record<string, unknown>, string][] = [
    ['unet', requireFile(unetDir, 'unet.safetensors'), c.unet, 'diffusion_pytorch_model.safetensors'],
    ['vae', requireFile(vaeDir, 'vae.safetensors'), c.vae, 'diffusion_pytorch_model.safetensors'],
    ['text_encoder', requireFile(textDir, 'text_encoder.safetensors'), c.textEncoder, 'model.safetensors'],
    ['text_encoder_2', requireFile(textDir, 'text_encoder_2.safetensors'), c.textEncoder2, 'model.safetensors'],
  ];
  for (const [sub, src, cfg, name] of parts) {
    await mkdir(path.join(dir, sub), { recursive: true });
    await copyFile(src, path.join(dir, sub, name));
    await writeFile(path.join(dir, sub, 'config.json'), JSON.stringify(cfg));
  }
  for (const sub of ['tokenizer', 'tokenizer_2']) {
    await mkdir(path.join(dir, sub));
    await writeFile(path.join(dir, sub, 'vocab.json'), JSON.stringify(byteVocab()));
    await writeFile(path.join(dir, sub, 'merges.txt'), '#version: 0.2\n');
  }
  return dir;
}
