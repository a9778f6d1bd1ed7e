// LoRA tools as kohya-ss/sd-scripts computes them: networks/svd_merge_lora.py (merge_lora_models),
// networks/resize_lora.py (resize_lora_model, rank_resize) and networks/extract_lora_from_models.py
// (svd). SVDs run in float64 (exact for the low-rank products); the factors are then rounded to
// float32, the dtype sd-scripts works in, before its quantile clamp, which is reproduced bit for bit.
import * as E from '../engine/index.js';
import type { Weights } from '../models/weights.js';
import { type LoRAFile, type LoRAModuleWeights, rankOf, scaleOf } from './lora-file.js';
import { quantileClamp } from './quantile-clamp.js';
import { type SVD, canonicalSigns, cut, lowRankSvd, padSvd, truncatedSvd } from './svd.js';

/** sd-scripts' CLAMP_QUANTILE (svd merge, fixed) and extract's --clamp_quantile default. */
export const DEFAULT_CLAMP_QUANTILE = 0.99;

const f64 = (t: { dataSync(): ArrayLike<number> }): Float64Array => Float64Array.from(t.dataSync());

/** A layer's weight shape [out, in] or [out, in, kh, kw], and what sd-scripts derives from it. */
interface LayerShape {
  shape: number[];
  out: number;
  /** in channels (the rank cap), not in*kh*kw */
  inCh: number;
  /** columns of the flattened weight, in*kh*kw */
  cols: number;
  conv: boolean;
  conv3x3: boolean;
}

function layerShape(shape: readonly number[]): LayerShape {
  const conv = shape.length === 4;
  return {
    shape: [...shape], out: shape[0], inCh: shape[1], cols: shape.slice(1).reduce((a, b) => a * b, 1),
    conv, conv3x3: conv && shape[2] * shape[3] > 1,
  };
}

/** The layer shape a LoRA module stands for: [up.out, down.in(, kh, kw)]. */
const moduleLayer = (m: LoRAModuleWeights): LayerShape => layerShape([m.up.shape[0], ...m.down.shape.slice(1)]);

/** up = U[:, :k] diag(S[:k]) and down = Vt[:k], as float32. */
function factors(s: SVD, k: number): { up: Float32Array; down: Float32Array } {
  const up = new Float32Array(s.m * k);
  for (let i = 0; i < s.m; i++) for (let j = 0; j < k; j++) up[i * k + j] = s.u[i * s.k + j] * s.s[j];
  return { up, down: Float32Array.from(s.vt.subarray(0, k * s.n)) };
}

/** The top-k triplets of an SVD, padded with null-space ones when k exceeds it, signs fixed. */
const topK = (s: SVD, k: number): SVD => canonicalSigns(cut(padSvd(s, k), k));

/**
 * Builds the module from an SVD at rank k: factors, then (clampQ not null) sd-scripts' signed
 * quantile clamp. The factors keep the layer's kind (conv: up [out, k, 1, 1], down [k, in, kh, kw]).
 */
function toModule(name: string, s: SVD, k: number, layer: LayerShape, alpha: number, clampQ: number | null): LoRAModuleWeights {
  const { up, down } = factors(s, k);
  if (![up, down].every((a) => a.every(Number.isFinite))) throw new Error(`LoRA module ${name}: the weight difference has non-finite values`);
  if (clampQ !== null) quantileClamp(up, down, clampQ);
  const upShape = layer.conv ? [layer.out, k, 1, 1] : [layer.out, k];
  return { name, up: E.tensor(up, upShape), down: E.tensor(down, [k, ...layer.shape.slice(1)]), alpha };
}

export interface WeightedLoRA {
  lora: LoRAFile;
  ratio: number;
}

/** One module of every input that has it, checked to stand for the same layer shape. */
function mergeParts(inputs: WeightedLoRA[], name: string): { m: LoRAModuleWeights; ratio: number }[] {
  const parts = inputs.filter((i) => i.lora.modules.has(name)).map((i) => ({ m: i.lora.modules.get(name)!, ratio: i.ratio, path: i.lora.path }));
  const want = moduleLayer(parts[0].m).shape;
  for (const p of parts) {
    const got = moduleLayer(p.m).shape;
    if (got.join() !== want.join()) throw new Error(`${p.path}: module ${name} is for a [${got}] layer, but ${parts[0].path} has it for [${want}]`);
  }
  return parts;
}

/** Exact SVD of sum_i ratio_i * (alpha_i/rank_i) * up_i @ down_i, through the stacked factors. */
function mergedSvd(parts: { m: LoRAModuleWeights; ratio: number }[], layer: LayerShape): SVD {
  // sum_i c_i U_i D_i = [c_1 U_1 ... c_n U_n] [D_1; ...; D_n]
  const R = parts.reduce((a, p) => a + rankOf(p.m), 0);
  const U = new Float64Array(layer.out * R), D = new Float64Array(R * layer.cols);
  let off = 0;
  for (const { m, ratio } of parts) {
    const r = rankOf(m), c = ratio * scaleOf(m), u = f64(m.up);
    for (let i = 0; i < layer.out; i++) for (let j = 0; j < r; j++) U[i * R + off + j] = c * u[i * r + j];
    D.set(f64(m.down), off * layer.cols);
    off += r;
  }
  return lowRankSvd(U, D, layer.out, R, layer.cols);
}

/**
 * svd_merge_lora.merge_lora_models: per module the weighted sum of the inputs' deltas, re-factored
 * to min(rank, in, out) (`convRank`, default `rank`, for 3x3 convs) with alpha = that rank, then
 * clamped at the `clampQuantile` (sd-scripts: always 0.99; null: the exact best rank-k factors).
 */
export function svdMergeLoRAs(inputs: WeightedLoRA[], rank: number, opts: { convRank?: number; clampQuantile?: number | null } = {}): LoRAModuleWeights[] {
  if (!inputs.length) throw new Error('svd merge needs at least one LoRA');
  const clampQ = opts.clampQuantile === undefined ? DEFAULT_CLAMP_QUANTILE : opts.clampQuantile;
  const names = [...new Set(inputs.flatMap((i) => [...i.lora.modules.keys()]))];
  return names.map((name) => {
    const parts = mergeParts(inputs, name);
    const layer = moduleLayer(parts[0].m);
    const k = Math.min(layer.conv3x3 ? opts.convRank ?? rank : rank, layer.inCh, layer.out);
    return toModule(name, topK(mergedSvd(parts, layer), k), k, layer, k, clampQ);
  });
}

export type DynamicMethod = 'sv_ratio' | 'sv_fro' | 'sv_cumulative';
export const DYNAMIC_METHODS: readonly DynamicMethod[] = ['sv_ratio', 'sv_fro', 'sv_cumulative'];

/** torch.searchsorted (left): the first index whose value is >= v. */
function searchsorted(sorted: number[], v: number): number {
  let i = 0;
  while (i < sorted.length && sorted[i] < v) i++;
  return i;
}

/** resize_lora's index_sv_*: a 1-based index clamped to [1, len(S) - 1]. */
function dynamicIndex(s: Float64Array, method: DynamicMethod, param: number): number {
  let index: number;
  if (method === 'sv_ratio') {
    index = s.filter((x) => x > s[0] / param).length;
  } else {
    const vals = method === 'sv_fro' ? Array.from(s, (x) => x * x) : Array.from(s);
    const total = vals.reduce((a, b) => a + b, 0);
    let acc = 0;
    const cum = vals.map((v) => (acc += v) / total);
    index = searchsorted(cum, method === 'sv_fro' ? param * param : param) + 1;
  }
  return Math.max(1, Math.min(index, s.length - 1));
}

/**
 * resize_lora.rank_resize: the new rank for singular values s (all min(out, in*kh*kw) of them):
 * `maxRank`, or the dynamic method's index + 1 capped at `maxRank`; 1 for a zero matrix.
 */
export function chooseRank(s: Float64Array, maxRank: number, method?: DynamicMethod, param?: number): number {
  if (method && param === undefined) throw new Error(`dynamic method ${method} needs a parameter`);
  const k = method ? dynamicIndex(s, method, param!) + 1 : maxRank;
  if (s[0] <= 1e-6) return 1; // MIN_SV
  return Math.min(k, maxRank);
}

export interface ResizeResult {
  modules: LoRAModuleWeights[];
  ranks: Map<string, number>;
  /** the largest input rank (sd-scripts' "resized from") */
  oldRank: number;
}

/**
 * resize_lora.resize_lora_model: per module the SVD of up @ down (without alpha/rank), cut to
 * `rank` (every conv module, 1x1 included, to `convRank`, default `rank`) or to the dynamic
 * method's rank; alpha = (old alpha / old rank) * new rank. No clamp (sd-scripts has none here).
 */
export function resizeLoRA(lora: LoRAFile, rank: number, opts: { convRank?: number; method?: DynamicMethod; param?: number } = {}): ResizeResult {
  const modules: LoRAModuleWeights[] = [];
  const ranks = new Map<string, number>();
  let oldRank = 0;
  for (const name of [...lora.modules.keys()].sort()) {
    const m = lora.modules.get(name)!;
    const r = rankOf(m), layer = moduleLayer(m);
    oldRank = Math.max(oldRank, r);
    const s = lowRankSvd(f64(m.up), f64(m.down), layer.out, r, layer.cols);
    // torch.linalg.svd gives min(out, cols) singular values; past the LoRA's rank they are zero.
    const full = new Float64Array(Math.min(layer.out, layer.cols));
    full.set(s.s.subarray(0, full.length));
    // sd-scripts fails on a rank above the layer's size; sdlora caps it there.
    const k = Math.min(chooseRank(full, layer.conv ? opts.convRank ?? rank : rank, opts.method, opts.param), full.length);
    modules.push(toModule(name, topK(s, k), k, layer, scaleOf(m) * k, null));
    ranks.set(name, k);
  }
  return { modules, ranks, oldRank };
}

export interface ExtractLayer {
  name: string;
  path: string;
  te: boolean;
  base: Weights;
  tuned: Weights;
}

/** tuned - base weight of one layer, and its largest magnitude. */
function weightDiff(l: ExtractLayer): { d: Float64Array; max: number; layer: LayerShape } {
  const b = l.base.get(`${l.path}.weight`), t = l.tuned.get(`${l.path}.weight`);
  if (b.shape.join() !== t.shape.join()) throw new Error(`${l.path}.weight: the tuned model has shape [${t.shape}], the base [${b.shape}]`);
  const a = t.dataSync(), o = b.dataSync();
  const d = new Float64Array(a.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) { d[i] = Math.fround(a[i] - o[i]); max = Math.max(max, Math.abs(d[i])); }
  return { d, max, layer: layerShape(b.shape) };
}

/**
 * extract_lora_from_models.svd: per layer the top-min(rank, in, out) SVD of the float32 weight
 * difference (rank `dim`, or `convDim` for 3x3 convs, which are only targeted with it), clamped at
 * `clampQuantile`, alpha = that rank. The text encoder is dropped when none of its differences
 * exceeds `minDiff`.
 */
export function extractLoRA(
  layers: ExtractLayer[], dim: number,
  opts: { convDim?: number; minDiff?: number; clampQuantile?: number | null; onProgress?: (i: number, n: number) => void } = {},
): LoRAModuleWeights[] {
  const minDiff = opts.minDiff ?? 0.01;
  const clampQ = opts.clampQuantile === undefined ? DEFAULT_CLAMP_QUANTILE : opts.clampQuantile;
  const diffs = layers.map((l) => ({ l, ...weightDiff(l) }));
  const teChanged = diffs.some((x) => x.l.te && x.max > minDiff);
  const out: LoRAModuleWeights[] = [];
  diffs.forEach(({ l, d, layer }, i) => {
    opts.onProgress?.(i + 1, diffs.length);
    if (l.te && !teChanged) return;
    if (layer.conv3x3 && !opts.convDim) throw new Error(`${l.name}: a 3x3 conv layer needs a conv rank (conv_dim)`);
    const k = Math.min(layer.conv3x3 ? opts.convDim! : dim, layer.inCh, layer.out);
    out.push(toModule(l.name, topK(truncatedSvd(d, layer.out, layer.cols, k), k), k, layer, k, clampQ));
  });
  return out;
}
