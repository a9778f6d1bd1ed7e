// Sum and mean over axes.
import { record } from '../autograd.js';
import { normAxis } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { mulScalar } from './elementwise.js';
import { computeType, like } from './util.js';

/** Sum over `axes` (all when omitted). */
export function sum(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  const dt = computeType('sum', x);
  const ax = axes === undefined ? x.shape.map((_, i) => i) : (Array.isArray(axes) ? axes : [axes]).map((a) => normAxis(a, x.rank));
  const kept = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const outShape = keepDims ? kept : x.shape.filter((_, i) => !ax.includes(i));
  const y = like(x, x.backend.sumTo(x.storage, x.shape, kept, dt), outShape);
  return record(y, 'sum', [x], (gy) => {
    // Broadcast gy back over the reduced axes.
    return [like(x, x.backend.binary('add', x.backend.zeros(dt, x.size), x.shape, gy.storage, kept, x.shape, dt), x.shape)];
  });
}

export function mean(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  const s = sum(x, axes, keepDims);
  return mulScalar(s, s.size / x.size);
}
