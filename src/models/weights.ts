// A model's parameters by their diffusers/transformers names. Lookups name the missing key and
// the model, so a wrong or partial checkpoint fails with a clear message.
import type { Tensor } from '../engine/tensor.js';

export class Weights {
  private used = new Set<string>();
  constructor(readonly tensors: Map<string, Tensor>, readonly source: string) {}

  static from(record: Record<string, Tensor>, source: string): Weights {
    return new Weights(new Map(Object.entries(record)), source);
  }

  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.source}: missing weight "${name}"`);
    this.used.add(name);
    return t;
  }

  has(name: string): boolean { return this.tensors.has(name); }

  /** Marks every weight as trainable (for gradient tests and full fine-tuning). */
  requireGrad(): void { for (const t of this.tensors.values()) t.requireGrad(); }

  /** Keys never read by a forward pass (a hint that the checkpoint does not fit the config). */
  unused(): string[] { return [...this.tensors.keys()].filter((k) => !this.used.has(k)); }
}
