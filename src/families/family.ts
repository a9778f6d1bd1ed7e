// A model family (SD 1.x, SD 2.x, SDXL) as data: where each component lives in a single file and a
// diffusers folder, how its text encoders are laid out and condition the UNet, its LoRA prefixes,
// defaults and the metadata sd-scripts writes for it. This plays the part of sd-scripts' per-family
// scripts and strategies (train_network.py / sdxl_train_network.py, library/strategy_sd.py,
// strategy_sdxl.py, sai_model_spec.py), so that code elsewhere reads the family instead of branching.
import type { Tensor } from '../engine/index.js';
import type { AddedConditioning } from '../models/unet.js';
import type { UNetConfig } from '../models/unet-config.js';

export type FamilyId = 'sd1' | 'sd2' | 'sdxl';
export type Prediction = 'epsilon' | 'v_prediction';

/** One text encoder of a family, in both storage layouts. */
export interface TextEncoderSpec {
  /** Component id; also the LoRA component ('te' for SD 1.x/2.x, 'te1'/'te2' for SDXL). */
  id: 'te' | 'te1' | 'te2';
  /** kohya LoRA name prefix. */
  loraPrefix: 'lora_te_' | 'lora_te1_' | 'lora_te2_';
  /** diffusers subfolders. */
  folder: 'text_encoder' | 'text_encoder_2';
  tokenizerFolder: 'tokenizer' | 'tokenizer_2';
  /** Key prefix in a single-file checkpoint. */
  singleFilePrefix: string;
  /** 'transformers': CLIPTextModel keys after the prefix; 'openclip': OpenCLIP text tower (fused in_proj). */
  layout: 'transformers' | 'openclip';
  /**
   * OpenCLIP towers whose converted model stops one block early (SD 2.x conditions on the penultimate
   * block, so diffusers and sd-scripts drop the last resblock; SDXL keeps them all).
   */
  dropLastBlock: boolean;
  /** CLIPTextModelWithProjection (`text_projection`, SDXL's pooled text embeds). */
  withProjection: boolean;
  /** Tokenizer padding: the tokenizer's EOS (CLIP ViT-L) or a fixed id (OpenCLIP's "!" = 0). */
  padId: 'eos' | number;
  /** transformers config used when a single file comes without one. */
  defaultConfig: Record<string, unknown>;
}

/** What the text encoders give the UNet: the context, and SDXL's pooled text embeds. */
export interface TextConditioning {
  /** [B, tokens, cross_attention_dim] */
  context: Tensor;
  /** [B, projection_dim]: pooled text embeds (SDXL), for the UNet's added conditioning. */
  textEmbeds?: Tensor;
}

/** One image's SDXL size conditioning, as sd-scripts records it per bucket (heights first). */
export interface SizeConditioning {
  originalSize: [h: number, w: number];
  cropTopLeft: [top: number, left: number];
  targetSize: [h: number, w: number];
}

export interface ModelFamily {
  id: FamilyId;
  /** Name shown in `inspect`, logs and errors. */
  name: string;
  /** Whether a single file's keys belong to this family. */
  detectKeys(keys: ReadonlySet<string>): boolean;
  /** The UNet's single-file prefix and the VAE's. */
  unetPrefix: 'model.diffusion_model.';
  vaePrefix: 'first_stage_model.';
  textEncoders: readonly TextEncoderSpec[];
  /** diffusers configs used when a single file comes without them. */
  defaultConfigs: { unet: Record<string, unknown>; vae: Record<string, unknown> };
  /** Latent scale (vae.config.scaling_factor default) and whether the VAE stays f32 under mixed precision (no_half_vae). */
  vae: { scalingFactor: number; keepF32: boolean };
  /** sd-scripts defaults: resolution (side, px) and bucket step. */
  defaults(prediction: Prediction): { resolution: number; bucketResoSteps: number };
  /** sd-scripts' latent cache file suffix (`_sd` / `_sdxl`). */
  latentCacheSuffix: '_sd' | '_sdxl';
  /**
   * How kohya LoRA files name UNet modules: by diffusers path (SD 1.x/2.x, the default) or by the
   * original SGM/LDM path (SDXL: sd-scripts builds its SDXL LoRAs on its LDM-layout UNet).
   */
  loraUnetNames?: 'diffusers' | 'sgm';
  /** Whether sd-scripts' clip_skip applies (SDXL takes fixed penultimate layers). */
  clipSkip: boolean;
  /**
   * From the text encoders' outputs per chunk to the conditioning; `chunks` is the number of
   * 77-token chunks per caption (max_token_length 150/225).
   */
  condition(outputs: TextEncoderRun[], batch: number, chunks: number, clipSkip: number | undefined): TextConditioning;
  /** The UNet's added conditioning (SDXL), from the text conditioning and per-image sizes. */
  addedConditioning(text: TextConditioning, sizes: SizeConditioning[]): AddedConditioning | undefined;
  /**
   * Prediction type read from a single file's tensors when the file says (SD 2.x 768-v), else
   * epsilon; `v_parameterization` overrides it.
   */
  predictionFromWeights(all: ReadonlyMap<string, Tensor>, unet: UNetConfig): Prediction;
  /** The LoRA metadata keys sd-scripts writes that depend on the base model. */
  metadata(prediction: Prediction): Record<string, string>;
}

/** What `condition` gets from one text encoder run over [B * chunks, 77] ids. */
export interface TextEncoderRun {
  spec: TextEncoderSpec;
  /** Embeddings output then each layer's output, no final norm. */
  hiddenStates: Tensor[];
  /** final_layer_norm applied to one hidden state (for sd-scripts' clip_skip). */
  finalNorm: (h: Tensor) => Tensor;
  /** Pooled text embeds (encoders with projection). */
  textEmbeds?: Tensor;
}
