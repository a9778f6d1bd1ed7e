// Seeded random numbers (xoshiro128** + Box-Muller) so runs are reproducible from a seed.
import type { Backend } from './backend.js';
import type { Shape } from './shape.js';
import { numel } from './shape.js';
import { Tensor, tensor } from './tensor.js';
import type { FloatDType } from './dtype.js';

export class Rng {
  private s = new Uint32Array(4);
  private spare: number | null = null;

  constructor(seed = 0) {
    // splitmix32 to spread the seed over the state.
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /** Uniform 32-bit integer. */
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 11);
    return r;
  }

  /** Uniform in [0, 1). */
  uniform(): number { return this.nextU32() / 4294967296; }

  normal(): number {
    if (this.spare !== null) { const v = this.spare; this.spare = null; return v; }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** State for exact resume. */
  getState(): number[] { return [...this.s, this.spare ?? NaN]; }
  setState(st: number[]): void { this.s.set(st.slice(0, 4)); this.spare = Number.isNaN(st[4]) ? null : st[4]; }
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

export function randn(shape: Shape, rng: Rng, dtype: FloatDType = 'f32', backend?: Backend): Tensor {
  const n = numel(shape);
  const a = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return tensor(a, shape, dtype, backend);
}

export function rand(shape: Shape, rng: Rng, dtype: FloatDType = 'f32'): Tensor {
  const n = numel(shape);
  const a = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform();
  return tensor(a, shape, dtype);
}
