// Applying kohya LoRA files to loaded models: at runtime (adapters) or merged into the weights
// (W + multiplier * alpha/rank * up @ down, as sd-scripts' merge_to).
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { Weights } from '../models/weights.js';
import { LoRAAdapter } from './adapter.js';
import { type LoRAFile, type LoRAModuleWeights, scaleOf } from './lora-file.js';
import { TE_PREFIX, UNET_PREFIX, nameIndex } from './names.js';

export interface LoRATargets {
  unet?: Weights;
  textEncoder?: Weights;
}

export interface Multipliers {
  unet: number;
  te: number;
}

export interface ApplyReport {
  applied: number;
  /** Module names in the file that match no layer of the given models. */
  unknown: string[];
  /** The runtime adapters and the model weights they are attached to. */
  adapters: [Weights, LoRAAdapter][];
}

/** Takes the adapters of an applyLoRA call off their models again. */
export function removeLoRA(r: ApplyReport): void {
  for (const [w, a] of r.adapters) w.removeAdapter(a);
  r.adapters = [];
}

/** Resolves each module of the file to (model weights, layer path). */
function resolve(lora: LoRAFile, t: LoRATargets): { hits: [Weights, string, LoRAModuleWeights, 'unet' | 'te'][]; unknown: string[] } {
  const idx: [string, Weights | undefined, 'unet' | 'te'][] = [[UNET_PREFIX, t.unet, 'unet'], [TE_PREFIX, t.textEncoder, 'te']];
  const maps = idx.map(([prefix, w, kind]) => [prefix, w, kind, w ? nameIndex(w, prefix) : new Map<string, string>()] as const);
  const hits: [Weights, string, LoRAModuleWeights, 'unet' | 'te'][] = [];
  const unknown: string[] = [];
  for (const m of lora.modules.values()) {
    const found = maps.find(([prefix, w, , map]) => w && m.name.startsWith(prefix) && map.has(m.name));
    if (!found) { unknown.push(m.name); continue; }
    hits.push([found[1]!, found[3].get(m.name)!, m, found[2]]);
  }
  return { hits, unknown };
}

function checkShapes(w: Weights, layer: string, m: LoRAModuleWeights, file: string): void {
  const base = w.raw(`${layer}.weight`);
  const [out, inp] = base.shape;
  if (m.up.shape[0] !== out || m.down.shape[1] !== inp || (base.rank === 4 && m.down.rank === 4 && (m.down.shape[2] !== base.shape[2] || m.down.shape[3] !== base.shape[3]))) {
    throw new Error(`${file}: module "${m.name}" (down [${m.down.shape}], up [${m.up.shape}]) does not fit layer ${layer} [${base.shape}]`);
  }
}

/** Attaches the file's modules as runtime adapters. Remove them with weights.removeAdapter. */
export function applyLoRA(lora: LoRAFile, t: LoRATargets, mult: Multipliers): ApplyReport {
  const { hits, unknown } = resolve(lora, t);
  const adapters: [Weights, LoRAAdapter][] = [];
  for (const [w, layer, m, kind] of hits) {
    checkShapes(w, layer, m, lora.path);
    // The LoRA's tensors go where the model lives (a model on webgpu, a file read on cpu).
    const be = w.raw(`${layer}.weight`).backend;
    const a = new LoRAAdapter(m.down.toBackend(be), m.up.toBackend(be), scaleOf(m), kind === 'unet' ? mult.unet : mult.te);
    w.addAdapter(layer, a);
    adapters.push([w, a]);
  }
  return { applied: hits.length, unknown, adapters };
}

/** up @ down as a weight delta of the layer's shape (1x1 and 3x3 convs included). */
export function loraDelta(m: LoRAModuleWeights, baseShape: readonly number[]): Tensor {
  const r = m.down.shape[0];
  const up2 = E.reshape(m.up, [m.up.shape[0], r]);
  if (baseShape.length === 2) return E.matmul(up2, E.reshape(m.down, [r, -1]));
  // conv: (out, r) @ (r, in*kh*kw), reshaped to the kernel
  return E.reshape(E.matmul(up2, E.reshape(m.down, [r, -1])), baseShape);
}

/** New weights with the LoRA merged in; the originals are left as they are. */
export function mergeLoRA(lora: LoRAFile, t: LoRATargets, mult: Multipliers): { unet?: Weights; textEncoder?: Weights; report: ApplyReport } {
  const { hits, unknown } = resolve(lora, t);
  const changes = new Map<Weights, Map<string, Tensor>>();
  E.noGrad(() => {
    for (const [w, layer, m, kind] of hits) {
      checkShapes(w, layer, m, lora.path);
      const key = `${layer}.weight`;
      const ch = changes.get(w) ?? new Map<string, Tensor>();
      const base = ch.get(key) ?? w.get(key);
      const k = scaleOf(m) * (kind === 'unet' ? mult.unet : mult.te);
      const delta = loraDelta(m, base.shape).toBackend(base.backend);
      ch.set(key, E.add(base, E.mulScalar(delta, k)));
      changes.set(w, ch);
    }
  });
  const merged = (w?: Weights) => (w ? w.withTensors(changes.get(w) ?? new Map(), `${w.source} + ${lora.path}`) : undefined);
  return { unet: merged(t.unet), textEncoder: merged(t.textEncoder), report: { applied: hits.length, unknown, adapters: [] } };
}
