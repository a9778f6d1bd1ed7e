// `training_method`: which sd-scripts script a run stands for (train_network.py, train_textual_inversion.py,
// train_db.py), the options that belong to one method only (given to another, they are errors rather
// than silently unused), and the dispatch to that method's trainer.
import type { TrainConfig } from './config.js';

export type TrainingMethodName = 'lora' | 'textual_inversion' | 'dreambooth';

const ONLY: Record<string, TrainingMethodName[]> = {
  token_string: ['textual_inversion'], init_word: ['textual_inversion'], num_vectors_per_token: ['textual_inversion'],
  use_object_template: ['textual_inversion'], use_style_template: ['textual_inversion'],
  train_text_encoder: ['dreambooth'], stop_text_encoder_training: ['dreambooth'], learning_rate_te: ['dreambooth'],
  network_module: ['lora'], network_dim: ['lora'], network_alpha: ['lora'], network_dropout: ['lora'], network_args: ['lora'],
  network_weights: ['lora'], network_train_unet_only: ['lora'], network_train_text_encoder_only: ['lora'],
  unet_lr: ['lora'], text_encoder_lr: ['lora'], scale_weight_norms: ['lora'],
  cache_text_encoder_outputs: ['lora'], cache_text_encoder_outputs_to_disk: ['lora'],
  // Written into a LoRA's ss_* metadata / used by its final save only.
  training_comment: ['lora'], fallback_output_dir: ['lora'],
};

export const methodOf = (cfg: TrainConfig): TrainingMethodName => (cfg.training_method as TrainingMethodName | undefined) ?? 'lora';

/** Values that turn an option on (the kohya_ss GUI writes stop_text_encoder_training = 0 into LoRA configs). */
const isOn = (v: unknown) => v !== undefined && v !== null && v !== false && v !== 0 && v !== '' && !(Array.isArray(v) && !v.length);

/** Method-only options given off (0, false) for another method: they have no effect there, which is said. */
export function trainingMethodNotes(cfg: Record<string, unknown>): string[] {
  const method = (cfg.training_method as TrainingMethodName | undefined) ?? 'lora';
  const explicit = new Set((cfg.__explicit as string[] | undefined) ?? []);
  return Object.entries(ONLY).filter(([k, methods]) => explicit.has(k) && cfg[k] !== undefined && !isOn(cfg[k]) && !methods.includes(method) && k !== 'network_module' && !(k in DEFAULTS_OFF))
    .map(([k, methods]) => `"${k}" is for training_method ${methods.join(' or ')}; it has no effect with ${method}`);
}

/** Options whose off value is also their default (a config writing it out says nothing). */
const DEFAULTS_OFF: Record<string, true> = { network_train_unet_only: true, network_train_text_encoder_only: true, use_object_template: true, use_style_template: true, cache_text_encoder_outputs: true, cache_text_encoder_outputs_to_disk: true, network_args: true };

/** Options given for another method, missing required ones, and combinations sd-scripts refuses. */
export function trainingMethodProblems(cfg: Record<string, unknown>): string[] {
  const method = (cfg.training_method as TrainingMethodName | undefined) ?? 'lora';
  const explicit = new Set((cfg.__explicit as string[] | undefined) ?? []);
  const problems: string[] = [];
  for (const [k, methods] of Object.entries(ONLY)) {
    const v = cfg[k];
    if (explicit.has(k) && isOn(v) && !methods.includes(method)) problems.push(`"${k}" is for training_method ${methods.join(' or ')}, not ${method}`);
  }
  if (method === 'textual_inversion') {
    if (!cfg.token_string) problems.push('training_method textual_inversion needs "token_string" (the new word)');
    else if (/\s/.test(String(cfg.token_string).trim()) || !String(cfg.token_string).trim()) problems.push(`"token_string" must be one word, got "${cfg.token_string}"`);
    if (cfg.use_object_template && cfg.use_style_template) problems.push('"use_object_template" and "use_style_template" exclude each other');
  }
  if (method !== 'dreambooth' && typeof cfg.save_model_as === 'string' && cfg.save_model_as.startsWith('diffusers')) {
    problems.push(`"save_model_as" ${cfg.save_model_as} is for training_method dreambooth (a ${method === 'lora' ? 'LoRA' : 'embedding'} is one safetensors file)`);
  }
  return problems;
}
