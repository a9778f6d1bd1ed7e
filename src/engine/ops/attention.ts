// Fused scaled dot-product attention (torch.nn.functional.scaled_dot_product_attention).
import { record } from '../autograd.js';
import type { Tensor } from '../tensor.js';
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
  const dt = computeType('attention', q, k, v);
  const be = q.backend;
  const y = like(q, be.attention(q.storage, k.storage, v.storage, spec, dt), [...lead, lq, dv]);
  return record(y, 'attention', [q, k, v], (gy) => {
    const g = be.attentionGrad(q.storage, k.storage, v.storage, gy.storage, spec, dt);
    return [like(q, g.dq, q.shape), like(k, g.dk, k.shape), like(v, g.dv, v.shape)];
  });
}
