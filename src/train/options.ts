// A typed view of the resolved training configuration (config.ts fills every default).
import type { TrainConfig } from './config.js';

export interface TrainOptions {
  pretrained_model_name_or_path: string;
  v2: boolean; v_parameterization: boolean;
  train_data_dir?: string; reg_data_dir?: string; dataset_config?: string;
  resolution: [number, number];
  cache_latents: boolean; cache_latents_to_disk: boolean; skip_bad: boolean;
  cache_text_encoder_outputs: boolean; cache_text_encoder_outputs_to_disk: boolean; bucket_reso_steps: number; enable_bucket: boolean;
  output_dir: string; output_name?: string; save_precision?: 'float' | 'fp16' | 'bf16';
  save_every_n_epochs?: number; save_every_n_steps?: number; save_last_n_epochs?: number; save_state: boolean; resume?: string;
  network_dim: number; network_alpha: number; network_dropout?: number; network_args: string[]; network_weights?: string;
  network_train_unet_only: boolean; network_train_text_encoder_only: boolean;
  learning_rate: number; unet_lr?: number; text_encoder_lr?: number;
  optimizer_type: string; optimizer_args: string[];
  lr_scheduler: string; lr_warmup_steps: number; lr_scheduler_num_cycles: number; lr_scheduler_power: number;
  train_batch_size: number; max_train_steps: number; max_train_epochs?: number; gradient_accumulation_steps: number;
  max_grad_norm: number; scale_weight_norms?: number; seed?: number; mixed_precision: 'no' | 'fp16' | 'bf16';
  gradient_checkpointing: boolean; clip_skip?: number; max_token_length?: number;
  noise_offset?: number; multires_noise_iterations?: number; multires_noise_discount: number;
  min_snr_gamma?: number; debiased_estimation_loss: boolean; scale_v_pred_loss_like_noise_pred: boolean;
  loss_type: string; huber_schedule: string; huber_c: number; huber_scale: number;
  min_timestep: number; max_timestep: number; prior_loss_weight: number;
  sample_prompts?: string; sample_every_n_steps?: number; sample_every_n_epochs?: number; sample_at_first: boolean; sample_sampler: string;
  device: 'auto' | 'cpu' | 'webgpu';
}

export const typed = (c: TrainConfig): TrainOptions => c as unknown as TrainOptions;
