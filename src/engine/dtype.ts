// Element types. f32 is the compute type; f64 exists for gradient checks; f16 and i32 are storage
// types (f16 weights are cast to f32 before compute, i32 holds token ids).
export type DType = 'f32' | 'f64' | 'f16' | 'i32';
export type FloatDType = 'f32' | 'f64';
export type TypedArray = Float32Array | Float64Array | Uint16Array | Int32Array;

export function allocArray(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case 'f32': return new Float32Array(n);
    case 'f64': return new Float64Array(n);
    case 'f16': return new Uint16Array(n);
    case 'i32': return new Int32Array(n);
  }
}

export function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Float64Array) return 'f64';
  if (a instanceof Uint16Array) return 'f16';
  return 'i32';
}

export const isFloatCompute = (d: DType): d is FloatDType => d === 'f32' || d === 'f64';

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** IEEE half (as its 16 bits) to number, computed (the table below is built from this). */
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

let halfTable: Float32Array | null = null;
/**
 * Every half's f32 value (256 KiB, built on first use). Frozen f16 weights are widened at each use
 * on the cpu backend and read from f16 files: a lookup runs about 50x faster than computing it.
 */
function halves(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfValue(h);
  }
  return halfTable;
}

/** IEEE half (as its 16 bits) to number. */
export function f16ToF32(h: number): number {
  return halves()[h & 0xffff];
}

/** number to IEEE half bits, round to nearest even. */
export function f32ToF16(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) { r = 0; e++; if (e >= 31) return sign | 0x7c00; }
  }
  return sign | (e << 10) | r;
}

/** bfloat16 bits to number (the upper half of an f32). */
export function bf16ToF32(h: number): number {
  u32buf[0] = h << 16;
  return f32buf[0];
}

/** f16 bits to f32 values (one monomorphic loop: it runs on every frozen f16 weight at each use). */
export function widenHalves(src: Uint16Array, out: Float32Array): Float32Array {
  const t = halves();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

export function castArray(src: TypedArray, to: DType): TypedArray {
  const from = dtypeOfArray(src);
  if (from === to) return src.slice();
  const out = allocArray(to, src.length);
  if (from === 'f16') {
    if (to === 'f32') widenHalves(src as Uint16Array, out as Float32Array);
    else {
      const t = halves();
      for (let i = 0; i < src.length; i++) out[i] = to === 'i32' ? Math.trunc(t[src[i]]) : t[src[i]];
    }
  } else if (to === 'f16') {
    for (let i = 0; i < src.length; i++) out[i] = f32ToF16(src[i]);
  } else if (to === 'i32') {
    for (let i = 0; i < src.length; i++) out[i] = Math.trunc(src[i]);
  } else {
    out.set(src);
  }
  return out;
}
