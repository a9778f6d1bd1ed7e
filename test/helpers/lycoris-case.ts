// The golden `lycoris` case as its files describe it: the adapter kinds with module deltas, the
// (kind, multiplier) output combinations, and each kind's file loaded. Also the factor between the
// case's LyCORIS merge and sdlora's delta (see test/lora/golden-lycoris.test.ts).
import assert from 'node:assert/strict';
import type { Tensor } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { type AdapterModule, scaleOfModule } from '../../src/lora/formats/kinds.js';
import { type LoRAFile, loadLoRA } from '../../src/lora/lora-file.js';
import { goldenCase, requireFile } from './golden.js';

export interface LycorisCase {
  io: Record<string, Tensor>;
  /** Kinds with `delta.<kind>.<module>` tensors. */
  kinds: string[];
  /** Output combinations `unet_out.<kind>_m<mult>`; key is `<kind>_m<mult>` as written. */
  combos: { kind: string; mult: number; key: string }[];
  files: Map<string, LoRAFile>;
}

export async function loadLycorisCase(): Promise<LycorisCase> {
  const dir = goldenCase('lycoris');
  const io = (await loadSafetensors(requireFile(dir, 'io.safetensors'))).tensors;
  const kinds = [...new Set(Object.keys(io).filter((k) => k.startsWith('delta.')).map((k) => k.split('.')[1]))].sort();
  const combos = Object.keys(io).filter((k) => k.startsWith('unet_out.') && !k.endsWith('_f64') && k !== 'unet_out.base').map((k) => {
    const m = /^unet_out\.(.+)_m([\d.]+)$/.exec(k);
    assert.ok(m, `unexpected output key ${k}`);
    return { kind: m[1], mult: Number(m[2]), key: `${m[1]}_m${m[2]}` };
  });
  assert.ok(kinds.length > 0 && combos.length > 0, `${dir}: no delta.* or unet_out.* tensors`);
  const files = new Map<string, LoRAFile>();
  for (const kind of new Set([...kinds, ...combos.map((c) => c.kind)])) files.set(kind, await loadLoRA(requireFile(dir, `${kind}.safetensors`)));
  return { io, kinds, combos, files };
}

/**
 * LyCORIS 3.2's get_merged_weight, which made the case, scales LoHa and LoKr deltas by alpha/rank
 * twice; A1111, ComfyUI and sdlora once. Multiplying sdlora's multiplier by this reproduces the case.
 */
export const lycorisMergeFactor = (m: AdapterModule): number => (m.kind === 'loha' || m.kind === 'lokr' ? scaleOfModule(m) : 1);

export function requireTensor(io: Record<string, Tensor>, key: string): Tensor {
  const t = io[key];
  if (!t) throw new Error(`the lycoris case's io.safetensors lacks ${key}`);
  return t;
}
