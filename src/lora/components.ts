// The parts of a model a LoRA file addresses (sd-scripts: `lora_unet_`, `lora_te_` / `lora_te1_`,
// `lora_te2_`), each with the weights it patches, its parameter group and how its module paths
// become kohya names. SD 1.x/2.x name UNet modules by their diffusers path; SDXL by the original
// SGM/LDM path (sd-scripts builds SDXL LoRAs on its own LDM-layout UNet), which the family says.
// Every LoRA consumer (training network, runtime apply, merge, tools) resolves names through here.
import type { ModelFamily } from '../families/family.js';
import type { CLIPTextModel } from '../models/clip-text.js';
import { diffusersToLdm, unetPrefixMap } from '../models/ldm-keys.js';
import type { UNetConfig } from '../models/unet-config.js';
import type { Weights } from '../models/weights.js';
import { TE_PREFIX, UNET_PREFIX, kohyaName, layerPaths } from './names.js';

export type ComponentId = 'unet' | 'te' | 'te1' | 'te2';

export interface LoRAComponent {
  id: ComponentId;
  /** kohya module name prefix. */
  prefix: string;
  weights: Weights;
  /** Which learning rate (unet_lr / text_encoder_lr) and multiplier (unet= / te=) applies. */
  lrGroup: 'unet' | 'te';
  /** The path a kohya name is built from, for a module path of `weights`. */
  namePath(path: string): string;
  /** Another path files of other tools name the module by (diffusers-named SDXL UNet LoRAs), accepted on reading. */
  aliasPath?(path: string): string;
}

/** The kohya name of one module of a component. */
export const moduleName = (c: LoRAComponent, path: string): string => kohyaName(c.prefix, c.namePath(path));

const same = (p: string) => p;

/** A UNet component; `sgm` names modules by their LDM/SGM path (SDXL). */
export function unetComponent(unet: { config: UNetConfig; weights: Weights }, naming: 'diffusers' | 'sgm'): LoRAComponent {
  if (naming === 'diffusers') return { id: 'unet', prefix: UNET_PREFIX, weights: unet.weights, lrGroup: 'unet', namePath: same };
  const map = unetPrefixMap(unet.config);
  return { id: 'unet', prefix: UNET_PREFIX, weights: unet.weights, lrGroup: 'unet', namePath: (p) => diffusersToLdm(p, map), aliasPath: same };
}

/** Components of a loaded model of any family: its text encoders in the family's order, then the UNet (sd-scripts' module order). */
export function familyComponents(m: { family: ModelFamily; unet: { config: UNetConfig; weights: Weights }; textEncoders: CLIPTextModel[] }): LoRAComponent[] {
  const tes = m.family.textEncoders.map((spec, i): LoRAComponent => ({
    id: spec.id, prefix: spec.loraPrefix, weights: m.textEncoders[i].weights, lrGroup: 'te', namePath: same,
  }));
  return [...tes, unetComponent(m.unet, m.family.loraUnetNames ?? 'diffusers')];
}

/** The SD 1.x/2.x pair { unet, textEncoder } (either may be absent) as components. */
export function pairComponents(t: { unet?: Weights; textEncoder?: Weights }): LoRAComponent[] {
  const out: LoRAComponent[] = [];
  if (t.textEncoder) out.push({ id: 'te', prefix: TE_PREFIX, weights: t.textEncoder, lrGroup: 'te', namePath: same });
  if (t.unet) out.push({ id: 'unet', prefix: UNET_PREFIX, weights: t.unet, lrGroup: 'unet', namePath: same });
  return out;
}

export interface ModuleRef { component: LoRAComponent; path: string }

/** kohya name -> (component, module path) for every Linear/Conv2d layer, aliases included (exact names win). */
export function componentIndex(components: readonly LoRAComponent[]): Map<string, ModuleRef> {
  const idx = new Map<string, ModuleRef>();
  const aliases = new Map<string, ModuleRef>();
  for (const c of components) {
    for (const p of layerPaths(c.weights)) {
      idx.set(moduleName(c, p), { component: c, path: p });
      if (c.aliasPath) aliases.set(kohyaName(c.prefix, c.aliasPath(p)), { component: c, path: p });
    }
  }
  for (const [k, v] of aliases) if (!idx.has(k)) idx.set(k, v);
  return idx;
}
