// Every parameter of a UNet2DConditionModel config with its shape (diffusers names), for
// building a model from scratch (random init, benchmarks, the project's own tiny model).
import { Rng } from '../engine/random.js';
import { Tensor, tensor } from '../engine/tensor.js';
import type { UNetConfig } from './unet-config.js';
import { Weights } from './weights.js';

export function unetParamShapes(c: UNetConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const add = (k: string, s: number[]) => m.set(k, s);
  const norm = (p: string, ch: number) => { add(`${p}.weight`, [ch]); add(`${p}.bias`, [ch]); };
  const convP = (p: string, o: number, i: number, k: number) => { add(`${p}.weight`, [o, i, k, k]); add(`${p}.bias`, [o]); };
  const linP = (p: string, o: number, i: number, bias = true) => { add(`${p}.weight`, [o, i]); if (bias) add(`${p}.bias`, [o]); };
  const boc = c.block_out_channels, n = boc.length, temb = boc[0] * 4;
  const resnet = (p: string, i: number, o: number) => {
    norm(`${p}.norm1`, i); convP(`${p}.conv1`, o, i, 3); linP(`${p}.time_emb_proj`, o, temb);
    norm(`${p}.norm2`, o); convP(`${p}.conv2`, o, o, 3);
    if (i !== o) convP(`${p}.conv_shortcut`, o, i, 1);
  };
  const transformer = (p: string, ch: number, layers: number) => {
    norm(`${p}.norm`, ch);
    const proj = (q: string) => (c.use_linear_projection ? linP(q, ch, ch) : convP(q, ch, ch, 1));
    proj(`${p}.proj_in`);
    for (let l = 0; l < layers; l++) {
      const b = `${p}.transformer_blocks.${l}`;
      for (const [a, kv] of [['attn1', ch], ['attn2', c.cross_attention_dim]] as const) {
        linP(`${b}.${a}.to_q`, ch, ch, false); linP(`${b}.${a}.to_k`, ch, kv, false); linP(`${b}.${a}.to_v`, ch, kv, false);
        linP(`${b}.${a}.to_out.0`, ch, ch);
      }
      norm(`${b}.norm1`, ch); norm(`${b}.norm2`, ch); norm(`${b}.norm3`, ch);
      linP(`${b}.ff.net.0.proj`, 8 * ch, ch); linP(`${b}.ff.net.2`, ch, 4 * ch);
    }
    proj(`${p}.proj_out`);
  };
  linP('time_embedding.linear_1', temb, boc[0]); linP('time_embedding.linear_2', temb, temb);
  if (c.addition) { linP('add_embedding.linear_1', temb, c.addition.input_dim); linP('add_embedding.linear_2', temb, temb); }
  convP('conv_in', boc[0], c.in_channels, 3);
  let out = boc[0];
  for (let i = 0; i < n; i++) {
    const inCh = out; out = boc[i];
    for (let j = 0; j < c.layers_per_block; j++) {
      resnet(`down_blocks.${i}.resnets.${j}`, j === 0 ? inCh : out, out);
      if (c.down_block_types[i].startsWith('CrossAttn')) transformer(`down_blocks.${i}.attentions.${j}`, out, c.transformer_layers[i]);
    }
    if (i < n - 1) convP(`down_blocks.${i}.downsamplers.0.conv`, out, out, 3);
  }
  const last = boc[n - 1];
  resnet('mid_block.resnets.0', last, last); transformer('mid_block.attentions.0', last, c.transformer_layers[n - 1]); resnet('mid_block.resnets.1', last, last);
  const rev = [...boc].reverse();
  let prev = rev[0];
  for (let i = 0; i < n; i++) {
    const o = rev[i], inCh = rev[Math.min(i + 1, n - 1)];
    for (let j = 0; j <= c.layers_per_block; j++) {
      const skip = j === c.layers_per_block ? inCh : o;
      resnet(`up_blocks.${i}.resnets.${j}`, (j === 0 ? prev : o) + skip, o);
      if (c.up_block_types[i].startsWith('CrossAttn')) transformer(`up_blocks.${i}.attentions.${j}`, o, c.transformer_layers[n - 1 - i]);
    }
    if (i < n - 1) convP(`up_blocks.${i}.upsamplers.0.conv`, o, o, 3);
    prev = o;
  }
  norm('conv_norm_out', boc[0]);
  convP('conv_out', c.out_channels, boc[0], 3);
  return m;
}

/**
 * Random weights: weights U(-a, a) with a = 1/sqrt(fan_in) (torch's default bound for Linear/Conv),
 * biases zero, norm scales one.
 */
export function randomUNetWeights(c: UNetConfig, seed = 0): Weights {
  const rng = new Rng(seed);
  const out = new Map<string, Tensor>();
  for (const [k, shape] of unetParamShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    const isNorm = /norm[0-9_a-z]*\.weight$/.test(k) && shape.length === 1;
    if (isNorm) a.fill(1);
    else if (shape.length > 1) {
      const bound = 1 / Math.sqrt(n / shape[0]);
      for (let i = 0; i < n; i++) a[i] = (rng.uniform() * 2 - 1) * bound;
    }
    out.set(k, tensor(a, shape));
  }
  return new Weights(out, 'random init');
}
