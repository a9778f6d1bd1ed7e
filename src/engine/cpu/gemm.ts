// General matrix multiply C = A·B (or C += A·B) on strided views. f32 work of useful size goes to
// the packed WebAssembly SIMD kernel on all threads; f64 (gradient checks) and tiny products use
// the plain JS loop, which is also the reference the kernel is tested against.
import { KC_MAX, MR, NR } from './gemm-wat.js';
import { MAP_BLOCK, MAP_OPS } from './map-wat.js';
import { scratch } from './scratch.js';
import type { WasmPool } from './wasm-pool.js';

export type FloatArray = Float32Array | Float64Array;

/** A matrix inside a flat array: element (i, j) is data[offset + i*rs + j*cs]. */
export interface MatView {
  data: FloatArray;
  offset: number;
  rs: number;
  cs: number;
}

export const mat = (data: FloatArray, offset: number, rs: number, cs: number): MatView => ({ data, offset, rs, cs });

/** Below this many multiply-adds the copy into wasm memory costs more than it saves. */
const WASM_MIN_MACS = 16 * 16 * 16;
/** Below this many multiply-adds one thread beats waking the others (about 50 us of work). */
const THREADED_MIN_MACS = 1 << 20;

let pool: WasmPool | undefined;
/** The installed wasm pool, if any (the other kernels that run there use it too). */
export const kernelPool = (): WasmPool | undefined => pool;

/** Installs the wasm pool; until then (or without it) every product runs in JS. */
export function setGemmPool(p: WasmPool | undefined): void {
  pool = p;
}

/**
 * Starting values of C instead of zeros (a bias): writes the [M, N] row-major start of C into
 * `mem` from element `off`, so the bias costs no pass of its own over the output.
 */
export type CInit = (mem: FloatArray, off: number) => void;

/** C[cOff + i*N + j] (=|+=) sum_k A(i,k) B(k,j); with `init` (and not accumulate) C starts from it. */
export function gemm(
  M: number, N: number, K: number, A: MatView, B: MatView, C: FloatArray, cOff: number, accumulate: boolean, init?: CInit,
): void {
  if (M === 0 || N === 0) return;
  if (pool && C instanceof Float32Array && A.data instanceof Float32Array && B.data instanceof Float32Array && M * N * K >= WASM_MIN_MACS) {
    runWasmGemm(pool, M, N, K, A, B, C, cOff, accumulate, undefined, init);
  } else if (init && !accumulate) {
    init(C, cOff);
    gemmJs(M, N, K, A, B, C, cOff, true);
  } else {
    gemmJs(M, N, K, A, B, C, cOff, accumulate);
  }
}

/** C starting from a per-column bias (each of the M rows of N gets bias[b0..b0+N)). */
export const rowBias = (bias: FloatArray, M: number, N: number, b0 = 0): CInit => (mem, off) => {
  const b = bias.subarray(b0, b0 + N);
  for (let i = 0; i < M; i++) mem.set(b, off + i * N);
};
/** C starting from a per-row bias (row i of N is bias[b0 + i] throughout; a conv's output channels). */
export const colBias = (bias: FloatArray, M: number, N: number, b0 = 0): CInit => (mem, off) => {
  for (let i = 0; i < M; i++) mem.fill(bias[b0 + i], off + i * N, off + (i + 1) * N);
};

/** How a FillB writes B, and what the product starts from. */
export interface FillOptions {
  /** B is written transposed, [N, K] row-major (the im2col rows of a weight gradient), and the packing transposes it. */
  transposed?: boolean;
  /** C's starting values instead of zeros (not with accumulate). */
  init?: CInit;
  /** Bytes the fill may use after B in the kernels' memory (passed to it as `free`). */
  scratch?: number;
}

/**
 * C (=|+=) A @ B where `fillB(mem, off)` writes B ([K, N] row-major, or [N, K] with `transposed`)
 * into `mem` starting at element `off` (im2col writes its columns there). With the wasm pool B is
 * written straight into the shared memory and packed there by the threads; otherwise it is staged
 * in a reused JS buffer.
 */
export function gemmFillB(
  M: number, N: number, K: number, A: MatView, fillB: FillB, C: Float32Array, cOff: number, accumulate: boolean, o: FillOptions = {},
): void {
  if (M === 0 || N === 0) return;
  if (pool && A.data instanceof Float32Array && M * N * K >= WASM_MIN_MACS) {
    runWasmGemm(pool, M, N, K, A, fillB, C, cOff, accumulate, undefined, o.init, o.transposed ?? false, o.scratch ?? 0);
    return;
  }
  const b = scratch('gemm.b', 'f32', K * N) as Float32Array;
  fillB(b, 0);
  gemm(M, N, K, A, o.transposed ? mat(b, 0, 1, K) : mat(b, 0, N, 1), C, cOff, accumulate, o.init);
}

export function gemmJs(
  M: number, N: number, K: number, A: MatView, B: MatView, C: FloatArray, cOff: number, accumulate: boolean,
): void {
  const a = A.data, b = B.data;
  const row = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    row.fill(0);
    const ai = A.offset + i * A.rs;
    for (let k = 0; k < K; k++) {
      const av = a[ai + k * A.cs];
      if (av === 0) continue;
      const bk = B.offset + k * B.rs;
      for (let j = 0; j < N; j++) row[j] += av * b[bk + j * B.cs];
    }
    const ci = cOff + i * N;
    if (accumulate) for (let j = 0; j < N; j++) C[ci + j] += row[j];
    else for (let j = 0; j < N; j++) C[ci + j] = row[j];
  }
}

/** K blocking shared by both B layouts: nkb blocks of kc rows (the last one may be shorter). */
function kBlocks(K: number): { nkb: number; kc: number } {
  const nkb = Math.max(1, Math.ceil(K / KC_MAX));
  return { nkb, kc: Math.ceil(K / nkb) };
}

/**
 * Writes a GEMM's B at element `off` of `mem`. In the kernels' memory (`mem` is all of it) it also
 * gets `free`, the byte address of the `fillScratch` bytes reserved after B for its own use (the
 * images im2col expands there); in a JS scratch array `free` is undefined.
 */
export type FillB = (mem: Float32Array, off: number, free?: number) => void;
/** B of a product: a strided view, or a function that writes B row-major ([K, N]) at an element offset. */
type BSource = MatView | FillB;

/** Operands of at least this many elements are packed by all threads, smaller ones by the caller. */
const PACK_THREADED_MIN = 1 << 16;

/**
 * Elements from the view's first to its last element when `rows` x `cols` of it are used, if that
 * span can be copied whole (non-negative strides, at most twice the used elements); else -1.
 */
function rawSpan(v: MatView, rows: number, rowStride: number, cols: number, colStride: number): number {
  if (rowStride < 0 || colStride < 0) return -1;
  const span = 1 + (rows - 1) * rowStride + (cols - 1) * colStride;
  return span <= 2 * rows * cols && v.offset + span <= v.data.length ? span : -1;
}

/**
 * Lays out [thread tiles][packed A][packed B][C][raw A][raw B] in the shared memory. Each operand
 * is copied there as it lies (one memcpy; im2col writes B there directly) and packed in wasm, by
 * all threads when it is big; a view too sparse to copy whole is packed from JS. Then the kernel
 * runs on the threads and C is copied back.
 */
function runWasmGemm(
  p: WasmPool, M: number, N: number, K: number, A: MatView, B: BSource, C: Float32Array | null, cOff: number, accumulate: boolean,
  consume?: (p: WasmPool, cByte: number, freeByte: number) => void, init?: CInit, fillsTransposed = false, fillScratch = 0,
): void {
  const { nkb, kc } = kBlocks(K);
  const npa = Math.ceil(M / MR), npb = Math.ceil(N / NR);
  const apOff = p.threads * MR * NR * 4;
  const bpOff = apOff + nkb * npa * kc * MR * 4;
  const cOffB = bpOff + nkb * npb * kc * NR * 4;
  const rawA = cOffB + M * N * 4;
  const spanA = rawSpan(A, M, A.rs, K, A.cs);
  const rawB = rawA + Math.max(0, spanA) * 4;
  // B's "panel row" index is its column j (stride cs), its k the row (stride rs).
  const spanB = typeof B === 'function' ? K * N : rawSpan(B, N, B.cs, K, B.rs);
  const fillFree = Math.ceil((rawB + Math.max(0, spanB) * 4) / 16) * 16;
  const mem = new Float32Array(p.reserve(fillFree + fillScratch));
  const threadsFor = (n: number) => (n >= PACK_THREADED_MIN ? p.threads : 1);
  if (spanA >= 0) {
    mem.set(A.data.subarray(A.offset, A.offset + spanA), rawA >>> 2);
    p.runPack(rawA, A.rs, A.cs, M, K, MR, nkb, kc, apOff, threadsFor(M * K));
  } else packPanels(A, M, K, MR, nkb, kc, mem, apOff >>> 2, false);
  if (typeof B === 'function') {
    B(mem, rawB >>> 2, fillFree);
    // Row-major B: column j of B (a panel row) has stride 1, k stride N; written transposed, K and 1.
    if (fillsTransposed) p.runPack(rawB, K, 1, N, K, NR, nkb, kc, bpOff, threadsFor(K * N));
    else p.runPack(rawB, 1, N, N, K, NR, nkb, kc, bpOff, threadsFor(K * N));
  } else if (spanB >= 0) {
    mem.set(B.data.subarray(B.offset, B.offset + spanB), rawB >>> 2);
    p.runPack(rawB, B.cs, B.rs, N, K, NR, nkb, kc, bpOff, threadsFor(K * N));
  } else packPanels(B, N, K, NR, nkb, kc, mem, bpOff >>> 2, true);
  const cw = cOffB >>> 2;
  if (accumulate && C) mem.set(C.subarray(cOff, cOff + M * N), cw);
  else if (init) init(mem, cw);
  else mem.fill(0, cw, cw + M * N);
  p.runGemm(npa, (lo, hi, t) => [apOff, bpOff, cOffB, N, M, N, kc, nkb, lo, hi, t * MR * NR * 4], M * N * K >= THREADED_MIN_MACS ? p.threads : 1);
  if (consume) consume(p, cOffB, Math.ceil(rawA / 16) * 16);
  else if (C) C.set(mem.subarray(cw, cw + M * N), cOff);
}

/**
 * A @ B left in the kernels' memory for a kernel that consumes it there: `consume(pool, cByte,
 * freeByte)` gets the byte address of C ([M, N] row-major) and the first byte it may use after
 * it. Returns false (nothing run) without the wasm pool.
 */
export function gemmInWasm(
  M: number, N: number, K: number, A: MatView, B: MatView, consume: (p: WasmPool, cByte: number, freeByte: number) => void,
): boolean {
  if (!pool || M === 0 || N === 0 || !(A.data instanceof Float32Array) || !(B.data instanceof Float32Array)) return false;
  runWasmGemm(pool, M, N, K, A, B, null, 0, false, consume);
  return true;
}

/**
 * Packs a matrix into [kb][panel][kc][W] blocks (zero padded). For A the panel index runs over rows
 * (i, k) = (panel row, k); for B (`kMajor`) over columns with element (k, j).
 */
function packPanels(
  v: MatView, rows: number, K: number, W: number, nkb: number, kc: number, dst: Float32Array, off: number, kMajor: boolean,
): void {
  const src = v.data;
  const np = Math.ceil(rows / W);
  // Strides of the "panel row" index and of k inside the source.
  const sr = kMajor ? v.cs : v.rs;
  const sk = kMajor ? v.rs : v.cs;
  let o = off;
  for (let kb = 0; kb < nkb; kb++) {
    const k0 = kb * kc;
    const kn = Math.min(kc, K - k0);
    for (let pi = 0; pi < np; pi++) {
      const r0 = pi * W;
      const rn = Math.min(W, rows - r0);
      if (rn === W && sr === 1 && (W === 4 || W === 8)) {
        // The W values of one k are contiguous in the source (unrolled: a loop over r of 4 or 8
        // costs more than the copy).
        let s = v.offset + r0 + k0 * sk;
        if (W === 8) for (let k = 0; k < kn; k++, s += sk, o += 8) {
          dst[o] = src[s]; dst[o + 1] = src[s + 1]; dst[o + 2] = src[s + 2]; dst[o + 3] = src[s + 3];
          dst[o + 4] = src[s + 4]; dst[o + 5] = src[s + 5]; dst[o + 6] = src[s + 6]; dst[o + 7] = src[s + 7];
        } else for (let k = 0; k < kn; k++, s += sk, o += 4) {
          dst[o] = src[s]; dst[o + 1] = src[s + 1]; dst[o + 2] = src[s + 2]; dst[o + 3] = src[s + 3];
        }
      } else if (rn === W && sk === 1 && (W === 4 || W === 8)) {
        // Each of the W rows is contiguous in k (row-major A, transposed B): W read streams
        // advancing together, one sequential write. This was half the time of small GEMMs.
        const p0 = v.offset + r0 * sr + k0, p1 = p0 + sr, p2 = p1 + sr, p3 = p2 + sr;
        if (W === 8) {
          const p4 = p3 + sr, p5 = p4 + sr, p6 = p5 + sr, p7 = p6 + sr;
          for (let k = 0; k < kn; k++, o += 8) {
            dst[o] = src[p0 + k]; dst[o + 1] = src[p1 + k]; dst[o + 2] = src[p2 + k]; dst[o + 3] = src[p3 + k];
            dst[o + 4] = src[p4 + k]; dst[o + 5] = src[p5 + k]; dst[o + 6] = src[p6 + k]; dst[o + 7] = src[p7 + k];
          }
        } else for (let k = 0; k < kn; k++, o += 4) {
          dst[o] = src[p0 + k]; dst[o + 1] = src[p1 + k]; dst[o + 2] = src[p2 + k]; dst[o + 3] = src[p3 + k];
        }
      } else {
        for (let k = 0; k < kn; k++) {
          const s = v.offset + r0 * sr + (k0 + k) * sk;
          for (let r = 0; r < rn; r++) dst[o + r] = src[s + r * sr];
          for (let r = rn; r < W; r++) dst[o + r] = 0;
          o += W;
        }
      }
      for (let k = kn; k < kc; k++) {
        for (let r = 0; r < W; r++) dst[o + r] = 0;
        o += W;
      }
    }
  }
}

/**
 * In-place softmax(x * scale) of `rows` rows of `cols` in the wasm kernel (row r sees columns
 * <= r + causalFrom when causalFrom >= 0). Returns false when the wasm pool is not running.
 */
export function softmaxRowsWasm(x: Float32Array, rows: number, cols: number, scale: number, causalFrom: number): boolean {
  if (!pool) return false;
  const off = pool.threads * MR * NR * 4;
  const mem = new Float32Array(pool.reserve(off + rows * cols * 4));
  mem.set(x.subarray(0, rows * cols), off >>> 2);
  pool.runSoftmax(off, rows, cols, scale, causalFrom);
  x.set(mem.subarray(off >>> 2, (off >>> 2) + rows * cols));
  return true;
}

/**
 * Below this many elements an activation stays in JS. Every activation here calls exp or tanh,
 * which cost JS about 15 ns an element, far more than the copies in and out of the kernel.
 */
const MAP_MIN = 1 << 12;

/**
 * out = op(x) (silu, gelu) or out = gy * op'(x) (siluGrad, geluGrad, g = gy) for n elements, in the
 * wasm kernel on all threads (f32 arithmetic with a polynomial exp: a few ulp from the JS loops).
 * `out` may be x or g. Returns false when the pool is not running or n is small.
 */
export function mapWasm(op: keyof typeof MAP_OPS, x: Float32Array, g: Float32Array | null, out: Float32Array, n: number): boolean {
  if (!pool || n < MAP_MIN) return false;
  const n4 = (n + 3) & ~3;
  const xb = pool.threads * MR * NR * 4, gb = xb + n4 * 4;
  const mem = new Float32Array(pool.reserve(gb + (g ? n4 * 4 : 0)));
  mem.set(x.subarray(0, n), xb >>> 2);
  if (g) mem.set(g.subarray(0, n), gb >>> 2);
  const yb = g ? gb : xb;
  pool.runMap(MAP_OPS[op], xb, gb, yb, n4, MAP_BLOCK);
  out.set(mem.subarray(yb >>> 2, (yb >>> 2) + n));
  return true;
}
