// LoRA-family files: kohya-ss/sd-scripts LoRA/LoCon (`<lora_name>.lora_down.weight`, `.lora_up.weight`,
// `.alpha`), LyCORIS LoHa/LoKr/full/DoRA and diffusers/PEFT `lora_A/lora_B`, the key formats A1111's
// Lora extension and ComfyUI load (formats/keys.ts). Plain LoRA modules keep the `LoRAModuleWeights`
// shape that the SVD tools and training use; every module, plain or not, is in `adapters`.
import { reshape } from '../engine/index.js';
import type { Tensor } from '../engine/tensor.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { type AdapterModule, type Algorithm, type UnsupportedModule } from './formats/kinds.js';
import { type KeyGroup, classifyParts, groupKeys } from './formats/keys.js';

export interface LoRAModuleWeights {
  name: string;
  down: Tensor;
  up: Tensor;
  /** alpha; the effective scale is alpha / rank. Missing in a file means alpha = rank. */
  alpha: number;
}

export interface LoRAFile {
  path: string;
  /** The plain LoRA/LoCon modules (no DoRA, no Tucker mid): what resize / merge-loras / training resume use. */
  modules: Map<string, LoRAModuleWeights>;
  /** Every module sdlora applies, of any kind, by kohya module name. */
  adapters: Map<string, AdapterModule>;
  /** Modules of formats sdlora does not apply; applying the file refuses them unless told to skip them. */
  unsupported: UnsupportedModule[];
  /** The file's algorithms (one unless it mixes kinds). */
  algorithms: Algorithm[];
  metadata: Record<string, string>;
  /** Keys of the unsupported modules. */
  unsupportedKeys: string[];
}

export const rankOf = (m: LoRAModuleWeights): number => m.down.shape[0];
export const scaleOf = (m: LoRAModuleWeights): number => m.alpha / rankOf(m);

type Parts = Map<string, Tensor>;

function need(parts: Parts, names: string[], module: string, kind: string): Tensor[] {
  const missing = names.filter((n) => !parts.has(n));
  if (missing.length) throw new Error(`${kind} module "${module}" lacks ${missing.join(', ')}`);
  return names.map((n) => parts.get(n)!);
}

/** A 1-D DoRA magnitude (PEFT lora_magnitude_vector) is per output row, as [out, 1]. */
const doraOf = (parts: Parts): Tensor | undefined => {
  const d = parts.get('dora_scale');
  return d && d.rank === 1 ? reshape(d, [d.shape[0], 1]) : d;
};

function loraModule(name: string, parts: Parts): AdapterModule {
  const [down, up] = need(parts, ['lora_down.weight', 'lora_up.weight'], name, 'LoRA');
  const rank = down.shape[0];
  if (up.shape[1] !== rank) throw new Error(`module "${name}": lora_up [${up.shape}] does not match lora_down [${down.shape}]`);
  const alpha = parts.get('alpha')?.dataSync()[0] ?? rank;
  return { kind: 'lora', name, weights: { name, down, up, alpha }, mid: parts.get('lora_mid.weight'), doraScale: doraOf(parts) };
}

function lohaModule(name: string, parts: Parts): AdapterModule {
  const [w1a, w1b, w2a, w2b] = need(parts, ['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b'], name, 'LoHa');
  const t1 = parts.get('hada_t1'), t2 = parts.get('hada_t2');
  if (!t1 !== !t2) throw new Error(`LoHa module "${name}" has ${t1 ? 'hada_t1 without hada_t2' : 'hada_t2 without hada_t1'}`);
  return { kind: 'loha', name, w1a, w1b, w2a, w2b, t1, t2, alpha: parts.get('alpha')?.dataSync()[0], doraScale: doraOf(parts) };
}

function lokrModule(name: string, parts: Parts): AdapterModule {
  const g = (k: string) => parts.get(k);
  if (!g('lokr_w1') && !(g('lokr_w1_a') && g('lokr_w1_b'))) throw new Error(`LoKr module "${name}" has neither lokr_w1 nor lokr_w1_a + lokr_w1_b`);
  if (!g('lokr_w2') && !(g('lokr_w2_a') && g('lokr_w2_b'))) throw new Error(`LoKr module "${name}" has neither lokr_w2 nor lokr_w2_a + lokr_w2_b`);
  return {
    kind: 'lokr', name, w1: g('lokr_w1'), w1a: g('lokr_w1_a'), w1b: g('lokr_w1_b'),
    w2: g('lokr_w2'), w2a: g('lokr_w2_a'), w2b: g('lokr_w2_b'), t2: g('lokr_t2'),
    alpha: g('alpha')?.dataSync()[0], doraScale: doraOf(parts),
  };
}

function fullModule(name: string, parts: Parts): AdapterModule {
  const [diff] = need(parts, ['diff'], name, 'full-diff');
  return { kind: 'full', name, diff, diffB: parts.get('diff_b') };
}

const BUILD = { lora: loraModule, loha: lohaModule, lokr: lokrModule, full: fullModule };

/** The algorithm `lora list` shows for one module. */
export function algorithmOf(m: AdapterModule, peft: boolean): Algorithm {
  if (m.doraScale) return 'dora';
  if (m.kind !== 'lora') return m.kind;
  if (peft) return 'peft';
  const d = m.weights.down.shape;
  return m.mid || (d.length === 4 && d[2] * d[3] > 1) ? 'locon' : 'lora';
}

/** Names of modules holding NaN or Inf. */
function nonFinite(tensors: Map<string, Parts>): string[] {
  const bad: string[] = [];
  for (const [name, parts] of tensors) {
    for (const t of parts.values()) if (t.dtype !== 'i32' && !t.dataSync().every(Number.isFinite)) { bad.push(name); break; }
  }
  return bad;
}

async function readGroups(f: SafetensorsFile, groups: KeyGroup[]): Promise<Map<string, Parts>> {
  const out = new Map<string, Parts>();
  for (const g of groups) {
    const parts: Parts = new Map();
    for (const [part, key] of g.parts) parts.set(part, await f.read(key));
    out.set(g.name, parts);
  }
  return out;
}

export async function loadLoRA(path: string): Promise<LoRAFile> {
  const f = await SafetensorsFile.open(path);
  try {
    if (!f.keys().length) throw new Error('it holds no tensors');
    const groups = [...groupKeys(f.keys()).values()];
    const unsupported: UnsupportedModule[] = [];
    const applied: [KeyGroup, keyof typeof BUILD][] = [];
    for (const g of groups) {
      const c = classifyParts(new Set(g.parts.keys()));
      if ('kind' in c) applied.push([g, c.kind]);
      else unsupported.push({ name: g.name, format: c.format, keys: [...g.parts.values()] });
    }
    const tensors = await readGroups(f, applied.map(([g]) => g));
    const bad = nonFinite(tensors);
    if (bad.length) {
      const shown = bad.slice(0, 5).join(', ') + (bad.length > 5 ? ` and ${bad.length - 5} more` : '');
      throw new Error(`${bad.length} LoRA module(s) hold NaN or Inf values (${shown}); the training run that wrote it diverged. `
        + 'Use an earlier save of that run, or retrain with a lower learning rate');
    }
    const adapters = new Map<string, AdapterModule>(), modules = new Map<string, LoRAModuleWeights>();
    const algorithms = new Set<Algorithm>();
    for (const [g, kind] of applied) {
      const m = BUILD[kind](g.name, tensors.get(g.name)!);
      adapters.set(g.name, m);
      algorithms.add(algorithmOf(m, g.peft));
      if (m.kind === 'lora' && !m.mid && !m.doraScale) modules.set(g.name, m.weights);
    }
    return { path, modules, adapters, unsupported, algorithms: [...algorithms].sort(), metadata: f.metadata, unsupportedKeys: unsupported.flatMap((u) => u.keys) };
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  } finally {
    await f.close();
  }
}

/**
 * The adapter modules of a file that are not plain LoRA / LoCon / PEFT factors, and the kinds they
 * are, for a refusal message. A LoCon with a Tucker core is "locon" in `lora list`; here the core is
 * what makes it not plain.
 */
export function nonPlainModules(lora: LoRAFile): { other: AdapterModule[]; kinds: string[] } {
  const other = [...lora.adapters.values()].filter((m) => !lora.modules.has(m.name));
  return { other, kinds: [...new Set(other.map((m) => (m.kind === 'lora' && m.mid && !m.doraScale ? 'LoCon Tucker (lora_mid)' : algorithmOf(m, false))))] };
}

/** Throws for files the SVD tools cannot take: anything but plain LoRA / LoCon / PEFT LoRA modules. */
export function assertPlainLoRA(lora: LoRAFile, tool: string): void {
  const { other, kinds } = nonPlainModules(lora);
  if (!other.length && !lora.unsupported.length && lora.modules.size) return;
  const what = lora.unsupported.length ? `${lora.unsupported[0].format} (${lora.unsupported[0].name})`
    : kinds.length ? `${kinds.join('+')} (e.g. ${other[0].name})` : 'no LoRA';
  throw new Error(`${lora.path}: ${tool} works on LoRA/LoCon factors (lora_down/lora_up) only, and this file holds ${what} modules, not plain LoRA; `
    + 'use lora merge to bake it into a checkpoint instead');
}
