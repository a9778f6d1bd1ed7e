// Training configuration: the seed JSON verbatim, TOML files, CLI flags, and clear errors.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configFromArgs } from '../../src/cli/train-command.js';
import { ConfigError, configMessages, optionsMarkdown, resolveConfig } from '../../src/train/config.js';
import { OPTIONS } from '../../src/train/config-schema.js';

// Every option name of sd-scripts' train_network.py parser (train_util.py, train_network.py, sai_model_spec.py,
// deepspeed_utils.py, custom_train_functions.py, config_util.py, utils.py at sd-scripts 48d368f).
const SD_SCRIPTS_TRAIN_NETWORK_OPTIONS = `adaptive_noise_scale alpha_mask async_upload base_weights base_weights_multiplier blocks_to_swap bucket_no_upscale
bucket_reso_steps cache_info cache_latents cache_latents_to_disk caption_dropout_every_n_epochs caption_dropout_rate caption_extension caption_extention
caption_prefix caption_separator caption_suffix caption_tag_dropout_rate ckpt clip_skip color_aug conditioning_data_dir console_log_file
console_log_level console_log_simple cpu_offload_checkpointing dataset_class dataset_config dataset_repeats ddp_gradient_as_bucket_view ddp_static_graph
ddp_timeout debiased_estimation_loss debug_dataset deepspeed dim_from_weights dynamo_backend enable_bucket enable_wildcard face_crop_aug_range flip_aug
fp16_master_weights_and_gradients fp8_base fp8_base_unet full_bf16 full_fp16 fused_backward_pass gradient_accumulation_steps gradient_checkpointing
highvram huber_c huber_scale huber_schedule huggingface_path_in_repo huggingface_repo_id huggingface_repo_type huggingface_repo_visibility
huggingface_token in_json initial_epoch initial_step ip_noise_gamma ip_noise_gamma_random_strength keep_tokens keep_tokens_separator learning_rate
log_config log_prefix log_tracker_config log_tracker_name log_with logging_dir logit_mean logit_std loss_type lowram lr_decay_steps lr_scheduler
lr_scheduler_args lr_scheduler_min_lr_ratio lr_scheduler_num_cycles lr_scheduler_power lr_scheduler_timescale lr_scheduler_type lr_warmup_steps
masked_loss max_bucket_reso max_data_loader_n_workers max_grad_norm max_timestep max_token_length max_train_epochs max_train_steps
max_validation_steps mem_eff_attn metadata_author metadata_description metadata_is_negative_embedding metadata_license metadata_merged_from
metadata_preprocessor metadata_tags metadata_thumbnail metadata_title metadata_trigger_phrase metadata_usage_hint min_bucket_reso min_snr_gamma
min_timestep mixed_precision mode_scale multires_noise_discount multires_noise_iterations network_alpha network_args network_dim network_dropout
network_module network_train_text_encoder_only network_train_unet_only network_weights no_half_vae no_metadata noise_offset
noise_offset_random_strength offload_optimizer_device offload_optimizer_nvme_path offload_param_device offload_param_nvme_path optimizer_args
optimizer_type output_config output_dir output_name persistent_data_loader_workers pretrained_model_name_or_path prior_loss_weight random_crop
reg_data_dir resize_interpolation resolution resume resume_from_huggingface sample_at_first sample_every_n_epochs sample_every_n_steps sample_prompts
sample_sampler save_every_n_epochs save_every_n_steps save_last_n_epochs save_last_n_epochs_state save_last_n_steps save_last_n_steps_state
save_model_as save_n_epoch_ratio save_precision save_state save_state_on_train_end save_state_to_huggingface scale_v_pred_loss_like_noise_pred
scale_weight_norms sdpa secondary_separator seed shuffle_caption skip_cache_check skip_until_initial_step text_encoder_batch_size text_encoder_lr
token_warmup_min token_warmup_step tokenizer_cache_dir torch_compile train_batch_size train_data_dir training_comment unet_lr use_8bit_adam
use_lion_optimizer use_safetensors v2 v_parameterization v_pred_like_loss vae vae_batch_size validate_every_n_epochs validate_every_n_steps
validation_seed validation_split wandb_api_key wandb_run_name weighted_captions weighting_scheme xformers zero3_init_flag zero3_save_16bit_model
zero_stage zero_terminal_snr`.split(/\s+/);

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-cfg-'));
const SEED = {
  pretrained_model_name_or_path: 'runwayml/stable-diffusion-v1-5', train_data_dir: './dataset/train',
  output_dir: './output', resolution: 768, train_batch_size: 2, max_train_steps: 2000,
  learning_rate: 1e-4, mixed_precision: 'fp16', gradient_checkpointing: true, enable_bucket: true,
  network_module: 'networks.lora', network_dim: 64, network_alpha: 64,
};

describe('training config', () => {
  it('accepts the seed config.json verbatim and fills sd-scripts defaults', () => {
    const f = path.join(tmp, 'seed.json');
    writeFileSync(f, JSON.stringify(SEED));
    const c = configFromArgs(['--config', f]);
    assert.deepEqual(c.resolution, [768, 768]);
    assert.equal(c.network_dim, 64);
    assert.equal(c.mixed_precision, 'fp16');
    assert.equal(c.caption_extension, '.caption');
    assert.equal(c.lr_scheduler, 'constant');
    assert.equal(c.max_grad_norm, 1);
    assert.equal(c.optimizer_type, 'AdamW');
  });

  it('reads TOML (sections flattened) and lets flags override the file', () => {
    const f = path.join(tmp, 'c.toml');
    writeFileSync(f, '[model]\npretrained_model_name_or_path = "tiny"\n[data]\ntrain_data_dir = "d"\nresolution = "512,768"\n[optim]\nlearning_rate = 1e-4\nnetwork_args = ["conv_dim=4", "conv_alpha=1"]\n');
    const c = configFromArgs(['--config', f, '--learning-rate=5e-5', '--flip_aug', '--network_dim=8', '--output-dir=./my-out']);
    assert.equal(c.output_dir, './my-out');
    assert.deepEqual(c.resolution, [512, 768]);
    assert.equal(c.learning_rate, 5e-5);
    assert.equal(c.flip_aug, true);
    assert.equal(c.network_dim, 8);
    assert.deepEqual(c.network_args, ['conv_dim=4', 'conv_alpha=1']);
  });

  it('reports every problem: unknown keys with a suggestion, types, ranges and conflicts', () => {
    const bad = { ...SEED, learning_rat: 1, train_batch_size: 'two', network_dim: 0, resolution: 500, optimizer_type: 'Adam', cache_latents: true, color_aug: true, network_train_unet_only: true, network_train_text_encoder_only: true };
    try {
      resolveConfig([{ source: 'my.json', values: bad }], { strict: true });
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      const m = e.message;
      assert.match(m, /my\.json: unknown option "learning_rat" \(did you mean "learning_rate"\?\)/);
      assert.match(m, /"train_batch_size" must be an integer, got "two"/);
      assert.match(m, /"network_dim" must be at least 1, got 0/);
      assert.match(m, /"resolution" 500x500 must be a multiple of 8/);
      assert.match(m, /"optimizer_type" must be one of AdamW, AdamW8bit, Lion, Prodigy, SGDNesterov, got "Adam"/);
      assert.match(m, /cache_latents" cannot be used with "color_aug"/);
      assert.match(m, /exclude each other/);
    }
    assert.throws(() => resolveConfig([{ source: 'x', values: { pretrained_model_name_or_path: 'tiny' } }]), /train_data_dir" or "dataset_config" is required/);
    const f = path.join(tmp, 'broken.toml');
    writeFileSync(f, 'a = ');
    assert.throws(() => configFromArgs(['--config', f]), /broken\.toml:1:5: not valid TOML/);
  });

  it('warns on unknown option names with a suggestion instead of refusing the file; --strict refuses them', () => {
    const f = path.join(tmp, 'frontend.json');
    writeFileSync(f, JSON.stringify({ ...SEED, learning_rat: 1, save_n_epoch_ratio: 2, my_frontend_key: 'x' }));
    const c = configFromArgs(['--config', f]);
    const msgs = configMessages(c);
    assert.ok(msgs.some((m) => /frontend\.json: unknown option "learning_rat" \(did you mean "learning_rate"\?\); it is ignored/.test(m)), msgs.join('\n'));
    assert.ok(msgs.some((m) => m.includes('unknown option "my_frontend_key"')));
    // save_n_epoch_ratio is a real sd-scripts option: accepted, named as having no effect
    assert.ok(msgs.includes('note: "save_n_epoch_ratio" has no effect in sdlora (accepted for sd-scripts compatibility)'), msgs.join('\n'));
    assert.ok(!msgs.some((m) => m.includes('unknown option "save_n_epoch_ratio"')));
    assert.throws(() => configFromArgs(['--config', f, '--strict']), (e: Error) => e instanceof ConfigError && /unknown option "learning_rat"/.test(e.message) && /unknown option "my_frontend_key"/.test(e.message) && !/save_n_epoch_ratio/.test(e.message));
    // a misspelt flag is an error, as argparse makes it one in sd-scripts
    assert.throws(() => configFromArgs(['--config', f, '--learnin_rate', '1']), /command line: unknown option "learnin_rate" \(did you mean "learning_rate"\?\)/);
  });

  it('checks optimizer_args against the optimizer given, not a default standing in for an unknown one', () => {
    const e = (() => { try { resolveConfig([{ source: 'p', values: { pretrained_model_name_or_path: 'tiny', train_data_dir: 'd', optimizer_type: 'Adafactor', optimizer_args: ['relative_step=False'] } }]); } catch (x) { return x as ConfigError; } return assert.fail('should throw'); })();
    assert.deepEqual(e.problems, ['p: "optimizer_type" must be one of AdamW, AdamW8bit, Lion, Prodigy, SGDNesterov, got "Adafactor"']);
  });

  it('loads real front-end configs: lora-scripts sections and the sd-scripts TOML the kohya_ss GUI writes', () => {
    const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'frontends');
    const ls = configFromArgs(['--config', path.join(dir, 'lora-scripts.toml')]);
    assert.equal(ls.max_train_epochs, 12);
    assert.equal(ls.text_encoder_lr, 2e-5);
    assert.equal(ls.seed, 1337);
    const lsMsgs = configMessages(ls);
    assert.deepEqual(lsMsgs.filter((m) => m.startsWith('warning')).map((m) => /unknown option "(\w+)"/.exec(m)?.[1]), ['lr_restart_cycles']);
    assert.ok(!lsMsgs.some((m) => m.includes('save_n_epoch_ratio')), 'save_n_epoch_ratio = 0 is off in sd-scripts too: nothing to say');
    const gui = configFromArgs(['--config', path.join(dir, 'kohya-gui-sd-scripts.toml')]);
    assert.equal(gui.text_encoder_lr, 5e-5, 'first of [te1, te2]');
    assert.equal(gui.max_train_steps, 1200);
    assert.deepEqual(gui.network_args, ['conv_dim=8', 'conv_alpha=4']);
    assert.deepEqual(configMessages(gui).filter((m) => m.startsWith('warning')).map((m) => /unknown option "(\w+)"/.exec(m)?.[1]), ['epoch', 'noise_offset_type']);
    assert.ok(configMessages(gui).includes('note: "stop_text_encoder_training" is for training_method dreambooth; it has no effect with lora'));
  });

  it('accepts every train_network.py option name of sd-scripts', () => {
    for (const k of SD_SCRIPTS_TRAIN_NETWORK_OPTIONS) assert.ok(OPTIONS.some((o) => o.key === k), `sd-scripts option ${k} is unknown to sdlora`);
    const c = resolveConfig([{ source: 'x', values: { pretrained_model_name_or_path: 'tiny', train_data_dir: 'd', caption_extention: '.txt', use_8bit_adam: true, caption_prefix: 'photo of' } }], { strict: true });
    assert.equal(c.caption_extension, '.txt');
    assert.equal(c.optimizer_type, 'AdamW8bit');
    assert.equal(c.caption_prefix, 'photo of');
  });

  it('reports TOML and JSON syntax errors with the file, line and column', () => {
    const t = path.join(tmp, 'syntax.toml');
    writeFileSync(t, 'pretrained_model_name_or_path = "tiny"\nlearning_rate = 1e-4\nnetwork_dim = = 8\n');
    assert.throws(() => configFromArgs(['--config', t]), (e: Error) => e.message.startsWith(`${t}:3:15: not valid TOML`));
    const j = path.join(tmp, 'syntax.json');
    writeFileSync(j, '{\n  "network_dim": 8,\n  "network_alpha": ,\n}');
    assert.throws(() => configFromArgs(['--config', j]), (e: Error) => e.message.startsWith(`${j}:3:20: not valid JSON`), 'json');
    // Python's json writes NaN and Infinity; the column still counts in the file as written
    writeFileSync(j, '{"noise_offset": NaN, "network_dim" 8}');
    assert.throws(() => configFromArgs(['--config', j]), (e: Error) => e.message.startsWith(`${j}:1:37: not valid JSON`), 'json with NaN');
  });

  it('accepts the seeds sd-scripts accepts (0 .. 2^32-1) and refuses others instead of folding them', () => {
    const base = { pretrained_model_name_or_path: 'tiny', train_data_dir: 'd' };
    assert.equal(resolveConfig([{ source: 's', values: { ...base, seed: 4294967295 } }]).seed, 4294967295);
    assert.equal(resolveConfig([{ source: 's', values: { ...base, seed: '0' } }]).seed, 0);
    assert.throws(() => resolveConfig([{ source: 's', values: { ...base, seed: 2 ** 32 } }]), /"seed" must be at most 4294967295, got 4294967296/);
    assert.throws(() => resolveConfig([{ source: 's', values: { ...base, seed: -1 } }]), /"seed" must be at least 0, got -1/);
  });

  it('refuses unknown or malformed network_args and optimizer_args, naming them with a suggestion', () => {
    const base = { pretrained_model_name_or_path: 'tiny', train_data_dir: 'd' };
    const err = (v: Record<string, unknown>) => {
      try { resolveConfig([{ source: 'a', values: { ...base, ...v } }]); } catch (e) { assert.ok(e instanceof ConfigError); return e.message; }
      return assert.fail('should throw');
    };
    assert.match(err({ network_args: ['conv_dim=abc'] }), /network_args: conv_dim=abc must be a number/);
    assert.match(err({ network_args: ['conv_dims=8'] }), /network_args: unknown argument "conv_dims" for networks\.lora \(did you mean "conv_dim"\?\)/);
    assert.match(err({ network_args: ['conv_dim'] }), /network_args: "conv_dim" is not key=value/);
    assert.match(err({ network_args: ['rank_dropout=1.5'] }), /rank_dropout=1\.5 must be below 1/);
    assert.match(err({ optimizer_args: ['foo=1'] }), /optimizer_args: unknown argument "foo" for AdamW \(it takes betas, eps, weight_decay, amsgrad\)/);
    assert.match(err({ optimizer_type: 'Lion', optimizer_args: ['weight_decey=0.1'] }), /unknown argument "weight_decey" for Lion \(did you mean "weight_decay"\?\)/);
    assert.match(err({ optimizer_args: ['betas=0.9'] }), /betas=0\.9 must be two numbers/);
    assert.match(err({ optimizer_type: 'AdamW8bit', optimizer_args: ['amsgrad=True'] }), /amsgrad=True is not implemented in sdlora's AdamW8bit \(only amsgrad=False\)/);
    assert.match(err({ optimizer_args: ['maximize=True'] }), /maximize=True is not implemented in sdlora's AdamW \(only maximize=False\)/);
    assert.match(err({ optimizer_type: 'SGDNesterov', optimizer_args: ['momentum=0'] }), /SGDNesterov needs momentum > 0/);
    // all of them together
    const all = err({ network_args: ['conv_dims=8', 'conv_alpha=x'], optimizer_args: ['foo=1'] });
    assert.match(all, /conv_dims/); assert.match(all, /conv_alpha=x/); assert.match(all, /"foo"/);
    const ok = resolveConfig([{ source: 'a', values: { ...base, network_args: ['conv_dim=4', 'conv_alpha="1"', 'block_dims=2,2,2'], optimizer_type: 'prodigy', optimizer_args: ['decouple=True', 'd_coef=2', 'betas=0.9,0.99', 'fsdp_in_use=False'] } }]);
    assert.ok(configMessages(ok).some((m) => m.includes('"block_dims" has no effect in sdlora')));
    // what the network and optimizer get (and the metadata claims): only what sdlora implements
    assert.deepEqual(ok.network_args, ['conv_dim=4', 'conv_alpha=1']);
    assert.deepEqual(ok.optimizer_args, ['decouple=True', 'd_coef=2', 'betas=0.9,0.99']);
    const amsgrad = resolveConfig([{ source: 'a', values: { ...base, optimizer_args: ['amsgrad=True', 'foreach=False'] } }]);
    assert.deepEqual(amsgrad.optimizer_args, ['amsgrad=True']);
  });

  it('checks LyCORIS\' arguments and names the algos and presets it does not train', () => {
    const base = { pretrained_model_name_or_path: 'tiny', train_data_dir: 'd', network_module: 'lycoris.kohya' };
    try {
      resolveConfig([{ source: 'a', values: { ...base, network_args: ['algo=loha', 'conv_dim=8', 'use_tuker=True', 'factor=x'] } }]);
      assert.fail('should throw');
    } catch (e) {
      const m = (e as Error).message;
      assert.match(m, /unknown argument "use_tuker" for lycoris\.kohya \(did you mean "use_tucker"\?\)/);
      assert.match(m, /factor=x must be a number/);
    }
    assert.throws(() => resolveConfig([{ source: 'a', values: { ...base, network_args: ['algo=glora'] } }]), /algo=glora is not implemented in sdlora's lycoris\.kohya \(it trains lora, locon, loha, lokr\)/);
    assert.throws(() => resolveConfig([{ source: 'a', values: { ...base, network_args: ['algo=loha', 'use_scalar=True'] } }]), /use_scalar=True is not implemented/);
    const ok = resolveConfig([{ source: 'a', values: { ...base, network_args: ['algo=lokr', 'factor=8', 'dropout=0.1', 'dora_wd=True'] } }]);
    assert.deepEqual(ok.network_args, ['algo=lokr', 'factor=8', 'dora_wd=True'], 'dropout has no effect in LyCORIS\' training forward, so it is not claimed');
    assert.throws(() => resolveConfig([{ source: 'a', values: { ...base, network_module: 'networks.lora', network_args: ['algo=loha'] } }]), /unknown argument "algo" for networks\.lora/);
    assert.throws(() => resolveConfig([{ source: 'a', values: { ...base, network_module: 'networks.lorra' } }]), /"network_module" networks\.lorra is unknown/);
  });

  it('defines each option once (an implemented option is not also listed as having no effect)', () => {
    const seen = new Set<string>();
    for (const o of OPTIONS) { assert.ok(!seen.has(o.key), `${o.key} is defined twice`); seen.add(o.key); }
  });

  it('documents every option', () => {
    const md = optionsMarkdown();
    for (const o of OPTIONS) assert.ok(md.includes(`\`${o.key}\``), o.key);
  });
});
