// Tape autograd. Each op that sees a grad-requiring input records a node (its inputs and a
// closure mapping the output gradient to input gradients); backward() walks the nodes in
// reverse topological order. The backward pass itself records nothing.
import type { Tensor } from './tensor.js';

export interface GradNode {
  op: string;
  inputs: Tensor[];
  backward: (gy: Tensor) => (Tensor | null)[];
}

let gradEnabled = true;

export const isGradEnabled = (): boolean => gradEnabled;

/** Runs fn without recording a graph (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try { return fn(); } finally { gradEnabled = prev; }
}

/** Runs fn with recording on (the recompute inside a checkpoint's backward). */
export function withGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try { return fn(); } finally { gradEnabled = prev; }
}

/**
 * Gradients a leaf's .grad holds that this module made by summing (nothing else has their
 * storage, so later gradients can be added into them in place, as torch accumulates .grad).
 */
const ownGrads = new WeakSet<Tensor>();

function accumulateLeafGrad(t: Tensor, g: Tensor): void {
  const prev = t.grad;
  if (!prev) { t.grad = g; return; }
  const be = prev.backend;
  if (ownGrads.has(prev) && be.addInPlace && g.backend === be && g.dtype === prev.dtype && g.size === prev.size) {
    be.addInPlace(prev.storage, g.storage, prev.size);
    return;
  }
  t.grad = addFn!(prev, g);
  ownGrads.add(t.grad);
}

/** Attaches a node to `out` when any input needs a gradient. Returns `out`. */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: GradNode['backward']): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

// Set by ops/elementwise.ts so this file does not import the op layer (which imports it).
let addFn: ((a: Tensor, b: Tensor) => Tensor) | undefined;
let onesLike: ((t: Tensor) => Tensor) | undefined;
export function installGradHelpers(add: (a: Tensor, b: Tensor) => Tensor, ones: (t: Tensor) => Tensor): void {
  addFn = add;
  onesLike = ones;
}

/** The trainable leaves a graph reaches (where backward() leaves gradients). */
export function gradLeaves(root: Tensor): Tensor[] {
  const leaves: Tensor[] = [];
  const seen = new Set<Tensor>([root]);
  const stack = [root];
  while (stack.length) {
    const t = stack.pop()!;
    if (!t.node) { if (t.requiresGrad) leaves.push(t); continue; }
    for (const c of t.node.inputs) if (c.requiresGrad && !seen.has(c)) { seen.add(c); stack.push(c); }
  }
  return leaves;
}

export function runBackward(root: Tensor, grad?: Tensor): void {
  for (const _ of backwardSteps(root, grad, false)) { /* drain */ }
}

/**
 * backward() that yields to the event loop every `every` nodes and frees each node's saved
 * tensors once used (the graph cannot be walked twice). On a GPU backend the yields let
 * finalizers return dead buffers to the pool mid-pass, which bounds peak memory.
 */
export async function runBackwardAsync(root: Tensor, grad?: Tensor, every = 32): Promise<void> {
  let k = 0;
  const pause = () => root.backend.collect?.() ?? new Promise<void>((r) => setImmediate(r));
  // A checkpoint node's backward recomputes a whole block: pause after each one.
  for (const heavy of backwardSteps(root, grad, true)) if (heavy || ++k % every === 0) await pause();
}

/** Processes one graph node per step, in reverse topological order. */
function* backwardSteps(root: Tensor, grad: Tensor | undefined, release: boolean): Generator<boolean> {
  if (!root.requiresGrad) throw new Error('backward(): the tensor does not require grad (no trainable input reached it)');
  if (!grad && root.size !== 1) throw new Error(`backward(): a gradient is needed for a non-scalar output of shape [${root.shape}]`);
  const add = addFn!;
  // Reverse topological order by iterative DFS.
  const order: (Tensor | null)[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    if (i === 0) { if (seen.has(t)) { stack.pop(); continue; } seen.add(t); }
    const inputs = t.node ? t.node.inputs : [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i];
      if (c.requiresGrad && !seen.has(c)) stack.push([c, 0]);
    } else {
      stack.pop();
      order.push(t);
    }
  }
  seen.clear();
  const grads = new Map<Tensor, Tensor>();
  grads.set(root, grad ?? onesLike!(root));
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i]!;
    if (release) order[i] = null;
    const g = grads.get(t);
    if (!g) continue;
    grads.delete(t);
    const heavy = t.node?.op === 'checkpoint';
    noGrad(() => {
      if (!t.node) {
        accumulateLeafGrad(t, g);
        return;
      }
      const node = t.node;
      if (release) t.node = null;
      const gs = node.backward(g);
      node.inputs.forEach((inp, k) => {
        const gi = gs[k];
        if (!gi || !inp.requiresGrad) return;
        const prev = grads.get(inp);
        grads.set(inp, prev ? add(prev, gi) : gi);
      });
    });
    yield heavy;
  }
}
