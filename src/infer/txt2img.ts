// Text to image: prompt (with <lora:...> tags) and negative prompt through CLIP, classifier-free
// guidance over the UNet with the chosen sampler, VAE decode, and A1111-style infotext.
import path from 'node:path';
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type ApplyReport, applyLoRA, removeLoRA } from '../lora/apply.js';
import type { LoRALibrary } from '../lora/library.js';
import { type EmbeddingEntry, embeddingsUsed, tiHashes } from './embeddings.js';
import { loadLoRA } from '../lora/lora-file.js';
import { bLoRASubset } from '../lora/b-lora.js';
import { familyComponents } from '../lora/components.js';
import { externalVaeSource } from '../models/external-vae.js';
import type { SDModel } from '../models/sd-model.js';
import { createSampler } from '../schedulers/index.js';
import { guidanceConditioning } from './prompt-conditioning.js';
import { parsePrompt } from './prompt.js';

export interface Txt2ImgOptions {
  prompt: string;
  negativePrompt?: string;
  width?: number;
  height?: number;
  steps?: number;
  cfgScale?: number;
  seed?: number;
  sampler?: string;
  clipSkip?: number;
  /** Apply LoRA files partly in formats sdlora does not apply, skipping those modules with a warning each. */
  allowPartial?: boolean;
  /** Called after each denoising step. */
  onStep?: (step: number, total: number) => void;
  /** Embeddings registered with the model (src/infer/embeddings.ts): those the prompts use go in the infotext. */
  embeddings?: EmbeddingEntry[];
}

export interface Txt2ImgResult {
  rgb: Uint8Array;
  width: number;
  height: number;
  /** A1111 "parameters" text. */
  infotext: string;
  seed: number;
}

const SAMPLER_LABELS: Record<string, string> = { euler: 'Euler', euler_a: 'Euler a', ddim: 'DDIM', ddpm: 'DDPM', dpmpp_2m: 'DPM++ 2M', dpmpp_2m_karras: 'DPM++ 2M Karras' };

export async function txt2img(m: SDModel, o: Txt2ImgOptions, library?: LoRALibrary): Promise<Txt2ImgResult> {
  // The family's default size (SD 1.x 512, SDXL 1024) when none is given.
  const side = m.family.defaults(m.prediction).resolution;
  const width = o.width ?? side, height = o.height ?? side, steps = o.steps ?? 20, cfg = o.cfgScale ?? 7;
  const seed = o.seed ?? Math.floor(Math.random() * 2 ** 32);
  const factor = 2 ** (m.vae.config.block_out_channels.length - 1);
  const multiple = factor * 2 ** (m.unet.config.block_out_channels.length - 1);
  if (width % multiple || height % multiple || width <= 0 || height <= 0) throw new Error(`width and height must be positive multiples of ${multiple} for this model, got ${width}x${height}`);
  const sampler = createSampler(o.sampler ?? 'euler_a', steps, m.scheduler);
  const { text, loras } = parsePrompt(o.prompt);
  const neg = parsePrompt(o.negativePrompt ?? '');
  const reports: ApplyReport[] = [];
  const hashes: string[] = [];
  try {
    for (const l of [...loras, ...neg.loras]) {
      if (!library) throw new Error(`the prompt uses <lora:${l.name}> but no LoRA folder was given`);
      const entry = library.resolve(l.name);
      const components = familyComponents(m);
      const whole = await loadLoRA(entry.path);
      const file = l.blora ? bLoRASubset(whole, { family: m.family, components }, l.blora) : whole;
      const r = applyLoRA(file, { components }, { te: l.te, unet: l.unet }, { allowPartial: o.allowPartial });
      for (const s of r.skipped) console.error(`${path.basename(entry.path)}: module ${s.name} skipped: ${s.format} is not applied by sdlora (--allow-partial)`);
      if (r.unknown.length) console.error(`${path.basename(entry.path)}: ${r.unknown.length} LoRA modules match no layer of this model (first: ${r.unknown[0]})`);
      reports.push(r);
      if (entry.metadata.sshs_model_hash) hashes.push(`${l.name}: ${entry.metadata.sshs_model_hash.slice(0, 12)}`);
    }
    // New tensors (noise, token ids) go where the model's weights are.
    const be = m.unet.weights.backend ?? E.getDefaultBackend();
    const img = await E.withBackend(be, async () => {
      const { context, added } = guidanceConditioning(m, text, neg.text, { width, height }, o.clipSkip);
      const rng = new E.Rng(seed);
      const lat = [1, m.unet.config.in_channels, height / factor, width / factor];
      let x = E.mulScalar(E.randn(lat, rng), sampler.initNoiseSigma);
      for (let i = 0; i < steps; i++) {
        x = E.noGrad(() => {
          const xin = sampler.scaleModelInput(x, i);
          const out = m.unet.forward(E.concat([xin, xin], 0), E.tensor([sampler.timesteps[i], sampler.timesteps[i]], [2]), context, added);
          const [uncond, cond] = E.chunk(out, 2, 0);
          const guided = E.add(uncond, E.mulScalar(E.sub(cond, uncond), cfg));
          return sampler.step(guided, i, x, sampler.stochastic ? E.randn(lat, rng) : undefined);
        });
        o.onStep?.(i + 1, steps);
        await be.collect?.(); // a GPU backend reclaims the step's temporaries before the next one
      }
      return E.noGrad(() => m.vae.decode(E.mulScalar(x, 1 / m.vae.config.scaling_factor)));
    });
    const rgb = await toRgb(img);
    const params = [
      `Steps: ${steps}`, `Sampler: ${SAMPLER_LABELS[sampler.name] ?? sampler.name}`, `CFG scale: ${cfg}`, `Seed: ${seed}`,
      `Size: ${width}x${height}`, `Model: ${path.basename(m.source).replace(/\.safetensors$/, '')}`,
      ...(externalVaeSource(m.vae) ? [`VAE: ${path.basename(externalVaeSource(m.vae)!)}`] : []),
      ...(o.clipSkip && o.clipSkip > 1 ? [`Clip skip: ${o.clipSkip}`] : []),
      ...(hashes.length ? [`Lora hashes: "${hashes.join(', ')}"`] : []),
      ...[tiHashes(embeddingsUsed(o.embeddings ?? [], text, neg.text))].filter((x): x is string => !!x),
      'Version: sdlora 0.1.0',
    ];
    const infotext = `${o.prompt}\n${o.negativePrompt ? `Negative prompt: ${o.negativePrompt}\n` : ''}${params.join(', ')}`;
    return { rgb, width, height, infotext, seed };
  } finally {
    reports.forEach(removeLoRA);
  }
}

/** [1, 3, H, W] in [-1, 1] to interleaved RGB bytes. */
export async function toRgb(img: Tensor): Promise<Uint8Array> {
  const [, c, h, w] = img.shape;
  if (c !== 3) throw new Error(`expected a 3-channel image, got [${img.shape}]`);
  const d = await img.data();
  const out = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < 3; k++) {
    const v = (d[(k * h + y) * w + x] / 2 + 0.5) * 255;
    out[(y * w + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(v)));
  }
  return out;
}
