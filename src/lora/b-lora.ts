// B-LoRA (Frenkel et al., "Implicit Style-Content Separation using B-LoRA", 2024): in SDXL the
// transformer of up_blocks.0.attentions.0 carries an image's content and that of
// up_blocks.0.attentions.1 its style. A LoRA trained on just those two blocks' attention
// projections (to_q, to_k, to_v, to_out.0 of attn1 and attn2, UNet only) keeps the two apart, so
// at generation the content part of one B-LoRA can be combined with the style part of another.
// Blocks are named by diffusers path and found through each component's naming, so SGM-named
// kohya files resolve the same way.
import type { FamilyId, ModelFamily } from '../families/family.js';
import { type LoRAComponent, type ModuleRef, componentIndex } from './components.js';
import type { LoRAFile } from './lora-file.js';

export const B_LORA_PARTS = { content: 'up_blocks.0.attentions.0.', style: 'up_blocks.0.attentions.1.' } as const;
/** The families whose UNet these blocks were identified in (other UNets may have blocks of the same name but not the same roles). */
export const B_LORA_FAMILIES: readonly FamilyId[] = ['sdxl'];
export type BLoRAPart = keyof typeof B_LORA_PARTS;

const ATTN_PROJ = /\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$/;

/** The B-LoRA part a UNet module belongs to (null: not a B-LoRA target). */
export function bLoRAPart(ref: Pick<ModuleRef, 'path'> & { component: Pick<LoRAComponent, 'lrGroup'> }): BLoRAPart | null {
  if (ref.component.lrGroup !== 'unet' || !ATTN_PROJ.test(ref.path)) return null;
  for (const [part, prefix] of Object.entries(B_LORA_PARTS) as [BLoRAPart, string][]) if (ref.path.startsWith(prefix)) return part;
  return null;
}

/** Refuses models of other families, or without both B-LoRA blocks (B-LoRA is defined on SDXL's UNet). */
export function checkBLoRAModel(family: Pick<ModelFamily, 'id' | 'name'>, components: readonly LoRAComponent[], what: string): void {
  if (!B_LORA_FAMILIES.includes(family.id)) throw new Error(`${what}: B-LoRA needs an SDXL model (its content and style blocks were found in SDXL's UNet); this is ${family.name}`);
  const unet = components.find((c) => c.lrGroup === 'unet');
  const missing = Object.entries(B_LORA_PARTS).filter(([, p]) => !unet || ![...unet.weights.tensors.keys()].some((k) => k.startsWith(p)));
  if (missing.length) throw new Error(`${what}: B-LoRA needs an SDXL UNet with the ${missing.map(([k, p]) => `${k} block ${p.slice(0, -1)}`).join(' and ')}; this model has no such transformer`);
}

/** The file reduced to the modules of one B-LoRA part (as B-LoRA's inference filters its state dict). */
export function bLoRASubset(file: LoRAFile, model: { family: Pick<ModelFamily, 'id' | 'name'>; components: readonly LoRAComponent[] }, part: BLoRAPart): LoRAFile {
  const { components } = model;
  checkBLoRAModel(model.family, components, file.path);
  const index = componentIndex(components);
  const keep = (name: string) => { const ref = index.get(name); return !!ref && bLoRAPart(ref) === part; };
  const modules = new Map([...file.modules].filter(([n]) => keep(n)));
  const adapters = new Map([...file.adapters].filter(([n]) => keep(n)));
  if (!adapters.size) throw new Error(`${file.path}: no module of the B-LoRA ${part} block (${B_LORA_PARTS[part].slice(0, -1)}); is it a B-LoRA?`);
  return { ...file, path: `${file.path} (${part})`, modules, adapters, unsupported: [], unsupportedKeys: [] };
}
