// SD 1.x: one CLIP ViT-L text encoder (`cond_stage_model.transformer.*`), context = its last hidden
// state, or with sd-scripts' clip_skip n the final LayerNorm of hidden_states[-n] (strategy_sd.py).
import { SD15_TEXT_CONFIG, SD15_UNET_CONFIG, SD15_VAE_CONFIG } from '../models/sd15-configs.js';
import type { ModelFamily, Prediction, TextEncoderRun } from './family.js';
import { stitchChunks } from './text.js';

/** Context of SD 1.x/2.x: final_layer_norm(hidden_states[-clipSkip]) (clip skip 1 = last_hidden_state). */
export function lastHiddenCondition(outputs: TextEncoderRun[], batch: number, chunks: number, clipSkip: number | undefined) {
  const [te] = outputs;
  const skip = clipSkip ?? 1;
  if (!Number.isInteger(skip) || skip < 1 || skip >= te.hiddenStates.length) {
    throw new Error(`clip_skip ${clipSkip}: must be an integer from 1 to ${te.hiddenStates.length - 1} (the text encoder's layer count)`);
  }
  const h = te.finalNorm(te.hiddenStates[te.hiddenStates.length - skip]);
  return { context: stitchChunks(h, batch, chunks) };
}

/** sd-scripts model_util.get_model_version_str_for_sd1_sd2 and sai_model_spec architectures. */
export function sd12Metadata(v2: boolean, prediction: Prediction): Record<string, string> {
  const v = prediction === 'v_prediction';
  return {
    ss_v2: v2 ? 'True' : 'False',
    ss_base_model_version: `${v2 ? 'sd_v2' : 'sd_v1'}${v ? '_v' : ''}`,
    'modelspec.architecture': `${v2 ? (v ? 'stable-diffusion-v2-768-v' : 'stable-diffusion-v2-512') : 'stable-diffusion-v1'}/lora`,
    'modelspec.implementation': 'diffusers',
  };
}

export const SD1: ModelFamily = {
  id: 'sd1',
  name: 'SD 1.x',
  detectKeys: (keys) => [...keys].some((k) => k.startsWith('cond_stage_model.transformer.')),
  unetPrefix: 'model.diffusion_model.',
  vaePrefix: 'first_stage_model.',
  textEncoders: [{
    id: 'te', loraPrefix: 'lora_te_', folder: 'text_encoder', tokenizerFolder: 'tokenizer',
    singleFilePrefix: 'cond_stage_model.transformer.', layout: 'transformers', dropLastBlock: false,
    withProjection: false, padId: 'eos', defaultConfig: SD15_TEXT_CONFIG,
  }],
  defaultConfigs: { unet: SD15_UNET_CONFIG, vae: SD15_VAE_CONFIG },
  vae: { scalingFactor: 0.18215, keepF32: false },
  defaults: () => ({ resolution: 512, bucketResoSteps: 64 }),
  latentCacheSuffix: '_sd',
  clipSkip: true,
  condition: lastHiddenCondition,
  addedConditioning: () => undefined,
  predictionFromWeights: (all) => (all.has('v_pred') ? 'v_prediction' : 'epsilon'),
  metadata: (prediction) => sd12Metadata(false, prediction),
};
