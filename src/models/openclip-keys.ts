// OpenCLIP text-tower key names (SD 2.x `cond_stage_model.model.*`, SDXL `conditioner.embedders.1.model.*`)
// to transformers CLIPTextModel(WithProjection) names and back, as diffusers' single_file_utils.py
// `convert_open_clip_checkpoint` and sd-scripts' model_util.py / sdxl_model_util.py convert them:
// the fused `attn.in_proj_*` is split in three equal row blocks (q, k, v), and `text_projection`
// is stored transposed ([width, proj], used as `pooled @ text_projection`).
import type { Tensor } from '../engine/tensor.js';
import { tensor } from '../engine/tensor.js';

const TOP: [string, string][] = [
  ['token_embedding.weight', 'text_model.embeddings.token_embedding.weight'],
  ['positional_embedding', 'text_model.embeddings.position_embedding.weight'],
  ['ln_final.weight', 'text_model.final_layer_norm.weight'],
  ['ln_final.bias', 'text_model.final_layer_norm.bias'],
];
const BLOCK: [string, string][] = [
  ['ln_1.', 'layer_norm1.'], ['ln_2.', 'layer_norm2.'], ['attn.out_proj.', 'self_attn.out_proj.'],
  ['mlp.c_fc.', 'mlp.fc1.'], ['mlp.c_proj.', 'mlp.fc2.'],
];
/** Stored in real checkpoints but not part of the text model (CLIP's logit scale, open_clip's mask buffer). */
const UNUSED = new Set(['logit_scale', 'attn_mask']);

const f32 = (t: Tensor): Float32Array => (t.dtype === 'f32' ? (t.dataSync() as Float32Array) : (t.to('f32').dataSync() as Float32Array));

/** [r, c] -> [c, r] on the host. */
function transposed(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const a = f32(t), out = new Float32Array(a.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = a[i * c + j];
  return tensor(out, [c, r]);
}

/** Rows [k*n, (k+1)*n) of a fused in_proj tensor (weight [3n, w] or bias [3n]). */
function third(t: Tensor, k: number): Tensor {
  const n = t.shape[0] / 3, row = t.size / t.shape[0];
  return tensor(f32(t).slice(k * n * row, (k + 1) * n * row), [n, ...t.shape.slice(1)]);
}

export interface OpenClipConversion {
  /** transformers-named weights (`text_model.*`, `text_projection.weight` when present). */
  weights: Map<string, Tensor>;
  /** Number of resblocks in the source. */
  blocks: number;
}

/**
 * Converts an OpenCLIP text tower (prefix already stripped). `keepBlocks` keeps resblocks
 * 0..keepBlocks-1: SD 2.x conditions on the penultimate block, so its converted model has one block
 * fewer than the file (diffusers and sd-scripts drop `resblocks.23` of 24).
 */
export function openClipToTransformers(sd: Map<string, Tensor>, source: string, keepBlocks?: number): OpenClipConversion {
  const out = new Map<string, Tensor>();
  const unexpected: string[] = [];
  let blocks = 0;
  for (const key of sd.keys()) {
    const m = /^transformer\.resblocks\.(\d+)\./.exec(key);
    if (m) blocks = Math.max(blocks, Number(m[1]) + 1);
  }
  const keep = keepBlocks ?? blocks;
  if (keep > blocks) throw new Error(`${source}: the config wants ${keep} text encoder layers but the file has ${blocks} OpenCLIP resblocks`);
  for (const [key, t] of sd) {
    const top = TOP.find(([o]) => o === key);
    if (top) { out.set(top[1], t); continue; }
    if (key === 'text_projection') { out.set('text_projection.weight', transposed(t)); continue; }
    if (UNUSED.has(key) || key.endsWith('position_ids')) continue;
    const m = /^transformer\.resblocks\.(\d+)\.(.*)$/.exec(key);
    if (!m) { unexpected.push(key); continue; }
    const i = Number(m[1]), rest = m[2];
    if (i >= keep) continue;
    const layer = `text_model.encoder.layers.${i}`;
    const fused = /^attn\.in_proj_(weight|bias)$/.exec(rest);
    if (fused) {
      ['q_proj', 'k_proj', 'v_proj'].forEach((q, k) => out.set(`${layer}.self_attn.${q}.${fused[1]}`, third(t, k)));
      continue;
    }
    const r = BLOCK.find(([o]) => rest.startsWith(o));
    if (!r) { unexpected.push(key); continue; }
    out.set(`${layer}.${r[1]}${rest.slice(r[0].length)}`, t);
  }
  if (unexpected.length) throw new Error(`${source}: unexpected OpenCLIP text encoder keys ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ` (+${unexpected.length - 5})` : ''}`);
  return { weights: out, blocks };
}

/**
 * The reverse: transformers names to OpenCLIP (q/k/v fused into in_proj, text_projection transposed),
 * for writing SDXL / SD 2.x single files.
 */
export function transformersToOpenClip(sd: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const fuse = new Map<string, Tensor[]>();
  for (const [key, t] of sd) {
    const top = TOP.find(([, h]) => h === key);
    if (top) { out.set(top[0], t); continue; }
    if (key === 'text_projection.weight') { out.set('text_projection', transposed(t)); continue; }
    const m = /^text_model\.encoder\.layers\.(\d+)\.(.*)$/.exec(key);
    if (!m) throw new Error(`${key}: not a CLIP text model key`);
    const block = `transformer.resblocks.${m[1]}`;
    const qkv = /^self_attn\.([qkv])_proj\.(weight|bias)$/.exec(m[2]);
    if (qkv) {
      const name = `${block}.attn.in_proj_${qkv[2]}`;
      const parts = fuse.get(name) ?? [];
      parts['qkv'.indexOf(qkv[1])] = t;
      fuse.set(name, parts);
      continue;
    }
    const r = BLOCK.find(([, h]) => m[2].startsWith(h));
    if (!r) throw new Error(`${key}: no OpenCLIP name`);
    out.set(`${block}.${r[0]}${m[2].slice(r[1].length)}`, t);
  }
  for (const [name, parts] of fuse) {
    if (parts.filter(Boolean).length !== 3) throw new Error(`${name}: q, k and v are all needed to fuse in_proj`);
    const data = new Float32Array(parts.reduce((n, p) => n + p.size, 0));
    let o = 0;
    for (const p of parts) { data.set(f32(p), o); o += p.size; }
    out.set(name, tensor(data, [parts[0].shape[0] * 3, ...parts[0].shape.slice(1)]));
  }
  return out;
}
