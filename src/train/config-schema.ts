// Every training option sdlora accepts: sd-scripts' train_network.py names, types, defaults and
// what they mean. The README's option table is generated from this list (npm run docs:config).
import { NO_EFFECT_GROUPS } from './sd-scripts-options.js';

export type OptionType = 'string' | 'number' | 'integer' | 'boolean' | 'resolution' | 'string[]' | 'number?';

export interface OptionSpec {
  key: string;
  type: OptionType;
  default?: unknown;
  doc: string;
  choices?: readonly string[];
  /** Accepted for compatibility with sd-scripts configs, but has no effect here. */
  ignored?: boolean;
  min?: number;
  max?: number;
  /** A list is accepted and its first value used (sd-scripts' nargs="*" options read by SD 1.x/2.x). */
  firstOfList?: boolean;
}

const o = (key: string, type: OptionType, def: unknown, doc: string, extra: Partial<OptionSpec> = {}): OptionSpec => ({ key, type, default: def, doc, ...extra });

export const OPTIONS: OptionSpec[] = [
  // model and data
  o('pretrained_model_name_or_path', 'string', undefined, 'base model: a diffusers folder, a single-file .safetensors checkpoint, a Hugging Face repo id (downloaded when online), or "tiny" for the bundled tiny model'),
  o('v2', 'boolean', false, 'the base is SD 2.x'),
  o('v_parameterization', 'boolean', false, 'train with v-prediction targets (SD 2.x 768-v models)'),
  o('train_data_dir', 'string', undefined, 'kohya folder layout: subfolders <repeats>_<name> holding images and captions'),
  o('reg_data_dir', 'string', undefined, 'regularization images in the same layout'),
  o('dataset_config', 'string', undefined, 'sd-scripts dataset TOML/JSON ([general], [[datasets]], [[datasets.subsets]]); replaces train_data_dir'),
  o('caption_extension', 'string', '.caption', 'caption file extension (sd-scripts default .caption; most datasets use .txt)'),
  o('dataset_repeats', 'integer', 1, 'repeats when a subset does not give num_repeats', { min: 1 }),
  o('resolution', 'resolution', 512, 'training resolution: 512, "512,768" (width,height) or [512, 768]; when not given, the family\'s (SDXL: 1024)'),
  o('enable_bucket', 'boolean', false, 'aspect-ratio bucketing'),
  o('min_bucket_reso', 'integer', 256, 'smallest bucket side', { min: 64 }),
  o('max_bucket_reso', 'integer', 1024, 'largest bucket side', { min: 64 }),
  o('bucket_reso_steps', 'integer', 64, 'bucket side step (a multiple of 64 for SD 1.x/2.x, of 32 for SDXL, except with bucket_no_upscale; when not given, SDXL takes 32)', { min: 8 }),
  o('bucket_no_upscale', 'boolean', false, 'never upscale: small images get their own smaller buckets'),
  o('flip_aug', 'boolean', false, 'random horizontal flips'),
  o('color_aug', 'boolean', false, 'weak random hue/gamma changes (not with cache_latents)'),
  o('random_crop', 'boolean', false, 'random instead of center crops (not with cache_latents)'),
  o('shuffle_caption', 'boolean', false, 'shuffle comma-separated tags'),
  o('keep_tokens', 'integer', 0, 'leading tags kept in place when shuffling', { min: 0 }),
  o('caption_separator', 'string', ',', 'tag separator'),
  o('keep_tokens_separator', 'string', undefined, 'tags before this separator are kept in place (instead of keep_tokens)'),
  o('secondary_separator', 'string', undefined, 'joins tags that shuffle and drop together'),
  o('enable_wildcard', 'boolean', false, 'captions with {a|b} choose one alternative per step; multi-line caption files choose a line'),
  o('caption_prefix', 'string', undefined, 'text put before every caption'),
  o('caption_suffix', 'string', undefined, 'text put after every caption'),
  o('caption_dropout_rate', 'number', 0, 'probability of training a sample with an empty caption', { min: 0, max: 1 }),
  o('caption_dropout_every_n_epochs', 'integer', 0, 'drop every caption in every n-th epoch', { min: 0 }),
  o('caption_tag_dropout_rate', 'number', 0, 'probability of dropping each (non-kept) tag', { min: 0, max: 1 }),
  o('prior_loss_weight', 'number', 1, 'loss weight of regularization images', { min: 0 }),
  o('cache_latents', 'boolean', false, 'encode every image once with the VAE and keep the latents in memory'),
  o('cache_latents_to_disk', 'boolean', false, 'also keep the latent cache beside the images (implies cache_latents)'),
  o('cache_text_encoder_outputs', 'boolean', false, 'encode each caption once before training (frozen text encoders: needs network_train_unet_only and captions that do not change per step)'),
  o('cache_text_encoder_outputs_to_disk', 'boolean', false, 'also keep those outputs beside the images as <image>_te_outputs.safetensors (implies cache_text_encoder_outputs)'),
  o('skip_bad', 'boolean', false, 'skip unreadable images and captions instead of stopping (sdlora)'),
  // output
  o('output_dir', 'string', './output', 'where LoRA files, samples, logs and state go'),
  o('output_name', 'string', undefined, 'file name stem (final file <name>.safetensors; "last" when unset)'),
  o('save_model_as', 'string', 'safetensors', 'safetensors (a LoRA, an embedding or a single-file LDM checkpoint); dreambooth also diffusers / diffusers_safetensors (a diffusers folder, safetensors weights); pickle formats are not written', { choices: ['safetensors', 'diffusers', 'diffusers_safetensors'] }),
  o('save_precision', 'string', undefined, 'float, fp16 or bf16 for the saved file (default: float)', { choices: ['float', 'fp16', 'bf16'] }),
  o('save_every_n_epochs', 'integer', undefined, 'also save <name>-<epoch>.safetensors every n epochs', { min: 1 }),
  o('save_every_n_steps', 'integer', undefined, 'also save <name>-step<step>.safetensors every n steps', { min: 1 }),
  o('save_last_n_epochs', 'integer', undefined, 'keep only the last n epoch files', { min: 1 }),
  o('save_state', 'boolean', false, 'save the full training state (optimizer, step, RNG, data order) with each save'),
  o('resume', 'string', undefined, 'resume from a saved state folder'),
  o('training_comment', 'string', undefined, 'free text stored as ss_training_comment'),
  // training method (src/train/training-method.ts)
  o('training_method', 'string', 'lora', 'lora (train_network.py), textual_inversion (train_textual_inversion.py) or dreambooth (train_db.py: full UNet and text encoder)', { choices: ['lora', 'textual_inversion', 'dreambooth'] }),
  o('token_string', 'string', undefined, 'textual_inversion: the new word; its vectors are what trains (default output_name)'),
  o('init_word', 'string', undefined, 'textual_inversion: the vectors start as this word\'s token embeddings (repeated or cut to num_vectors_per_token); random N(0, 0.02) without it'),
  o('num_vectors_per_token', 'integer', 1, 'textual_inversion: vectors (token positions) the word stands for', { min: 1, max: 75 }),
  o('use_object_template', 'boolean', false, 'textual_inversion: captions replaced by sd-scripts\' object templates ("a photo of a {}", ...)'),
  o('use_style_template', 'boolean', false, 'textual_inversion: captions replaced by sd-scripts\' style templates ("a painting in the style of {}", ...)'),
  o('train_text_encoder', 'boolean', undefined, 'dreambooth: train the text encoder too (default true, as train_db.py; false freezes it)'),
  o('stop_text_encoder_training', 'integer', undefined, 'dreambooth: the text encoder stops training after this many steps (negative: never trains)'),
  o('learning_rate_te', 'number?', undefined, 'dreambooth: learning rate of the text encoder (default learning_rate)', { min: 0 }),
  // network
  o('network_module', 'string', 'networks.lora', 'LoRA network: networks.lora (kohya LoRA; LoCon with conv_dim in network_args) or lycoris.kohya (LyCORIS LoCon/LoHa/LoKr, DoRA with dora_wd; algo= and preset= in network_args); other sd-scripts modules are named as not implemented yet'),
  o('network_dim', 'integer', 4, 'LoRA rank', { min: 1 }),
  o('network_alpha', 'number', 1, 'LoRA alpha (scale = alpha / dim)', { min: 0 }),
  o('network_dropout', 'number?', undefined, 'dropout on the rank activations', { min: 0, max: 1 }),
  o('network_args', 'string[]', [], 'key=value strings: networks.lora takes conv_dim, conv_alpha, rank_dropout, module_dropout; lycoris.kohya takes LyCORIS\' (algo, preset, conv_dim, conv_alpha, factor, use_tucker, dora_wd, decompose_both, ...); unknown keys and bad values are errors'),
  o('network_weights', 'string', undefined, 'start from an existing LoRA file'),
  o('network_train_unet_only', 'boolean', false, 'no text-encoder LoRA'),
  o('network_train_text_encoder_only', 'boolean', false, 'no UNet LoRA'),
  // optimization
  o('learning_rate', 'number', 2e-6, 'base learning rate (sd-scripts default 2e-6; LoRAs usually use about 1e-4)', { min: 0 }),
  o('unet_lr', 'number?', undefined, 'learning rate of the UNet LoRA (default learning_rate)', { min: 0 }),
  // sd-scripts takes one value per text encoder ([te1, te2] for SDXL); SD 1.x/2.x use the first.
  o('text_encoder_lr', 'number?', undefined, 'learning rate of the text-encoder LoRA (default learning_rate); of a list, the first value', { min: 0, firstOfList: true }),
  o('optimizer_type', 'string', 'AdamW', 'AdamW, AdamW8bit, Lion, Prodigy or SGDNesterov', { choices: ['AdamW', 'AdamW8bit', 'Lion', 'Prodigy', 'SGDNesterov'] }),
  o('optimizer_args', 'string[]', [], 'key=value strings, e.g. weight_decay=0.1 betas=0.9,0.99; unknown keys and bad values are errors'),
  o('lr_scheduler', 'string', 'constant', 'learning-rate schedule', { choices: ['constant', 'constant_with_warmup', 'cosine', 'cosine_with_restarts', 'linear', 'polynomial'] }),
  o('lr_warmup_steps', 'number', 0, 'warm-up steps (a value below 1 is a fraction of max_train_steps)', { min: 0 }),
  o('lr_scheduler_num_cycles', 'integer', 1, 'cycles of cosine_with_restarts', { min: 1 }),
  o('lr_scheduler_power', 'number', 1, 'power of the polynomial schedule'),
  o('train_batch_size', 'integer', 1, 'images per batch', { min: 1 }),
  o('max_train_steps', 'integer', 1600, 'optimizer steps (ignored when max_train_epochs is set)', { min: 1 }),
  o('max_train_epochs', 'integer', undefined, 'train for this many epochs instead of max_train_steps', { min: 1 }),
  o('gradient_accumulation_steps', 'integer', 1, 'micro-batches per optimizer step', { min: 1 }),
  o('max_grad_norm', 'number', 1, 'clip the LoRA gradient norm (0 disables)', { min: 0 }),
  o('scale_weight_norms', 'number?', undefined, 'max-norm regularization of each module delta', { min: 0 }),
  // sd-scripts seeds numpy too, which takes only 0 .. 2^32-1: a larger or negative seed fails there.
  o('seed', 'integer', undefined, 'random seed, 0 to 4294967295 (random when unset)', { min: 0, max: 2 ** 32 - 1 }),
  o('mixed_precision', 'string', 'no', 'fp16/bf16: frozen weights stored in f16 (bf16 too: sdlora has no bf16 kernels, and the metadata says fp16); LoRA weights stay f32, and so does compute, except that fp16 on webgpu with shader-f16 runs matmul, conv2d and attention with f16 operands and f32 accumulation', { choices: ['no', 'fp16', 'bf16'] }),
  o('full_fp16', 'boolean', false, 'accepted; LoRA weights stay f32 here', { ignored: true }),
  o('gradient_checkpointing', 'boolean', false, 'recompute UNet blocks in backward instead of storing activations'),
  o('clip_skip', 'integer', undefined, 'use the n-th last CLIP layer (2 = A1111 "Clip skip 2")', { min: 1 }),
  o('max_token_length', 'integer', undefined, '150 or 225 for long captions', { choices: undefined }),
  o('noise_offset', 'number?', undefined, 'add offset noise (e.g. 0.05)', { min: 0 }),
  o('multires_noise_iterations', 'integer', undefined, 'multi-resolution noise iterations', { min: 1 }),
  o('multires_noise_discount', 'number', 0.3, 'multi-resolution noise discount', { min: 0, max: 1 }),
  o('min_snr_gamma', 'number?', undefined, 'min-SNR loss weighting (5 is common)', { min: 0 }),
  o('debiased_estimation_loss', 'boolean', false, 'debiased estimation loss weights'),
  o('scale_v_pred_loss_like_noise_pred', 'boolean', false, 'scale v-prediction loss like noise prediction'),
  o('loss_type', 'string', 'l2', 'l2, l1, huber or smooth_l1', { choices: ['l2', 'l1', 'huber', 'smooth_l1'] }),
  o('huber_schedule', 'string', 'snr', 'snr, exponential or constant', { choices: ['snr', 'exponential', 'constant'] }),
  o('huber_c', 'number', 0.1, 'huber c', { min: 0 }),
  o('huber_scale', 'number', 1, 'huber scale', { min: 0 }),
  o('min_timestep', 'integer', 0, 'smallest training timestep', { min: 0, max: 1000 }),
  o('max_timestep', 'integer', 1000, 'largest training timestep (exclusive)', { min: 1, max: 1000 }),
  // samples
  o('sample_prompts', 'string', undefined, 'prompts file (sd-scripts syntax: prompt --n neg --w 512 --h 512 --d seed --l cfg --s steps --ss sampler)'),
  o('sample_every_n_steps', 'integer', undefined, 'sample images every n steps', { min: 1 }),
  o('sample_every_n_epochs', 'integer', undefined, 'sample images every n epochs (wins over steps)', { min: 1 }),
  o('sample_at_first', 'boolean', false, 'also sample before training'),
  o('sample_sampler', 'string', 'ddim', 'sampler for samples', { choices: ['ddim', 'ddpm', 'euler', 'euler_a', 'k_euler', 'k_euler_a', 'dpmsolver++', 'dpmpp_2m', 'dpmpp_2m_karras'] }),
  // sdlora
  o('device', 'string', 'auto', 'compute backend: auto takes webgpu on a hardware GPU adapter, else cpu (software adapters such as lavapipe count as none)', { choices: ['auto', 'cpu', 'webgpu'] }),
  o('skip_nan_steps', 'integer', 0, 'optimizer steps with a NaN/Inf loss or gradient to skip before training stops (0: stop at the first)', { min: 0 }),
  o('fallback_output_dir', 'string', undefined, 'where the final LoRA goes when output_dir is full (ENOSPC)'),
  // accepted for compatibility
  ...['xformers', 'sdpa', 'mem_eff_attn', 'lowram', 'highvram', 'persistent_data_loader_workers', 'no_half_vae'].map((k) => o(k, 'boolean', false, 'accepted for sd-scripts compatibility; no effect here', { ignored: true })),
  ...['max_data_loader_n_workers', 'vae_batch_size'].map((k) => o(k, 'integer', undefined, 'accepted for sd-scripts compatibility; no effect here', { ignored: true })),
  o('vae', 'string', undefined, 'external VAE for latents and samples: single-file checkpoint, LDM or diffusers VAE .safetensors, or diffusers vae folder'),
  ...['logging_dir', 'log_with', 'log_prefix', 'wandb_api_key'].map((k) => o(k, 'string', undefined, 'accepted for sd-scripts compatibility; no effect here', { ignored: true })),
  ...NO_EFFECT_GROUPS.flatMap(([why, type, keys]) => keys.map((k) => o(k, type, undefined, `sd-scripts option; no effect here (${why})`, { ignored: true }))),
  // Old spellings sd-scripts still reads: resolveConfig turns them into the options they stand for.
  o('caption_extention', 'string', undefined, 'old spelling of caption_extension'),
  o('use_8bit_adam', 'boolean', false, 'old form of optimizer_type AdamW8bit'),
  o('use_lion_optimizer', 'boolean', false, 'old form of optimizer_type Lion'),
];

export const OPTION_MAP = new Map(OPTIONS.map((s) => [s.key, s]));
