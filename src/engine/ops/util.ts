// Small helpers shared by the op definitions.
import type { Storage } from '../backend.js';
import { type FloatDType, isFloatCompute } from '../dtype.js';
import { Tensor } from '../tensor.js';

/** The compute dtype of an op's inputs; f16/i32 tensors must be cast first. */
export function computeType(op: string, ...ts: Tensor[]): FloatDType {
  const d = ts[0].dtype;
  for (const t of ts) {
    if (!isFloatCompute(t.dtype)) throw new Error(`${op}: ${t.dtype} tensors are storage only; cast with .to('f32') first`);
    if (t.dtype !== d) throw new Error(`${op}: mixed dtypes ${d} and ${t.dtype}`);
    if (t.backend !== ts[0].backend) throw new Error(`${op}: tensors on different backends (${ts[0].backend.name}, ${t.backend.name})`);
  }
  return d as FloatDType;
}

/**
 * A frozen weight for linear/conv2d: f16 storage stays f16 where the backend reads it in place,
 * otherwise it is widened here. Returns the tensor to use and whether it is half.
 */
export function weightOperand(op: string, x: Tensor, w: Tensor): { w: Tensor; half: boolean } {
  if (w.dtype !== 'f16') return { w, half: false };
  if (w.requiresGrad) throw new Error(`${op}: an f16 weight cannot be trained; keep trainable weights in f32`);
  if (w.backend !== x.backend) throw new Error(`${op}: tensors on different backends (${x.backend.name}, ${w.backend.name})`);
  return x.backend.halfWeights ? { w, half: true } : { w: w.to('f32'), half: false };
}

export const like = (t: Tensor, storage: Storage, shape: readonly number[]): Tensor => new Tensor(storage, shape, t.dtype, t.backend);

export function checkShape(op: string, what: string, got: readonly number[], want: readonly (number | null)[]): void {
  const ok = got.length === want.length && want.every((w, i) => w === null || w === got[i]);
  if (!ok) throw new Error(`${op}: ${what} has shape [${got}], expected [${want.map((w) => (w === null ? '*' : w))}]`);
}
