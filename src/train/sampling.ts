// Sample images during training (sample_prompts): txt2img with the model as it trains, written
// to <output_dir>/sample/<name>_<tag>_<nn>_<time>_<seed>.png.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { writeBufferAtomic } from '../io/atomic-write.js';
import { encodePng } from '../io/png.js';
import { txt2img } from '../infer/txt2img.js';
import type { SDModel } from '../models/sd-model.js';
import { samplerName } from '../schedulers/index.js';
import type { TrainOptions } from './options.js';
import { readSamplePrompts } from './sample-prompts.js';

export interface Sampler {
  /** The files written so far. */
  samples: string[];
  sample(tag: string): Promise<void>;
}

/** `training(false)` before the passes and `training(true)` after (a LoRA's dropout is off while sampling). */
export function sampler(model: SDModel, c: TrainOptions, name: string, training?: (on: boolean) => void): Sampler {
  const prompts = c.sample_prompts ? readSamplePrompts(c.sample_prompts) : [];
  // A sampler sdlora does not have is refused now, not at the first sample after some training.
  for (const [i, p] of prompts.entries()) {
    if (p.sampler === undefined) continue;
    try { samplerName(p.sampler); } catch (e) { throw new Error(`${c.sample_prompts}: prompt ${i + 1}: --ss ${p.sampler}: ${(e as Error).message}`); }
  }
  const samples: string[] = [];
  const sampleDir = path.join(c.output_dir, 'sample');
  const sample = async (tag: string) => {
    if (!prompts.length) return;
    mkdirSync(sampleDir, { recursive: true });
    training?.(false);
    for (const [i, p] of prompts.entries()) {
      const seedP = p.seed ?? Math.floor(Math.random() * 2 ** 31);
      const r = await txt2img(model, { prompt: p.prompt, negativePrompt: p.negativePrompt, width: p.width, height: p.height, steps: p.steps, cfgScale: p.cfgScale, seed: seedP, sampler: p.sampler ?? c.sample_sampler, clipSkip: c.clip_skip });
      const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
      const file = path.join(sampleDir, `${name}_${tag}_${String(i).padStart(2, '0')}_${stamp}_${seedP}.png`);
      await writeBufferAtomic(file, encodePng(r.rgb, r.width, r.height, { parameters: r.infotext }));
      samples.push(file);
    }
    training?.(true);
  };
  return { samples, sample };
}
