// The cpu backend: storage is a plain typed array; hot products run in the wasm pool.
import type { Backend, Storage } from '../backend.js';
import { type DType, type FloatDType, type TypedArray, allocArray, castArray, widenHalves } from '../dtype.js';
import { attention, attentionGrad } from './attention.js';
import { conv2d, conv2dGradInput, conv2dGradWeight } from './conv.js';
import { binary, sumTo, unary, unaryGrad } from './elementwise.js';
import { type FloatArray, setGemmPool } from './gemm.js';
import { concat, embedding, embeddingGrad, permute, slice, sliceGrad, upsampleNearest2x, upsampleNearest2xGrad } from './layout.js';
import { matmul } from './matmul.js';
import { norm, normGrad } from './norm.js';
import { scratch } from './scratch.js';
import { softmax, softmaxGrad } from './softmax.js';
import { getPool } from './wasm-pool.js';

const F = (s: Storage) => s as FloatArray;

/**
 * A frozen f16 weight (halfWeights) widened for the one call that reads it, into a buffer reused
 * from call to call: an f32 tensor per use costs a fresh allocation, whose first-touch page faults
 * cost more than the widening itself. Autograd keeps the f16 storage, not this buffer.
 */
function weight(s: Storage, half: boolean | undefined, dtype: FloatDType): FloatArray {
  if (!half) return F(s);
  const h = s as Uint16Array;
  if (dtype === 'f32') return widenHalves(h, scratch('half.weight', 'f32', h.length) as Float32Array);
  const out = scratch('half.weight', dtype, h.length);
  out.set(widenHalves(h, new Float32Array(h.length)));
  return out;
}

export const cpuBackend: Backend = {
  name: 'cpu',
  halfWeights: true,
  attentionHeads: true,
  fromArray: (data) => data,
  zeros: (dtype: DType, n: number) => allocArray(dtype, n),
  read: async (s) => s as TypedArray,
  readSync: (s) => s as TypedArray,
  cast: (s, to) => castArray(s as TypedArray, to),
  assign: (s, data) => { if (s !== data) (s as TypedArray).set(data); },
  addInPlace: (dst, src, n) => { const d = F(dst), a = F(src); for (let i = 0; i < n; i++) d[i] += a[i]; },
  unary: (op, x, dtype, n, p) => unary(op, F(x), dtype, n, p),
  unaryGrad: (op, x, gy, dtype, n, p) => unaryGrad(op, F(x), F(gy), dtype, n, p),
  binary: (op, a, as, b, bs, out, dtype) => binary(op, F(a), as, F(b), bs, out, dtype),
  sumTo: (x, shape, to, dtype) => sumTo(F(x), shape, to, dtype),
  permute: (x, shape, perm, dtype) => permute(x as TypedArray, shape, perm, dtype),
  slice: (x, shape, starts, out, dtype) => slice(x as TypedArray, shape, starts, out, dtype),
  sliceGrad: (gy, shape, starts, gs, dtype) => sliceGrad(F(gy), shape, starts, gs, dtype),
  concat: (xs, shapes, axis, dtype) => concat(xs as TypedArray[], shapes, axis, dtype),
  matmul: (a, b, spec, dtype) => matmul(F(a), weight(b, spec.bHalf, dtype), spec, dtype),
  matmulBias: (a, b, bias, spec, dtype) => matmul(F(a), weight(b, spec.bHalf, dtype), spec, dtype, F(bias)),
  conv2d: (x, w, bias, s, dtype) => conv2d(F(x), weight(w, s.wHalf, dtype), bias === null ? null : F(bias), s, dtype),
  conv2dGradInput: (gy, w, s, dtype) => conv2dGradInput(F(gy), weight(w, s.wHalf, dtype), s, dtype),
  conv2dGradWeight: (gy, x, s, dtype) => conv2dGradWeight(F(gy), F(x), s, dtype),
  norm: (x, g, b, L, eps, dtype, act) => norm(F(x), g === null ? null : F(g), b === null ? null : F(b), L, eps, dtype, act),
  normGrad: (gy, x, g, b, mean, rstd, L, dtype, act) => normGrad(F(gy), F(x), g === null ? null : F(g), b === null ? null : F(b), F(mean), F(rstd), L, dtype, act),
  softmax: (x, rows, cols, dtype) => softmax(F(x), rows, cols, dtype),
  softmaxGrad: (y, gy, rows, cols, dtype) => softmaxGrad(F(y), F(gy), rows, cols, dtype),
  attention: (q, k, v, a, dtype) => attention(F(q), F(k), F(v), a, dtype),
  attentionGrad: (q, k, v, gy, a, dtype) => attentionGrad(F(q), F(k), F(v), F(gy), a, dtype),
  upsampleNearest2x: (x, shape, dtype) => upsampleNearest2x(F(x), shape, dtype),
  upsampleNearest2xGrad: (gy, shape, dtype) => upsampleNearest2xGrad(F(gy), shape, dtype),
  embedding: (ids, table, count, dim, dtype) => embedding(ids as Int32Array, F(table), count, dim, dtype),
  embeddingGrad: (ids, gy, count, vocab, dim, dtype) => embeddingGrad(ids as Int32Array, F(gy), count, vocab, dim, dtype),
};

/**
 * Starts the WebAssembly SIMD kernels and worker threads. Until this resolves the cpu backend
 * computes in plain JS (same results, slower); SDLORA_WASM=0 keeps it that way.
 */
export async function initCpuBackend(): Promise<void> {
  if (process.env.SDLORA_WASM === '0') return;
  const pool = await getPool();
  setGemmPool(pool);
  kernelThreads = pool.threads;
}

let kernelThreads = 0;
/** The threads the products run on: the wasm pool's once initCpuBackend installed it, else 1 (plain JS, as with SDLORA_WASM=0). */
export function cpuKernelThreads(): { wasm: boolean; threads: number } {
  return kernelThreads ? { wasm: true, threads: kernelThreads } : { wasm: false, threads: 1 };
}
