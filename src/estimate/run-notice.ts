// The lines a training run prints before step 1: which device it uses and why, and how long the
// whole run should take there. A run that needs more than an hour on the cpu says so plainly,
// with what a GPU would take, because the alternative is finding out after a day.
import type { UNetConfig } from '../models/unet-config.js';
import { estimate } from './estimate.js';
import { type Device, findDevice } from './gpus.js';

export interface RunShape {
  unet: UNetConfig;
  resolution: [number, number];
  batch: number;
  rank: number;
  steps: number;
  mixedPrecision: boolean;
  gradientCheckpointing: boolean;
  cacheLatents: boolean;
  trainTextEncoder: boolean;
  optimizer: string;
}

export interface DeviceInfo {
  name: 'cpu' | 'webgpu';
  adapter?: string;
  reason: string;
}

const dur = (h: number) => (h >= 48 ? `${(h / 24).toFixed(1)} days` : h >= 1 ? `${h.toFixed(1)} h` : `${Math.max(1, Math.round(h * 60))} min`);

function hoursOn(r: RunShape, d: Device): { h: number; lo: number; hi: number } {
  // SD 1.5's frozen parts; the UNet, which dominates, comes from the model's own config.
  const e = estimate({
    unet: r.unet, textEncoderParams: 123e6, vaeParams: 83.65e6, textEncoderLayers: 12, textHidden: 768, resolution: r.resolution, batch: r.batch,
    rank: r.rank, mixedPrecision: r.mixedPrecision, gradientCheckpointing: r.gradientCheckpointing, cacheLatents: r.cacheLatents,
    trainTextEncoder: r.trainTextEncoder, optimizer: r.optimizer, steps: r.steps, naiveAttention: d.id === 'cpu',
  }, d);
  const f = e.totalHours / e.secondsPerStep;
  return { h: e.totalHours, lo: e.secondsRange[0] * f, hi: e.secondsRange[1] * f };
}

/** "device: webgpu (NVIDIA ...): auto: hardware WebGPU adapter ..." */
export function deviceLine(dev: DeviceInfo): string {
  return `device: ${dev.name}${dev.adapter && dev.name === 'webgpu' ? ` (${dev.adapter})` : ''}: ${dev.reason}`;
}

/** The estimated time of the whole run on `device`, plus a plain warning when the cpu would need over an hour. */
export function runTimeLines(r: RunShape, dev: 'cpu' | 'webgpu'): string[] {
  const lines: string[] = [];
  const dev_ = { name: dev };
  // A hardware adapter of unknown model is estimated as a mid-range card (RTX 4070).
  const d = findDevice(dev_.name === 'cpu' ? 'cpu' : 'rtx-4070');
  const t = hoursOn(r, d);
  const what = dev_.name === 'cpu' ? 'on the cpu' : 'on this GPU (estimated as an RTX 4070)';
  lines.push(`estimated time of the whole run (${r.steps} steps) ${what}: ${dur(t.h)} (${dur(t.lo)} to ${dur(t.hi)})`);
  if (dev_.name === 'cpu' && t.h > 1) {
    const g1 = hoursOn(r, findDevice('rtx-4070')), g2 = hoursOn(r, findDevice('rtx-4090'));
    lines.push(`WARNING: this run will take about ${dur(t.h)} on the CPU. A GPU would take about ${dur(g1.h)} (RTX 4070) to ${dur(g2.h)} (RTX 4090): run it on a machine with a GPU and device = auto or webgpu.`);
  }
  return lines;
}
