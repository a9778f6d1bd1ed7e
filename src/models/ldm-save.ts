// Writes a whole model: a single-file checkpoint in the original LDM/SGM key layout (sd-scripts
// model_util.save_stable_diffusion_checkpoint / sdxl_model_util.save_stable_diffusion_checkpoint:
// model.diffusion_model.*, first_stage_model.*, the family's text encoder prefixes, OpenCLIP names
// for SD 2.x / SDXL's second encoder), or a diffusers folder (unet/, vae/, text_encoder/[_2],
// tokenizer/[_2], scheduler/, model_index.json) with safetensors weights. Both load back through
// loader.ts; the folder is written beside the target and renamed into place.
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Tensor, tensor } from '../engine/tensor.js';
import { reshape } from '../engine/ops/layout.js';
import { saveSafetensors } from '../io/safetensors.js';
import { diffusersToLdm, unetPrefixMap, vaePrefixMap } from './ldm-keys.js';
import { transformersToOpenClip } from './openclip-keys.js';
import type { SDModel } from './sd-model.js';

export type SavePrecision = 'F32' | 'F16' | 'BF16';

/** The model's tensors under their single-file (LDM/SGM) names. */
export function singleFileStateDict(model: Pick<SDModel, 'family' | 'unet' | 'vae' | 'textEncoders'>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const { family } = model;
  const umap = unetPrefixMap(model.unet.config);
  for (const [k, t] of model.unet.weights.tensors) out.set(family.unetPrefix + diffusersToLdm(k, umap), t);
  const vmap = vaePrefixMap(model.vae.config);
  for (const [k, t] of model.vae.weights.tensors) {
    // The LDM VAE attention uses 1x1 convs where diffusers has Linear layers.
    const attn = /mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(k) && t.rank === 2;
    out.set(family.vaePrefix + diffusersToLdm(k, vmap), attn ? reshape(t, [...t.shape, 1, 1]) : t);
  }
  family.textEncoders.forEach((spec, i) => {
    const w = model.textEncoders[i].weights.tensors;
    if (spec.layout === 'transformers') {
      for (const [k, t] of w) out.set(spec.singleFilePrefix + k, t);
      return;
    }
    const oc = transformersToOpenClip(new Map([...w].filter(([k]) => k !== 'text_model.embeddings.position_ids')));
    if (spec.dropLastBlock) {
      // SD 2.x conditions on the penultimate block, so the loaded model has one block fewer than
      // the file: as sd-scripts does without a source checkpoint, the last block kept is written
      // again as the dropped one, with the unused text_projection (ones) and logit_scale (1).
      const { num_hidden_layers: n, hidden_size: width } = model.textEncoders[i].config;
      for (const [k, t] of [...oc]) if (k.startsWith(`transformer.resblocks.${n - 1}.`)) oc.set(k.replace(`.${n - 1}.`, `.${n}.`), t);
      if (!oc.has('text_projection')) oc.set('text_projection', tensor(new Float32Array(width * width).fill(1), [width, width]));
      if (!oc.has('logit_scale')) oc.set('logit_scale', tensor([1], []));
    }
    for (const [k, t] of oc) out.set(spec.singleFilePrefix + k, t);
  });
  return out;
}

export async function saveSingleFile(file: string, model: SDModel, metadata: Record<string, string>, precision: SavePrecision): Promise<void> {
  await saveSafetensors(file, [...singleFileStateDict(model)], metadata, precision);
}

/** A diffusers folder; configs, tokenizer and scheduler files are copied from the model's source when it is a folder. */
export async function saveDiffusersFolder(dir: string, model: SDModel, precision: SavePrecision): Promise<void> {
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const src = existsSync(model.source) && statSync(model.source).isDirectory() ? model.source : undefined;
  const config = (sub: string, parsed: object, className: string) => {
    const from = src && path.join(src, sub, 'config.json');
    const text = from && existsSync(from) ? readFileSync(from, 'utf8') : JSON.stringify({ _class_name: className, ...parsed }, null, 2);
    writeFileSync(path.join(tmp, sub, 'config.json'), text);
  };
  const parts: [string, string, Map<string, Tensor>, object, string][] = [
    ['unet', 'diffusion_pytorch_model', model.unet.weights.tensors, model.unet.config, 'UNet2DConditionModel'],
    ['vae', 'diffusion_pytorch_model', model.vae.weights.tensors, model.vae.config, 'AutoencoderKL'],
    ...model.family.textEncoders.map((s, i): [string, string, Map<string, Tensor>, object, string] => [s.folder, 'model', model.textEncoders[i].weights.tensors, model.textEncoders[i].config, s.withProjection ? 'CLIPTextModelWithProjection' : 'CLIPTextModel']),
  ];
  for (const [sub, base, tensors, parsed, cls] of parts) {
    mkdirSync(path.join(tmp, sub));
    config(sub, parsed, cls);
    await saveSafetensors(path.join(tmp, sub, `${base}.safetensors`), [...tensors], {}, precision);
  }
  for (const s of model.family.textEncoders) {
    const from = src && path.join(src, s.tokenizerFolder);
    if (from && existsSync(from)) cpSync(from, path.join(tmp, s.tokenizerFolder), { recursive: true });
  }
  mkdirSync(path.join(tmp, 'scheduler'));
  const sched = src && path.join(src, 'scheduler', 'scheduler_config.json');
  writeFileSync(path.join(tmp, 'scheduler', 'scheduler_config.json'), sched && existsSync(sched) ? readFileSync(sched, 'utf8') : JSON.stringify({ _class_name: 'DDPMScheduler', ...model.scheduler }, null, 2));
  const index = src && existsSync(path.join(src, 'model_index.json')) ? readFileSync(path.join(src, 'model_index.json'), 'utf8') : JSON.stringify({
    _class_name: model.family.textEncoders.length > 1 ? 'StableDiffusionXLPipeline' : 'StableDiffusionPipeline',
    unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'], scheduler: ['diffusers', 'DDPMScheduler'],
    ...Object.fromEntries(model.family.textEncoders.flatMap((s) => [[s.folder, ['transformers', s.withProjection ? 'CLIPTextModelWithProjection' : 'CLIPTextModel']], [s.tokenizerFolder, ['transformers', 'CLIPTokenizer']]])),
  }, null, 2);
  writeFileSync(path.join(tmp, 'model_index.json'), index);
  // Swap: a previous folder of that name goes aside first, so one complete folder always exists.
  const old = `${dir}.old`;
  rmSync(old, { recursive: true, force: true });
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}
