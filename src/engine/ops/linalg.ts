// Matrix products: batched matmul and the fused linear layer (x W^T + b).
import type { MatmulSpec, Storage } from '../backend.js';
import { record } from '../autograd.js';
import { numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { reshape } from './layout.js';
import { sum } from './reduce.js';
import { computeType, like, weightOperand } from './util.js';

function mm(a: Tensor, b: Tensor, s: MatmulSpec, shape: readonly number[]): Tensor {
  return like(a, a.backend.matmul(a.storage, b.storage, s, computeType('matmul', a, b)), shape);
}

/** Gradient [batch, R, C] of an operand that may have been broadcast over the batch. */
function toOperand(g: Tensor, shape: readonly number[]): Tensor {
  if (g.size === numel(shape)) return reshape(g, shape);
  return reshape(sum(reshape(g, [-1, ...g.shape.slice(-2)]), 0), shape);
}

/** a [..., M, K] @ b [..., K, N]; batch dims must match or one side has none (or 1). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: operands need rank >= 2, got [${a.shape}] and [${b.shape}]`);
  const [M, K] = a.shape.slice(-2);
  const [K2, N] = b.shape.slice(-2);
  if (K !== K2) throw new Error(`matmul: inner sizes differ: [${a.shape}] @ [${b.shape}]`);
  const ab = a.shape.slice(0, -2), bb = b.shape.slice(0, -2);
  const Ba = numel(ab), Bb = numel(bb);
  if (Ba !== Bb && Ba !== 1 && Bb !== 1) throw new Error(`matmul: batch dims [${ab}] and [${bb}] do not broadcast`);
  const batchShape = Ba >= Bb ? ab : bb;
  const batch = Math.max(Ba, Bb);
  const y = mm(a, b, { batch, aBatch: Ba, bBatch: Bb, M, N, K, transA: false, transB: false }, [...batchShape, M, N]);
  return record(y, 'matmul', [a, b], (gy) => [
    a.requiresGrad ? toOperand(mm(gy, b, { batch, aBatch: batch, bBatch: Bb, M, N: K, K: N, transA: false, transB: true }, [batch, M, K]), a.shape) : null,
    b.requiresGrad ? toOperand(mm(a, gy, { batch, aBatch: Ba, bBatch: batch, M: K, N, K: M, transA: true, transB: false }, [batch, K, N]), b.shape) : null,
  ]);
}

/** x [..., in] W^T + b with W [out, in] (torch.nn.Linear). */
export function linear(x: Tensor, wIn: Tensor, b?: Tensor | null): Tensor {
  const { w, half } = weightOperand('linear', x, wIn);
  const [out, inF] = w.shape;
  if (w.rank !== 2 || x.shape[x.rank - 1] !== inF) throw new Error(`linear: input [${x.shape}] does not match weight [${w.shape}]`);
  if (b && (b.rank !== 1 || b.shape[0] !== out)) throw new Error(`linear: bias [${b.shape}] does not match weight [${w.shape}]`);
  const rows = x.size / inF;
  const dt = computeType('linear', x, ...(half ? [] : [w]), ...(b ? [b] : []));
  const be = x.backend;
  const spec = { batch: 1, aBatch: 1, bBatch: 1, M: rows, N: out, K: inF, transA: false, transB: true, bHalf: half };
  let ys: Storage;
  if (b && be.matmulBias) ys = be.matmulBias(x.storage, w.storage, b.storage, spec, dt);
  else {
    ys = be.matmul(x.storage, w.storage, spec, dt);
    if (b) ys = be.binary('add', ys, [rows, out], b.storage, [out], [rows, out], dt);
  }
  const shape = [...x.shape.slice(0, -1), out];
  const y = like(x, ys, shape);
  const inputs = b ? [x, w, b] : [x, w];
  return record(y, 'linear', inputs, (gy) => [
    x.requiresGrad ? like(x, be.matmul(gy.storage, w.storage, { batch: 1, aBatch: 1, bBatch: 1, M: rows, N: inF, K: out, transA: false, transB: false, bHalf: half }, dt), x.shape) : null,
    w.requiresGrad ? like(w, be.matmul(gy.storage, x.storage, { batch: 1, aBatch: 1, bBatch: 1, M: out, N: inF, K: rows, transA: true, transB: false }, dt), w.shape) : null,
    b && b.requiresGrad ? like(b, be.sumTo(gy.storage, [rows, out], [1, out], dt), b.shape) : null,
  ]);
}
