// SD 2.x: the OpenCLIP ViT-H text tower (`cond_stage_model.model.*`) converted to a CLIPTextModel
// without its last block, so the context is the penultimate block then the final LayerNorm
// (FrozenOpenCLIPEmbedder layer="penultimate"; diffusers convert_open_clip_checkpoint, sd-scripts
// convert_ldm_clip_checkpoint_v2); sd-scripts' clip_skip applies to that converted model as for v1.
// 768-v checkpoints predict v; the keys are the same as 512-base, so the weights decide (below).
import type { Tensor } from '../engine/index.js';
import { diffusersToLdm, unetPrefixMap } from '../models/ldm-keys.js';
import { SD15_UNET_CONFIG, SD15_VAE_CONFIG } from '../models/sd15-configs.js';
import type { UNetConfig } from '../models/unet-config.js';
import type { ModelFamily, Prediction } from './family.js';
import { lastHiddenCondition, sd12Metadata } from './sd1.js';

/** stabilityai/stable-diffusion-2-1 unet/config.json (the values that differ from SD 1.5). */
export const SD2_UNET_CONFIG = {
  ...SD15_UNET_CONFIG, attention_head_dim: [5, 10, 20, 20], cross_attention_dim: 1024, use_linear_projection: true,
};
/** stabilityai/stable-diffusion-2-1 text_encoder/config.json (OpenCLIP ViT-H without its last block). */
export const SD2_TEXT_CONFIG = {
  hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 23, num_attention_heads: 16, max_position_embeddings: 77,
  vocab_size: 49408, hidden_act: 'gelu', layer_norm_eps: 1e-5, eos_token_id: 2, projection_dim: 512,
};

/**
 * v-prediction from a single file: a `v_pred` marker key, else ComfyUI's heuristic
 * (supported_models.py SD20.model_type): the spread of the last output transformer's first norm
 * bias is larger in 768-v checkpoints (std > 0.09). Inpainting UNets (in_channels != 4) are epsilon.
 */
export function sd2Prediction(all: ReadonlyMap<string, Tensor>, unet: UNetConfig): Prediction {
  if (all.has('v_pred')) return 'v_prediction';
  if (unet.in_channels !== 4) return 'epsilon';
  const n = unet.block_out_channels.length;
  const probe = diffusersToLdm(`up_blocks.${n - 1}.attentions.${unet.layers_per_block}.transformer_blocks.0.norm1.bias`, unetPrefixMap(unet));
  const t = all.get(`model.diffusion_model.${probe}`);
  if (!t) return 'epsilon';
  const v = t.to('f32').dataSync();
  let mean = 0;
  for (const x of v) mean += x / v.length;
  let variance = 0;
  for (const x of v) variance += (x - mean) ** 2 / v.length;
  return Math.sqrt(variance) > 0.09 ? 'v_prediction' : 'epsilon';
}

export const SD2: ModelFamily = {
  id: 'sd2',
  name: 'SD 2.x',
  detectKeys: (keys) => [...keys].some((k) => k.startsWith('cond_stage_model.model.')),
  unetPrefix: 'model.diffusion_model.',
  vaePrefix: 'first_stage_model.',
  textEncoders: [{
    id: 'te', loraPrefix: 'lora_te_', folder: 'text_encoder', tokenizerFolder: 'tokenizer',
    singleFilePrefix: 'cond_stage_model.model.', layout: 'openclip', dropLastBlock: true,
    withProjection: false, padId: 0, defaultConfig: SD2_TEXT_CONFIG,
  }],
  defaultConfigs: { unet: SD2_UNET_CONFIG, vae: SD15_VAE_CONFIG },
  vae: { scalingFactor: 0.18215, keepF32: false },
  defaults: (prediction) => ({ resolution: prediction === 'v_prediction' ? 768 : 512, bucketResoSteps: 64 }),
  latentCacheSuffix: '_sd',
  clipSkip: true,
  condition: lastHiddenCondition,
  addedConditioning: () => undefined,
  predictionFromWeights: sd2Prediction,
  metadata: (prediction) => sd12Metadata(true, prediction),
};
