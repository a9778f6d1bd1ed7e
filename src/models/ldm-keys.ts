// Converts original Stable Diffusion (LDM/CompVis, and SDXL's SGM `model.diffusion_model.*`) single-file
// key names to diffusers names and back, as sd-scripts' model_util.py / sdxl_model_util.py
// (make_unet_conversion_map) and diffusers' single_file_utils.py do. The block numbering is derived
// from the model config (levels, layers per block, which levels have attention), so it is not tied
// to SD 1.5's four levels or SDXL's three. The reverse direction gives kohya's SDXL LoRA names.
import type { Tensor } from '../engine/tensor.js';
import { reshape } from '../engine/ops/layout.js';
import type { UNetConfig } from './unet-config.js';
import type { VAEConfig } from './vae.js';

export type PrefixMap = [ldm: string, diffusers: string, kind: 'plain' | 'resnet' | 'vae-resnet' | 'vae-attn'][];

const RESNET: [string, string][] = [
  ['in_layers.0.', 'norm1.'], ['in_layers.2.', 'conv1.'], ['emb_layers.1.', 'time_emb_proj.'],
  ['out_layers.0.', 'norm2.'], ['out_layers.3.', 'conv2.'], ['skip_connection.', 'conv_shortcut.'],
];
const VAE_RESNET: [string, string][] = [['nin_shortcut.', 'conv_shortcut.']];
const VAE_ATTN: [string, string][] = [['norm.', 'group_norm.'], ['q.', 'to_q.'], ['k.', 'to_k.'], ['v.', 'to_v.'], ['proj_out.', 'to_out.0.']];

export function unetPrefixMap(c: UNetConfig): PrefixMap {
  const L = c.layers_per_block, n = c.block_out_channels.length;
  const m: PrefixMap = [
    ['time_embed.0.', 'time_embedding.linear_1.', 'plain'], ['time_embed.2.', 'time_embedding.linear_2.', 'plain'],
    ['input_blocks.0.0.', 'conv_in.', 'plain'], ['out.0.', 'conv_norm_out.', 'plain'], ['out.2.', 'conv_out.', 'plain'],
    ['middle_block.0.', 'mid_block.resnets.0.', 'resnet'], ['middle_block.1.', 'mid_block.attentions.0.', 'plain'],
    ['middle_block.2.', 'mid_block.resnets.1.', 'resnet'],
  ];
  // SDXL's `label_emb` is SGM's Sequential(Sequential(Linear, SiLU, Linear)) for the added conditioning.
  if (c.addition) m.push(['label_emb.0.0.', 'add_embedding.linear_1.', 'plain'], ['label_emb.0.2.', 'add_embedding.linear_2.', 'plain']);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < L; j++) {
      const k = 1 + i * (L + 1) + j;
      m.push([`input_blocks.${k}.0.`, `down_blocks.${i}.resnets.${j}.`, 'resnet']);
      m.push([`input_blocks.${k}.1.`, `down_blocks.${i}.attentions.${j}.`, 'plain']);
    }
    if (i < n - 1) m.push([`input_blocks.${(i + 1) * (L + 1)}.0.op.`, `down_blocks.${i}.downsamplers.0.conv.`, 'plain']);
    const cross = c.up_block_types[i].startsWith('CrossAttn');
    for (let j = 0; j <= L; j++) {
      const k = i * (L + 1) + j;
      m.push([`output_blocks.${k}.0.`, `up_blocks.${i}.resnets.${j}.`, 'resnet']);
      m.push([`output_blocks.${k}.1.`, `up_blocks.${i}.attentions.${j}.`, 'plain']);
    }
    if (i < n - 1) m.push([`output_blocks.${i * (L + 1) + L}.${cross ? 2 : 1}.conv.`, `up_blocks.${i}.upsamplers.0.conv.`, 'plain']);
  }
  return m;
}

export function vaePrefixMap(c: VAEConfig): PrefixMap {
  const n = c.block_out_channels.length, L = c.layers_per_block;
  const m: PrefixMap = [['encoder.norm_out.', 'encoder.conv_norm_out.', 'plain'], ['decoder.norm_out.', 'decoder.conv_norm_out.', 'plain']];
  for (const part of ['encoder', 'decoder']) {
    m.push([`${part}.mid.block_1.`, `${part}.mid_block.resnets.0.`, 'vae-resnet']);
    m.push([`${part}.mid.block_2.`, `${part}.mid_block.resnets.1.`, 'vae-resnet']);
    m.push([`${part}.mid.attn_1.`, `${part}.mid_block.attentions.0.`, 'vae-attn']);
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < L; j++) m.push([`encoder.down.${i}.block.${j}.`, `encoder.down_blocks.${i}.resnets.${j}.`, 'vae-resnet']);
    if (i < n - 1) m.push([`encoder.down.${i}.downsample.conv.`, `encoder.down_blocks.${i}.downsamplers.0.conv.`, 'plain']);
    const lvl = n - 1 - i;
    for (let j = 0; j <= L; j++) m.push([`decoder.up.${lvl}.block.${j}.`, `decoder.up_blocks.${i}.resnets.${j}.`, 'vae-resnet']);
    if (i < n - 1) m.push([`decoder.up.${lvl}.upsample.conv.`, `decoder.up_blocks.${i}.upsamplers.0.conv.`, 'plain']);
  }
  return m;
}

/** The diffusers name of one LDM key under `map`, and whether it is a VAE attention conv weight. */
export function ldmToDiffusers(key: string, map: PrefixMap): { name: string; squeeze: boolean } {
  const sorted = sortedRules(map);
  const rule = sorted.find(([ldm]) => key.startsWith(ldm));
  if (!rule) return { name: key, squeeze: false };
  const [ldm, diff, kind] = rule;
  let rest = key.slice(ldm.length);
  const renames = kind === 'resnet' ? RESNET : kind === 'vae-resnet' ? VAE_RESNET : kind === 'vae-attn' ? VAE_ATTN : [];
  const r = renames.find(([a]) => rest.startsWith(a));
  if (r) rest = r[1] + rest.slice(r[0].length);
  return { name: diff + rest, squeeze: kind === 'vae-attn' && rest.endsWith('weight') };
}

/**
 * The LDM/SGM name of a diffusers key or module path (`down_blocks.1.attentions.0.proj_in` ->
 * `input_blocks.4.1.proj_in`); names no rule covers are returned unchanged.
 */
export function diffusersToLdm(name: string, map: PrefixMap): string {
  let sorted = reverseCache.get(map);
  if (!sorted) { sorted = [...map].sort((a, b) => b[1].length - a[1].length); reverseCache.set(map, sorted); }
  const dotted = `${name}.`;
  const rule = sorted.find(([, diff]) => dotted.startsWith(diff));
  if (!rule) return name;
  const [ldm, diff, kind] = rule;
  let rest = dotted.slice(diff.length);
  const renames = kind === 'resnet' ? RESNET : kind === 'vae-resnet' ? VAE_RESNET : kind === 'vae-attn' ? VAE_ATTN : [];
  const r = renames.find(([, d]) => rest.startsWith(d));
  if (r) rest = r[0] + rest.slice(r[1].length);
  return (ldm + rest).slice(0, -1);
}

const reverseCache = new WeakMap<PrefixMap, PrefixMap>();
const ruleCache = new WeakMap<PrefixMap, PrefixMap>();
function sortedRules(map: PrefixMap): PrefixMap {
  let s = ruleCache.get(map);
  if (!s) { s = [...map].sort((a, b) => b[0].length - a[0].length); ruleCache.set(map, s); }
  return s;
}

/**
 * Renames `tensors` (keys already stripped of the checkpoint prefix). Keys that match no rule
 * keep their name (names that LDM and diffusers share, like `quant_conv.weight`).
 */
export function convertLdmKeys(tensors: Map<string, Tensor>, map: PrefixMap): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [key, t] of tensors) {
    const { name, squeeze } = ldmToDiffusers(key, map);
    // The LDM VAE attention uses 1x1 convs where diffusers uses Linear layers.
    out.set(name, squeeze && t.rank === 4 ? reshape(t, t.shape.slice(0, 2)) : t);
  }
  return out;
}
