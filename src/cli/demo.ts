// `sdlora demo`: trains a LoRA of a new concept (a cross shape) on the bundled tiny model, writes
// the LoRA and before/after sample grids, and prints a measured concept score for both.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../engine/index.js';
import { writeBufferAtomic } from '../io/atomic-write.js';
import { encodePng } from '../io/png.js';
import { foregroundMask, matchShapes } from '../infer/shape-score.js';
import { txt2img } from '../infer/txt2img.js';
import { type ApplyReport, applyLoRA, removeLoRA } from '../lora/apply.js';
import { loadLoRA } from '../lora/lora-file.js';
import { TINY_MODEL_DIR } from '../models/hub.js';
import { loadSDModel, type SDModel } from '../models/sd-model.js';
import { resolveConfig } from '../train/config.js';
import { train } from '../train/trainer.js';
import { ProgressBar, fmt } from './progress.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const DEMO_DATASET = path.resolve(here, '../../assets/demo-dataset/train');

/** The shape the base model never saw in pretraining, and the ones it knows. */
export const CONCEPT = 'cross';
const KNOWN = ['circle', 'square', 'triangle'] as const;
const COLORS = ['red', 'blue', 'yellow', 'green', 'purple', 'orange'];
const BGS = ['white', 'black', 'gray'];

export interface DemoOptions {
  out: string;
  steps: number;
  images: number;
  seed: number;
}

export interface ConceptScore {
  /** Share of images whose best-matching shape template is the concept. */
  rate: number;
  /** Mean best IoU of the concept template. */
  meanIou: number;
  predictions: string[];
}

async function sampleGrid(model: SDModel, prompts: string[], file: string, seed: number): Promise<{ images: Uint8Array[]; score: ConceptScore }> {
  const size = 32, cols = Math.min(prompts.length, 8), rows = Math.ceil(prompts.length / cols);
  const grid = new Uint8Array(cols * size * rows * size * 3).fill(255);
  const images: Uint8Array[] = [];
  const preds: string[] = [];
  let iouSum = 0;
  for (const [i, prompt] of prompts.entries()) {
    const r = await txt2img(model, { prompt, negativePrompt: '', width: size, height: size, steps: 15, cfgScale: 5, seed: seed + i, sampler: 'dpmpp_2m' });
    images.push(r.rgb);
    const m = matchShapes(foregroundMask(r.rgb, size), size, [CONCEPT, ...KNOWN]);
    preds.push(m.best);
    iouSum += m.iou[CONCEPT];
    const gx = (i % cols) * size, gy = Math.floor(i / cols) * size;
    for (let y = 0; y < size; y++) grid.set(r.rgb.subarray(y * size * 3, (y + 1) * size * 3), ((gy + y) * cols * size + gx) * 3);
  }
  await writeBufferAtomic(file, encodePng(grid, cols * size, rows * size, { parameters: prompts.join('\n') }));
  return { images, score: { rate: preds.filter((p) => p === CONCEPT).length / prompts.length, meanIou: iouSum / prompts.length, predictions: preds } };
}

/** The demo's training settings; the web page trains with the same ones (web/src/engine-worker.ts). */
export function demoTrainValues(o: { out: string; steps: number; seed: number; dataset?: string }): Record<string, unknown> {
  return {
    pretrained_model_name_or_path: 'tiny', train_data_dir: o.dataset ?? DEMO_DATASET, caption_extension: '.txt', resolution: 32,
    output_dir: o.out, output_name: CONCEPT, train_batch_size: 4, max_train_steps: o.steps, learning_rate: 5e-3, min_snr_gamma: 5,
    lr_scheduler: 'cosine', lr_warmup_steps: 10, network_dim: 16, network_alpha: 16, network_args: ['conv_dim=16', 'conv_alpha=16'],
    optimizer_type: 'AdamW', cache_latents: true, seed: o.seed,
  };
}

export async function runDemo(o: DemoOptions): Promise<{ base: ConceptScore; lora: ConceptScore; loraPath: string; seconds: number }> {
  const t0 = performance.now();
  await E.initCpuBackend();
  if (!existsSync(TINY_MODEL_DIR)) throw new Error(`the bundled tiny model is missing (${TINY_MODEL_DIR}); run scripts/build-tiny-model.ts`);
  mkdirSync(o.out, { recursive: true });
  console.log(`sdlora demo: teaching the bundled tiny model a shape it has never seen (a ${CONCEPT})\n  dataset ${DEMO_DATASET}\n  output  ${path.resolve(o.out)}`);
  const cfg = resolveConfig([{ source: 'demo', values: demoTrainValues(o) }]);
  let bar: ProgressBar | undefined;
  const r = await train(cfg, {
    log: (m) => console.log(`  ${m}`),
    onStep: (s) => { bar ??= new ProgressBar('train', s.maxSteps, 'step'); bar.update(s.step, `loss ${s.avgLoss.toFixed(4)}`); },
  });
  const loraPath = r.finalPath!;
  const prompts = Array.from({ length: o.images }, (_, i) => `a ${COLORS[i % COLORS.length]} ${CONCEPT} on a ${BGS[i % BGS.length]} background`);
  const model = await loadSDModel(TINY_MODEL_DIR);
  console.log('sampling base model ...');
  const base = await sampleGrid(model, prompts, path.join(o.out, 'before-base.png'), o.seed);
  const lora = await loadLoRA(loraPath);
  const rep: ApplyReport = applyLoRA(lora, { unet: model.unet.weights, textEncoder: model.textEncoder.weights }, { unet: 1, te: 1 });
  console.log('sampling base + LoRA ...');
  const withLora = await sampleGrid(model, prompts, path.join(o.out, 'after-lora.png'), o.seed);
  removeLoRA(rep);
  const seconds = (performance.now() - t0) / 1000;
  const line = (name: string, s: ConceptScore) => `  ${name.padEnd(12)} ${CONCEPT} in ${Math.round(s.rate * prompts.length)}/${prompts.length} images (${(100 * s.rate).toFixed(0)}%), mean ${CONCEPT} IoU ${s.meanIou.toFixed(3)}  [${s.predictions.join(' ')}]`;
  console.log(`\nconcept score (template match of the ${CONCEPT} shape in ${prompts.length} generated images, same seeds; best of ${[CONCEPT, ...KNOWN].join(', ')}):`);
  console.log(line('base', base.score));
  console.log(line('base + LoRA', withLora.score));
  console.log(`\nLoRA:    ${loraPath}\nsamples: ${path.join(o.out, 'before-base.png')}, ${path.join(o.out, 'after-lora.png')}\nloss:    ${path.join(o.out, `${CONCEPT}-loss.svg`)}\ntotal ${fmt(seconds)}`);
  return { base: base.score, lora: withLora.score, loraPath, seconds };
}
