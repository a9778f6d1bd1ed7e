// A model's parameters by their diffusers/transformers names. Lookups name the missing key and
// the model, so a wrong or partial checkpoint fails with a clear message.
import type { Backend } from '../engine/backend.js';
import type { Tensor } from '../engine/tensor.js';
import type { LayerAdapter } from '../lora/adapter.js';

export class Weights {
  private used = new Set<string>();
  /** Runtime adapters (LoRA) by layer path, added to that layer's output. */
  readonly adapters = new Map<string, LayerAdapter[]>();
  constructor(readonly tensors: Map<string, Tensor>, readonly source: string) {}

  static from(record: Record<string, Tensor>, source: string): Weights {
    return new Weights(new Map(Object.entries(record)), source);
  }

  get(name: string): Tensor {
    const t = this.raw(name);
    // Half-precision storage (mixed_precision) is widened for compute on each use.
    return t.dtype === 'f16' ? t.to('f32') : t;
  }

  /**
   * The stored tensor, f16 included: for linear/conv2d weights, which read half storage in place
   * on backends that can (webgpu) and widen it themselves elsewhere.
   */
  raw(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.source}: missing weight "${name}"`);
    this.used.add(name);
    return t;
  }

  /** Stores every frozen float weight as f16 (halves memory; values are widened on use). */
  toHalfStorage(): void {
    for (const [k, t] of this.tensors) if (t.dtype === 'f32' && !t.requiresGrad) this.tensors.set(k, t.to('f16'));
  }

  has(name: string): boolean { return this.tensors.has(name); }

  /** Moves every tensor to another backend in place (trainable flags kept). */
  toBackend(b: Backend): this {
    for (const [k, t] of this.tensors) {
      if (t.backend === b) continue;
      const moved = t.toBackend(b);
      if (t.requiresGrad) moved.requireGrad();
      this.tensors.set(k, moved);
    }
    return this;
  }

  get backend(): Backend | undefined { return this.tensors.values().next().value?.backend; }

  addAdapter(layer: string, a: LayerAdapter): void {
    if (!this.has(`${layer}.weight`)) throw new Error(`${this.source}: no layer "${layer}" to attach an adapter to`);
    const list = this.adapters.get(layer) ?? [];
    list.push(a);
    this.adapters.set(layer, list);
  }

  removeAdapter(a: LayerAdapter): void {
    for (const [k, list] of this.adapters) {
      const rest = list.filter((x) => x !== a);
      if (rest.length) this.adapters.set(k, rest); else this.adapters.delete(k);
    }
  }

  /** A copy with some tensors replaced (merged weights), sharing the rest. */
  withTensors(changes: Map<string, Tensor>, source = this.source): Weights {
    const m = new Map(this.tensors);
    for (const [k, t] of changes) m.set(k, t);
    return new Weights(m, source);
  }

  /** Marks every weight as trainable (for gradient tests and full fine-tuning). */
  requireGrad(): void { for (const t of this.tensors.values()) t.requireGrad(); }

  /** Keys never read by a forward pass (a hint that the checkpoint does not fit the config). */
  unused(): string[] { return [...this.tensors.keys()].filter((k) => !this.used.has(k)); }
}
