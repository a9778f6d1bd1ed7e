// A diffusers folder assembled from the golden tiny UNet/VAE/CLIP, with a byte-level tokenizer
// whose ids fit the tiny vocabulary (no merges: one token per byte).
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync } from 'node:fs';
import { bytesToUnicode } from '../../src/models/clip-tokenizer.js';
import { goldenDir } from './golden.js';

export function byteVocab(): Record<string, number> {
  const chars = bytesToUnicode().ordered;
  const vocab = [...chars, ...chars.map((c) => `${c}</w>`), '<|startoftext|>', '<|endoftext|>'];
  return Object.fromEntries(vocab.map((v, i) => [v, i]));
}

export async function tinyModelFolder(): Promise<string> {
  const g = goldenDir();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdlora-tiny-'));
  for (const [sub, src, cfg, name] of [
    ['unet', 'unet-tiny/unet.safetensors', 'unet-tiny/config.json', 'diffusion_pytorch_model.safetensors'],
    ['vae', 'vae-tiny/vae.safetensors', 'vae-tiny/config.json', 'diffusion_pytorch_model.safetensors'],
    ['text_encoder', 'clip-text-tiny/text_encoder.safetensors', 'clip-text-tiny/config.json', 'model.safetensors'],
  ]) {
    await mkdir(path.join(dir, sub), { recursive: true });
    await copyFile(path.join(g, src), path.join(dir, sub, name));
    await copyFile(path.join(g, cfg), path.join(dir, sub, 'config.json'));
  }
  await mkdir(path.join(dir, 'tokenizer'));
  await writeFile(path.join(dir, 'tokenizer', 'vocab.json'), JSON.stringify(byteVocab()));
  await writeFile(path.join(dir, 'tokenizer', 'merges.txt'), '#version: 0.2\n');
  return dir;
}
