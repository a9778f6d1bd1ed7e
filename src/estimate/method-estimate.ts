// The estimate of each training method (training_method): LoRA as estimate.ts models it; Textual
// Inversion trains a few token vectors but backpropagates through the text encoder; DreamBooth
// trains every UNet weight (and the text encoder's when it trains): f32 master weights, their
// gradients and the optimizer state for all of them, which dominate its memory (SD 1.5 with AdamW:
// (859.5M + 123M) x (4 + 4 + 8) B = 14.6 GiB before activations).
import { unetParamShapes } from '../models/unet-params.js';
import type { TrainingMethodName } from '../train/training-method.js';
import { type Estimate, type EstimateInput, estimate } from './estimate.js';
import type { Device } from './gpus.js';

const GB = 1024 ** 3;

/** Optimizer state bytes per trained value (as estimate.ts counts them for LoRA). */
export function optimizerBytes(optimizer: string): number {
  return /8bit/i.test(optimizer) ? 2 : /lion/i.test(optimizer) ? 4 : /prodigy/i.test(optimizer) ? 16 : 8;
}

export function estimateMethod(method: TrainingMethodName, i: EstimateInput, d: Device): Estimate & { method: TrainingMethodName } {
  if (method === 'lora') return { ...estimate(i, d), method };
  if (method === 'textual_inversion') return { ...estimate({ ...i, rank: 0, trainTextEncoder: true }, d), method };
  // DreamBooth: the activation, VAE, workspace and time model of a LoRA run (rank 0), with the
  // weights and optimizer replaced by full-weight training.
  const e = estimate({ ...i, rank: 0 }, d);
  let unetParams = 0;
  for (const s of unetParamShapes(i.unet).values()) unetParams += s.reduce((a, b) => a * b, 1);
  const trained = unetParams + (i.trainTextEncoder ? i.textEncoderParams : 0);
  const frozen = i.vaeParams + (i.trainTextEncoder ? 0 : i.textEncoderParams);
  const weights = trained * 4 + frozen * (i.mixedPrecision ? 2 : 4);
  const gradsAndOptimizer = trained * (4 + optimizerBytes(i.optimizer));
  const b = e.breakdown;
  const range = (e as { vramRangeGB?: [number, number] }).vramRangeGB;
  const vram = (weights + gradsAndOptimizer + (b.activationsGB + b.vaeGB) * GB) * 1.15 + b.workspaceGB * GB;
  // sdlora updates on the host: the optimizer state and a gradient copy live in RAM as well.
  const ram = e.ramGB + (trained * (4 + optimizerBytes(i.optimizer))) / GB;
  return {
    ...e, method, vramGB: vram / GB, ramGB: ram, fits: vram / GB <= d.memoryGB,
    // The practice figure of a LoRA run (where the estimate has one) plus the full-weight state.
    ...(range ? { vramRangeGB: [vram / GB, Math.max(vram / GB, range[1] + gradsAndOptimizer / GB)] } : {}),
    breakdown: { ...b, weightsGB: weights / GB, loraAndOptimizerGB: 0, gradientsAndOptimizerGB: gradsAndOptimizer / GB },
  };
}

export const METHOD_ASSUMPTIONS = [
  'textual_inversion: the trained vectors are negligible; the step backpropagates through the text encoder (3x its forward)',
  'dreambooth: every UNet weight (and the text encoder\'s when it trains) is an f32 master weight with an f32 gradient and the optimizer state (AdamW 8 B, AdamW8bit 2 B per value); mixed_precision halves only the frozen parts; sdlora keeps the optimizer state in RAM too',
];
