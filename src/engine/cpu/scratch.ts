// Reusable scratch arrays for kernel temporaries (im2col columns, attention scores). Fresh
// multi-MB arrays cost more in first-touch page faults than the copy that fills them.
import type { FloatDType } from '../dtype.js';
import type { FloatArray } from './gemm.js';

const cache: Record<string, FloatArray> = {};

/** A zero-initialised-or-dirty array of at least n elements; valid until the next call with the same key. */
export function scratch(key: string, dtype: FloatDType, n: number): FloatArray {
  const k = `${key}:${dtype}`;
  let a = cache[k];
  if (!a || a.length < n) {
    a = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
    cache[k] = a;
  }
  return a.subarray(0, n);
}
