// merge_lora.py --sd_model: bake LoRAs into an SD 1.x single-file checkpoint, keeping its LDM key
// names, key order and every tensor the LoRAs do not touch (VAE, EMA, ...). SD 2.x and SDXL files
// (OpenCLIP / SGM layouts) go through merge-family-checkpoint.ts, which `lora merge` uses for every
// family; this one refuses them rather than merging the UNet alone.
import path from 'node:path';
import type { Tensor } from '../engine/index.js';
import { detectFamily } from '../families/index.js';
import { saveSafetensors } from '../io/safetensors.js';
import { loadStateDict } from '../models/loader.js';
import { ldmToDiffusers, unetPrefixMap } from '../models/ldm-keys.js';
import { SD15_UNET_CONFIG } from '../models/sd15-configs.js';
import { parseUNetConfig } from '../models/unet-config.js';
import { Weights } from '../models/weights.js';
import { mergeLoRA } from './apply.js';
import type { WeightedLoRA } from './tools.js';

const UNET = 'model.diffusion_model.';
const TE = 'cond_stage_model.transformer.';

export interface CheckpointMergeReport {
  changed: number;
  unknown: string[];
}

export async function mergeIntoCheckpoint(
  ckpt: string, loras: WeightedLoRA[], out: string,
  opts: { unetConfig?: Record<string, unknown>; precision?: 'F32' | 'F16' | 'BF16'; onProgress?: (i: number, n: number) => void } = {},
): Promise<CheckpointMergeReport> {
  const all = await loadStateDict(ckpt);
  const family = detectFamily(new Set(all.keys()), ckpt);
  if (family.id !== 'sd1') throw new Error(`${ckpt}: an ${family.name} checkpoint; this SD 1.x merge knows only cond_stage_model.transformer.* text encoders (use mergeIntoFamilyCheckpoint, as \`sdlora lora merge\` does)`);
  const map = unetPrefixMap(parseUNetConfig(opts.unetConfig ?? SD15_UNET_CONFIG));
  const ldmName = new Map<string, string>(); // diffusers-side key -> original key
  const unet = new Map<string, Tensor>(), te = new Map<string, Tensor>();
  for (const [k, t] of all) {
    if (k.startsWith(UNET)) { const d = ldmToDiffusers(k.slice(UNET.length), map).name; unet.set(d, t); ldmName.set(`unet:${d}`, k); }
    else if (k.startsWith(TE)) { const d = k.slice(TE.length); te.set(d, t); ldmName.set(`te:${d}`, k); }
  }
  if (!unet.size) throw new Error(`${ckpt}: no model.diffusion_model.* keys; merging needs a single-file SD checkpoint`);
  let unetW = new Weights(unet, ckpt), teW = new Weights(te, ckpt);
  const unknown = new Set<string>();
  loras.forEach((l, i) => {
    const r = mergeLoRA(l.lora, { unet: unetW, textEncoder: teW }, { unet: l.ratio, te: l.ratio });
    unetW = r.unet!; teW = r.textEncoder!;
    r.report.unknown.forEach((u) => unknown.add(u));
    opts.onProgress?.(i + 1, loras.length);
  });
  let changed = 0;
  for (const [kind, w, orig] of [['unet', unetW, unet], ['te', teW, te]] as const) {
    for (const [k, t] of w.tensors) {
      if (orig.get(k) === t) continue;
      all.set(ldmName.get(`${kind}:${k}`)!, t);
      changed++;
    }
  }
  const merged = loras.map((l) => `${path.basename(l.lora.path)}:${l.ratio}`).join(', ');
  await saveSafetensors(out, [...all], { 'modelspec.sai_model_spec': '1.0.1', 'modelspec.merged_from': merged, 'modelspec.architecture': 'stable-diffusion-v1' }, opts.precision ?? 'F32');
  return { changed, unknown: [...unknown] };
}
