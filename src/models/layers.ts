// Building blocks shared by the UNet and the VAE, following diffusers' module names so that
// every weight key maps one to one (e.g. `${p}.norm1.weight`).
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { Weights } from './weights.js';

/** Adds the outputs of the layer's runtime adapters (LoRA) to its base output. */
function adapted(w: Weights, p: string, x: Tensor, y: Tensor, opts?: E.Conv2dOptions): Tensor {
  const list = w.adapters.get(p);
  if (!list) return y;
  for (const a of list) {
    const d = a.apply(x, opts);
    if (d) y = E.add(y, d);
  }
  return y;
}

export const conv = (w: Weights, p: string, x: Tensor, opts: E.Conv2dOptions = {}): Tensor =>
  adapted(w, p, x, E.conv2d(x, w.raw(`${p}.weight`), w.has(`${p}.bias`) ? w.get(`${p}.bias`) : null, opts), opts);

export const lin = (w: Weights, p: string, x: Tensor): Tensor =>
  adapted(w, p, x, E.linear(x, w.raw(`${p}.weight`), w.has(`${p}.bias`) ? w.get(`${p}.bias`) : null));

export const gnorm = (w: Weights, p: string, x: Tensor, groups: number, eps: number): Tensor =>
  E.groupNorm(x, groups, w.get(`${p}.weight`), w.get(`${p}.bias`), eps);

/** silu(group norm), fused (ResNet blocks and the networks' output heads). */
export const gnormSilu = (w: Weights, p: string, x: Tensor, groups: number, eps: number): Tensor =>
  E.groupNormSilu(x, groups, w.get(`${p}.weight`), w.get(`${p}.bias`), eps);

export const lnorm = (w: Weights, p: string, x: Tensor, eps = 1e-5): Tensor =>
  E.layerNorm(x, w.get(`${p}.weight`), w.get(`${p}.bias`), eps);

/** diffusers ResnetBlock2D (resnet_time_scale_shift "default", output_scale_factor 1). */
export function resnet(w: Weights, p: string, x: Tensor, temb: Tensor | null, groups: number, eps: number): Tensor {
  let h = conv(w, `${p}.conv1`, gnormSilu(w, `${p}.norm1`, x, groups, eps), { padding: 1 });
  if (temb) {
    const t = lin(w, `${p}.time_emb_proj`, E.silu(temb));
    h = E.add(h, E.reshape(t, [t.shape[0], t.shape[1], 1, 1]));
  }
  h = conv(w, `${p}.conv2`, gnormSilu(w, `${p}.norm2`, h, groups, eps), { padding: 1 });
  const skip = w.has(`${p}.conv_shortcut.weight`) ? conv(w, `${p}.conv_shortcut`, x) : x;
  return E.add(skip, h);
}

/** [B, C, H, W] -> [B, H*W, C] */
export const toTokens = (x: Tensor): Tensor => E.transpose(E.reshape(x, [x.shape[0], x.shape[1], -1]), 1, 2);
/** [B, H*W, C] -> [B, C, H, W] */
export const toImage = (t: Tensor, h: number, wd: number): Tensor => E.reshape(E.transpose(t, 1, 2), [t.shape[0], t.shape[2], h, wd]);

/** diffusers Attention: q from x, k/v from context (or x), `heads` heads, output projection. */
export function attention(w: Weights, p: string, x: Tensor, context: Tensor | null, heads: number): Tensor {
  const ctx = context ?? x;
  const q = lin(w, `${p}.to_q`, x), k = lin(w, `${p}.to_k`, ctx), v = lin(w, `${p}.to_v`, ctx);
  return lin(w, `${p}.to_out.0`, E.multiHeadAttention(q, k, v, heads));
}

/** Pads the right and bottom edge of [N, C, H, W] with one row/column of zeros (VAE Downsample2D). */
export function padRightBottom(x: Tensor): Tensor {
  const [n, c, h, wd] = x.shape;
  const col = E.zeros([n, c, h, 1], x.dtype, x.backend);
  const wider = E.concat([x, col], 3);
  return E.concat([wider, E.zeros([n, c, 1, wd + 1], x.dtype, x.backend)], 2);
}
