// A diffusers folder assembled from the golden tiny UNet/VAE/CLIP, with a byte-level tokenizer
// whose ids fit the tiny vocabulary (no merges: one token per byte).
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync } from 'node:fs';
import { goldenDir } from './golden.js';

export function byteVocab(): Record<string, number> {
  const bs: number[] = [];
  for (let i = 33; i <= 126; i++) bs.push(i);
  for (let i = 161; i <= 172; i++) bs.push(i);
  for (let i = 174; i <= 255; i++) bs.push(i);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  const chars = cs.map((c) => String.fromCodePoint(c));
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
