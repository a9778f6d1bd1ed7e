// Gradient checkpointing: run a block without keeping its activations, then recompute them
// during backward. Trades one extra forward of the block for its activation memory.
import { gradLeaves, isGradEnabled, noGrad, withGrad } from './autograd.js';
import type { Backend, Storage } from './backend.js';
import type { Tensor } from './tensor.js';

/**
 * y = fn(...inputs). Parameters used inside fn (leaf tensors with requiresGrad) still receive
 * their gradients: the recomputation runs its own backward, which accumulates into them.
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  return checkpointWithState(undefined, fn, ...inputs);
}

/** Random state a block consumes (dropout masks): saved before the forward, replayed for the recompute. */
export interface ReplayableState {
  save(): unknown;
  restore(s: unknown): void;
}

/**
 * Runs fn in an allocation scope of `be` (backends without scopes: plain call); only the storage
 * `keep` picks from the result survives the scope. If fn throws, everything it allocated goes.
 */
function inScope<T>(be: Backend | undefined, fn: () => T, keep: (r: T) => Storage[]): T {
  be?.beginScope?.();
  let r: T | undefined, done = false;
  try {
    r = fn();
    done = true;
    return r;
  } finally {
    be?.endScope?.(done ? keep(r as T) : []);
  }
}

export function checkpointWithState(state: ReplayableState | undefined, fn: (...xs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  const saved = state?.save();
  // The block's temporaries die here; a GPU backend reclaims them now instead of after the step.
  const be = inputs[0]?.backend;
  const out = inScope(be, () => noGrad(() => fn(...inputs)), (o) => [o.storage]);
  const y = out.detach();
  // Parameters inside fn are invisible here, so the node must exist even when no input needs a
  // gradient: mark the output as requiring one and let the recompute decide.
  y.requiresGrad = true;
  y.node = {
    op: 'checkpoint',
    inputs,
    backward: (gy) => {
      const xs = inputs.map((t) => {
        const d = t.detach();
        d.requiresGrad = t.requiresGrad;
        return d;
      });
      const now = state?.save();
      if (state) state.restore(saved);
      // The recomputed activations die with this node: only gradients leave the scope.
      inScope(be, () => withGrad(() => {
        const z = fn(...xs);
        const leaves = z.requiresGrad ? gradLeaves(z) : [];
        if (z.requiresGrad) z.backward(gy);
        return [...xs, ...leaves];
      }), (ts) => ts.flatMap((t) => (t.grad ? [t.grad.storage] : [])));
      if (state) state.restore(now);
      return xs.map((d) => (d.requiresGrad ? d.grad : null));
    },
  };
  return y;
}
