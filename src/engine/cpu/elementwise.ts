// Elementwise kernels: unary maps and broadcasting binary ops.
import type { BinaryOp, UnaryOp } from '../backend.js';
import { type FloatDType, allocArray } from '../dtype.js';
import { type Shape, broadcastStrides, numel, sameShape } from '../shape.js';
import { derivative, forward } from './math.js';
import { type FloatArray, mapWasm } from './gemm.js';

const f32 = (a: FloatArray): a is Float32Array => a instanceof Float32Array;

export function unary(op: UnaryOp, x: FloatArray, dtype: FloatDType, n: number, p: number): FloatArray {
  const out = allocArray(dtype, n) as FloatArray;
  // The hot activations get their own loops (silu and gelu of big f32 tensors run in the wasm pool);
  // the table covers the rest.
  switch (op) {
    case 'scale': for (let i = 0; i < n; i++) out[i] = x[i] * p; return out;
    case 'shift': for (let i = 0; i < n; i++) out[i] = x[i] + p; return out;
    case 'silu':
      if (f32(x) && mapWasm('silu', x, null, out as Float32Array, n)) return out;
      for (let i = 0; i < n; i++) { const v = x[i]; out[i] = v / (1 + Math.exp(-v)); }
      return out;
    case 'square': for (let i = 0; i < n; i++) out[i] = x[i] * x[i]; return out;
    default: {
      if (op === 'gelu' && f32(x) && mapWasm('gelu', x, null, out as Float32Array, n)) return out;
      const f = forward[op];
      for (let i = 0; i < n; i++) out[i] = f(x[i], p);
      return out;
    }
  }
}

export function unaryGrad(op: UnaryOp, x: FloatArray, gy: FloatArray, dtype: FloatDType, n: number, p: number): FloatArray {
  const out = allocArray(dtype, n) as FloatArray;
  switch (op) {
    case 'scale': for (let i = 0; i < n; i++) out[i] = gy[i] * p; return out;
    case 'silu':
      if (f32(x) && f32(gy) && mapWasm('siluGrad', x, gy, out as Float32Array, n)) return out;
      for (let i = 0; i < n; i++) { const v = x[i], s = 1 / (1 + Math.exp(-v)); out[i] = gy[i] * s * (1 + v * (1 - s)); }
      return out;
    case 'square': for (let i = 0; i < n; i++) out[i] = 2 * x[i] * gy[i]; return out;
    default: {
      if (op === 'gelu' && f32(x) && f32(gy) && mapWasm('geluGrad', x, gy, out as Float32Array, n)) return out;
      const d = derivative[op];
      for (let i = 0; i < n; i++) out[i] = gy[i] * d(x[i], p);
      return out;
    }
  }
}

const binFns: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
};

export function binary(op: BinaryOp, a: FloatArray, aShape: Shape, b: FloatArray, bShape: Shape, out: Shape, dtype: FloatDType): FloatArray {
  const n = numel(out);
  const y = allocArray(dtype, n) as FloatArray;
  const f = binFns[op];
  if (sameShape(aShape, bShape)) {
    // One loop per op: a shared closure call per element costs more than the arithmetic.
    switch (op) {
      case 'add': for (let i = 0; i < n; i++) y[i] = a[i] + b[i]; break;
      case 'sub': for (let i = 0; i < n; i++) y[i] = a[i] - b[i]; break;
      case 'mul': for (let i = 0; i < n; i++) y[i] = a[i] * b[i]; break;
      case 'div': for (let i = 0; i < n; i++) y[i] = a[i] / b[i]; break;
    }
    return y;
  }
  if (b.length === 1 && a.length === n) {
    const bv = b[0];
    for (let i = 0; i < n; i++) y[i] = f(a[i], bv);
    return y;
  }
  // General case: walk the output with an odometer over all but the last axis.
  const rank = out.length;
  const sa = broadcastStrides(aShape, out);
  const sb = broadcastStrides(bShape, out);
  const last = out[rank - 1];
  const la = sa[rank - 1], lb = sb[rank - 1];
  const idx = new Array<number>(rank).fill(0);
  let ia = 0, ib = 0;
  for (let o = 0; o < n; o += last) {
    if (op === 'add' && la === 1 && lb === 0) { const bv = b[ib]; for (let j = 0; j < last; j++) y[o + j] = a[ia + j] + bv; }
    else if (op === 'mul' && la === 1 && lb === 0) { const bv = b[ib]; for (let j = 0; j < last; j++) y[o + j] = a[ia + j] * bv; }
    else if (op === 'add' && la === 1 && lb === 1) { for (let j = 0; j < last; j++) y[o + j] = a[ia + j] + b[ib + j]; }
    else if (op === 'mul' && la === 1 && lb === 1) { for (let j = 0; j < last; j++) y[o + j] = a[ia + j] * b[ib + j]; }
    else for (let j = 0; j < last; j++) y[o + j] = f(a[ia + j * la], b[ib + j * lb]);
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++; ia += sa[d]; ib += sb[d];
      if (idx[d] < out[d]) break;
      ia -= sa[d] * out[d]; ib -= sb[d] * out[d]; idx[d] = 0;
    }
  }
  return y;
}

export function sumTo(x: FloatArray, shape: Shape, to: Shape, dtype: FloatDType): FloatArray {
  const y = allocArray(dtype, numel(to)) as FloatArray;
  const rank = shape.length;
  const st = broadcastStrides(to, shape);
  const n = x.length;
  const last = rank ? shape[rank - 1] : 1;
  const ls = rank ? st[rank - 1] : 0;
  const idx = new Array<number>(rank).fill(0);
  let io = 0;
  for (let i = 0; i < n; i += last) {
    if (ls === 0) {
      // The last axis is summed away (a conv bias's W): one running sum, one store.
      let s = 0;
      for (let j = 0; j < last; j++) s += x[i + j];
      y[io] += s;
    } else for (let j = 0; j < last; j++) y[io + j * ls] += x[i + j];
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++; io += st[d];
      if (idx[d] < shape[d]) break;
      io -= st[d] * shape[d]; idx[d] = 0;
    }
  }
  return y;
}
