// VRAM, RAM and time of a LoRA training run, from a FLOP and memory model of the UNet, text
// encoder and VAE at a resolution, with rank, batch, precision and gradient checkpointing.
import type { UNetConfig } from '../models/unet-config.js';
import { unetParamShapes } from '../models/unet-params.js';
import type { Device } from './gpus.js';
import { loraParams, unetCost } from './unet-cost.js';

export interface EstimateInput {
  unet: UNetConfig;
  /** Parameters of the frozen parts (SD 1.5: text encoder 123M, VAE 84M). */
  textEncoderParams: number;
  vaeParams: number;
  textEncoderLayers: number;
  textHidden: number;
  resolution: [number, number];
  batch: number;
  rank: number;
  mixedPrecision: boolean;
  gradientCheckpointing: boolean;
  cacheLatents: boolean;
  trainTextEncoder: boolean;
  optimizer: string;
  steps: number;
  /** Materialized attention scores (false: flash/SDPA attention). */
  naiveAttention: boolean;
}

export interface Estimate {
  vramGB: number;
  ramGB: number;
  secondsPerStep: number;
  totalHours: number;
  fits: boolean;
  breakdown: Record<string, number>;
  stepTflop: number;
}

const GB = 1024 ** 3;

export function estimate(i: EstimateInput, d: Device): Estimate {
  const [w, h] = i.resolution;
  const lat = [h / 8, w / 8];
  const cost = unetCost(i.unet, lat[0], lat[1]);
  const bytes = i.mixedPrecision ? 2 : 4;
  const unetShapes = unetParamShapes(i.unet);
  let unetParams = 0;
  for (const s of unetShapes.values()) unetParams += s.reduce((a, b) => a * b, 1);
  const lora = loraParams(unetShapes, /attentions\.\d+\./, i.rank) + (i.trainTextEncoder ? i.textEncoderLayers * i.rank * (4 * 2 * i.textHidden + 2 * 5 * i.textHidden) : 0);
  const optBytes = /8bit/i.test(i.optimizer) ? 2 : /lion/i.test(i.optimizer) ? 4 : /prodigy/i.test(i.optimizer) ? 16 : 8;
  const weights = (unetParams + i.textEncoderParams + i.vaeParams) * bytes;
  const loraMem = lora * (4 + 4 + optBytes);
  const saved = i.gradientCheckpointing ? cost.boundaries + cost.maxBlock : cost.activations;
  const scores = i.naiveAttention ? cost.maxScores * bytes * i.batch * (i.gradientCheckpointing ? 1 : 3) : 0;
  const activations = saved * bytes * i.batch + scores;
  const vaePeak = i.cacheLatents ? 0 : 128 * w * h * bytes * 3;
  const workspace = 0.6 * GB;
  const vram = (weights + loraMem + activations + vaePeak) * 1.15 + workspace;
  // FLOPs: forward + backward (2x) through the UNet, plus a recompute with checkpointing,
  // the text encoder, and the VAE encoder when latents are not cached.
  const unetStep = cost.flops * (i.gradientCheckpointing ? 4 : 3) * i.batch;
  const teStep = 2 * i.textEncoderParams * 77 * i.batch * (i.trainTextEncoder ? 3 : 1);
  // The SD VAE encoder costs about 2.1 MFLOP per image pixel (0.54 TFLOP at 512x512).
  const vaeStep = i.cacheLatents ? 0 : 2.06e6 * w * h * i.batch * (i.vaeParams / 83.65e6);
  const stepFlops = unetStep + teStep + vaeStep;
  const seconds = stepFlops / (d.tflops * 1e12 * d.efficiency);
  const ram = (unetParams + i.textEncoderParams + i.vaeParams) * 4 * 1.3 + 2 * GB;
  return {
    vramGB: vram / GB, ramGB: ram / GB, secondsPerStep: seconds, totalHours: (seconds * i.steps) / 3600, fits: vram / GB <= d.memoryGB,
    breakdown: { weightsGB: weights / GB, loraAndOptimizerGB: loraMem / GB, activationsGB: activations / GB, vaeGB: vaePeak / GB, workspaceGB: workspace / GB },
    stepTflop: stepFlops / 1e12,
  };
}

export const ASSUMPTIONS = [
  'UNet FLOPs are counted layer by layer from the config (2 per multiply-add); a training step is forward + 2x backward (+1 forward with gradient checkpointing)',
  'activations: every tensor a layer keeps for backward, in the compute precision; with checkpointing only block boundaries plus the largest block',
  'attention uses flash/SDPA kernels (no score matrix) on GPUs; the score matrix is counted with --naive-attention',
  'LoRA: rank x (in + out) per targeted layer, f32 weights and gradients plus the optimizer state (AdamW 8 B, AdamW8bit 2 B, Lion 4 B per value)',
  'memory: +15% allocator overhead and 0.6 GB of CUDA context/workspace; the VAE encoder peak counts when latents are not cached',
  'speed: dense FP16 tensor peak x 35% utilization (an assumption for consumer GPUs; "cpu" is sdlora itself, calibrated with --calibrate)',
];
