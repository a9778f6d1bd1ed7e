// Finite-difference gradient checking in float64.
import assert from 'node:assert/strict';
import { Rng, Tensor, mul, noGrad, sum, tensor } from '../../src/engine/index.js';

export function randT(shape: number[], rng: Rng, scale = 1, dtype: 'f64' | 'f32' = 'f64'): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const a = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return tensor(a, shape, dtype);
}

/**
 * Checks d(sum(f(x) * R))/dx from autograd against central differences for every input that
 * requires grad (all elements up to `maxPerInput`, else an even sample).
 */
export function gradcheck(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: { eps?: number; atol?: number; rtol?: number; maxPerInput?: number } = {}): void {
  const eps = opts.eps ?? 1e-6, atol = opts.atol ?? 1e-6, rtol = opts.rtol ?? 1e-5, maxN = opts.maxPerInput ?? 200;
  const rng = new Rng(1234);
  const y0 = noGrad(() => f(...inputs));
  const R = randT([...y0.shape], rng);
  const loss = (xs: Tensor[]) => noGrad(() => sum(mul(f(...xs), R)).item());
  for (const t of inputs) t.grad = null;
  sum(mul(f(...inputs), R)).backward();
  inputs.forEach((x, xi) => {
    if (!x.requiresGrad) return;
    assert.ok(x.grad, `input ${xi} got no gradient`);
    const g = x.grad!.dataSync();
    const base = x.dataSync() as Float64Array;
    const step = Math.max(1, Math.floor(base.length / maxN));
    for (let j = 0; j < base.length; j += step) {
      const plus = Float64Array.from(base); plus[j] += eps;
      const minus = Float64Array.from(base); minus[j] -= eps;
      const at = (arr: Float64Array) => inputs.map((t, k) => (k === xi ? tensor(arr, [...t.shape], 'f64') : t));
      const num = (loss(at(plus)) - loss(at(minus))) / (2 * eps);
      const diff = Math.abs(num - g[j]);
      assert.ok(diff <= atol + rtol * Math.abs(num), `input ${xi} element ${j}: autograd ${g[j]} vs finite difference ${num}`);
    }
  });
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
