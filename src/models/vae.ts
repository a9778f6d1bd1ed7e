// AutoencoderKL (diffusers): encoder -> quant_conv -> diagonal Gaussian, post_quant_conv -> decoder.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { attention, conv, gnorm, gnormSilu, padRightBottom, resnet, toImage, toTokens } from './layers.js';
import type { Weights } from './weights.js';

export interface VAEConfig {
  in_channels: number;
  out_channels: number;
  latent_channels: number;
  block_out_channels: number[];
  layers_per_block: number;
  norm_num_groups: number;
  scaling_factor: number;
  use_quant_conv: boolean;
  use_post_quant_conv: boolean;
  mid_block_add_attention: boolean;
}

export function parseVAEConfig(raw: Record<string, unknown>, source = 'vae config'): VAEConfig {
  // Latent statistics other than one scale (SD3/Flux-style VAEs, Playground) change encode/decode.
  for (const k of ['shift_factor', 'latents_mean', 'latents_std']) {
    if (raw[k] !== undefined && raw[k] !== null) throw new Error(`${source}: "${k}" is not supported (Stable Diffusion 1.x/2.x/SDXL VAEs use scaling_factor only)`);
  }
  return {
    in_channels: (raw.in_channels as number) ?? 3,
    out_channels: (raw.out_channels as number) ?? 3,
    latent_channels: (raw.latent_channels as number) ?? 4,
    block_out_channels: (raw.block_out_channels as number[]) ?? [64],
    layers_per_block: (raw.layers_per_block as number) ?? 1,
    norm_num_groups: (raw.norm_num_groups as number) ?? 32,
    scaling_factor: (raw.scaling_factor as number) ?? 0.18215,
    use_quant_conv: (raw.use_quant_conv as boolean) ?? true,
    use_post_quant_conv: (raw.use_post_quant_conv as boolean) ?? true,
    mid_block_add_attention: (raw.mid_block_add_attention as boolean) ?? true,
  };
}

export interface LatentDistribution {
  mean: Tensor;
  /** clamp(logvar, -30, 20) as diffusers' DiagonalGaussianDistribution. */
  logvar: Tensor;
  std: Tensor;
}

const EPS = 1e-6;

export class AutoencoderKL {
  constructor(readonly config: VAEConfig, readonly weights: Weights) {}

  private mid(p: string, x: Tensor): Tensor {
    const w = this.weights, g = this.config.norm_num_groups;
    let h = resnet(w, `${p}.resnets.0`, x, null, g, EPS);
    if (this.config.mid_block_add_attention) {
      const [, , hh, ww] = h.shape;
      const a = attention(w, `${p}.attentions.0`, toTokens(gnorm(w, `${p}.attentions.0.group_norm`, h, g, EPS)), null, 1);
      h = E.add(toImage(a, hh, ww), h);
    }
    return resnet(w, `${p}.resnets.1`, h, null, g, EPS);
  }

  /** Moments [N, 2*latent, h, w] (after quant_conv): mean then raw logvar. */
  encoderMoments(image: Tensor): Tensor {
    const w = this.weights, c = this.config, g = c.norm_num_groups;
    let h = conv(w, 'encoder.conv_in', image, { padding: 1 });
    const n = c.block_out_channels.length;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < c.layers_per_block; j++) h = resnet(w, `encoder.down_blocks.${i}.resnets.${j}`, h, null, g, EPS);
      if (i < n - 1) h = conv(w, `encoder.down_blocks.${i}.downsamplers.0.conv`, padRightBottom(h), { stride: 2 });
    }
    h = this.mid('encoder.mid_block', h);
    h = conv(w, 'encoder.conv_out', gnormSilu(w, 'encoder.conv_norm_out', h, g, EPS), { padding: 1 });
    return c.use_quant_conv ? conv(w, 'quant_conv', h) : h;
  }

  encode(image: Tensor): LatentDistribution {
    const m = this.encoderMoments(image);
    const l = this.config.latent_channels;
    const mean = E.slice(m, 1, 0, l);
    const raw = E.slice(m, 1, l, 2 * l);
    const logvar = E.clamp(raw, -30, 20);
    return { mean, logvar, std: E.exp(E.mulScalar(logvar, 0.5)) };
  }

  /** mean + std * noise (the noise supplied so runs are reproducible). */
  static sample(d: LatentDistribution, noise: Tensor): Tensor {
    return E.add(d.mean, E.mul(d.std, noise));
  }

  decode(latent: Tensor): Tensor {
    const w = this.weights, c = this.config, g = c.norm_num_groups;
    let h = c.use_post_quant_conv ? conv(w, 'post_quant_conv', latent) : latent;
    h = conv(w, 'decoder.conv_in', h, { padding: 1 });
    h = this.mid('decoder.mid_block', h);
    const n = c.block_out_channels.length;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= c.layers_per_block; j++) h = resnet(w, `decoder.up_blocks.${i}.resnets.${j}`, h, null, g, EPS);
      if (i < n - 1) h = conv(w, `decoder.up_blocks.${i}.upsamplers.0.conv`, E.upsampleNearest2x(h), { padding: 1 });
    }
    return conv(w, 'decoder.conv_out', gnormSilu(w, 'decoder.conv_norm_out', h, g, EPS), { padding: 1 });
  }
}
