// What the LoRA network (network.ts) and the LyCORIS network (lycoris-network.ts) share: the
// components they span, the modules they add to their layers, training mode, and the lookup of a
// file's modules (network_weights) in the model.
import type { Tensor } from '../engine/index.js';
import type { LayerAdapter } from '../lora/adapter.js';
import { type LoRAComponent, type ModuleRef, componentIndex, pairComponents } from '../lora/components.js';
import type { Weights } from '../models/weights.js';

/** A family's components, or SD 1.x/2.x's { unet, textEncoder } pair. */
export type NetworkModels = readonly LoRAComponent[] | { unet: Weights; textEncoder: Weights };
export const componentsOf = (m: NetworkModels): readonly LoRAComponent[] => (Array.isArray(m) ? m as readonly LoRAComponent[] : pairComponents(m as { unet: Weights; textEncoder: Weights }));

/** A trainable module on one layer of a component. */
export interface NetworkModule extends LayerAdapter { readonly name: string; readonly path: string; readonly component: LoRAComponent; training: boolean }

/** A trained tensor with its group ('te' or 'unet') and its name in the file and state. */
export interface NetworkParam { param: () => Tensor; set: (t: Tensor) => void; group: 'te' | 'unet'; name: string }

export abstract class AdapterNetwork<M extends NetworkModule> {
  readonly modules: M[] = [];
  private attached: [Weights, M][] = [];

  /** Whether this network trains a component (network_train_unet_only / _text_encoder_only). */
  abstract trains(c: LoRAComponent): boolean;

  /** Adds every module to its component's layer (the `models` argument of older callers is not needed). */
  attach(_models?: unknown): void {
    for (const m of this.modules) {
      const w = m.component.weights;
      w.addAdapter(m.path, m);
      this.attached.push([w, m]);
    }
  }

  detach(): void {
    for (const [w, m] of this.attached) w.removeAdapter(m);
    this.attached = [];
  }

  setTraining(on: boolean): void { for (const m of this.modules) m.training = on; }

  /** The layer of each module of a file, skipping those of components this network does not train. */
  protected layersOf<T extends { name: string }>(filePath: string, fileModules: Iterable<T>, models: NetworkModels): [T, ModuleRef][] {
    const index = componentIndex(componentsOf(models));
    const out: [T, ModuleRef][] = [];
    for (const m of fileModules) {
      const ref = index.get(m.name);
      if (!ref) throw new Error(`${filePath}: module "${m.name}" matches no layer of the model`);
      if (this.trains(ref.component)) out.push([m, ref]);
    }
    return out;
  }
}
