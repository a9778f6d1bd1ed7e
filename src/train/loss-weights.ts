// Per-sample loss weights and noise options of sd-scripts (§3.4-3.6, library/custom_train_functions.py).
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';

/** all_snr[t] = acp_t / (1 - acp_t). */
export function allSnr(acp: Float32Array): Float64Array {
  return Float64Array.from(acp, (a) => { const s = Math.sqrt(a) / Math.sqrt(1 - a); return s * s; });
}

export function minSnrWeight(snr: number, gamma: number, vPrediction: boolean): number {
  return vPrediction ? Math.min(snr, gamma) / (snr + 1) : Math.min(snr, gamma) / snr;
}

export function scaleVPredLikeNoisePred(snr: number): number {
  const s = Math.min(snr, 1000);
  return s / (s + 1);
}

export function debiasedWeight(snr: number, vPrediction: boolean): number {
  const s = Math.min(snr, 1000);
  return vPrediction ? 1 / (s + 1) : 1 / Math.sqrt(s);
}

/** Per-element loss before the mean: l2, l1, huber or smooth_l1 with c per sample. */
export function elementLoss(pred: Tensor, target: Tensor, type: string, c?: Tensor): Tensor {
  const d = E.sub(pred, target);
  switch (type) {
    case 'l2': return E.square(d);
    case 'l1': return E.abs(d);
    case 'huber': case 'smooth_l1': {
      if (!c) throw new Error('huber loss needs c');
      const r = E.sub(E.sqrt(E.add(E.square(d), E.square(c))), c);
      return type === 'huber' ? E.mul(E.mulScalar(c, 2), r) : E.mulScalar(r, 2);
    }
    default: throw new Error(`loss_type "${type}" is not supported`);
  }
}

export function huberC(t: number, acp: number, schedule: string, huberCValue: number, scale: number): number {
  switch (schedule) {
    case 'snr': { const sigma = Math.sqrt((1 - acp) / acp); return (1 - huberCValue) / (1 + sigma) ** 2 + huberCValue; }
    case 'exponential': return Math.exp((Math.log(huberCValue) * t) / 1000) * scale;
    case 'constant': return huberCValue * scale;
    default: throw new Error(`huber_schedule "${schedule}" is not supported`);
  }
}

/** Offset and multi-resolution noise on top of N(0, 1) noise (noise offset first). */
export function applyNoiseOptions(noise: Tensor, rng: E.Rng, o: { noiseOffset?: number; multiresIterations?: number; multiresDiscount: number }): Tensor {
  let n = noise;
  const [b, c, h, w] = n.shape;
  if (o.noiseOffset) n = E.add(n, E.mulScalar(E.randn([b, c, 1, 1], rng, 'f32', n.backend), o.noiseOffset));
  if (o.multiresIterations) {
    for (let i = 0; i < o.multiresIterations; i++) {
      const r = rng.uniform() * 2 + 2;
      const hh = Math.max(1, Math.floor(h / r ** i)), ww = Math.max(1, Math.floor(w / r ** i));
      n = E.add(n, E.mulScalar(bilinearResize(E.randn([b, c, hh, ww], rng, 'f32', n.backend), h, w), o.multiresDiscount ** i));
      if (hh === 1 || ww === 1) break;
    }
    const d = n.dataSync();
    let mean = 0;
    for (const v of d) mean += v;
    mean /= d.length;
    let v2 = 0;
    for (const v of d) v2 += (v - mean) ** 2;
    n = E.mulScalar(n, 1 / Math.sqrt(v2 / (d.length - 1)));
  }
  return n;
}

/** Bilinear resize (align_corners=False) of [B, C, h, w] to [B, C, H, W]; no gradient needed. */
function bilinearResize(x: Tensor, H: number, W: number): Tensor {
  const [b, c, h, w] = x.shape;
  const src = x.dataSync();
  const out = new Float32Array(b * c * H * W);
  for (let p = 0; p < b * c; p++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
    const sy = Math.max(0, ((i + 0.5) * h) / H - 0.5), sx = Math.max(0, ((j + 0.5) * w) / W - 0.5);
    const y0 = Math.min(h - 1, Math.floor(sy)), x0 = Math.min(w - 1, Math.floor(sx));
    const y1 = Math.min(h - 1, y0 + 1), x1 = Math.min(w - 1, x0 + 1);
    const fy = sy - y0, fx = sx - x0;
    const g = (yy: number, xx: number) => src[(p * h + yy) * w + xx];
    out[(p * H + i) * W + j] = (1 - fy) * ((1 - fx) * g(y0, x0) + fx * g(y0, x1)) + fy * ((1 - fx) * g(y1, x0) + fx * g(y1, x1));
  }
  return E.tensor(out, [b, c, H, W], 'f32', x.backend);
}
