// SDXL: CLIP ViT-L (`conditioner.embedders.0.transformer.*`) and OpenCLIP bigG with projection
// (`conditioner.embedders.1.model.*`). Context = both penultimate hidden states (no final LayerNorm)
// concatenated; pooled text embeds = encoder 2's final-LN EOS row through text_projection, from the
// first chunk of a long prompt; six size/crop ids per image (diffusers StableDiffusionXLPipeline,
// sd-scripts strategy_sdxl.py and sdxl_train_network.py).
import * as E from '../engine/index.js';
import { SD15_TEXT_CONFIG, SD15_VAE_CONFIG } from '../models/sd15-configs.js';
import type { ModelFamily, SizeConditioning, TextConditioning, TextEncoderRun } from './family.js';
import { stitchChunks } from './text.js';

/** stabilityai/stable-diffusion-xl-base-1.0 unet/config.json. */
export const SDXL_UNET_CONFIG = {
  in_channels: 4, out_channels: 4, block_out_channels: [320, 640, 1280],
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn', layers_per_block: 2, attention_head_dim: [5, 10, 20],
  transformer_layers_per_block: [1, 2, 10], cross_attention_dim: 2048, norm_num_groups: 32, norm_eps: 1e-5,
  use_linear_projection: true, flip_sin_to_cos: true, freq_shift: 0, downsample_padding: 1,
  addition_embed_type: 'text_time', addition_time_embed_dim: 256, projection_class_embeddings_input_dim: 2816,
};
/** stabilityai/stable-diffusion-xl-base-1.0 vae/config.json: the SD VAE with the SDXL latent scale. */
export const SDXL_VAE_CONFIG = { ...SD15_VAE_CONFIG, scaling_factor: 0.13025 };
/** text_encoder/config.json: CLIP ViT-L. */
export const SDXL_TEXT_CONFIG_1 = { ...SD15_TEXT_CONFIG, projection_dim: 768 };
/** text_encoder_2/config.json: OpenCLIP ViT-bigG/14 text tower with its 1280 -> 1280 projection. */
export const SDXL_TEXT_CONFIG_2 = {
  hidden_size: 1280, intermediate_size: 5120, num_hidden_layers: 32, num_attention_heads: 20, max_position_embeddings: 77,
  vocab_size: 49408, hidden_act: 'gelu', layer_norm_eps: 1e-5, eos_token_id: 2, projection_dim: 1280,
};

function sdxlCondition(outputs: TextEncoderRun[], batch: number, chunks: number, clipSkip: number | undefined): TextConditioning {
  if (clipSkip !== undefined && clipSkip !== 1) {
    throw new Error(`clip_skip ${clipSkip}: SDXL has no clip skip (both text encoders give their penultimate layer, as sd-scripts' SDXL training does)`);
  }
  const [te1, te2] = outputs;
  const penultimate = (r: TextEncoderRun) => stitchChunks(r.hiddenStates[r.hiddenStates.length - 2], batch, chunks);
  const context = E.concat([penultimate(te1), penultimate(te2)], -1);
  if (!te2.textEmbeds) throw new Error('SDXL: text encoder 2 gave no text_embeds (it must be a CLIPTextModelWithProjection)');
  // sd-scripts pools from the first chunk of each caption (pool2[::n_size]).
  const pooled = chunks === 1 ? te2.textEmbeds
    : E.concat(Array.from({ length: batch }, (_, b) => E.slice(te2.textEmbeds!, 0, b * chunks, b * chunks + 1)), 0);
  return { context, textEmbeds: pooled };
}

/** [B, 6] time ids in diffusers' order: original h, w, crop top, left, target h, w. */
export function sdxlTimeIds(sizes: SizeConditioning[]): E.Tensor {
  return E.tensor(sizes.flatMap((s) => [...s.originalSize, ...s.cropTopLeft, ...s.targetSize]), [sizes.length, 6], 'f32', E.cpuBackend);
}

export const SDXL: ModelFamily = {
  id: 'sdxl',
  name: 'SDXL',
  // The OpenCLIP bigG encoder, or (a UNet-only file) the added-conditioning MLP `label_emb`.
  detectKeys: (keys) => keys.has('model.diffusion_model.label_emb.0.0.weight') || [...keys].some((k) => k.startsWith('conditioner.embedders.1.model.')),
  unetPrefix: 'model.diffusion_model.',
  vaePrefix: 'first_stage_model.',
  textEncoders: [
    {
      id: 'te1', loraPrefix: 'lora_te1_', folder: 'text_encoder', tokenizerFolder: 'tokenizer',
      singleFilePrefix: 'conditioner.embedders.0.transformer.', layout: 'transformers', dropLastBlock: false,
      withProjection: false, padId: 'eos', defaultConfig: SDXL_TEXT_CONFIG_1,
    },
    {
      id: 'te2', loraPrefix: 'lora_te2_', folder: 'text_encoder_2', tokenizerFolder: 'tokenizer_2',
      singleFilePrefix: 'conditioner.embedders.1.model.', layout: 'openclip', dropLastBlock: false,
      withProjection: true, padId: 0, defaultConfig: SDXL_TEXT_CONFIG_2,
    },
  ],
  defaultConfigs: { unet: SDXL_UNET_CONFIG, vae: SDXL_VAE_CONFIG },
  // The SDXL VAE overflows in f16 (sd-scripts' no_half_vae), so it stays f32.
  vae: { scalingFactor: 0.13025, keepF32: true },
  defaults: () => ({ resolution: 1024, bucketResoSteps: 32 }),
  latentCacheSuffix: '_sdxl',
  loraUnetNames: 'sgm',
  clipSkip: false,
  condition: sdxlCondition,
  addedConditioning: (text, sizes) => {
    if (!text.textEmbeds) throw new Error('SDXL: the text conditioning has no pooled text_embeds');
    if (sizes.length !== text.textEmbeds.shape[0]) throw new Error(`SDXL: ${sizes.length} image sizes for ${text.textEmbeds.shape[0]} captions`);
    return { textEmbeds: text.textEmbeds, timeIds: sdxlTimeIds(sizes) };
  },
  predictionFromWeights: (all) => (all.has('v_pred') ? 'v_prediction' : 'epsilon'),
  metadata: () => ({
    ss_v2: 'False',
    ss_base_model_version: 'sdxl_base_v1-0',
    'modelspec.architecture': 'stable-diffusion-xl-v1-base/lora',
    'modelspec.implementation': 'https://github.com/Stability-AI/generative-models',
  }),
};
