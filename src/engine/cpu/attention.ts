// Scaled dot-product attention, fused: the score matrix exists only for one block of queries at a
// time (never [batch, Lq, Lk]), and the backward pass recomputes it instead of storing it.
import type { AttentionSpec } from '../backend.js';
import { type FloatDType, allocArray } from '../dtype.js';
import { type FloatArray, gemm, mat, softmaxRowsWasm } from './gemm.js';
import { scratch } from './scratch.js';
import { softmaxGradInto, softmaxRowsInPlace } from './softmax.js';

const QUERY_BLOCK = 512;

/** Probabilities for queries [q0, q0+qn) of batch b into p ([qn, lk]). */
function probs(q: FloatArray, k: FloatArray, a: AttentionSpec, b: number, q0: number, qn: number, p: FloatArray): void {
  gemm(qn, a.lk, a.d, mat(q, (b * a.lq + q0) * a.d, a.d, 1), mat(k, b * a.lk * a.d, 1, a.d), p, 0, false);
  if (p instanceof Float32Array && softmaxRowsWasm(p, qn, a.lk, a.scale, a.causal ? q0 : -1)) return;
  const n = qn * a.lk;
  for (let i = 0; i < n; i++) p[i] *= a.scale;
  softmaxRowsInPlace(p, 0, qn, a.lk, a.causal ? q0 : Infinity);
}

export function attention(q: FloatArray, k: FloatArray, v: FloatArray, a: AttentionSpec, dtype: FloatDType): FloatArray {
  const y = allocArray(dtype, a.batch * a.lq * a.dv) as FloatArray;
  const p = scratch('attn.p', dtype, Math.min(QUERY_BLOCK, a.lq) * a.lk);
  for (let b = 0; b < a.batch; b++) {
    for (let q0 = 0; q0 < a.lq; q0 += QUERY_BLOCK) {
      const qn = Math.min(QUERY_BLOCK, a.lq - q0);
      probs(q, k, a, b, q0, qn, p);
      gemm(qn, a.dv, a.lk, mat(p, 0, a.lk, 1), mat(v, b * a.lk * a.dv, a.dv, 1), y, (b * a.lq + q0) * a.dv, false);
    }
  }
  return y;
}

export function attentionGrad(q: FloatArray, k: FloatArray, v: FloatArray, gy: FloatArray, a: AttentionSpec, dtype: FloatDType) {
  const dq = allocArray(dtype, q.length) as FloatArray;
  const dk = allocArray(dtype, k.length) as FloatArray;
  const dv = allocArray(dtype, v.length) as FloatArray;
  const blk = Math.min(QUERY_BLOCK, a.lq);
  const p = scratch('attn.p', dtype, blk * a.lk);
  const dp = scratch('attn.dp', dtype, blk * a.lk);
  for (let b = 0; b < a.batch; b++) {
    const kOff = b * a.lk * a.d, vOff = b * a.lk * a.dv;
    for (let q0 = 0; q0 < a.lq; q0 += QUERY_BLOCK) {
      const qn = Math.min(QUERY_BLOCK, a.lq - q0);
      const qOff = (b * a.lq + q0) * a.d, yOff = (b * a.lq + q0) * a.dv;
      probs(q, k, a, b, q0, qn, p);
      // dV += P^T dY ; dP = dY V^T ; dS = softmax'(dP) * scale ; dQ = dS K ; dK += dS^T Q
      gemm(a.lk, a.dv, qn, mat(p, 0, 1, a.lk), mat(gy, yOff, a.dv, 1), dv, vOff, true);
      gemm(qn, a.lk, a.dv, mat(gy, yOff, a.dv, 1), mat(v, vOff, 1, a.dv), dp, 0, false);
      softmaxGradInto(p, dp, dp, qn, a.lk);
      const n = qn * a.lk;
      for (let i = 0; i < n; i++) dp[i] *= a.scale;
      gemm(qn, a.d, a.lk, mat(dp, 0, a.lk, 1), mat(k, kOff, a.d, 1), dq, qOff, false);
      gemm(a.lk, a.d, qn, mat(dp, 0, 1, a.lk), mat(q, qOff, a.d, 1), dk, kOff, true);
    }
  }
  return { dq, dk, dv };
}
