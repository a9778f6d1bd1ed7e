// The metadata sd-scripts writes with a Textual Inversion embedding and a DreamBooth checkpoint:
// only the ModelSpec keys (train_util.get_sai_model_spec with textual_inversion=True, or
// is_stable_diffusion_ckpt=True); no ss_* keys. A diffusers folder gets none (save_pretrained).
import type { SDModel } from '../models/sd-model.js';
import type { TrainConfig } from './config.js';
import { typed } from './options.js';

export function checkpointModelspec(cfg: TrainConfig, model: Pick<SDModel, 'family' | 'prediction'>, kind: 'textual-inversion' | 'checkpoint', startedAt: number): Record<string, string> {
  const c = typed(cfg);
  const v = c.v_parameterization || model.prediction === 'v_prediction';
  // The family's LoRA architecture without the adapter suffix, then the one for this kind.
  const base = (model.family.metadata(v ? 'v_prediction' : 'epsilon')['modelspec.architecture'] ?? 'stable-diffusion-v1/lora').replace(/\/lora$/, '');
  const [w, h] = c.resolution;
  const explicit = new Set((cfg.__explicit as string[] | undefined) ?? []);
  return {
    'modelspec.sai_model_spec': '1.0.1',
    'modelspec.architecture': kind === 'textual-inversion' ? `${base}/textual-inversion` : base,
    // sd-scripts names the original (Stability AI) implementation for embeddings and single-file checkpoints.
    'modelspec.implementation': 'https://github.com/Stability-AI/generative-models',
    'modelspec.implementation_version': 'sdlora/0.1.0',
    'modelspec.title': c.output_name ?? `${kind === 'textual-inversion' ? 'TextualInversion' : 'Checkpoint'}@${Math.floor(startedAt)}`,
    'modelspec.resolution': `${w}x${h}`,
    'modelspec.date': new Date().toISOString().slice(0, 19),
    'modelspec.prediction_type': v ? 'v' : 'epsilon',
    ...(explicit.has('min_timestep') || explicit.has('max_timestep') ? { 'modelspec.timestep_range': `${c.min_timestep},${c.max_timestep}` } : {}),
    ...(c.clip_skip ? { 'modelspec.encoder_layer': String(c.clip_skip) } : {}),
  };
}
