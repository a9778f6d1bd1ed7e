// A diffusers folder assembled from the golden tiny UNet/VAE/CLIP, with a byte-level tokenizer
// whose ids fit the tiny vocabulary (no merges: one token per byte).
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync } from 'node:fs';
import { bytesToUnicode } from '../../src/models/clip-tokenizer.js';
import { goldenCase } from './golden.js';

export function byteVocab(): Record<string, number> {
  const chars = bytesToUnicode().ordered;
  const vocab = [...chars, ...chars.map((c) => `${c}</w>`), '<|startoftext|>', '<|endoftext|>'];
  return Object.fromEntries(vocab.map((v, i) => [v, i]));
}

export async function tinyModelFolder(): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-tiny-'));
  for (const [sub, src, cfg, name] of [
    ['unet', path.join(goldenCase('sd1-unet', 'unet.safetensors'), 'unet.safetensors'), path.join(goldenCase('sd1-unet', 'unet.safetensors'), 'config.json'), 'diffusion_pytorch_model.safetensors'],
    ['vae', path.join(goldenCase('vae'), 'vae.safetensors'), path.join(goldenCase('vae'), 'config.json'), 'diffusion_pytorch_model.safetensors'],
    ['text_encoder', path.join(goldenCase('sd1-text'), 'text_encoder.safetensors'), path.join(goldenCase('sd1-text'), 'config.json'), 'model.safetensors'],
  ]) {
    await mkdir(path.join(dir, sub), { recursive: true });
    await copyFile(src, path.join(dir, sub, name));
    await copyFile(cfg, path.join(dir, sub, 'config.json'));
  }
  await mkdir(path.join(dir, 'tokenizer'));
  await writeFile(path.join(dir, 'tokenizer', 'vocab.json'), JSON.stringify(byteVocab()));
  await writeFile(path.join(dir, 'tokenizer', 'merges.txt'), '#version: 0.2\n');
  return dir;
}
