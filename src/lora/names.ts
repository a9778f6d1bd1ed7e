// kohya LoRA module names: prefix + module path with '.' replaced by '_'
// (`lora_unet_down_blocks_1_attentions_0_proj_in`, `lora_te_text_model_encoder_layers_0_mlp_fc1`).
import type { Weights } from '../models/weights.js';

export const UNET_PREFIX = 'lora_unet_';
export const TE_PREFIX = 'lora_te_';

export const kohyaName = (prefix: string, modulePath: string): string => prefix + modulePath.replace(/\./g, '_');

/** Module paths of every Linear/Conv2d weight in a model (2-D or 4-D `.weight` tensors; not the text encoders' embedding tables). */
export function layerPaths(w: Weights): string[] {
  const out: string[] = [];
  // time_embedding.linear_1/2 are Linear layers (LyCORIS' full preset trains them); token/position embeddings are tables.
  for (const [k, t] of w.tensors) if (k.endsWith('.weight') && (t.rank === 2 || t.rank === 4) && !/(token|position)_embedding\.weight$/.test(k)) out.push(k.slice(0, -'.weight'.length));
  return out;
}

/** kohya name -> module path, for the layers of one model. */
export function nameIndex(w: Weights, prefix: string): Map<string, string> {
  return new Map(layerPaths(w).map((p) => [kohyaName(prefix, p), p]));
}
