// Elementwise ops with broadcasting, scalar ops and activations.
import type { BinaryOp, UnaryOp } from '../backend.js';
import { installGradHelpers, record } from '../autograd.js';
import { broadcastShapes, sameShape } from '../shape.js';
import { Tensor, full } from '../tensor.js';
import { computeType, like } from './util.js';

function unaryOp(op: UnaryOp, x: Tensor, param = 0): Tensor {
  const dt = computeType(op, x);
  const y = like(x, x.backend.unary(op, x.storage, dt, x.size, param), x.shape);
  return record(y, op, [x], (gy) => [like(x, x.backend.unaryGrad(op, x.storage, gy.storage, dt, x.size, param), x.shape)]);
}

export const neg = (x: Tensor) => unaryOp('neg', x);
export const exp = (x: Tensor) => unaryOp('exp', x);
export const log = (x: Tensor) => unaryOp('log', x);
export const sqrt = (x: Tensor) => unaryOp('sqrt', x);
export const rsqrt = (x: Tensor) => unaryOp('rsqrt', x);
export const square = (x: Tensor) => unaryOp('square', x);
export const abs = (x: Tensor) => unaryOp('abs', x);
export const sin = (x: Tensor) => unaryOp('sin', x);
export const cos = (x: Tensor) => unaryOp('cos', x);
export const tanh = (x: Tensor) => unaryOp('tanh', x);
export const sigmoid = (x: Tensor) => unaryOp('sigmoid', x);
export const relu = (x: Tensor) => unaryOp('relu', x);
export const silu = (x: Tensor) => unaryOp('silu', x);
/** Exact (erf) GELU, torch's default. */
export const gelu = (x: Tensor) => unaryOp('gelu', x);
export const geluTanh = (x: Tensor) => unaryOp('gelu_tanh', x);
/** x * sigmoid(1.702 x), OpenAI CLIP's activation. */
export const quickGelu = (x: Tensor) => unaryOp('quick_gelu', x);
export const mulScalar = (x: Tensor, s: number) => unaryOp('scale', x, s);
export const addScalar = (x: Tensor, s: number) => unaryOp('shift', x, s);
export const powScalar = (x: Tensor, p: number) => unaryOp('pow', x, p);
/** min(x, p) elementwise (torch.clamp(max=p)). */
export const minScalar = (x: Tensor, p: number) => unaryOp('minimum', x, p);
/** max(x, p) elementwise (torch.clamp(min=p)). */
export const maxScalar = (x: Tensor, p: number) => unaryOp('maximum', x, p);
export const clamp = (x: Tensor, lo: number, hi: number) => minScalar(maxScalar(x, lo), hi);

/** Sums a broadcast gradient back to the shape of the operand it came from. */
export function reduceToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const padded = [...new Array(g.rank - shape.length).fill(1), ...shape];
  const dt = computeType('sum', g);
  return like(g, g.backend.sumTo(g.storage, g.shape, padded, dt), shape);
}

function binaryOp(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const dt = computeType(op, a, b);
  const out = broadcastShapes(a.shape, b.shape);
  const be = a.backend;
  const y = like(a, be.binary(op, a.storage, a.shape, b.storage, b.shape, out, dt), out);
  return record(y, op, [a, b], (gy) => {
    const bin = (o: BinaryOp, p: Tensor, q: Tensor) =>
      like(p, be.binary(o, p.storage, p.shape, q.storage, q.shape, broadcastShapes(p.shape, q.shape), dt), broadcastShapes(p.shape, q.shape));
    let ga: Tensor | null = null, gb: Tensor | null = null;
    switch (op) {
      case 'add': ga = gy; gb = gy; break;
      case 'sub': ga = gy; gb = b.requiresGrad ? neg(gy) : null; break;
      case 'mul': ga = a.requiresGrad ? bin('mul', gy, b) : null; gb = b.requiresGrad ? bin('mul', gy, a) : null; break;
      case 'div':
        ga = a.requiresGrad ? bin('div', gy, b) : null;
        gb = b.requiresGrad ? neg(bin('div', bin('mul', gy, a), bin('mul', b, b))) : null;
        break;
    }
    return [a.requiresGrad && ga ? reduceToShape(ga, a.shape) : null, b.requiresGrad && gb ? reduceToShape(gb, b.shape) : null];
  });
}

export const add = (a: Tensor, b: Tensor) => binaryOp('add', a, b);
export const sub = (a: Tensor, b: Tensor) => binaryOp('sub', a, b);
export const mul = (a: Tensor, b: Tensor) => binaryOp('mul', a, b);
export const div = (a: Tensor, b: Tensor) => binaryOp('div', a, b);

installGradHelpers(add, (t) => full(t.shape, 1, t.dtype, t.backend));
