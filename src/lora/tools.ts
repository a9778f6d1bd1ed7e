// LoRA tools as sd-scripts' networks/*.py: svd_merge_lora, resize_lora, extract_lora_from_models.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { Weights } from '../models/weights.js';
import { type LoRAFile, type LoRAModuleWeights, rankOf, scaleOf } from './lora-file.js';
import { type SVD, lowRankSvd, truncatedSvd } from './svd.js';

const f64 = (t: Tensor): Float64Array => Float64Array.from(t.dataSync());

/** Rows/cols of a layer's flattened weight: [out, in*kh*kw]. */
const flatDims = (shape: readonly number[]): [number, number] => [shape[0], shape.slice(1).reduce((a, b) => a * b, 1)];

/** up = U[:, :k] diag(S[:k]), down = Vt[:k], reshaped for the layer kind. */
function factorsFromSvd(s: SVD, k: number): { up: Float64Array; down: Float64Array } {
  const up = new Float64Array(s.m * k);
  for (let i = 0; i < s.m; i++) for (let j = 0; j < k; j++) up[i * k + j] = s.u[i * s.k + j] * s.s[j];
  return { up, down: s.vt.slice(0, k * s.n) };
}

function quantile(values: Float64Array[], q: number): number {
  const all = Float64Array.from(values.flatMap((v) => Array.from(v, Math.abs))).sort();
  if (!all.length) return 0;
  const pos = (all.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return all[lo] + (all[hi] - all[lo]) * (pos - lo);
}

function makeModule(name: string, up: Float64Array, down: Float64Array, k: number, downShape: readonly number[], alpha: number, clampQ: number | null): LoRAModuleWeights {
  if (clampQ !== null) {
    // sd-scripts clamps both factors to the q-quantile of their absolute values.
    const q = quantile([up, down], clampQ);
    for (const a of [up, down]) for (let i = 0; i < a.length; i++) a[i] = Math.min(q, Math.max(-q, a[i]));
  }
  const out = up.length / k;
  const conv = downShape.length === 4;
  return {
    name,
    up: E.tensor(Float32Array.from(up), conv ? [out, k, 1, 1] : [out, k]),
    down: E.tensor(Float32Array.from(down), conv ? [k, ...downShape.slice(1)] : [k, downShape[1]]),
    alpha,
  };
}

export interface WeightedLoRA {
  lora: LoRAFile;
  ratio: number;
}

/**
 * svd_merge_lora: per module, the exact sum of ratio * alpha/rank * up @ down over the inputs,
 * re-factored by SVD to `rank` (`convRank` for 3x3 convs) with alpha = rank. `clampQuantile`
 * null skips sd-scripts' quantile clamp, leaving the best rank-k approximation.
 */
export function svdMergeLoRAs(inputs: WeightedLoRA[], rank: number, opts: { convRank?: number; clampQuantile?: number | null } = {}): LoRAModuleWeights[] {
  const names = [...new Set(inputs.flatMap((i) => [...i.lora.modules.keys()]))];
  const out: LoRAModuleWeights[] = [];
  for (const name of names) {
    const parts = inputs.filter((i) => i.lora.modules.has(name)).map((i) => ({ m: i.lora.modules.get(name)!, ratio: i.ratio }));
    const first = parts[0].m;
    const [rows] = flatDims(first.up.shape);
    const [, cols] = flatDims(first.down.shape);
    // Stack: sum_k c_k U_k D_k = [c_1 U_1 ... c_n U_n] [D_1; ...; D_n]
    const R = parts.reduce((a, p) => a + rankOf(p.m), 0);
    const U = new Float64Array(rows * R), D = new Float64Array(R * cols);
    let off = 0;
    for (const { m, ratio } of parts) {
      const r = rankOf(m), c = ratio * scaleOf(m);
      const u = f64(m.up), d = f64(m.down);
      for (let i = 0; i < rows; i++) for (let j = 0; j < r; j++) U[i * R + off + j] = c * u[i * r + j];
      D.set(d, off * cols);
      off += r;
    }
    const s = lowRankSvd(U, D, rows, R, cols);
    const isConv3 = first.down.rank === 4 && first.down.shape[2] * first.down.shape[3] > 1;
    const k = Math.min((isConv3 ? opts.convRank : undefined) ?? rank, rows, cols, R);
    const { up, down } = factorsFromSvd(s, k);
    out.push(makeModule(name, up, down, k, first.down.shape, k, opts.clampQuantile === undefined ? 0.99 : opts.clampQuantile));
  }
  return out;
}

export type DynamicMethod = 'sv_ratio' | 'sv_fro' | 'sv_cumulative';

/** resize_lora's rank choice for singular values s. */
export function chooseRank(s: Float64Array, maxRank: number, method?: DynamicMethod, param?: number): number {
  let k = maxRank;
  const n = s.length;
  const clamp = (i: number) => Math.min(Math.max(i, 1), n - 1);
  const searchsorted = (arr: number[], v: number) => { let i = 0; while (i < arr.length && arr[i] < v) i++; return i; };
  if (method && param !== undefined) {
    if (method === 'sv_ratio') {
      const c = s.filter((x) => x > s[0] / param).length;
      k = clamp(c) + 1;
    } else {
      const vals = method === 'sv_fro' ? Array.from(s, (x) => x * x) : Array.from(s);
      const total = vals.reduce((a, b) => a + b, 0);
      let acc = 0;
      const cum = vals.map((v) => (acc += v) / total);
      k = clamp(searchsorted(cum, method === 'sv_fro' ? param * param : param) + 1) + 1;
    }
    if (s[0] <= 1e-6) k = 1;
    k = Math.min(k, maxRank);
  }
  return Math.max(1, Math.min(k, n));
}

/** resize_lora: re-factor every module to a new rank, keeping the effective scale alpha/rank. */
export function resizeLoRA(lora: LoRAFile, rank: number, opts: { convRank?: number; method?: DynamicMethod; param?: number } = {}): { modules: LoRAModuleWeights[]; ranks: Map<string, number> } {
  const modules: LoRAModuleWeights[] = [];
  const ranks = new Map<string, number>();
  for (const m of lora.modules.values()) {
    const r = rankOf(m);
    const [rows] = flatDims(m.up.shape);
    const [, cols] = flatDims(m.down.shape);
    const s = lowRankSvd(f64(m.up), f64(m.down), rows, r, cols);
    const isConv3 = m.down.rank === 4 && m.down.shape[2] * m.down.shape[3] > 1;
    const k = Math.min(chooseRank(s.s, (isConv3 ? opts.convRank : undefined) ?? rank, opts.method, opts.param), rows, cols);
    const { up, down } = factorsFromSvd(s, k);
    modules.push(makeModule(m.name, up, down, k, m.down.shape, scaleOf(m) * k, null));
    ranks.set(m.name, k);
  }
  return { modules, ranks };
}

/**
 * extract_lora_from_models: for each listed layer, the top-`dim` SVD of W_tuned - W_base
 * (`convDim` for 3x3 convs), clamped to the 0.99 quantile, alpha = rank. Text-encoder layers are
 * skipped when the largest text-encoder difference is at most `minDiff`.
 */
export function extractLoRA(
  layers: { name: string; base: Weights; tuned: Weights; path: string; te: boolean }[],
  dim: number, opts: { convDim?: number; minDiff?: number; clampQuantile?: number | null; onProgress?: (i: number, n: number) => void } = {},
): LoRAModuleWeights[] {
  const minDiff = opts.minDiff ?? 0.01;
  const deltas = layers.map((l) => {
    const a = l.tuned.get(`${l.path}.weight`).dataSync(), b = l.base.get(`${l.path}.weight`).dataSync();
    const d = new Float64Array(a.length);
    let mx = 0;
    for (let i = 0; i < a.length; i++) { d[i] = a[i] - b[i]; mx = Math.max(mx, Math.abs(d[i])); }
    return { l, d, mx, shape: l.base.get(`${l.path}.weight`).shape };
  });
  const teChanged = deltas.filter((x) => x.l.te).some((x) => x.mx > minDiff);
  const out: LoRAModuleWeights[] = [];
  deltas.forEach(({ l, d, shape }, i) => {
    opts.onProgress?.(i + 1, deltas.length);
    if (l.te && !teChanged) return;
    const isConv3 = shape.length === 4 && shape[2] * shape[3] > 1;
    if (isConv3 && !opts.convDim) return;
    const [rows, cols] = flatDims(shape);
    const k = Math.min(isConv3 ? opts.convDim! : dim, rows, cols);
    const s = truncatedSvd(d, rows, cols, k);
    const { up, down } = factorsFromSvd(s, k);
    out.push(makeModule(l.name, up, down, k, shape.length === 4 ? [k, ...shape.slice(1)] : [k, cols], k, opts.clampQuantile === undefined ? 0.99 : opts.clampQuantile));
  });
  return out;
}
