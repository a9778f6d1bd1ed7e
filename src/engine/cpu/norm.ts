// Group norm and layer norm share one kernel: normalize rows, then a per-channel affine.
import type { NormAct, NormLayout } from '../backend.js';
import { type FloatDType, allocArray } from '../dtype.js';
import { type FloatArray, kernelPool, mapWasm } from './gemm.js';
import { MR, NR } from './gemm-wat.js';

/** Norms of at least this many elements run in the wasm pool (f32 only). */
const NORM_WASM_MIN = 1 << 15;

/** Byte layout after the pool's thread tiles: consecutive f32 regions of the given lengths, 16-byte aligned. */
function regions(threads: number, lengths: number[]): { at: number[]; end: number } {
  let o = threads * MR * NR * 4;
  const at = lengths.map((n) => { const a = o; o += ((n + 3) & ~3) * 4; return a; });
  return { at, end: o };
}

function normWasm(x: Float32Array, gamma: FloatArray | null, beta: FloatArray | null, L: NormLayout, eps: number) {
  const p = kernelPool()!;
  const n = L.rows * L.size;
  const { at: [xb, yb, mb, rb, gb, bb], end } = regions(p.threads, [n, n, L.rows, L.rows, gamma ? L.channels : 0, beta ? L.channels : 0]);
  const mem = new Float32Array(p.reserve(end));
  mem.set(x.subarray(0, n), xb >>> 2);
  if (gamma) mem.set(gamma.subarray(0, L.channels), gb >>> 2);
  if (beta) mem.set(beta.subarray(0, L.channels), bb >>> 2);
  p.runNorm(xb, yb, mb, rb, gamma ? gb : 0, beta ? bb : 0, L.rows, L.size, L.inner, L.channels, eps, p.threads);
  return {
    y: mem.slice(yb >>> 2, (yb >>> 2) + n),
    mean: mem.slice(mb >>> 2, (mb >>> 2) + L.rows),
    rstd: mem.slice(rb >>> 2, (rb >>> 2) + L.rows),
  };
}

function normGradWasm(gy: Float32Array, x: Float32Array, gamma: FloatArray | null, mean: FloatArray, rstd: FloatArray, L: NormLayout) {
  const p = kernelPool()!;
  const n = L.rows * L.size, C = L.channels;
  // The per-thread f64 partials of dgamma and dbeta come last (2 * C f64 = 4 * C f32 slots each).
  const { at: [xb, gyb, dxb, mb, rb, gb, pb], end } = regions(p.threads, [n, n, n, L.rows, L.rows, gamma ? C : 0, gamma ? 4 * C * p.threads : 0]);
  const mem = new Float32Array(p.reserve(end));
  mem.set(x.subarray(0, n), xb >>> 2);
  mem.set(gy.subarray(0, n), gyb >>> 2);
  mem.set(mean.subarray(0, L.rows), mb >>> 2);
  mem.set(rstd.subarray(0, L.rows), rb >>> 2);
  if (gamma) { mem.set(gamma.subarray(0, C), gb >>> 2); mem.fill(0, pb >>> 2, (pb >>> 2) + 4 * C * p.threads); }
  p.runNormGrad(xb, gyb, dxb, mb, rb, gamma ? gb : 0, gamma ? pb : 0, L.rows, L.size, L.inner, C, p.threads);
  const dx = mem.slice(dxb >>> 2, (dxb >>> 2) + n);
  let dgamma: Float32Array | null = null, dbeta: Float32Array | null = null;
  if (gamma) {
    const part = new Float64Array(mem.buffer, pb, 2 * C * p.threads);
    dgamma = new Float32Array(C); dbeta = new Float32Array(C);
    for (let c = 0; c < C; c++) {
      let dg = 0, db = 0;
      for (let t = 0; t < p.threads; t++) { dg += part[t * 2 * C + c]; db += part[t * 2 * C + C + c]; }
      dgamma[c] = dg; dbeta[c] = db;
    }
  }
  return { dx, dgamma, dbeta };
}

/** Calls fn(c, i0, i1) for each run [i0, i1) of a row that shares one affine channel c. */
function forEachChannelRun(row: number, L: NormLayout, fn: (c: number, i0: number, i1: number) => void): void {
  const e0 = row * L.size;
  for (let i = 0; i < L.size;) {
    const q = Math.floor((e0 + i) / L.inner);
    const end = Math.min(L.size, (q + 1) * L.inner - e0);
    fn(q % L.channels, i, end);
    i = end;
  }
}

export function norm(x: FloatArray, gamma: FloatArray | null, beta: FloatArray | null, L: NormLayout, eps: number, dtype: FloatDType, act: NormAct = 'none') {
  if (x instanceof Float32Array && kernelPool() && L.rows * L.size >= NORM_WASM_MIN) {
    const r = normWasm(x, gamma, beta, L, eps);
    if (act === 'silu' && !mapWasm('silu', r.y, null, r.y, r.y.length)) for (let i = 0; i < r.y.length; i++) { const v = r.y[i]; r.y[i] = v / (1 + Math.exp(-v)); }
    return r;
  }
  const y = allocArray(dtype, x.length) as FloatArray;
  const mean = allocArray(dtype, L.rows) as FloatArray;
  const rstd = allocArray(dtype, L.rows) as FloatArray;
  for (let r = 0; r < L.rows; r++) {
    const o = r * L.size;
    let s = 0;
    for (let i = 0; i < L.size; i++) s += x[o + i];
    const m = s / L.size;
    let v = 0;
    for (let i = 0; i < L.size; i++) { const d = x[o + i] - m; v += d * d; }
    const rs = 1 / Math.sqrt(v / L.size + eps);
    mean[r] = m; rstd[r] = rs;
    forEachChannelRun(r, L, (c, i0, i1) => {
      const g = gamma ? gamma[c] : 1, b = beta ? beta[c] : 0;
      for (let i = i0; i < i1; i++) y[o + i] = (x[o + i] - m) * rs * g + b;
    });
  }
  if (act === 'silu' && !(y instanceof Float32Array && mapWasm('silu', y, null, y, y.length))) {
    for (let i = 0; i < y.length; i++) { const v = y[i]; y[i] = v / (1 + Math.exp(-v)); }
  }
  return { y, mean, rstd };
}

/** gy * silu'(pre) with the pre-activation recomputed from x and the saved statistics. */
function siluGrad(gy: FloatArray, x: FloatArray, gamma: FloatArray | null, beta: FloatArray | null, mean: FloatArray, rstd: FloatArray, L: NormLayout, dtype: FloatDType): FloatArray {
  const out = allocArray(dtype, gy.length) as FloatArray;
  if (out instanceof Float32Array && gy instanceof Float32Array) {
    // The affine pre-activation here (no exp), the exp-heavy silu' in the wasm kernel on all threads.
    for (let r = 0; r < L.rows; r++) {
      const o = r * L.size, m = mean[r], rs = rstd[r];
      forEachChannelRun(r, L, (c, i0, i1) => {
        const g = gamma ? gamma[c] : 1, b = beta ? beta[c] : 0;
        for (let i = i0; i < i1; i++) out[o + i] = (x[o + i] - m) * rs * g + b;
      });
    }
    if (mapWasm('siluGrad', out, gy, out, out.length)) return out;
  }
  for (let r = 0; r < L.rows; r++) {
    const o = r * L.size, m = mean[r], rs = rstd[r];
    forEachChannelRun(r, L, (c, i0, i1) => {
      const g = gamma ? gamma[c] : 1, b = beta ? beta[c] : 0;
      for (let i = i0; i < i1; i++) {
        const pre = (x[o + i] - m) * rs * g + b, s = 1 / (1 + Math.exp(-pre));
        out[o + i] = gy[o + i] * s * (1 + pre * (1 - s));
      }
    });
  }
  return out;
}

export function normGrad(gyIn: FloatArray, x: FloatArray, gamma: FloatArray | null, beta: FloatArray | null, mean: FloatArray, rstd: FloatArray, L: NormLayout, dtype: FloatDType, act: NormAct = 'none') {
  const gy = act === 'silu' ? siluGrad(gyIn, x, gamma, beta, mean, rstd, L, dtype) : gyIn;
  if (x instanceof Float32Array && gy instanceof Float32Array && kernelPool() && L.rows * L.size >= NORM_WASM_MIN) return normGradWasm(gy, x, gamma, mean, rstd, L);
  const dx = allocArray(dtype, x.length) as FloatArray;
  const dgamma = gamma ? (allocArray(dtype, L.channels) as FloatArray) : null;
  const dbeta = gamma ? (allocArray(dtype, L.channels) as FloatArray) : null;
  for (let r = 0; r < L.rows; r++) {
    const o = r * L.size, m = mean[r], rs = rstd[r];
    let s1 = 0, s2 = 0;
    forEachChannelRun(r, L, (c, i0, i1) => {
      const g = gamma ? gamma[c] : 1;
      let dg = 0, db = 0;
      for (let i = i0; i < i1; i++) {
        const xh = (x[o + i] - m) * rs, d = gy[o + i];
        dg += d * xh; db += d;
        s1 += d * g; s2 += d * g * xh;
      }
      if (dgamma && dbeta) { dgamma[c] += dg; dbeta[c] += db; }
    });
    const m1 = s1 / L.size, m2 = s2 / L.size;
    forEachChannelRun(r, L, (c, i0, i1) => {
      const g = gamma ? gamma[c] : 1;
      for (let i = i0; i < i1; i++) {
        const xh = (x[o + i] - m) * rs;
        dx[o + i] = rs * (gy[o + i] * g - m1 - xh * m2);
      }
    });
  }
  return { dx, dgamma, dbeta };
}
