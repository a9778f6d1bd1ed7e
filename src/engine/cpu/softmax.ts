// Row softmax (last axis) and its gradient; also used inside attention.
import { type FloatDType, allocArray } from '../dtype.js';
import { type FloatArray, softmaxRowsWasm } from './gemm.js';

/** In-place softmax of `rows` rows of `cols`; with `causalFrom` row r only sees columns <= r + causalFrom. */
export function softmaxRowsInPlace(x: FloatArray, off: number, rows: number, cols: number, causalFrom = Infinity): void {
  for (let r = 0; r < rows; r++) {
    const o = off + r * cols;
    const lim = Math.min(cols, r + causalFrom + 1);
    let mx = -Infinity;
    for (let j = 0; j < lim; j++) if (x[o + j] > mx) mx = x[o + j];
    let s = 0;
    for (let j = 0; j < lim; j++) { const e = Math.exp(x[o + j] - mx); x[o + j] = e; s += e; }
    const inv = 1 / s;
    for (let j = 0; j < lim; j++) x[o + j] *= inv;
    for (let j = lim; j < cols; j++) x[o + j] = 0;
  }
}

export function softmax(x: FloatArray, rows: number, cols: number, dtype: FloatDType): FloatArray {
  const y = allocArray(dtype, rows * cols) as FloatArray;
  y.set(x);
  // f32 rows in the wasm kernel (SIMD exp) where the pool runs, else here.
  if (!(y instanceof Float32Array && softmaxRowsWasm(y, rows, cols, 1, -1))) softmaxRowsInPlace(y, 0, rows, cols);
  return y;
}

/** dx = y * (gy - sum(gy * y)) per row, written into `out` (may alias gy). */
export function softmaxGradInto(y: FloatArray, gy: FloatArray, out: FloatArray, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let s = 0;
    for (let j = 0; j < cols; j++) s += gy[o + j] * y[o + j];
    for (let j = 0; j < cols; j++) out[o + j] = y[o + j] * (gy[o + j] - s);
  }
}

export function softmaxGrad(y: FloatArray, gy: FloatArray, rows: number, cols: number, dtype: FloatDType): FloatArray {
  const dx = allocArray(dtype, rows * cols) as FloatArray;
  softmaxGradInto(y, gy, dx, rows, cols);
  return dx;
}
