// Parameter lists (diffusers/transformers names and shapes) of the VAE and the CLIP text model,
// and random initialization, for building models from scratch (the bundled tiny model).
import { Rng } from '../engine/random.js';
import { Tensor, tensor } from '../engine/tensor.js';
import type { CLIPTextConfig } from './clip-text.js';
import type { VAEConfig } from './vae.js';
import { Weights } from './weights.js';

type Shapes = Map<string, number[]>;
const norm = (m: Shapes, p: string, c: number) => { m.set(`${p}.weight`, [c]); m.set(`${p}.bias`, [c]); };
const convP = (m: Shapes, p: string, o: number, i: number, k: number) => { m.set(`${p}.weight`, [o, i, k, k]); m.set(`${p}.bias`, [o]); };
const linP = (m: Shapes, p: string, o: number, i: number) => { m.set(`${p}.weight`, [o, i]); m.set(`${p}.bias`, [o]); };

function vaeResnet(m: Shapes, p: string, i: number, o: number): void {
  norm(m, `${p}.norm1`, i); convP(m, `${p}.conv1`, o, i, 3); norm(m, `${p}.norm2`, o); convP(m, `${p}.conv2`, o, o, 3);
  if (i !== o) convP(m, `${p}.conv_shortcut`, o, i, 1);
}

function vaeMid(m: Shapes, p: string, c: number, attn: boolean): void {
  vaeResnet(m, `${p}.resnets.0`, c, c);
  if (attn) { norm(m, `${p}.attentions.0.group_norm`, c); for (const q of ['to_q', 'to_k', 'to_v', 'to_out.0']) linP(m, `${p}.attentions.0.${q}`, c, c); }
  vaeResnet(m, `${p}.resnets.1`, c, c);
}

export function vaeParamShapes(c: VAEConfig): Shapes {
  const m: Shapes = new Map();
  const boc = c.block_out_channels, n = boc.length, L = c.layers_per_block, top = boc[n - 1];
  convP(m, 'encoder.conv_in', boc[0], c.in_channels, 3);
  let out = boc[0];
  for (let i = 0; i < n; i++) {
    const inC = out; out = boc[i];
    for (let j = 0; j < L; j++) vaeResnet(m, `encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? inC : out, out);
    if (i < n - 1) convP(m, `encoder.down_blocks.${i}.downsamplers.0.conv`, out, out, 3);
  }
  vaeMid(m, 'encoder.mid_block', top, c.mid_block_add_attention);
  norm(m, 'encoder.conv_norm_out', top);
  convP(m, 'encoder.conv_out', 2 * c.latent_channels, top, 3);
  if (c.use_quant_conv) convP(m, 'quant_conv', 2 * c.latent_channels, 2 * c.latent_channels, 1);
  if (c.use_post_quant_conv) convP(m, 'post_quant_conv', c.latent_channels, c.latent_channels, 1);
  convP(m, 'decoder.conv_in', top, c.latent_channels, 3);
  vaeMid(m, 'decoder.mid_block', top, c.mid_block_add_attention);
  const rev = [...boc].reverse();
  let prev = rev[0];
  for (let i = 0; i < n; i++) {
    const o = rev[i];
    for (let j = 0; j <= L; j++) vaeResnet(m, `decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : o, o);
    if (i < n - 1) convP(m, `decoder.up_blocks.${i}.upsamplers.0.conv`, o, o, 3);
    prev = o;
  }
  norm(m, 'decoder.conv_norm_out', boc[0]);
  convP(m, 'decoder.conv_out', c.out_channels, boc[0], 3);
  return m;
}

/** CLIPTextModel parameters; with `withProjection`, CLIPTextModelWithProjection's `text_projection` too. */
export function clipParamShapes(c: CLIPTextConfig, withProjection = false): Shapes {
  const m: Shapes = new Map();
  const h = c.hidden_size, p = 'text_model';
  m.set(`${p}.embeddings.token_embedding.weight`, [c.vocab_size, h]);
  m.set(`${p}.embeddings.position_embedding.weight`, [c.max_position_embeddings, h]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const l = `${p}.encoder.layers.${i}`;
    norm(m, `${l}.layer_norm1`, h); norm(m, `${l}.layer_norm2`, h);
    for (const q of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) linP(m, `${l}.self_attn.${q}`, h, h);
    linP(m, `${l}.mlp.fc1`, c.intermediate_size, h); linP(m, `${l}.mlp.fc2`, h, c.intermediate_size);
  }
  norm(m, `${p}.final_layer_norm`, h);
  if (withProjection) m.set('text_projection.weight', [c.projection_dim, h]);
  return m;
}

/** torch-like defaults: U(+-1/sqrt(fan_in)) weights, zero biases, unit norm scales, N(0, 0.02) embeddings. */
export function randomWeights(shapes: Shapes, seed: number, source: string): Weights {
  const rng = new Rng(seed);
  const out = new Map<string, Tensor>();
  for (const [k, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    if (k.includes('embedding')) for (let i = 0; i < n; i++) a[i] = rng.normal() * 0.02;
    else if (shape.length === 1) { if (/norm[^.]*\.weight$/.test(k)) a.fill(1); }
    else { const b = 1 / Math.sqrt(n / shape[0]); for (let i = 0; i < n; i++) a[i] = (rng.uniform() * 2 - 1) * b; }
    out.set(k, tensor(a, shape));
  }
  return new Weights(out, source);
}
