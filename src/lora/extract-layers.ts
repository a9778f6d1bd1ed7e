// The layers `lora extract` compares (extract_lora_from_models.py): sdlora's LoRA targets of the base
// model's family (SD 1.x/2.x: te + unet; SDXL: te1, te2 + SGM-named unet), each paired with the
// same layer of the tuned model, and the metadata keys that name the family (SDXL:
// ss_base_model_version sdxl_base_v1-0, as sd-scripts' --sdxl writes it).
import type { SDModel } from '../models/sd-model.js';
import { familyComponents } from './components.js';
import { loraTargets } from './targets.js';
import type { ExtractLayer } from './tools.js';

export function extractLayers(base: SDModel, tuned: SDModel, o: { conv: boolean; baseName: string; tunedName: string }): ExtractLayer[] {
  if (base.family !== tuned.family) throw new Error(`${o.tunedName} is an ${tuned.family.name} model but ${o.baseName} is ${base.family.name}; extract needs two models of one family`);
  const tunedWeights = new Map(familyComponents(tuned).map((c) => [c.id, c.weights]));
  return loraTargets(familyComponents(base), { conv: o.conv }).map((t) => ({
    name: t.name, path: t.path, te: t.te, base: t.component.weights, tuned: tunedWeights.get(t.component.id)!,
  }));
}

/** ss_v2 / ss_base_model_version of the base model's family, as sd-scripts' extract writes them. */
export function extractFamilyMetadata(base: SDModel): Record<string, string> {
  const m = base.family.metadata(base.prediction);
  return { ss_v2: m.ss_v2, ss_base_model_version: m.ss_base_model_version };
}
