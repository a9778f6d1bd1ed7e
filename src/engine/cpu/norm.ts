// Group norm and layer norm share one kernel: normalize rows, then a per-channel affine.
import type { NormAct, NormLayout } from '../backend.js';
import { type FloatDType, allocArray } from '../dtype.js';
import type { FloatArray } from './gemm.js';

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
  if (act === 'silu') for (let i = 0; i < y.length; i++) { const v = y[i]; y[i] = v / (1 + Math.exp(-v)); }
  return { y, mean, rstd };
}

/** gy * silu'(pre) with the pre-activation recomputed from x and the saved statistics. */
function siluGrad(gy: FloatArray, x: FloatArray, gamma: FloatArray | null, beta: FloatArray | null, mean: FloatArray, rstd: FloatArray, L: NormLayout, dtype: FloatDType): FloatArray {
  const out = allocArray(dtype, gy.length) as FloatArray;
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
