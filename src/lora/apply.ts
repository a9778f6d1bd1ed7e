// Applying LoRA-family files to loaded models: at runtime (adapters) or merged into the weights
// (W + multiplier * delta; for kohya LoRA W + multiplier * alpha/rank * up @ down, as sd-scripts'
// merge_to). A file with modules of a format sdlora does not apply is refused (never applied as a
// silent no-op) unless the caller allows a partial application; so is a file that matches no layer.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { Weights } from '../models/weights.js';
import { DeltaAdapter, type LayerAdapter, LoRAAdapter } from './adapter.js';
import { moduleBiasDelta, moduleDelta } from './formats/delta.js';
import type { AdapterModule, UnsupportedModule } from './formats/kinds.js';
import { type LoRAFile, type LoRAModuleWeights, scaleOf } from './lora-file.js';
import { type LoRAComponent, componentIndex, pairComponents } from './components.js';

/** The models a file applies to: any family's components, or SD 1.x/2.x's { unet, textEncoder } pair. */
export interface LoRATargets {
  unet?: Weights;
  textEncoder?: Weights;
  components?: readonly LoRAComponent[];
}

const componentsOf = (t: LoRATargets): readonly LoRAComponent[] => t.components ?? pairComponents(t);

export interface Multipliers {
  unet: number;
  te: number;
  /** Per-module multipliers by kohya module name, in place of unet / te for those modules. */
  modules?: ReadonlyMap<string, number>;
}

export interface ApplyOptions {
  /** Skip modules of formats sdlora does not apply (they are listed in the report) instead of refusing the file. */
  allowPartial?: boolean;
}

export interface ApplyReport {
  applied: number;
  /** Module names in the file that match no layer of the given models. */
  unknown: string[];
  /** Modules skipped because of their format (only with allowPartial). */
  skipped: UnsupportedModule[];
  /** The runtime adapters and the model weights they are attached to. */
  adapters: [Weights, LayerAdapter][];
}

/** Takes the adapters of an applyLoRA call off their models again. */
export function removeLoRA(r: ApplyReport): void {
  for (const [w, a] of r.adapters) w.removeAdapter(a);
  r.adapters = [];
}

interface Hit { w: Weights; layer: string; m: AdapterModule; mult: number }

/** The formats of unsupported modules, counted: "LyCORIS IA3 (weight, on_input) x12". */
function formatList(u: UnsupportedModule[]): string {
  const n = new Map<string, number>();
  for (const x of u) n.set(x.format, (n.get(x.format) ?? 0) + 1);
  return [...n].map(([f, c]) => `${f}: ${c} module${c > 1 ? 's' : ''}`).join('; ');
}

/** Refuses unsupported formats (unless allowed) and files that would change nothing. */
function checkApplicable(lora: LoRAFile, hits: number, unknown: string[], o: ApplyOptions): void {
  if (lora.unsupported.length && !o.allowPartial) {
    throw new Error(`${lora.path}: ${lora.unsupported.length} module(s) are in a format sdlora does not apply (${formatList(lora.unsupported)}; first: ${lora.unsupported[0].name}). `
      + 'Applying the rest would silently change the result; use --allow-partial (allowPartial) to skip them with a warning');
  }
  if (!hits) {
    const why = unknown.length ? `none of its ${unknown.length} modules matches a layer of this model (first: ${unknown[0]})` : 'it holds no module sdlora can apply';
    throw new Error(`${lora.path}: ${why}; applying it would change nothing`);
  }
}

/** Resolves each module of the file to (model weights, layer path, multiplier). */
function resolve(lora: LoRAFile, t: LoRATargets, mult: Multipliers, o: ApplyOptions): { hits: Hit[]; unknown: string[] } {
  const index = componentIndex(componentsOf(t));
  const hits: Hit[] = [];
  const unknown: string[] = [];
  for (const m of lora.adapters.values()) {
    const found = index.get(m.name);
    if (!found) { unknown.push(m.name); continue; }
    const { component: c, path } = found;
    hits.push({ w: c.weights, layer: path, m, mult: mult.modules?.get(m.name) ?? (c.lrGroup === 'te' ? mult.te : mult.unet) });
  }
  checkApplicable(lora, hits.length, unknown, o);
  return { hits, unknown };
}

function checkShapes(w: Weights, layer: string, m: LoRAModuleWeights, file: string): void {
  const base = w.raw(`${layer}.weight`);
  const [out, inp] = base.shape;
  if (m.up.shape[0] !== out || m.down.shape[1] !== inp || (base.rank === 4 && m.down.rank === 4 && (m.down.shape[2] !== base.shape[2] || m.down.shape[3] !== base.shape[3]))) {
    throw new Error(`${file}: module "${m.name}" (down [${m.down.shape}], up [${m.up.shape}]) does not fit layer ${layer} [${base.shape}]`);
  }
}

/** A plain down/up pair, which runs as two small projections instead of a full-size delta. */
const plainLoRA = (m: AdapterModule): LoRAModuleWeights | null => (m.kind === 'lora' && !m.mid && !m.doraScale ? m.weights : null);

/** The module's weight and bias deltas at multiplier 1 for a layer, errors naming file, module and layer. */
function deltas(h: Hit, file: string): { weight: Tensor; bias: Tensor | null } {
  const base = h.w.get(`${h.layer}.weight`);
  try {
    const weight = moduleDelta(h.m, base);
    const bias = moduleBiasDelta(h.m);
    if (bias && (!h.w.has(`${h.layer}.bias`) || bias.size !== base.shape[0])) throw new Error(`diff_b [${bias.shape}] does not fit the layer's bias`);
    return { weight, bias: bias ? bias.toBackend(base.backend) : null };
  } catch (e) {
    throw new Error(`${file}: module "${h.m.name}" does not fit layer ${h.layer} [${base.shape}]: ${(e as Error).message}`);
  }
}

/** The runtime adapter of one module: two projections for a plain LoRA, else its full-size delta. */
function makeAdapter(h: Hit, file: string): LayerAdapter {
  const plain = plainLoRA(h.m);
  if (!plain) {
    const d = E.noGrad(() => deltas(h, file));
    return new DeltaAdapter(d.weight, d.bias, h.mult);
  }
  checkShapes(h.w, h.layer, plain, file);
  // The LoRA's tensors go where the model lives (a model on webgpu, a file read on cpu).
  const be = h.w.raw(`${h.layer}.weight`).backend;
  return new LoRAAdapter(plain.down.toBackend(be), plain.up.toBackend(be), scaleOf(plain), h.mult);
}

/** Attaches the file's modules as runtime adapters (all built before any is attached). Remove them with removeLoRA. */
export function applyLoRA(lora: LoRAFile, t: LoRATargets, mult: Multipliers, o: ApplyOptions = {}): ApplyReport {
  const { hits, unknown } = resolve(lora, t, mult, o);
  const built = hits.map((h) => [h, makeAdapter(h, lora.path)] as const);
  const adapters: [Weights, LayerAdapter][] = [];
  for (const [h, a] of built) {
    h.w.addAdapter(h.layer, a);
    adapters.push([h.w, a]);
  }
  return { applied: hits.length, unknown, skipped: o.allowPartial ? lora.unsupported : [], adapters };
}

/** up @ down as a weight delta of the layer's shape (1x1 and 3x3 convs included). */
export function loraDelta(m: LoRAModuleWeights, baseShape: readonly number[]): Tensor {
  const r = m.down.shape[0];
  const up2 = E.reshape(m.up, [m.up.shape[0], r]);
  return E.reshape(E.matmul(up2, E.reshape(m.down, [r, -1])), baseShape);
}

/**
 * New weights with the file merged in (as `components` and, for a pair, `unet` / `textEncoder`);
 * the originals are left as they are.
 */
export function mergeLoRA(lora: LoRAFile, t: LoRATargets, mult: Multipliers, o: ApplyOptions = {}): { unet?: Weights; textEncoder?: Weights; components: LoRAComponent[]; report: ApplyReport } {
  const { hits, unknown } = resolve(lora, t, mult, o);
  const changes = new Map<Weights, Map<string, Tensor>>();
  const addTo = (w: Weights, key: string, d: Tensor, k: number) => {
    const ch = changes.get(w) ?? new Map<string, Tensor>();
    const base = ch.get(key) ?? w.get(key);
    ch.set(key, E.add(base, E.mulScalar(d.toBackend(base.backend), k)));
    changes.set(w, ch);
  };
  E.noGrad(() => {
    for (const h of hits) {
      const plain = plainLoRA(h.m);
      const key = `${h.layer}.weight`;
      if (plain) {
        checkShapes(h.w, h.layer, plain, lora.path);
        addTo(h.w, key, loraDelta(plain, h.w.raw(key).shape), scaleOf(plain) * h.mult);
        continue;
      }
      const d = deltas(h, lora.path);
      addTo(h.w, key, d.weight, h.mult);
      if (d.bias) addTo(h.w, `${h.layer}.bias`, d.bias, h.mult);
    }
  });
  const merged = (w?: Weights) => (w ? w.withTensors(changes.get(w) ?? new Map(), `${w.source} + ${lora.path}`) : undefined);
  const components = componentsOf(t).map((c) => ({ ...c, weights: merged(c.weights)! }));
  const byOld = new Map(componentsOf(t).map((c, i) => [c.weights, components[i].weights]));
  const pick = (w?: Weights) => (w ? byOld.get(w) ?? merged(w) : undefined);
  return { unet: pick(t.unet), textEncoder: pick(t.textEncoder), components, report: { applied: hits.length, unknown, skipped: o.allowPartial ? lora.unsupported : [], adapters: [] } };
}
