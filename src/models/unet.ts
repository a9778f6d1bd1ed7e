// UNet2DConditionModel (SD 1.x / 2.x / SDXL) as in diffusers (models/unets/unet_2d_condition.py),
// driven by its config; weights are read by their diffusers names. SDXL's `text_time` added
// conditioning arrives as a typed argument, diffusers' `added_cond_kwargs`.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { attention, conv, gnorm, gnormSilu, lin, lnorm, resnet, toImage, toTokens } from './layers.js';
import type { UNetConfig } from './unet-config.js';
import type { Weights } from './weights.js';

/** Sinusoidal timestep embedding (diffusers get_timestep_embedding, max_period 10000). */
export function timestepEmbedding(t: Tensor, dim: number, flipSinToCos: boolean, freqShift: number, backend = t.backend): Tensor {
  const half = Math.floor(dim / 2);
  const ts = hostValues(t);
  const out = new Float32Array(ts.length * dim);
  const f = Math.fround;
  // Rounded to f32 step by step as torch computes it, so large timesteps match to the last bit.
  const logMax = f(-Math.log(10000));
  for (let b = 0; b < ts.length; b++) {
    for (let i = 0; i < half; i++) {
      const freq = f(Math.exp(f(f(logMax * i) / (half - freqShift))));
      const a = f(freq * ts[b]);
      const s = Math.sin(a), c = Math.cos(a);
      out[b * dim + i] = flipSinToCos ? c : s;
      out[b * dim + half + i] = flipSinToCos ? s : c;
    }
  }
  return E.tensor(out, [ts.length, dim], 'f32', backend);
}

/** Timesteps as numbers (device tensors made from host values keep a host copy). */
const hostValues = (t: Tensor): ArrayLike<number> => (t.dtype === 'f16' ? t.to('f32').dataSync() : t.dataSync());

/** SDXL's added conditioning (diffusers `added_cond_kwargs`). */
export interface AddedConditioning {
  /** Pooled text embedding of the second text encoder, [B, projection_dim]. */
  textEmbeds: Tensor;
  /** [B, 6]: original h, w, crop top, left, target h, w (host values; not differentiated). */
  timeIds: Tensor;
}

export interface UNetOptions {
  /** Recompute each block in backward instead of keeping its activations. */
  gradientCheckpointing?: boolean;
  /** Random state used inside blocks (LoRA dropout), replayed when a block is recomputed. */
  randomState?: E.ReplayableState;
}

export class UNet2DConditionModel {
  constructor(readonly config: UNetConfig, readonly weights: Weights, readonly options: UNetOptions = {}) {}

  private block(fn: (...xs: Tensor[]) => Tensor, ...xs: Tensor[]): Tensor {
    return this.options.gradientCheckpointing ? E.checkpointWithState(this.options.randomState, fn, ...xs) : fn(...xs);
  }

  private transformer(p: string, x: Tensor, context: Tensor, heads: number, layers: number): Tensor {
    const w = this.weights, c = this.config;
    const [, , h, wd] = x.shape;
    let hs = gnorm(w, `${p}.norm`, x, c.norm_num_groups, 1e-6);
    if (c.use_linear_projection) hs = lin(w, `${p}.proj_in`, toTokens(hs));
    else hs = toTokens(conv(w, `${p}.proj_in`, hs));
    for (let i = 0; i < layers; i++) {
      const b = `${p}.transformer_blocks.${i}`;
      hs = E.add(hs, attention(w, `${b}.attn1`, lnorm(w, `${b}.norm1`, hs), null, heads));
      hs = E.add(hs, attention(w, `${b}.attn2`, lnorm(w, `${b}.norm2`, hs), context, heads));
      const [u, gate] = E.chunk(lin(w, `${b}.ff.net.0.proj`, lnorm(w, `${b}.norm3`, hs)), 2, -1);
      hs = E.add(hs, lin(w, `${b}.ff.net.2`, E.mul(u, E.gelu(gate))));
    }
    const out = c.use_linear_projection ? toImage(lin(w, `${p}.proj_out`, hs), h, wd) : conv(w, `${p}.proj_out`, toImage(hs, h, wd));
    return E.add(out, x);
  }

  /** time_embedding(sinusoidal(t)): linear, SiLU, linear. [B, temb] */
  timeEmbedding(timesteps: Tensor, batch: number, backend: E.Backend): Tensor {
    const c = this.config;
    let ts = timesteps;
    if (ts.size === 1 && batch > 1) ts = E.tensor(new Array(batch).fill(hostValues(ts)[0]), [batch], 'f32', E.cpuBackend);
    const tproj = timestepEmbedding(ts, c.block_out_channels[0], c.flip_sin_to_cos, c.freq_shift, backend);
    return lin(this.weights, 'time_embedding.linear_2', E.silu(lin(this.weights, 'time_embedding.linear_1', tproj)));
  }

  /**
   * SDXL `text_time` input of `add_embedding`: the pooled text embeds, then each of the six ids
   * embedded sinusoidally (flattened, then [B, 6 * dim]). [B, projection_class_embeddings_input_dim]
   */
  addEmbeds(added: AddedConditioning | undefined, batch: number, backend: E.Backend): Tensor | null {
    const a = this.config.addition;
    if (!a) {
      if (added) throw new Error(`${this.weights.source}: this UNet has no addition_embed_type, so it takes no text_embeds/time_ids (an SD 1.x/2.x model given SDXL conditioning)`);
      return null;
    }
    if (!added) throw new Error(`${this.weights.source}: addition_embed_type "text_time" needs text_embeds and time_ids (SDXL conditioning)`);
    const { textEmbeds, timeIds } = added;
    if (timeIds.shape[0] !== batch || textEmbeds.shape[0] !== batch) throw new Error(`text_embeds ${JSON.stringify(textEmbeds.shape)} / time_ids ${JSON.stringify(timeIds.shape)}: batch must be ${batch}`);
    const flat = E.tensor(hostValues(timeIds), [timeIds.size], 'f32', E.cpuBackend);
    const timeEmb = E.reshape(timestepEmbedding(flat, a.time_embed_dim, this.config.flip_sin_to_cos, this.config.freq_shift, backend), [batch, -1]);
    const addEmbeds = E.concat([textEmbeds.dtype === 'f32' ? textEmbeds : textEmbeds.to('f32'), timeEmb], 1);
    if (addEmbeds.shape[1] !== a.input_dim) {
      throw new Error(`text_embeds width ${textEmbeds.shape[1]} + ${timeIds.shape[1]} time ids x ${a.time_embed_dim} != projection_class_embeddings_input_dim ${a.input_dim}`);
    }
    return addEmbeds;
  }

  /** `add_embedding(addEmbeds)` (linear, SiLU, linear), added to the time embedding; null without addition_embed_type. [B, temb] */
  addedEmbedding(added: AddedConditioning | undefined, batch: number, backend: E.Backend): Tensor | null {
    const x = this.addEmbeds(added, batch, backend);
    return x && lin(this.weights, 'add_embedding.linear_2', E.silu(lin(this.weights, 'add_embedding.linear_1', x)));
  }

  forward(sample: Tensor, timesteps: Tensor, context: Tensor, added?: AddedConditioning): Tensor {
    const w = this.weights, c = this.config;
    const groups = c.norm_num_groups, eps = c.norm_eps;
    const n = c.block_out_channels.length;
    let temb = this.timeEmbedding(timesteps, sample.shape[0], sample.backend);
    const aug = this.addedEmbedding(added, sample.shape[0], sample.backend);
    if (aug) temb = E.add(temb, aug);

    let h = conv(w, 'conv_in', sample, { padding: 1 });
    const skips: Tensor[] = [h];
    for (let i = 0; i < n; i++) {
      const p = `down_blocks.${i}`;
      const cross = c.down_block_types[i].startsWith('CrossAttn');
      for (let j = 0; j < c.layers_per_block; j++) {
        h = this.block((x, t) => resnet(w, `${p}.resnets.${j}`, x, t, groups, eps), h, temb);
        if (cross) h = this.block((x, ctx) => this.transformer(`${p}.attentions.${j}`, x, ctx, c.heads[i], c.transformer_layers[i]), h, context);
        skips.push(h);
      }
      if (i < n - 1) {
        h = conv(w, `${p}.downsamplers.0.conv`, h, { stride: 2, padding: c.downsample_padding });
        skips.push(h);
      }
    }

    h = this.block((x, t) => resnet(w, 'mid_block.resnets.0', x, t, groups, eps), h, temb);
    h = this.block((x, ctx) => this.transformer('mid_block.attentions.0', x, ctx, c.heads[n - 1], c.transformer_layers[n - 1]), h, context);
    h = this.block((x, t) => resnet(w, 'mid_block.resnets.1', x, t, groups, eps), h, temb);

    for (let i = 0; i < n; i++) {
      const p = `up_blocks.${i}`;
      const level = n - 1 - i;
      const cross = c.up_block_types[i].startsWith('CrossAttn');
      for (let j = 0; j <= c.layers_per_block; j++) {
        h = E.concat([h, skips.pop()!], 1);
        h = this.block((x, t) => resnet(w, `${p}.resnets.${j}`, x, t, groups, eps), h, temb);
        if (cross) h = this.block((x, ctx) => this.transformer(`${p}.attentions.${j}`, x, ctx, c.heads[level], c.transformer_layers[level]), h, context);
      }
      if (i < n - 1) h = conv(w, `${p}.upsamplers.0.conv`, E.upsampleNearest2x(h), { padding: 1 });
    }
    h = gnormSilu(w, 'conv_norm_out', h, groups, eps);
    return conv(w, 'conv_out', h, { padding: 1 });
  }
}
