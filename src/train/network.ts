// The trainable LoRA network (sd-scripts networks.lora): modules on the target layers, kaiming-
// uniform lora_down and zero lora_up, scale alpha/dim, the three dropouts, LoCon via conv_dim.
// It spans a list of components (SD 1.x: te + unet; SDXL: te1, te2 + unet), each with its
// weights, kohya prefix and learning-rate group, so one network serves every family.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type LayerAdapter, loraDown, loraUp } from '../lora/adapter.js';
import type { LoRAFile, LoRAModuleWeights } from '../lora/lora-file.js';
import { type LoRAComponent, moduleName } from '../lora/components.js';
import { bLoRAPart } from '../lora/b-lora.js';
import { loraTargets } from '../lora/targets.js';
import { AdapterNetwork, type NetworkModels, type NetworkParam, componentsOf } from './adapter-network.js';

export type { NetworkModels } from './adapter-network.js';

export interface NetworkOptions {
  dim: number;
  alpha: number;
  convDim?: number;
  convAlpha?: number;
  dropout?: number;
  rankDropout?: number;
  moduleDropout?: number;
  trainUnet: boolean;
  trainTextEncoder: boolean;
  /** B-LoRA: only the attention projections of SDXL's content and style blocks (src/lora/b-lora.ts), UNet only. */
  bLora?: boolean;
}

/** One LoRA module: the trainable factors and the adapter that adds them to the base layer. */
export class LoRAModule implements LayerAdapter {
  training = false;
  multiplier = 1;

  constructor(
    readonly name: string, readonly path: string, readonly component: LoRAComponent,
    public down: Tensor, public up: Tensor, public alpha: number,
    private net: LoRANetwork,
  ) {}

  /** In a text encoder (the 'te' learning-rate group). */
  get te(): boolean { return this.component.lrGroup === 'te'; }

  get rank(): number { return this.down.shape[0]; }
  get scale(): number { return this.alpha / this.rank; }

  apply(x: Tensor, convOpts?: E.Conv2dOptions): Tensor | null {
    const o = this.net.options, rng = this.net.rng;
    if (this.training && o.moduleDropout && rng.uniform() < o.moduleDropout) return null;
    const conv = this.down.rank === 4;
    let h = loraDown(x, this.down, convOpts);
    let scale = this.scale * this.multiplier;
    if (this.training && o.dropout) h = E.mul(h, bernoulliMask(h.shape, o.dropout, rng, 1 / (1 - o.dropout)));
    if (this.training && o.rankDropout) {
      // One mask per sample over the rank channels, broadcast over tokens/pixels.
      const shape = conv ? [h.shape[0], this.rank, 1, 1] : [h.shape[0], ...new Array(h.rank - 2).fill(1), this.rank];
      h = E.mul(h, bernoulliMask(shape, o.rankDropout, rng, 1));
      scale /= 1 - o.rankDropout;
    }
    return loraUp(h, this.up, scale);
  }

  toWeights(): LoRAModuleWeights {
    return { name: this.name, down: this.down.detach(), up: this.up.detach(), alpha: this.alpha };
  }
}

function bernoulliMask(shape: readonly number[], p: number, rng: E.Rng, keepValue: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() < p ? 0 : keepValue;
  return E.tensor(a, shape);
}

export class LoRANetwork extends AdapterNetwork<LoRAModule> {
  constructor(readonly options: NetworkOptions, readonly rng: E.Rng) { super(); }

  /** New modules on the default targets (plus ResNet/sampler convs with convDim). */
  static create(models: NetworkModels, o: NetworkOptions, rng: E.Rng): LoRANetwork {
    const net = new LoRANetwork(o, rng);
    const components = componentsOf(models).filter((c) => net.trains(c));
    if (o.bLora && o.convDim) throw new Error('b_lora trains attention projections only; conv_dim does not apply to it');
    const targets = loraTargets(components, { conv: !!o.convDim }).filter((t) => !o.bLora || bLoRAPart(t) !== null);
    for (const t of targets) {
      const base = t.component.weights.raw(`${t.path}.weight`);
      const [out, inp] = base.shape;
      const conv = base.rank === 4;
      const r = t.conv3x3 ? o.convDim! : o.dim;
      const alpha = t.conv3x3 ? (o.convAlpha ?? 1) : o.alpha;
      const fanIn = conv ? inp * base.shape[2] * base.shape[3] : inp;
      const bound = 1 / Math.sqrt(fanIn);
      const downShape = conv ? [r, inp, base.shape[2], base.shape[3]] : [r, inp];
      const d = Float32Array.from({ length: downShape.reduce((a, b) => a * b, 1) }, () => (rng.uniform() * 2 - 1) * bound);
      const down = E.tensor(d, downShape).requireGrad();
      const up = E.zeros(conv ? [out, r, 1, 1] : [out, r]).requireGrad();
      net.modules.push(new LoRAModule(t.name, t.path, t.component, down, up, alpha, net));
    }
    return net;
  }

  /** Modules from an existing LoRA file (network_weights), trainable. */
  static fromFile(file: LoRAFile, models: NetworkModels, o: NetworkOptions, rng: E.Rng): LoRANetwork {
    const net = new LoRANetwork(o, rng);
    for (const [m, ref] of net.layersOf(file.path, file.modules.values(), models)) {
      // Saved under the model's own naming (a diffusers-named SDXL module gets its SGM name, as sd-scripts converts it).
      net.modules.push(new LoRAModule(moduleName(ref.component, ref.path), ref.path, ref.component, m.down.detach().requireGrad(), m.up.detach().requireGrad(), m.alpha, net));
    }
    return net;
  }

  /** Whether this network trains a component (network_train_unet_only / _text_encoder_only). */
  trains(c: LoRAComponent): boolean {
    return c.lrGroup === 'te' ? this.options.trainTextEncoder && !this.options.bLora : this.options.trainUnet;
  }

  /** Parameters with their group ('te' or 'unet'). */
  parameters(): NetworkParam[] {
    return this.modules.flatMap((m) => [
      { param: () => m.down, set: (t: Tensor) => { m.down = t; }, group: m.component.lrGroup, name: `${m.name}.lora_down.weight` },
      { param: () => m.up, set: (t: Tensor) => { m.up = t; }, group: m.component.lrGroup, name: `${m.name}.lora_up.weight` },
    ]);
  }

  toWeights(): LoRAModuleWeights[] { return this.modules.map((m) => m.toWeights()); }
}
