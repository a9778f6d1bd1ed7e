// Runtime LoRA: a layer's output plus multiplier * scale * up(down(x)), leaving the base weight
// untouched (several LoRAs at once, each with its own multiplier; the trainer's path).
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';

export interface LayerAdapter {
  /** The extra output for input x (null: nothing this time); `convOpts` are the base conv's stride/padding. */
  apply(x: Tensor, convOpts?: E.Conv2dOptions): Tensor | null;
}

export class LoRAAdapter implements LayerAdapter {
  constructor(public down: Tensor, public up: Tensor, public scale: number, public multiplier: number) {}

  apply(x: Tensor, convOpts?: E.Conv2dOptions): Tensor {
    const k = this.scale * this.multiplier;
    if (this.down.rank === 2) return E.mulScalar(E.linear(E.linear(x, this.down), this.up), k);
    // Conv: down has the base conv's kernel, stride and padding; up is 1x1.
    return E.mulScalar(E.conv2d(E.conv2d(x, this.down, null, convOpts), this.up), k);
  }
}
