// The module kinds a LoRA-family file can hold, as A1111's Lora extension (network_lora/hada/lokr/
// full.py) and ComfyUI's comfy/weight_adapter/* load them: kohya LoRA/LoCon (optionally Tucker
// `lora_mid`), LyCORIS LoHa and LoKr, full weight diffs; any of the factorised kinds may carry a
// DoRA `dora_scale`. Each keeps its tensors as stored; formats/delta.ts turns one into a weight delta.
import type { Tensor } from '../../engine/index.js';
import type { LoRAModuleWeights } from '../lora-file.js';

/** What `lora list` / `inspect` call a file's network. */
export type Algorithm = 'lora' | 'locon' | 'loha' | 'lokr' | 'dora' | 'peft' | 'full';

interface ModuleBase {
  name: string;
  /** DoRA magnitude: [out, 1(, 1, 1)] normalises over the output axis (LyCORIS default), [1, in(, 1, 1)] over the input axis. */
  doraScale?: Tensor;
}

/** kohya LoRA / LoCon, also PEFT lora_A/lora_B under kohya names; `weights` is the object in LoRAFile.modules when plain. */
export interface LoRAKind extends ModuleBase {
  kind: 'lora';
  weights: LoRAModuleWeights;
  /** LyCORIS LoCon with use_tucker: [r, r, kh, kw] between a 1x1 lora_down and lora_up. */
  mid?: Tensor;
}

/** LyCORIS LoHa: (w1_a @ w1_b) * (w2_a @ w2_b) * alpha/rank, or with Tucker cores t1/t2 on convs. */
export interface LoHaKind extends ModuleBase {
  kind: 'loha';
  w1a: Tensor; w1b: Tensor; w2a: Tensor; w2b: Tensor;
  t1?: Tensor; t2?: Tensor;
  alpha?: number;
}

/** LyCORIS LoKr: kron(w1, w2), each factor full or as a low-rank pair (w2 optionally with a Tucker core). */
export interface LoKrKind extends ModuleBase {
  kind: 'lokr';
  w1?: Tensor; w1a?: Tensor; w1b?: Tensor;
  w2?: Tensor; w2a?: Tensor; w2b?: Tensor; t2?: Tensor;
  alpha?: number;
}

/** A full weight difference (LyCORIS `full`), with an optional bias difference. */
export interface FullKind extends ModuleBase {
  kind: 'full';
  diff: Tensor;
  diffB?: Tensor;
}

export type AdapterModule = LoRAKind | LoHaKind | LoKrKind | FullKind;

/** A module of a format sdlora recognises but does not apply (IA3, GLoRA, OFT, BOFT, ...) or does not recognise at all. */
export interface UnsupportedModule {
  name: string;
  format: string;
  keys: string[];
}

/** The rank of a module's factorisation (null for full matrices). */
export function rankOfModule(m: AdapterModule): number | null {
  switch (m.kind) {
    case 'lora': return m.weights.down.shape[0];
    case 'loha': return m.w1b.shape[0];
    case 'lokr': return m.w1b?.shape[0] ?? m.w2b?.shape[0] ?? null;
    case 'full': return null;
  }
}

/**
 * alpha / rank as A1111 and ComfyUI apply it once to the delta. LoKr uses 1 when neither factor is
 * decomposed (LyCORIS then stores alpha = its lora_dim, which means nothing); a missing alpha is 1.
 */
export function scaleOfModule(m: AdapterModule): number {
  if (m.kind === 'lora') return m.weights.alpha / m.weights.down.shape[0];
  if (m.kind === 'full') return 1;
  const r = rankOfModule(m);
  return r === null || m.alpha === undefined ? 1 : m.alpha / r;
}
