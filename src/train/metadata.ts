// The ss_* and modelspec metadata sd-scripts writes with a LoRA (§5.3, §5.5); every value is a
// string as Python's str() would print it. Values describe what sdlora actually ran: its own
// optimizer classes, f16 storage for either mixed precision, f32 LoRA weights (no full_fp16).
import path from 'node:path';
import type { DataSummary } from '../data/dataset.js';
import type { TrainConfig } from './config.js';
// sd-scripts writes ss_network_args with Python's json.dumps (", " and ": " separators).
import { pyFloat, pyJsonDumps } from '../lora/tool-metadata.js';

export const py = (v: unknown): string => {
  if (v === undefined || v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  // Whole numbers stay ints (TOML/JSON ints and sd-scripts' default alpha print as "1"); others
  // take Python's float repr, whose switch to exponent form differs from JavaScript's (5e-05, not 0.00005).
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 1e16 ? String(v) : pyFloat(v);
  return String(v);
};

/** sdlora stores frozen weights in f16 for fp16 and bf16 alike (it has no bf16 kernels). */
export function storedPrecision(mixed: unknown): 'no' | 'fp16' {
  return mixed === undefined || mixed === 'no' ? 'no' : 'fp16';
}

export interface RunInfo {
  sessionId: number;
  startedAt: number;
  seed: number;
  numBatchesPerEpoch: number;
  numEpochs: number;
  maxTrainSteps: number;
  optimizer: string;
  modelHash?: { legacy: string; sha256: string };
  /** The loaded family's base-model keys (ss_v2, ss_base_model_version, modelspec.architecture, ...): they win over the flags. */
  base?: Record<string, string>;
}

export function trainingMetadata(c: TrainConfig, data: DataSummary, run: RunInfo, at: { step: number; epoch: number }): Record<string, string> {
  const [w, h] = c.resolution;
  const ds = data.datasets[0]?.spec;
  const buckets: Record<string, { resolution: number[]; count: number }> = {};
  let i = 0;
  for (const d of data.datasets) for (const [k, list] of d.buckets) { const [bw, bh] = k.split('x').map(Number); buckets[String(i++)] = { resolution: [bw, bh], count: list.length }; }
  const modelName = c.pretrained_model_name_or_path;
  const meta: Record<string, unknown> = {
    ss_session_id: run.sessionId, ss_training_started_at: run.startedAt, ss_training_finished_at: Date.now() / 1000,
    ss_output_name: c.output_name, ss_learning_rate: c.learning_rate, ss_text_encoder_lr: c.text_encoder_lr, ss_unet_lr: c.unet_lr,
    ss_num_train_images: data.numTrainImages, ss_num_validation_images: 0, ss_num_reg_images: data.numRegImages,
    ss_num_batches_per_epoch: run.numBatchesPerEpoch, ss_num_epochs: run.numEpochs, ss_steps: at.step, ss_epoch: at.epoch,
    ss_gradient_checkpointing: c.gradient_checkpointing, ss_gradient_accumulation_steps: c.gradient_accumulation_steps,
    ss_max_train_steps: run.maxTrainSteps, ss_lr_warmup_steps: c.lr_warmup_steps, ss_lr_scheduler: c.lr_scheduler,
    ss_network_module: c.network_module, ss_network_dim: c.network_dim, ss_network_alpha: c.network_alpha, ss_network_dropout: c.network_dropout,
    ss_mixed_precision: storedPrecision(c.mixed_precision), ss_full_fp16: false, ss_v2: c.v2,
    ss_base_model_version: c.v2 ? (c.v_parameterization ? 'sd_v2_v' : 'sd_v2') : c.v_parameterization ? 'sd_v1_v' : 'sd_v1',
    ss_clip_skip: c.clip_skip, ss_max_token_length: c.max_token_length, ss_cache_latents: c.cache_latents, ss_seed: run.seed, ss_lowram: false,
    ss_noise_offset: c.noise_offset, ss_multires_noise_iterations: c.multires_noise_iterations, ss_multires_noise_discount: c.multires_noise_discount,
    ss_adaptive_noise_scale: undefined, ss_zero_terminal_snr: false, ss_training_comment: c.training_comment,
    ss_sd_scripts_commit_hash: '(sdlora 0.1.0)', ss_optimizer: run.optimizer, ss_max_grad_norm: c.max_grad_norm,
    ss_caption_dropout_rate: c.caption_dropout_rate, ss_caption_dropout_every_n_epochs: c.caption_dropout_every_n_epochs,
    ss_caption_tag_dropout_rate: c.caption_tag_dropout_rate, ss_face_crop_aug_range: undefined,
    ss_prior_loss_weight: c.prior_loss_weight, ss_min_snr_gamma: c.min_snr_gamma, ss_scale_weight_norms: c.scale_weight_norms,
    ss_ip_noise_gamma: undefined, ss_debiased_estimation: c.debiased_estimation_loss, ss_loss_type: c.loss_type,
    ss_huber_schedule: c.huber_schedule, ss_huber_scale: c.huber_scale, ss_huber_c: c.huber_c, ss_fp8_base: false, ss_fp8_base_unet: false,
    ss_sd_model_name: path.basename(modelName),
    ...(run.modelHash ? { ss_sd_model_hash: run.modelHash.legacy, ss_new_sd_model_hash: run.modelHash.sha256 } : {}),
    ...(c.network_args.length ? { ss_network_args: pyJsonDumps(Object.fromEntries(c.network_args.map((a) => a.split('=', 2)))) } : {}),
  };
  if (!c.dataset_config && ds) {
    Object.assign(meta, {
      ss_batch_size_per_device: c.train_batch_size, ss_total_batch_size: (c.train_batch_size as number) * (c.gradient_accumulation_steps as number),
      ss_resolution: `(${w}, ${h})`, ss_color_aug: c.color_aug, ss_flip_aug: c.flip_aug, ss_random_crop: c.random_crop, ss_shuffle_caption: c.shuffle_caption,
      ss_enable_bucket: c.enable_bucket, ss_bucket_no_upscale: c.bucket_no_upscale, ss_min_bucket_reso: c.min_bucket_reso, ss_max_bucket_reso: c.max_bucket_reso,
      ss_keep_tokens: c.keep_tokens, ss_dataset_dirs: JSON.stringify(data.datasetDirs), ss_reg_dataset_dirs: JSON.stringify(data.regDatasetDirs),
      ss_tag_frequency: JSON.stringify(data.tagFrequency),
      ss_bucket_info: c.enable_bucket ? JSON.stringify({ buckets, mean_img_ar_error: data.meanArError }) : 'null',
    });
  } else {
    meta.ss_tag_frequency = JSON.stringify(data.tagFrequency);
    meta.ss_datasets = JSON.stringify(data.datasets.map((d) => ({
      is_dreambooth: true, batch_size_per_device: d.spec.batchSize, num_train_images: d.images.filter((x) => !x.subset.isReg).reduce((a, x) => a + x.subset.numRepeats, 0),
      num_reg_images: d.images.filter((x) => x.subset.isReg).reduce((a, x) => a + x.subset.numRepeats, 0), resolution: d.spec.resolution,
      enable_bucket: d.spec.enableBucket, min_bucket_reso: d.spec.minBucketReso, max_bucket_reso: d.spec.maxBucketReso,
      subsets: d.spec.subsets.map((s) => ({ img_count: d.images.filter((x) => x.subset === s).length, num_repeats: s.numRepeats, color_aug: s.colorAug, flip_aug: s.flipAug, random_crop: s.randomCrop, shuffle_caption: s.shuffleCaption, keep_tokens: s.keepTokens, image_dir: path.basename(s.imageDir), class_tokens: s.classTokens ?? null, is_reg: s.isReg })),
    })));
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta)) out[k] = py(v);
  Object.assign(out, {
    'modelspec.sai_model_spec': '1.0.1',
    'modelspec.architecture': c.v2 ? (c.v_parameterization ? 'stable-diffusion-v2-768-v/lora' : 'stable-diffusion-v2-512/lora') : 'stable-diffusion-v1/lora',
    // ModelSpec's "implementation" names the architecture the file is for (sd-scripts writes
    // "diffusers" for SD 1.x/2.x LoRAs), not the software that trained it.
    'modelspec.implementation': 'diffusers',
    'modelspec.implementation_version': 'sdlora/0.1.0',
    'modelspec.title': c.output_name ?? `LoRA@${Math.floor(run.startedAt)}`,
    'modelspec.resolution': `${w}x${h}`,
    'modelspec.date': new Date().toISOString().slice(0, 19),
    'modelspec.prediction_type': c.v_parameterization ? 'v' : 'epsilon',
    ...(c.clip_skip ? { 'modelspec.encoder_layer': String(c.clip_skip) } : {}),
  });
  Object.assign(out, run.base);
  return out;
}
