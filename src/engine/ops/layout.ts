// Shape ops: reshape, permute/transpose, slice, concat, split.
import { record } from '../autograd.js';
import { normAxis, numel } from '../shape.js';
import { Tensor } from '../tensor.js';
import { computeType, like } from './util.js';

/** Same storage, new shape; one dimension may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) s[neg] = x.size / numel(s.filter((_, i) => i !== neg));
  if (numel(s) !== x.size || !s.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`reshape: cannot view [${x.shape}] (${x.size} values) as [${shape}]`);
  }
  const y = new Tensor(x.storage, s, x.dtype, x.backend);
  return record(y, 'reshape', [x], (gy) => [new Tensor(gy.storage, x.shape, gy.dtype, gy.backend)]);
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new Error(`permute: [${perm}] is not a permutation of ${x.rank} axes`);
  }
  const shape = perm.map((p) => x.shape[p]);
  const y = like(x, x.backend.permute(x.storage, x.shape, perm, x.dtype), shape);
  const inv = perm.map((_, i) => perm.indexOf(i));
  return record(y, 'permute', [x], (gy) => [permute(gy, inv)]);
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const perm = x.shape.map((_, i) => i);
  const i = normAxis(a, x.rank), j = normAxis(b, x.rank);
  [perm[i], perm[j]] = [perm[j], perm[i]];
  return permute(x, perm);
}

/** x[..., start:end, ...] along one axis. */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const ax = normAxis(axis, x.rank);
  if (start < 0 || end > x.shape[ax] || start > end) throw new Error(`slice: [${start}, ${end}) out of range for axis ${ax} of [${x.shape}]`);
  const starts = x.shape.map((_, i) => (i === ax ? start : 0));
  const out = x.shape.map((d, i) => (i === ax ? end - start : d));
  const y = like(x, x.backend.slice(x.storage, x.shape, starts, out, x.dtype), out);
  return record(y, 'slice', [x], (gy) => [like(x, x.backend.sliceGrad(gy.storage, x.shape, starts, out, computeType('slice', gy)), x.shape)]);
}

export function concat(xs: Tensor[], axis: number): Tensor {
  const ax = normAxis(axis, xs[0].rank);
  for (const t of xs) {
    if (t.rank !== xs[0].rank || t.shape.some((d, i) => i !== ax && d !== xs[0].shape[i])) {
      throw new Error(`concat: shapes ${xs.map((u) => `[${u.shape}]`).join(', ')} differ off axis ${ax}`);
    }
  }
  const out = xs[0].shape.map((d, i) => (i === ax ? xs.reduce((a, t) => a + t.shape[ax], 0) : d));
  const y = like(xs[0], xs[0].backend.concat(xs.map((t) => t.storage), xs.map((t) => t.shape), ax, xs[0].dtype), out);
  return record(y, 'concat', xs, (gy) => {
    let o = 0;
    return xs.map((t) => { const g = slice(gy, ax, o, o + t.shape[ax]); o += t.shape[ax]; return g; });
  });
}

/** Splits into `n` equal parts along an axis (torch.chunk with an even split). */
export function chunk(x: Tensor, n: number, axis: number): Tensor[] {
  const ax = normAxis(axis, x.rank);
  const size = x.shape[ax] / n;
  if (!Number.isInteger(size)) throw new Error(`chunk: axis ${ax} of [${x.shape}] does not split into ${n}`);
  return Array.from({ length: n }, (_, i) => slice(x, ax, i * size, (i + 1) * size));
}
