// Which layers networks.lora wraps (sd-scripts §4.1): text-encoder attention/MLP linears (not
// SDXL te2's text_projection), the UNet's Transformer2D linears and 1x1 convs, and with conv_dim
// (LoCon) the ResNet blocks and down/upsamplers. Works on any family's components; names follow
// each component's naming (SDXL UNet: SGM/LDM paths).
import type { Weights } from '../models/weights.js';
import { type LoRAComponent, moduleName, pairComponents } from './components.js';
import { layerPaths } from './names.js';

export interface LoRATarget {
  name: string;
  path: string;
  /** 3x3 conv (rank conv_dim) rather than Linear/1x1 (rank network_dim). */
  conv3x3: boolean;
  /** In a text encoder (learning rate / multiplier group 'te'). */
  te: boolean;
  component: LoRAComponent;
}

const TE_LAYER = /^text_model\.encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])$/;
const UNET_ATTN = /attentions\.\d+\.(proj_in|proj_out|transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.0\.proj|ff\.net\.2))$/;
const UNET_CONV = /(resnets\.\d+\.(conv1|conv2|time_emb_proj|conv_shortcut)|(downsamplers|upsamplers)\.0\.conv)$/;

function targeted(c: LoRAComponent, p: string, conv: boolean): boolean {
  if (c.lrGroup === 'te') return TE_LAYER.test(p);
  return UNET_ATTN.test(p) || (conv && UNET_CONV.test(p));
}

/** Targets of the given components, in their order (sd-scripts: text encoders, then the UNet). */
export function loraTargets(w: readonly LoRAComponent[] | { unet?: Weights; textEncoder?: Weights }, opts: { conv: boolean }): LoRATarget[] {
  const components = Array.isArray(w) ? w as readonly LoRAComponent[] : pairComponents(w as { unet?: Weights; textEncoder?: Weights });
  const out: LoRATarget[] = [];
  for (const c of components) {
    for (const p of layerPaths(c.weights)) {
      if (!targeted(c, p, opts.conv)) continue;
      const s = c.weights.raw(`${p}.weight`).shape;
      out.push({ name: moduleName(c, p), path: p, conv3x3: s.length === 4 && s[2] * s[3] > 1, te: c.lrGroup === 'te', component: c });
    }
  }
  return out;
}
