// The golden tiny SDXL model (sdxl-unet + sdxl-text cases) as sdlora loads it, found by case kind;
// with several cases of a kind, the one whose recorded inputs match the case that asks (`sample`,
// `input_ids_1`), so a held-out set with other configurations pairs the right folders.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../../src/engine/index.js';
import { SDXL } from '../../src/families/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import type { CLIPTextModel } from '../../src/models/clip-text.js';
import { parseCLIPTextConfig } from '../../src/models/clip-text.js';
import { loadStateDict, makeTextEncoder, readJson } from '../../src/models/loader.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { Weights } from '../../src/models/weights.js';
import { type CaseKind, goldenCases, requireFile } from './golden.js';

export interface GoldenSDXL {
  family: typeof SDXL;
  unet: UNet2DConditionModel;
  textEncoders: CLIPTextModel[];
  unetDir: string;
  textDir: string;
}

const same = (a: Tensor, b: Tensor) => a.shape.join() === b.shape.join() && a.dataSync().every((v, i) => v === b.dataSync()[i]);

/** The case of `kind` whose io.safetensors `key` equals `want` (the only case if there is one). */
async function matching(kind: CaseKind, key: string, want: Tensor | undefined): Promise<string> {
  const all = goldenCases(kind);
  if (!all.length) throw new Error(`no golden case of kind ${kind}`);
  if (all.length === 1 || !want) return all[0].dir;
  for (const c of all) {
    const io = (await loadSafetensors(requireFile(c.dir, 'io.safetensors'))).tensors;
    if (io[key] && same(io[key], want)) return c.dir;
  }
  throw new Error(`no ${kind} case records the ${key} the asking case uses`);
}

/** The diffusers-layout UNet file of an sdxl-unet case (unet.safetensors). */
export const unetFile = (dir: string) => requireFile(dir, 'unet.safetensors');

/** The tiny SDXL model for a case whose io holds `sample` and `input_ids_1` (either may be absent). */
export async function goldenSDXL(io: Record<string, Tensor> = {}): Promise<GoldenSDXL> {
  const unetDir = await matching('sdxl-unet', 'sample', io.sample);
  const textDir = await matching('sdxl-text', 'input_ids_1', io.input_ids_1);
  const unet = new UNet2DConditionModel(parseUNetConfig(readJson(requireFile(unetDir, 'config.json'))), new Weights(await loadStateDict(unetFile(unetDir)), 'sdxl unet'));
  const files = ['text_encoder.safetensors', 'text_encoder_2.safetensors'];
  const cfgs = ['config_te1.json', 'config_te2.json'];
  const textEncoders = await Promise.all(SDXL.textEncoders.map(async (spec, i) => makeTextEncoder(spec, parseCLIPTextConfig(readJson(requireFile(textDir, cfgs[i]))), new Weights(await loadStateDict(requireFile(textDir, files[i])), files[i]))));
  return { family: SDXL, unet, textEncoders, unetDir, textDir };
}

/** The LoRA files of an sdxl-lora case: lora_<letter>.safetensors by letter. */
export function loraFiles(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of readdirSync(dir)) { const m = /^lora_([a-z])\.safetensors$/.exec(f); if (m) out.set(m[1], path.join(dir, f)); }
  if (!out.size) throw new Error(`golden case ${dir} has no lora_<x>.safetensors`);
  return out;
}
