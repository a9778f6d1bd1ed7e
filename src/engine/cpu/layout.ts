// Data-movement kernels: permute, slice, concat, nearest upsampling and embedding lookup.
import { type DType, type FloatDType, type TypedArray, allocArray } from '../dtype.js';
import { type Shape, numel, stridesOf } from '../shape.js';
import type { FloatArray } from './gemm.js';

/** Copies `src` viewed with `strides` (element offset `base`) into a contiguous array of `shape`. */
function gather(src: TypedArray, base: number, shape: Shape, strides: readonly number[], dst: TypedArray, dstOff: number, dstStrides?: readonly number[]): void {
  const rank = shape.length;
  if (rank === 0) { dst[dstOff] = src[base]; return; }
  const ds = dstStrides ?? stridesOf(shape);
  const last = shape[rank - 1];
  const ls = strides[rank - 1], ld = ds[rank - 1];
  const total = numel(shape);
  const idx = new Array<number>(rank).fill(0);
  let is = base, id = dstOff;
  for (let i = 0; i < total; i += last) {
    for (let j = 0; j < last; j++) dst[id + j * ld] = src[is + j * ls];
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++; is += strides[d]; id += ds[d];
      if (idx[d] < shape[d]) break;
      is -= strides[d] * shape[d]; id -= ds[d] * shape[d]; idx[d] = 0;
    }
  }
}

export function permute(x: TypedArray, shape: Shape, perm: readonly number[], dtype: DType): TypedArray {
  const st = stridesOf(shape);
  const outShape = perm.map((p) => shape[p]);
  const out = allocArray(dtype, x.length);
  gather(x, 0, outShape, perm.map((p) => st[p]), out, 0);
  return out;
}

export function slice(x: TypedArray, shape: Shape, starts: readonly number[], out: Shape, dtype: DType): TypedArray {
  const st = stridesOf(shape);
  const base = starts.reduce((a, s, i) => a + s * st[i], 0);
  const y = allocArray(dtype, numel(out));
  gather(x, base, out, st, y, 0);
  return y;
}

export function sliceGrad(gy: FloatArray, shape: Shape, starts: readonly number[], gyShape: Shape, dtype: FloatDType): FloatArray {
  const st = stridesOf(shape);
  const base = starts.reduce((a, s, i) => a + s * st[i], 0);
  const y = allocArray(dtype, numel(shape)) as FloatArray;
  gather(gy, 0, gyShape, stridesOf(gyShape), y, base, st);
  return y;
}

export function concat(xs: TypedArray[], shapes: Shape[], axis: number, dtype: DType): TypedArray {
  const outer = numel(shapes[0].slice(0, axis));
  const inner = numel(shapes[0].slice(axis + 1));
  const widths = shapes.map((s) => s[axis] * inner);
  const row = widths.reduce((a, b) => a + b, 0);
  const y = allocArray(dtype, outer * row);
  let off = 0;
  xs.forEach((x, k) => {
    const w = widths[k];
    for (let o = 0; o < outer; o++) y.set(x.subarray(o * w, o * w + w), o * row + off);
    off += w;
  });
  return y;
}

export function upsampleNearest2x(x: FloatArray, shape: Shape, dtype: FloatDType): FloatArray {
  const [n, c, h, w] = shape;
  const y = allocArray(dtype, n * c * h * w * 4) as FloatArray;
  const w2 = 2 * w;
  for (let p = 0; p < n * c; p++) {
    for (let i = 0; i < h; i++) {
      const src = p * h * w + i * w;
      const d0 = p * 4 * h * w + 2 * i * w2;
      for (let j = 0; j < w; j++) {
        const v = x[src + j];
        y[d0 + 2 * j] = v; y[d0 + 2 * j + 1] = v;
        y[d0 + w2 + 2 * j] = v; y[d0 + w2 + 2 * j + 1] = v;
      }
    }
  }
  return y;
}

export function upsampleNearest2xGrad(gy: FloatArray, shape: Shape, dtype: FloatDType): FloatArray {
  const [n, c, h, w] = shape;
  const y = allocArray(dtype, n * c * h * w) as FloatArray;
  const w2 = 2 * w;
  for (let p = 0; p < n * c; p++) {
    for (let i = 0; i < h; i++) {
      const d = p * h * w + i * w;
      const s0 = p * 4 * h * w + 2 * i * w2;
      for (let j = 0; j < w; j++) {
        y[d + j] = gy[s0 + 2 * j] + gy[s0 + 2 * j + 1] + gy[s0 + w2 + 2 * j] + gy[s0 + w2 + 2 * j + 1];
      }
    }
  }
  return y;
}

export function embedding(ids: Int32Array, table: FloatArray, count: number, dim: number, dtype: FloatDType): FloatArray {
  const vocab = table.length / dim;
  const y = allocArray(dtype, count * dim) as FloatArray;
  for (let i = 0; i < count; i++) {
    const id = ids[i];
    if (id < 0 || id >= vocab) throw new Error(`embedding: id ${id} out of range [0, ${vocab})`);
    y.set(table.subarray(id * dim, id * dim + dim), i * dim);
  }
  return y;
}

export function embeddingGrad(ids: Int32Array, gy: FloatArray, count: number, vocab: number, dim: number, dtype: FloatDType): FloatArray {
  const g = allocArray(dtype, vocab * dim) as FloatArray;
  for (let i = 0; i < count; i++) {
    const o = ids[i] * dim;
    for (let j = 0; j < dim; j++) g[o + j] += gy[i * dim + j];
  }
  return g;
}
