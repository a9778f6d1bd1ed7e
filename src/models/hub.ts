// Resolving a model reference: a local folder or file, "tiny" (the bundled model), or a Hugging
// Face repo id, downloaded once into ~/.cache/sdlora/hub (diffusers layout, safetensors only; SDXL
// repos with text_encoder_2/ and tokenizer_2/ too).
import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const TINY_MODEL_DIR = path.resolve(here, '../../assets/tiny-sd');

const FILES = [
  'unet/config.json', 'unet/diffusion_pytorch_model.safetensors',
  'vae/config.json', 'vae/diffusion_pytorch_model.safetensors',
  'text_encoder/config.json', 'text_encoder/model.safetensors',
  'tokenizer/vocab.json', 'tokenizer/merges.txt', 'scheduler/scheduler_config.json',
];

/** Present in SDXL repos only (StableDiffusionXLPipeline's text_encoder_2 / tokenizer_2). */
const SDXL_PROBE = 'text_encoder_2/config.json';
const SDXL_FILES = ['text_encoder_2/model.safetensors', 'tokenizer_2/vocab.json', 'tokenizer_2/merges.txt'];

export function hubCacheDir(repo: string): string {
  const root = process.env.SDLORA_CACHE ?? path.join(os.homedir(), '.cache', 'sdlora', 'hub');
  return path.join(root, repo.replace('/', '--'));
}

async function download(repo: string, file: string, dest: string, log: (m: string) => void): Promise<void> {
  const url = `${process.env.HF_ENDPOINT ?? 'https://huggingface.co'}/${repo}/resolve/main/${file}`;
  let res: Response;
  try {
    res = await fetch(url, { headers: process.env.HF_TOKEN ? { authorization: `Bearer ${process.env.HF_TOKEN}` } : {} });
  } catch (e) {
    throw new Error(`cannot download ${repo}/${file} (${(e as Error).message}); without network access, download the model elsewhere and pass its folder or .safetensors file`);
  }
  if (!res.ok || !res.body) throw new Error(`downloading ${url} failed: HTTP ${res.status}${res.status === 401 || res.status === 403 ? ' (gated model: set HF_TOKEN)' : ''}`);
  mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.part`;
  log(`downloading ${repo}/${file}`);
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(tmp));
  renameSync(tmp, dest);
}

/** A local path for the model reference, downloading from the hub if needed. */
export async function resolveModel(ref: string, log: (m: string) => void = () => {}): Promise<string> {
  if (ref === 'tiny') {
    if (!existsSync(TINY_MODEL_DIR)) throw new Error(`the bundled tiny model is missing at ${TINY_MODEL_DIR}`);
    return TINY_MODEL_DIR;
  }
  if (existsSync(ref)) return ref;
  if (!/^[\w.-]+\/[\w.-]+$/.test(ref)) throw new Error(`${ref}: no such model file or folder`);
  const dir = hubCacheDir(ref);
  /** 'optional' files fall back to bundled defaults; 'probe' files tell the family (a 404 is an answer). */
  const fetchFile = async (f: string, kind: 'required' | 'optional' | 'probe'): Promise<boolean> => {
    const dest = path.join(dir, f);
    // `.absent` remembers a file the repo does not have, so it is not asked for again.
    if (existsSync(dest)) return true;
    if (existsSync(`${dest}.absent`)) return false;
    try { await download(ref, f, dest, log); return true; } catch (e) {
      const notFound = /HTTP 404/.test((e as Error).message);
      if (kind !== 'required' && notFound) {
        mkdirSync(path.dirname(dest), { recursive: true });
        writeFileSync(`${dest}.absent`, '');
      }
      if (kind === 'optional' || (kind === 'probe' && notFound)) {
        if (kind === 'optional') log(`${ref}: ${(e as Error).message}; using the bundled defaults`);
        return false;
      }
      if (!existsSync(path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors'))) rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  };
  const optional = (f: string) => (/^(tokenizer|tokenizer_2|scheduler)\//.test(f) ? 'optional' : 'required');
  for (const f of FILES) await fetchFile(f, optional(f));
  // SDXL repos add a second text encoder and tokenizer; a 404 on its config means another family.
  if (await fetchFile(SDXL_PROBE, 'probe')) for (const f of SDXL_FILES) await fetchFile(f, optional(f));
  return dir;
}
