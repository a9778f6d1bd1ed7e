// Group norm (NC...) and layer norm (over the last axis), as torch.nn.functional.
import type { NormAct, NormLayout } from '../backend.js';
import { record } from '../autograd.js';
import { numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { computeType, like } from './util.js';

function normOp(op: string, x: Tensor, gamma: Tensor | null, beta: Tensor | null, L: NormLayout, eps: number, act: NormAct = 'none'): Tensor {
  if (beta && !gamma) throw new Error(`${op}: a bias needs a weight`);
  const dt = computeType(op, x, ...(gamma ? [gamma] : []), ...(beta ? [beta] : []));
  const be = x.backend;
  const r = be.norm(x.storage, gamma?.storage ?? null, beta?.storage ?? null, L, eps, dt, act);
  const y = like(x, r.y, x.shape);
  const inputs = [x, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])];
  return record(y, op, inputs, (gy) => {
    const g = be.normGrad(gy.storage, x.storage, gamma?.storage ?? null, beta?.storage ?? null, r.mean, r.rstd, L, dt, act);
    const out: (Tensor | null)[] = [like(x, g.dx, x.shape)];
    if (gamma) out.push(like(gamma, g.dgamma, gamma.shape));
    if (beta) out.push(like(beta, g.dbeta, beta.shape));
    return out;
  });
}

/** x [N, C, ...] normalized over C/groups channels and all spatial positions. */
export function groupNorm(x: Tensor, groups: number, gamma: Tensor | null, beta: Tensor | null, eps = 1e-5, act: NormAct = 'none'): Tensor {
  const [n, c] = x.shape;
  if (c % groups !== 0) throw new Error(`groupNorm: ${c} channels do not split into ${groups} groups`);
  if (gamma && gamma.size !== c) throw new Error(`groupNorm: weight has ${gamma.size} values for ${c} channels`);
  const inner = numel(x.shape.slice(2));
  return normOp(act === 'none' ? 'groupNorm' : `groupNorm+${act}`, x, gamma, beta, { rows: n * groups, size: (c / groups) * inner, channels: c, inner }, eps, act);
}

/**
 * silu(groupNorm(x)) in one pass: the normalized tensor is never stored; the backward recomputes
 * it from x and the row statistics.
 */
export const groupNormSilu = (x: Tensor, groups: number, gamma: Tensor | null, beta: Tensor | null, eps = 1e-5): Tensor =>
  groupNorm(x, groups, gamma, beta, eps, 'silu');

/** Normalizes over the last axis. */
export function layerNorm(x: Tensor, gamma: Tensor | null, beta: Tensor | null, eps = 1e-5): Tensor {
  const d = x.shape[x.rank - 1];
  if (gamma && gamma.size !== d) throw new Error(`layerNorm: weight has ${gamma.size} values for a last axis of ${d}`);
  return normOp('layerNorm', x, gamma, beta, { rows: x.size / d, size: d, channels: d, inner: 1 }, eps);
}
