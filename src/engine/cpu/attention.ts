// Scaled dot-product attention, fused: the score matrix exists only for one block of queries at a
// time (never [batch, Lq, Lk]), and the backward pass recomputes it instead of storing it.
import type { AttentionSpec } from '../backend.js';
import { type FloatDType, allocArray } from '../dtype.js';
import { ATTN_FIELDS, packedBytes } from './attention-wat.js';
import { type FloatArray, gemm, kernelPool, mat } from './gemm.js';
import { MR, NR } from './gemm-wat.js';
import { permute } from './layout.js';
import { scratch } from './scratch.js';
import { softmaxGradInto, softmaxRowsInPlace } from './softmax.js';
import type { WasmPool } from './wasm-pool.js';

const QUERY_BLOCK = 512;
/** Query rows per block in the wasm kernel: a block's scores (WASM_QUERY_BLOCK x lk) stay in cache. */
export const WASM_QUERY_BLOCK = 128;

const align = (n: number) => Math.ceil(n / 64) * 64;

/**
 * The query block and the byte sizes of one thread's scratch regions in the wasm kernel: scores P
 * (and dP), packed A, and the packed B of K^T, of V (V^T backward), of K and of a dY/Q block.
 */
export function attentionScratch(a: AttentionSpec, backward: boolean): { qb: number; sizes: number[] } {
  const { lq, lk, d, dv } = a;
  const qb = Math.min(lq, WASM_QUERY_BLOCK);
  return {
    qb,
    sizes: [
      qb * lk * 4,
      backward ? qb * lk * 4 : 0,
      Math.max(packedBytes(qb, d, MR), packedBytes(qb, lk, MR), packedBytes(qb, dv, MR), backward ? packedBytes(lk, qb, MR) : 0),
      packedBytes(lk, d, NR),
      backward ? packedBytes(lk, dv, NR) : packedBytes(dv, lk, NR),
      backward ? packedBytes(d, lk, NR) : 0,
      backward ? Math.max(packedBytes(dv, qb, NR), packedBytes(d, qb, NR)) : 0,
    ],
  };
}

/**
 * Attention forward (gy null) or backward in the wasm kernel on all threads (attention-wat.ts):
 * the operands are copied into the kernels' memory once, each thread works on whole (batch x
 * head) slices in scratch of its own, and the results are copied out. Returns [y] or [dq, dk, dv].
 */
function attentionWasm(p: WasmPool, q: Float32Array, k: Float32Array, v: Float32Array, gy: Float32Array | null, a: AttentionSpec): Float32Array[] {
  const { batch, lq, lk, d, dv } = a;
  const bwd = gy !== null;
  const { qb, sizes } = attentionScratch(a, bwd);
  const offs: number[] = [];
  let stride = 0;
  for (const n of sizes) { offs.push(stride); stride += align(n); }
  let at = align(p.threads * MR * NR * 4);
  const place = (bytes: number) => { const o = at; at = align(at + bytes); return o; };
  const desc = place(ATTN_FIELDS.length * 4);
  const qA = place(batch * lq * d * 4), kA = place(batch * lk * d * 4), vA = place(batch * lk * dv * 4);
  const gyA = bwd ? place(batch * lq * dv * 4) : 0;
  const outs = bwd ? [place(batch * lq * d * 4), place(batch * lk * d * 4), place(batch * lk * dv * 4)] : [place(batch * lq * dv * 4)];
  const scr = place(p.threads * stride);
  const buf = p.reserve(at);
  const mem = new Float32Array(buf);
  mem.set(q.subarray(0, batch * lq * d), qA >>> 2);
  mem.set(k.subarray(0, batch * lk * d), kA >>> 2);
  mem.set(v.subarray(0, batch * lk * dv), vA >>> 2);
  if (gy) mem.set(gy.subarray(0, batch * lq * dv), gyA >>> 2);
  const fields: Record<(typeof ATTN_FIELDS)[number], number> = {
    q: qA, k: kA, v: vA, y: bwd ? 0 : outs[0], gy: gyA, dq: bwd ? outs[0] : 0, dk: bwd ? outs[1] : 0, dv: bwd ? outs[2] : 0,
    lq, lk, d, dvDim: dv, scale: 0, causal: a.causal ? 1 : 0, qb, heads: a.heads ?? 1, scratch: scr, stride,
    offP: offs[0], offDP: offs[1], offPA: offs[2], offPB1: offs[3], offPB2: offs[4], offPB3: offs[5], offPB4: offs[6],
  };
  const di = new Int32Array(buf, desc, ATTN_FIELDS.length);
  ATTN_FIELDS.forEach((f, i) => { di[i] = fields[f]; });
  new Float32Array(buf, desc, ATTN_FIELDS.length)[ATTN_FIELDS.indexOf('scale')] = a.scale;
  const lens = bwd ? [batch * lq * d, batch * lk * d, batch * lk * dv] : [batch * lq * dv];
  // The kernel's products add into the outputs.
  outs.forEach((o, i) => mem.fill(0, o >>> 2, (o >>> 2) + lens[i]));
  p.runAttention(bwd, desc, batch);
  return outs.map((o, i) => mem.slice(o >>> 2, (o >>> 2) + lens[i]));
}

/** Probabilities for queries [q0, q0+qn) of batch b into p ([qn, lk]). */
function probs(q: FloatArray, k: FloatArray, a: AttentionSpec, b: number, q0: number, qn: number, p: FloatArray): void {
  gemm(qn, a.lk, a.d, mat(q, (b * a.lq + q0) * a.d, a.d, 1), mat(k, b * a.lk * a.d, 1, a.d), p, 0, false);
  const n = qn * a.lk;
  for (let i = 0; i < n; i++) p[i] *= a.scale;
  softmaxRowsInPlace(p, 0, qn, a.lk, a.causal ? q0 : Infinity);
}

/**
 * [batch / heads, L, heads, D] <-> [batch, L, D] (heads first) for the JS path, which takes one
 * slice per leading index.
 */
function headsFirst(x: FloatArray, a: AttentionSpec, L: number, D: number, dtype: FloatDType): FloatArray {
  const H = a.heads ?? 1;
  return permute(x, [a.batch / H, L, H, D], [0, 2, 1, 3], dtype) as FloatArray;
}
function headsInside(x: FloatArray, a: AttentionSpec, L: number, D: number, dtype: FloatDType): FloatArray {
  const H = a.heads ?? 1;
  return permute(x, [a.batch / H, H, L, D], [0, 2, 1, 3], dtype) as FloatArray;
}

export function attention(q: FloatArray, k: FloatArray, v: FloatArray, a: AttentionSpec, dtype: FloatDType): FloatArray {
  const pool = kernelPool();
  if (pool && q instanceof Float32Array && k instanceof Float32Array && v instanceof Float32Array) return attentionWasm(pool, q, k, v, null, a)[0];
  if ((a.heads ?? 1) > 1) {
    const one = { ...a, heads: 1 };
    const y = attention(headsFirst(q, a, a.lq, a.d, dtype), headsFirst(k, a, a.lk, a.d, dtype), headsFirst(v, a, a.lk, a.dv, dtype), one, dtype);
    return headsInside(y, a, a.lq, a.dv, dtype);
  }
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

export function attentionGrad(q: FloatArray, k: FloatArray, v: FloatArray, gy: FloatArray, a: AttentionSpec, dtype: FloatDType): { dq: FloatArray; dk: FloatArray; dv: FloatArray } {
  const pool = kernelPool();
  if (pool && q instanceof Float32Array && k instanceof Float32Array && v instanceof Float32Array && gy instanceof Float32Array) {
    const [dq, dk, dv] = attentionWasm(pool, q, k, v, gy, a);
    return { dq, dk, dv };
  }
  if ((a.heads ?? 1) > 1) {
    const one = { ...a, heads: 1 };
    const g = attentionGrad(headsFirst(q, a, a.lq, a.d, dtype), headsFirst(k, a, a.lk, a.d, dtype), headsFirst(v, a, a.lk, a.dv, dtype),
      headsFirst(gy, a, a.lq, a.dv, dtype), one, dtype);
    return { dq: headsInside(g.dq, a, a.lq, a.d, dtype), dk: headsInside(g.dk, a, a.lk, a.d, dtype), dv: headsInside(g.dv, a, a.lk, a.dv, dtype) };
  }
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
