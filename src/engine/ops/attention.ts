// Fused scaled dot-product attention (torch.nn.functional.scaled_dot_product_attention).
import { record } from '../autograd.js';
import type { AttentionSpec } from '../backend.js';
import type { Tensor } from '../tensor.js';
import { reshape, transpose } from './layout.js';
import { computeType, like } from './util.js';

export interface AttentionOptions {
  /** Defaults to 1/sqrt(head dim). */
  scale?: number;
  /** Query i attends to keys 0..i (CLIP's causal mask). */
  causal?: boolean;
}

/** q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv] -> [..., Lq, Dv]; leading dims are batch/heads. */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const [lq, d] = q.shape.slice(-2);
  const [lk, dk] = k.shape.slice(-2);
  const [lv, dv] = v.shape.slice(-2);
  const lead = q.shape.slice(0, -2);
  const same = (t: Tensor) => t.rank === q.rank && t.shape.slice(0, -2).every((s, i) => s === lead[i]);
  if (q.rank < 3 || d !== dk || lk !== lv || !same(k) || !same(v)) {
    throw new Error(`attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not fit together`);
  }
  const batch = q.size / (lq * d);
  const spec = { batch, lq, lk, d, dv, scale: opts.scale ?? 1 / Math.sqrt(d), causal: opts.causal ?? false };
  return run(q, k, v, spec, [...lead, lq, dv]);
}

function run(q: Tensor, k: Tensor, v: Tensor, spec: AttentionSpec, outShape: number[]): Tensor {
  const dt = computeType('attention', q, k, v);
  const be = q.backend;
  const y = like(q, be.attention(q.storage, k.storage, v.storage, spec, dt), outShape);
  return record(y, 'attention', [q, k, v], (gy) => {
    const g = be.attentionGrad(q.storage, k.storage, v.storage, gy.storage, spec, dt);
    return [like(q, g.dq, q.shape), like(k, g.dk, k.shape), like(v, g.dv, v.shape)];
  });
}

/**
 * Multi-head attention on the projections' layout, as diffusers' Attention and CLIP use it:
 * q [B, Lq, heads*D], k [B, Lk, heads*D], v [B, Lk, heads*Dv] -> [B, Lq, heads*Dv], each head
 * attending on its own slice of the channels and the heads' outputs concatenated. Backends with
 * attentionHeads take this layout as it is; elsewhere the heads are transposed out and back.
 */
export function multiHeadAttention(q: Tensor, k: Tensor, v: Tensor, heads: number, opts: AttentionOptions = {}): Tensor {
  const [b, lq, qc] = q.shape, [bk, lk, kc] = k.shape, [bv, lv, vc] = v.shape;
  if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3 || b !== bk || b !== bv || lk !== lv || qc !== kc || qc % heads !== 0 || vc % heads !== 0) {
    throw new Error(`attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not fit together with ${heads} heads`);
  }
  if (!q.backend.attentionHeads) {
    const split = (t: Tensor) => transpose(reshape(t, [t.shape[0], t.shape[1], heads, -1]), 1, 2);
    return reshape(transpose(attention(split(q), split(k), split(v), opts), 1, 2), [b, lq, vc]);
  }
  const d = qc / heads, dv = vc / heads;
  const spec = { batch: b * heads, lq, lk, d, dv, scale: opts.scale ?? 1 / Math.sqrt(d), causal: opts.causal ?? false, heads };
  return run(q, k, v, spec, [b, lq, vc]);
}
