// Which layers networks.lora wraps (sd-scripts §4.1): text-encoder attention/MLP linears, the
// UNet's Transformer2D linears and 1x1 convs, and with conv_dim (LoCon) the ResNet blocks and
// down/upsamplers.
import type { Weights } from '../models/weights.js';
import { TE_PREFIX, UNET_PREFIX, kohyaName, layerPaths } from './names.js';

export interface LoRATarget {
  name: string;
  path: string;
  /** 3x3 conv (rank conv_dim) rather than Linear/1x1 (rank network_dim). */
  conv3x3: boolean;
  te: boolean;
}

const TE_LAYER = /^text_model\.encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])$/;
const UNET_ATTN = /attentions\.\d+\.(proj_in|proj_out|transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.0\.proj|ff\.net\.2))$/;
const UNET_CONV = /(resnets\.\d+\.(conv1|conv2|time_emb_proj|conv_shortcut)|(downsamplers|upsamplers)\.0\.conv)$/;

export function loraTargets(w: { unet?: Weights; textEncoder?: Weights }, opts: { conv: boolean }): LoRATarget[] {
  const out: LoRATarget[] = [];
  if (w.textEncoder) {
    for (const p of layerPaths(w.textEncoder)) if (TE_LAYER.test(p)) out.push({ name: kohyaName(TE_PREFIX, p), path: p, conv3x3: false, te: true });
  }
  if (w.unet) {
    for (const p of layerPaths(w.unet)) {
      const attn = UNET_ATTN.test(p), conv = opts.conv && UNET_CONV.test(p);
      if (!attn && !conv) continue;
      const s = w.unet.raw(`${p}.weight`).shape;
      out.push({ name: kohyaName(UNET_PREFIX, p), path: p, conv3x3: s.length === 4 && s[2] * s[3] > 1, te: false });
    }
  }
  return out;
}
