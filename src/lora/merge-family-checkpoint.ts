// `lora merge` for a single-file checkpoint of any family (sd-scripts merge_lora.py --sd_model,
// sdxl_merge_lora.py): the file's family is read from its keys, its UNet and text encoders are
// viewed under diffusers/transformers names (SGM/LDM UNet keys renamed, OpenCLIP towers split into
// q/k/v), the LoRAs are merged through the family's components (SDXL: te1, te2, SGM-named UNet), and
// only the changed tensors are written back under their original names (OpenCLIP q/k/v fused
// again), keeping the key order and every tensor the LoRAs do not touch.
import path from 'node:path';
import type { Tensor } from '../engine/index.js';
import { detectFamily } from '../families/index.js';
import type { TextEncoderSpec } from '../families/family.js';
import { saveSafetensors } from '../io/safetensors.js';
import { loadStateDict } from '../models/loader.js';
import { ldmToDiffusers, unetPrefixMap } from '../models/ldm-keys.js';
import { openClipToTransformers, transformersToOpenClip } from '../models/openclip-keys.js';
import { parseUNetConfig } from '../models/unet-config.js';
import { Weights } from '../models/weights.js';
import { mergeLoRA } from './apply.js';
import { type LoRAComponent, unetComponent } from './components.js';
import type { CheckpointMergeReport } from './merge-checkpoint.js';
import type { WeightedLoRA } from './tools.js';

/** One part of the file under model names, and how changed tensors go back. */
interface Part { component: LoRAComponent; writeBack: (changed: Map<string, Tensor>) => [string, Tensor][] }

const strip = (all: Map<string, Tensor>, prefix: string) => new Map([...all].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));

function textPart(all: Map<string, Tensor>, spec: TextEncoderSpec, file: string): Part | null {
  const raw = strip(all, spec.singleFilePrefix);
  if (!raw.size) return null;
  const named = spec.layout === 'openclip' ? openClipToTransformers(raw, file).weights : raw;
  const component: LoRAComponent = { id: spec.id, prefix: spec.loraPrefix, weights: new Weights(named, file), lrGroup: 'te', namePath: (p) => p };
  if (spec.layout === 'transformers') return { component, writeBack: (ch) => [...ch].map(([k, t]) => [spec.singleFilePrefix + k, t]) };
  return {
    component,
    writeBack: (ch) => {
      // A fused in_proj needs all of q, k and v: take the unchanged ones from the model view.
      const full = new Map(ch);
      for (const k of ch.keys()) {
        const m = /^(.*\.self_attn\.)[qkv](_proj\.(weight|bias))$/.exec(k);
        if (m) for (const q of 'qkv') if (!full.has(`${m[1]}${q}${m[2]}`)) full.set(`${m[1]}${q}${m[2]}`, named.get(`${m[1]}${q}${m[2]}`)!);
      }
      return [...transformersToOpenClip(full)].map(([k, t]) => [spec.singleFilePrefix + k, t]);
    },
  };
}

export async function mergeIntoFamilyCheckpoint(
  ckpt: string, loras: WeightedLoRA[], out: string,
  opts: { unetConfig?: Record<string, unknown>; precision?: 'F32' | 'F16' | 'BF16'; onProgress?: (i: number, n: number) => void } = {},
): Promise<CheckpointMergeReport & { family: string }> {
  const all = await loadStateDict(ckpt);
  const family = detectFamily(new Set(all.keys()), ckpt);
  const config = parseUNetConfig(opts.unetConfig ?? family.defaultConfigs.unet);
  const map = unetPrefixMap(config);
  const unetRaw = strip(all, family.unetPrefix);
  if (!unetRaw.size) throw new Error(`${ckpt}: no ${family.unetPrefix}* keys; merging needs a single-file SD checkpoint`);
  const original = new Map<string, string>();
  const unet = new Map([...unetRaw].map(([k, t]) => { const d = ldmToDiffusers(k, map).name; original.set(d, family.unetPrefix + k); return [d, t] as [string, Tensor]; }));
  const parts: Part[] = [
    ...family.textEncoders.map((s) => textPart(all, s, ckpt)).filter((p): p is Part => p !== null),
    { component: unetComponent({ config, weights: new Weights(unet, ckpt) }, family.loraUnetNames ?? 'diffusers'), writeBack: (ch) => [...ch].map(([k, t]) => [original.get(k)!, t]) },
  ];
  let components = parts.map((p) => p.component);
  const unknown = new Set<string>();
  loras.forEach((l, i) => {
    let r: ReturnType<typeof mergeLoRA>;
    try { r = mergeLoRA(l.lora, { components }, { unet: l.ratio, te: l.ratio }); } catch (e) {
      // The LoRA's own error names it and its modules; say which checkpoint and family it was merged into.
      throw new Error(`${ckpt} (${family.name}): cannot merge ${(e as Error).message}`);
    }
    components = r.components;
    r.report.unknown.forEach((u) => unknown.add(u));
    opts.onProgress?.(i + 1, loras.length);
  });
  let changed = 0;
  parts.forEach((p, i) => {
    const ch = new Map([...components[i].weights.tensors].filter(([k, t]) => p.component.weights.tensors.get(k) !== t));
    changed += ch.size;
    for (const [k, t] of p.writeBack(ch)) all.set(k, t);
  });
  const merged = loras.map((l) => `${path.basename(l.lora.path)}:${l.ratio}`).join(', ');
  const arch = family.metadata(family.predictionFromWeights(all, config))['modelspec.architecture'].replace(/\/lora$/, '');
  await saveSafetensors(out, [...all], { 'modelspec.sai_model_spec': '1.0.1', 'modelspec.merged_from': merged, 'modelspec.architecture': arch }, opts.precision ?? 'F32');
  return { changed, unknown: [...unknown], family: family.name };
}
