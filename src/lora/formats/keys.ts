// Tensor keys of LoRA-family files, grouped by module: kohya/LyCORIS names (`lora_unet_x.hada_w1_a`)
// and diffusers/PEFT names (`unet.<module path>.lora_A.weight`, as diffusers' save_lora_weights
// writes them), the latter renamed to the kohya module names ComfyUI's key map gives them.
// Each module's part names tell its kind; known formats that are not applied are named.
import { TE_PREFIX, UNET_PREFIX } from '../names.js';

/** Parts of each applied kind (alpha and dora_scale may join any of the factorised ones). */
export const KIND_PARTS = {
  lora: ['lora_down.weight', 'lora_up.weight', 'lora_mid.weight'],
  loha: ['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b', 'hada_t1', 'hada_t2'],
  lokr: ['lokr_w1', 'lokr_w1_a', 'lokr_w1_b', 'lokr_w2', 'lokr_w2_a', 'lokr_w2_b', 'lokr_t2'],
  full: ['diff', 'diff_b'],
} as const;
export const SHARED_PARTS = ['alpha', 'dora_scale'];

/** Formats A1111 / ComfyUI / LyCORIS write that sdlora recognises by their parts but does not apply. */
const NAMED_FORMATS: [format: string, test: (parts: Set<string>) => boolean][] = [
  ['LyCORIS IA3 (weight, on_input)', (p) => p.has('on_input') || (p.has('weight') && p.size <= 2)],
  ['LyCORIS GLoRA (a1/a2/b1/b2)', (p) => ['a1.weight', 'a2.weight', 'b1.weight', 'b2.weight'].some((k) => p.has(k))],
  ['OFT/BOFT (oft_blocks)', (p) => p.has('oft_blocks')],
  ['kohya OFT (oft_diag)', (p) => p.has('oft_diag')],
  ['LyCORIS norm (w_norm, b_norm)', (p) => p.has('w_norm') || p.has('b_norm')],
];

/** diffusers/PEFT down/up part names -> kohya ones. */
const PEFT_PARTS: Record<string, string> = {
  'lora_A.weight': 'lora_down.weight', 'lora_B.weight': 'lora_up.weight',
  'lora.down.weight': 'lora_down.weight', 'lora.up.weight': 'lora_up.weight',
  'lora_linear_layer.down.weight': 'lora_down.weight', 'lora_linear_layer.up.weight': 'lora_up.weight',
  alpha: 'alpha',
  // PEFT DoRA: the magnitude per output row ([out]), the same axis as LyCORIS' default dora_scale.
  lora_magnitude_vector: 'dora_scale', 'lora_magnitude_vector.weight': 'dora_scale',
};
const PEFT_KEY = new RegExp(`^(unet|text_encoder|text_encoder_2)\\.(.+)\\.(${Object.keys(PEFT_PARTS).map((k) => k.replace(/\./g, '\\.')).join('|')})$`);

export interface KeyGroup {
  /** kohya module name. */
  name: string;
  /** part name (kohya spelling) -> key in the file. */
  parts: Map<string, string>;
  peft: boolean;
}

/** kohya module prefix of a diffusers/PEFT component (SDXL files name the first encoder te1). */
function peftPrefix(component: string, sdxl: boolean): string {
  if (component === 'unet') return UNET_PREFIX;
  if (component === 'text_encoder_2') return 'lora_te2_';
  return sdxl ? 'lora_te1_' : TE_PREFIX;
}

/** Groups every key by module: diffusers/PEFT keys when they match, else `<module>.<part>` split at the first dot. */
export function groupKeys(keys: readonly string[]): Map<string, KeyGroup> {
  const sdxl = keys.some((k) => k.startsWith('text_encoder_2.'));
  const groups = new Map<string, KeyGroup>();
  const put = (name: string, part: string, key: string, peft: boolean) => {
    const g = groups.get(name) ?? { name, parts: new Map(), peft };
    if (g.parts.has(part)) throw new Error(`keys "${g.parts.get(part)}" and "${key}" are the same part of module ${name}`);
    g.parts.set(part, key);
    groups.set(name, g);
  };
  for (const key of keys) {
    const p = PEFT_KEY.exec(key);
    if (p) { put(peftPrefix(p[1], sdxl) + p[2].replace(/\./g, '_'), PEFT_PARTS[p[3]], key, true); continue; }
    const dot = key.indexOf('.');
    put(dot < 0 ? key : key.slice(0, dot), dot < 0 ? '' : key.slice(dot + 1), key, false);
  }
  return groups;
}

export type KindName = keyof typeof KIND_PARTS;

/** The applied kind of a module's parts, or the name of the format it is in when sdlora does not apply it. */
export function classifyParts(parts: Set<string>): { kind: KindName } | { format: string } {
  const kinds = (Object.keys(KIND_PARTS) as KindName[]).filter((k) => KIND_PARTS[k].some((p) => parts.has(p)));
  const known = new Set<string>([...kinds.flatMap((k) => KIND_PARTS[k]), ...SHARED_PARTS]);
  const stray = [...parts].filter((p) => !known.has(p));
  if (kinds.length === 1 && !stray.length) return { kind: kinds[0] };
  const named = NAMED_FORMATS.find(([, test]) => test(parts));
  if (named) return { format: named[0] };
  if (kinds.length > 1) return { format: `a mix of ${kinds.join(' and ')} parts` };
  const shown = [...parts].slice(0, 4).map((p) => p || '(no part)').join(', ');
  return { format: `unrecognised keys (${shown}${parts.size > 4 ? `, ... ${parts.size} in all` : ''})` };
}
