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
  /** Every text encoder (SDXL has two); when given, textEncoderLayers/textHidden are not used for the LoRA count. */
  textEncoders?: { layers: number; hidden: number }[];
  /** The VAE stays f32 under mixed precision (SDXL). */
  vaeF32?: boolean;
  /** SDXL: the printed time range also covers the published SDXL figure (see SDXL_BAND). */
  family?: 'sd1' | 'sd2' | 'sdxl';
}

export interface Estimate {
  vramGB: number;
  /** sdlora's own accounting (vramGB) to the memory kohya sd-scripts users report needing (mission memo, SD 1.5). */
  vramRangeGB: [number, number];
  ramGB: number;
  secondsPerStep: number;
  /** The expected error band of secondsPerStep (and totalHours): [low, high]. */
  secondsRange: [number, number];
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
  const tes = i.textEncoders ?? [{ layers: i.textEncoderLayers, hidden: i.textHidden }];
  const lora = loraParams(unetShapes, /attentions\.\d+\./, i.rank) + (i.trainTextEncoder ? tes.reduce((n, t) => n + t.layers * i.rank * (4 * 2 * t.hidden + 2 * 5 * t.hidden), 0) : 0);
  const optBytes = /8bit/i.test(i.optimizer) ? 2 : /lion/i.test(i.optimizer) ? 4 : /prodigy/i.test(i.optimizer) ? 16 : 8;
  const vaeBytes = i.vaeF32 ? 4 : bytes;
  const weights = (unetParams + i.textEncoderParams) * bytes + i.vaeParams * vaeBytes;
  const loraMem = lora * (4 + 4 + optBytes);
  const saved = i.gradientCheckpointing ? cost.boundaries + cost.maxBlock : cost.activations;
  const scores = i.naiveAttention ? cost.maxScores * bytes * i.batch * (i.gradientCheckpointing ? 1 : 3) : 0;
  const activations = saved * bytes * i.batch + scores;
  const vaePeak = i.cacheLatents ? 0 : 128 * w * h * vaeBytes * 3;
  const workspace = 0.6 * GB;
  const vram = (weights + loraMem + activations + vaePeak) * 1.15 + workspace;
  // FLOPs: forward + backward (2x) through the UNet, plus a recompute with checkpointing,
  // the text encoder, and the VAE encoder when latents are not cached.
  const unetStep = cost.flops * (i.gradientCheckpointing ? 4 : 3) * i.batch;
  const teStep = 2 * i.textEncoderParams * 77 * i.batch * (i.trainTextEncoder ? 3 : 1);
  // The SD VAE encoder costs about 2.1 MFLOP per image pixel (0.54 TFLOP at 512x512).
  const vaeStep = i.cacheLatents ? 0 : 2.06e6 * w * h * i.batch * (i.vaeParams / 83.65e6);
  const stepFlops = unetStep + teStep + vaeStep;
  const seconds = stepSeconds(stepFlops, w * h * i.batch, d);
  const band = d.id === 'cpu' ? CPU_BAND : i.family === 'sdxl' ? SDXL_BAND : GPU_BAND;
  // The memo's figures are for SD-class models (UNet ~860M, 2 GB of f16 weights): for a larger
  // model the weights it adds on top of SD 1.5's come on top of the memo's figure.
  const practice = practiceVramGB(w * h) + Math.max(0, weights - SD15_FROZEN_PARAMS * bytes) / GB;
  const ram = (unetParams + i.textEncoderParams + i.vaeParams) * 4 * 1.3 + 2 * GB;
  return {
    vramGB: vram / GB, vramRangeGB: [vram / GB, Math.max(vram / GB, practice)],
    ramGB: ram / GB, secondsPerStep: seconds, secondsRange: [seconds * band[0], seconds * band[1]], totalHours: (seconds * i.steps) / 3600, fits: vram / GB <= d.memoryGB,
    breakdown: { weightsGB: weights / GB, loraAndOptimizerGB: loraMem / GB, activationsGB: activations / GB, vaeGB: vaePeak / GB, workspaceGB: workspace / GB },
    stepTflop: stepFlops / 1e12,
  };
}

/**
 * Seconds per step on a device. GPUs: a fit to the mission memo's measured table (SD 1.5, rank 64,
 * batch 1, 512-2048 px on RTX 5070 Ti / 5080 / 5090, 1500 steps), in TFLOP-equivalents of the
 * device's dense FP16 peak: a fixed cost per step (launches, optimizer, data loading: 103), one that
 * grows with the pixels trained (VAE encode, image pipeline: 186 per megapixel) and the counted
 * FLOPs at 78% of peak. The memo's times grow with pixels, not with FLOPs (2048 px has 47x the
 * FLOPs of 512 px but takes 7x as long), which a FLOPs-only model cannot follow. "cpu" is sdlora
 * itself: FLOPs at its measured efficiency.
 */
function stepSeconds(stepFlops: number, pixels: number, d: Device): number {
  if (d.id === 'cpu') return stepFlops / (d.tflops * 1e12 * d.efficiency);
  return (GPU_FIT.fixed + GPU_FIT.perMegapixel * (pixels / 1e6) + GPU_FIT.perTflop * (stepFlops / 1e12)) / d.tflops;
}
export const GPU_FIT = { fixed: 102.9, perMegapixel: 185.7, perTflop: 1.28 };
/**
 * Expected error bands, as factors of the point estimate. GPU: the widest miss of the fit above
 * on the memo's 15 ranges (they all fall inside [0.75x, 1.45x]). cpu: the bench cases of issue 15
 * against the estimate (bench/run.ts --cases-only).
 */
export const GPU_BAND: [number, number] = [0.75, 1.45];
export const CPU_BAND: [number, number] = [0.7, 1.5];
/**
 * SDXL uses the same fit (so it stays slower than SD 1.x at any size), but the fit's overheads
 * come from the memo's SD 1.5 runs; the published SDXL LoRA figure (1024 px, batch 1, about 1.1
 * it/s on an RTX 4090, kohya sd-scripts with gradient checkpointing and cached latents) is 0.46x the
 * fit's 1.98 s there, so the low end of the printed range reaches down to it.
 */
export const SDXL_BAND: [number, number] = [0.42, 1.45];

/** SD 1.5's UNet, text encoder and VAE parameters, the model of the memo's memory figures. */
const SD15_FROZEN_PARAMS = 859.5e6 + 123e6 + 83.65e6;
/**
 * The minimum VRAM the mission memo reports for SD 1.5 LoRA with gradient checkpointing (kohya
 * sd-scripts, PyTorch's caching allocator, fp16), interpolated over the trained pixels. It is far
 * above sdlora's own accounting at high resolutions: see the README's estimator section.
 */
function practiceVramGB(pixels: number): number {
  const pts: [number, number][] = [[512 ** 2, 6], [768 ** 2, 10], [1024 ** 2, 16], [1536 ** 2, 20], [2048 ** 2, 24]];
  if (pixels <= pts[0][0]) return pts[0][1] * Math.sqrt(pixels / pts[0][0]);
  for (let k = 1; k < pts.length; k++) {
    if (pixels <= pts[k][0]) {
      const [x0, y0] = pts[k - 1], [x1, y1] = pts[k];
      return y0 + ((y1 - y0) * (pixels - x0)) / (x1 - x0);
    }
  }
  const [x, y] = pts[pts.length - 1];
  return y * Math.sqrt(pixels / x);
}

export const ASSUMPTIONS = [
  'UNet FLOPs are counted layer by layer from the config (2 per multiply-add); a training step is forward + 2x backward (+1 forward with gradient checkpointing)',
  'activations: every tensor a layer keeps for backward, in the compute precision; with checkpointing only block boundaries plus the largest block',
  'attention uses flash/SDPA kernels (no score matrix) on GPUs; the score matrix is counted with --naive-attention',
  'LoRA: rank x (in + out) per targeted layer, f32 weights and gradients plus the optimizer state (AdamW 8 B, AdamW8bit 2 B, Lion 4 B per value)',
  'memory: +15% allocator overhead and 0.6 GB of CUDA context/workspace; the VAE encoder peak counts when latents are not cached',
  'speed on GPUs: fitted to the mission memo\'s measured table (fixed + per-megapixel + per-TFLOP costs over the dense FP16 peak); the printed range is the fit\'s widest miss there (-25%/+45%)',
  'speed on "cpu": sdlora itself, FLOPs at its measured efficiency (calibrate with --calibrate), range -30%/+50%',
  'VRAM: sdlora\'s accounting, up to what kohya sd-scripts users report needing (the memo\'s SD 1.5 table, plus the weights a larger model such as SDXL adds)',
  'SDXL: two text encoders (CLIP ViT-L 123M + OpenCLIP bigG 695M), the VAE in f32; its time range reaches down to the published 1.1 it/s of an RTX 4090 at 1024 px (-58%/+45%)',
];
