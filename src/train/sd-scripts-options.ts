// The train_network.py options of kohya-ss/sd-scripts (library/train_util.py, train_network.py,
// sai_model_spec.py, deepspeed_utils.py, ...) that sdlora accepts but does not implement: a
// config written for sd-scripts loads, and each one that is set is named as having no effect.
import type { OptionType } from './config-schema.js';

type Group = [why: string, type: OptionType, keys: string[]];

export const NO_EFFECT_GROUPS: Group[] = [
  ['multi-GPU, DeepSpeed, compilation and memory switches of PyTorch', 'boolean', ['ddp_gradient_as_bucket_view', 'ddp_static_graph', 'deepspeed', 'fp16_master_weights_and_gradients', 'zero3_init_flag', 'zero3_save_16bit_model', 'torch_compile', 'cpu_offload_checkpointing', 'fp8_base', 'fp8_base_unet', 'full_bf16', 'fused_backward_pass', 'disable_mmap_load_safetensors', 'skip_cache_check', 'cache_info']],
  ['multi-GPU, DeepSpeed, compilation and memory switches of PyTorch', 'integer', ['ddp_timeout', 'zero_stage', 'blocks_to_swap', 'text_encoder_batch_size']],
  ['multi-GPU, DeepSpeed, compilation and memory switches of PyTorch', 'string', ['dynamo_backend', 'offload_optimizer_device', 'offload_optimizer_nvme_path', 'offload_param_device', 'offload_param_nvme_path', 'tokenizer_cache_dir']],
  ['logging and trackers are not implemented; the loss goes to <output_name>-loss.jsonl', 'boolean', ['log_config', 'console_log_simple']],
  ['logging and trackers are not implemented; the loss goes to <output_name>-loss.jsonl', 'string', ['log_tracker_config', 'log_tracker_name', 'wandb_run_name', 'console_log_file', 'console_log_level']],
  ['Hugging Face uploads are not implemented', 'boolean', ['async_upload', 'resume_from_huggingface', 'save_state_to_huggingface']],
  ['Hugging Face uploads are not implemented', 'string', ['huggingface_path_in_repo', 'huggingface_repo_id', 'huggingface_repo_type', 'huggingface_repo_visibility', 'huggingface_token']],
  ['the modelspec metadata fields are not written', 'string', ['metadata_author', 'metadata_description', 'metadata_is_negative_embedding', 'metadata_license', 'metadata_merged_from', 'metadata_preprocessor', 'metadata_tags', 'metadata_thumbnail', 'metadata_title', 'metadata_trigger_phrase', 'metadata_usage_hint']],
  ['not implemented', 'boolean', ['alpha_mask', 'masked_loss', 'debug_dataset', 'dim_from_weights', 'ip_noise_gamma_random_strength', 'no_metadata', 'noise_offset_random_strength', 'output_config', 'save_state_on_train_end', 'skip_until_initial_step', 'use_safetensors', 'weighted_captions', 'zero_terminal_snr']],
  ['not implemented', 'integer', ['initial_epoch', 'initial_step', 'lr_scheduler_timescale', 'max_validation_steps', 'save_last_n_epochs_state', 'save_last_n_steps', 'save_last_n_steps_state', 'save_n_epoch_ratio', 'token_warmup_min', 'validate_every_n_epochs', 'validate_every_n_steps', 'validation_seed']],
  ['not implemented', 'number', ['adaptive_noise_scale', 'ip_noise_gamma', 'logit_mean', 'logit_std', 'lr_decay_steps', 'lr_scheduler_min_lr_ratio', 'mode_scale', 'token_warmup_step', 'v_pred_like_loss', 'validation_split']],
  ['not implemented', 'string', ['ckpt', 'conditioning_data_dir', 'dataset_class', 'face_crop_aug_range', 'in_json', 'lr_scheduler_type', 'resize_interpolation', 'weighting_scheme']],
  ['not implemented', 'string[]', ['base_weights', 'base_weights_multiplier', 'lr_scheduler_args']],
];
