// The trainable LoRA network (sd-scripts networks.lora): modules on the target layers, kaiming-
// uniform lora_down and zero lora_up, scale alpha/dim, the three dropouts, LoCon via conv_dim.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type LayerAdapter, loraDown, loraUp } from '../lora/adapter.js';
import type { LoRAFile, LoRAModuleWeights } from '../lora/lora-file.js';
import { TE_PREFIX, UNET_PREFIX, nameIndex } from '../lora/names.js';
import { loraTargets } from '../lora/targets.js';
import type { Weights } from '../models/weights.js';

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
}

/** One LoRA module: the trainable factors and the adapter that adds them to the base layer. */
export class LoRAModule implements LayerAdapter {
  training = false;
  multiplier = 1;

  constructor(
    readonly name: string, readonly path: string, readonly te: boolean,
    public down: Tensor, public up: Tensor, public alpha: number,
    private net: LoRANetwork,
  ) {}

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

export class LoRANetwork {
  readonly modules: LoRAModule[] = [];
  private attached: [Weights, LoRAModule][] = [];

  constructor(readonly options: NetworkOptions, readonly rng: E.Rng) {}

  /** New modules on the default targets (plus ResNet/sampler convs with convDim). */
  static create(models: { unet: Weights; textEncoder: Weights }, o: NetworkOptions, rng: E.Rng): LoRANetwork {
    const net = new LoRANetwork(o, rng);
    const targets = loraTargets({ unet: o.trainUnet ? models.unet : undefined, textEncoder: o.trainTextEncoder ? models.textEncoder : undefined }, { conv: !!o.convDim });
    for (const t of targets) {
      const base = (t.te ? models.textEncoder : models.unet).raw(`${t.path}.weight`);
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
      net.modules.push(new LoRAModule(t.name, t.path, t.te, down, up, alpha, net));
    }
    return net;
  }

  /** Modules from an existing LoRA file (network_weights), trainable. */
  static fromFile(file: LoRAFile, models: { unet: Weights; textEncoder: Weights }, o: NetworkOptions, rng: E.Rng): LoRANetwork {
    const net = new LoRANetwork(o, rng);
    const idx = [...nameIndex(models.unet, UNET_PREFIX), ...nameIndex(models.textEncoder, TE_PREFIX)];
    const map = new Map(idx);
    for (const m of file.modules.values()) {
      const p = map.get(m.name);
      if (!p) throw new Error(`${file.path}: module "${m.name}" matches no layer of the model`);
      const te = m.name.startsWith(TE_PREFIX);
      if ((te && !o.trainTextEncoder) || (!te && !o.trainUnet)) continue;
      net.modules.push(new LoRAModule(m.name, p, te, m.down.detach().requireGrad(), m.up.detach().requireGrad(), m.alpha, net));
    }
    return net;
  }

  attach(models: { unet: Weights; textEncoder: Weights }): void {
    for (const m of this.modules) {
      const w = m.te ? models.textEncoder : models.unet;
      w.addAdapter(m.path, m);
      this.attached.push([w, m]);
    }
  }

  detach(): void {
    for (const [w, m] of this.attached) w.removeAdapter(m);
    this.attached = [];
  }

  setTraining(on: boolean): void { for (const m of this.modules) m.training = on; }

  /** Parameters with their group ('te' or 'unet'). */
  parameters(): { param: () => Tensor; set: (t: Tensor) => void; group: 'te' | 'unet'; name: string }[] {
    return this.modules.flatMap((m) => [
      { param: () => m.down, set: (t: Tensor) => { m.down = t; }, group: m.te ? 'te' as const : 'unet' as const, name: `${m.name}.lora_down.weight` },
      { param: () => m.up, set: (t: Tensor) => { m.up = t; }, group: m.te ? 'te' as const : 'unet' as const, name: `${m.name}.lora_up.weight` },
    ]);
  }

  toWeights(): LoRAModuleWeights[] { return this.modules.map((m) => m.toWeights()); }
}
