// What `lora list` and `inspect` say about a LoRA-family file, from its header (key names and
// shapes) and its alpha scalars, without loading the factors: the algorithm of its modules (the
// names LyCORIS and A1111 use), the rank and alpha, and the base model family, from kohya/modelspec
// metadata when present, else from the module names and the cross-attention width.
import type { SafetensorsFile } from '../../io/safetensors.js';
import { TE_PREFIX, UNET_PREFIX } from '../names.js';
import { type KeyGroup, classifyParts, groupKeys } from './keys.js';

export interface LoRASummary {
  /** lora, locon, loha, lokr, dora, peft, full; or the name of a format sdlora does not apply. */
  algorithms: string[];
  modules: number;
  /** Modules of a kind sdlora applies (0: not a LoRA-family file at all, or none it knows). */
  applicable: number;
  /** "4", "2..8", or "-" (full matrices only). */
  rank: string;
  /** "1", "0.5..2", or "= rank" when the file stores none. */
  alpha: string;
  /** sd1, sd2, sdxl (or the metadata's own name), with where it was read. */
  family: string;
}

type Shapes = (part: string) => readonly number[] | undefined;

function algorithm(kind: string, g: KeyGroup, shape: Shapes): string {
  if (g.parts.has('dora_scale')) return 'dora';
  if (kind !== 'lora') return kind;
  if (g.peft) return 'peft';
  const d = shape('lora_down.weight')!;
  return g.parts.has('lora_mid.weight') || (d.length === 4 && d[2] * d[3] > 1) ? 'locon' : 'lora';
}

function rankOf(kind: string, shape: Shapes): number | null {
  if (kind === 'lora') return shape('lora_down.weight')![0];
  if (kind === 'loha') return shape('hada_w1_b')![0];
  if (kind === 'lokr') return shape('lokr_w1_b')?.[0] ?? shape('lokr_w2_b')?.[0] ?? null;
  return null;
}

/** The layer's input width, where the parts show it plainly. */
function inputWidth(kind: string, shape: Shapes): number | null {
  if (kind === 'lora') return shape('lora_down.weight')![1];
  if (kind === 'loha' && !shape('hada_t1')) return shape('hada_w1_b')![1];
  if (kind === 'full') return shape('diff')![1];
  return null;
}

const span = (xs: number[]): string => {
  if (!xs.length) return '-';
  const lo = Math.min(...xs), hi = Math.max(...xs);
  return lo === hi ? String(lo) : `${lo}..${hi}`;
};

/**
 * The family from kohya / modelspec metadata; `-v` for v-prediction bases (sd-scripts writes
 * `sd_v2_v` / `stable-diffusion-v2-768-v` for v2 + v_parameterization).
 */
function familyFromMetadata(md: Record<string, string>): string | null {
  const v = md.ss_base_model_version ?? md['modelspec.architecture'] ?? '';
  const pred = /_v$|-v(\/lora)?$/.test(v) ? '-v' : '';
  if (/xl/i.test(v)) return `sdxl${pred}`;
  if (/v2|_2|-2/.test(v) || md.ss_v2 === 'True') return `sd2${pred}`;
  if (/v1/.test(v)) return `sd1${pred}`;
  return v ? v.replace(/\/lora$/, '') : null;
}

/** The family from module names and the text-conditioning width (768 SD 1.x, 1024 SD 2.x). */
function familyFromModules(names: string[], width: (name: string) => number | null): string {
  // kohya's SDXL LoRAs name UNet modules by the SGM blocks; SD 1.x/2.x ones by diffusers paths.
  if (names.some((n) => /^lora_te[12]_/.test(n) || /^lora_unet_(input_blocks|middle_block|output_blocks)_/.test(n))) return 'sdxl';
  const cross = names.filter((n) => n.startsWith(UNET_PREFIX) && /attn2_to_[kv]$/.test(n)).map(width).find((w) => w !== null);
  const te = names.filter((n) => n.startsWith(TE_PREFIX) && /q_proj$/.test(n)).map(width).find((w) => w !== null);
  const w = cross ?? te;
  if (w === 768) return 'sd1';
  if (w === 1024) return 'sd2';
  if (w === 2048) return 'sdxl';
  const layout = names.some((n) => n.startsWith(UNET_PREFIX) || n.startsWith(TE_PREFIX)) ? 'SD 1.x/2.x module names' : 'no SD module names';
  return `unknown: ${layout}${w ? `, text width ${w}` : ''}`;
}

export async function describeLoRA(f: SafetensorsFile): Promise<LoRASummary> {
  const groups = [...groupKeys(f.keys()).values()];
  const algorithms = new Set<string>(), ranks: number[] = [], alphas: number[] = [];
  const widths = new Map<string, number | null>();
  let applicable = 0;
  for (const g of groups) {
    const shape: Shapes = (part) => (g.parts.has(part) ? f.entries.get(g.parts.get(part)!)!.shape : undefined);
    const c = classifyParts(new Set(g.parts.keys()));
    if (!('kind' in c)) { algorithms.add(c.format); continue; }
    applicable++;
    algorithms.add(algorithm(c.kind, g, shape));
    const r = rankOf(c.kind, shape);
    if (r !== null) ranks.push(r);
    // LoKr with two full factors ignores its alpha (LyCORIS stores its lora_dim there).
    if (g.parts.has('alpha') && (r !== null || c.kind !== 'lokr')) alphas.push((await f.read(g.parts.get('alpha')!)).dataSync()[0]);
    widths.set(g.name, inputWidth(c.kind, shape));
  }
  const meta = familyFromMetadata(f.metadata);
  const family = meta ? `${meta} (from metadata)` : `${familyFromModules([...widths.keys()], (n) => widths.get(n) ?? null)} (from keys)`;
  return { algorithms: [...algorithms].sort(), modules: groups.length, applicable, rank: span(ranks), alpha: alphas.length ? span(alphas) : '= rank', family };
}
