// Runtime adapters: a layer's output plus multiplier * scale * up(down(x)) for LoRA, or plus the
// layer's op with multiplier * delta for the other kinds; the base weight stays untouched (several
// at once, each with its own multiplier; the trainer's path).
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';

export interface LayerAdapter {
  /** The extra output for input x (null: nothing this time); `convOpts` are the base conv's stride/padding. */
  apply(x: Tensor, convOpts?: E.Conv2dOptions): Tensor | null;
}

/** lora_down on x: a linear layer, or a conv with the base conv's kernel, stride and padding. */
export function loraDown(x: Tensor, down: Tensor, convOpts?: E.Conv2dOptions): Tensor {
  return down.rank === 4 ? E.conv2d(x, down, null, convOpts) : E.linear(x, down);
}

/**
 * lora_up (linear, or a 1x1 conv) on the rank activations, times the scale. The scale multiplies
 * the rank activations (rank channels) instead of the output (all of the layer's channels): the
 * same product, a pass over a far smaller tensor, forward and backward.
 */
export function loraUp(h: Tensor, up: Tensor, scale: number): Tensor {
  const hs = scale === 1 ? h : E.mulScalar(h, scale);
  return up.rank === 4 ? E.conv2d(hs, up) : E.linear(hs, up);
}

export class LoRAAdapter implements LayerAdapter {
  constructor(public down: Tensor, public up: Tensor, public scale: number, public multiplier: number) {}

  apply(x: Tensor, convOpts?: E.Conv2dOptions): Tensor {
    return loraUp(loraDown(x, this.down, convOpts), this.up, this.scale * this.multiplier);
  }
}

/**
 * Runtime form of the modules that are not a plain down/up pair (LoHa, LoKr, DoRA, Tucker LoCon,
 * full diffs): the layer's op run once more with multiplier * delta as its weight (and the bias
 * delta added), as ComfyUI patches the weight. The delta is computed once, when attached.
 */
export class DeltaAdapter implements LayerAdapter {
  constructor(public delta: Tensor, public biasDelta: Tensor | null, public multiplier: number) {}

  apply(x: Tensor, convOpts?: E.Conv2dOptions): Tensor {
    const w = E.mulScalar(this.delta, this.multiplier);
    const b = this.biasDelta ? E.mulScalar(this.biasDelta, this.multiplier) : null;
    return this.delta.rank === 4 ? E.conv2d(x, w, b, convOpts) : E.linear(x, w, b);
  }
}
