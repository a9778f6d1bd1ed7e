// kohya_ss GUI preset and saved-config JSON files (bmaltais/kohya_ss presets/lora/*.json) read as
// sdlora options: the GUI's own keys mapped as kohya_gui/lora_gui.py maps them to sd-scripts
// arguments (epoch, max_resolution, optimizer, lr_warmup %, LoRA_type -> network_module and
// network_args, "" and 0 meaning unset), and its purely GUI keys named as having no effect.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, parseCliOptions } from './config.js';

type Raw = Record<string, unknown>;

/** Keys only the GUI writes; one of them marks a file as a GUI preset. */
const MARKERS = ['LoRA_type', 'max_resolution', 'lr_warmup', 'num_cpu_threads_per_process', 'additional_parameters', 'lora_network_weights'];

/** GUI keys that reach no sd-scripts argument for an SD 1.x/2.x LoRA (launcher, other model families). */
const GUI_ONLY = new Set([
  'model_list', 'num_cpu_threads_per_process', 'num_processes', 'num_machines', 'multi_gpu', 'gpu_ids', 'main_process_port',
  'extra_accelerate_launch_args', 'dynamo_mode', 'dynamo_use_dynamic', 'dynamo_use_fullgraph', 'save_as_bool', 'no_token_padding',
  'stop_text_encoder_training', 'stop_text_encoder_training_pct', 'sdxl', 'sdxl_cache_text_encoder_outputs', 'sdxl_no_half_vae',
  'flux1_checkbox', 'flux1_cache_text_encoder_outputs', 'flux1_cache_text_encoder_outputs_to_disk', 'lowvram', 'train_blocks',
  'split_mode', 'mem_eff_save', 'apply_t5_attn_mask', 'guidance_scale', 't5xxl', 't5xxl_max_token_length', 'clip_l', 'ae',
  'discrete_flow_shift', 'model_prediction_type', 'timestep_sampling',
]);

/** GUI keys that feed network_args, depending on LoRA_type. */
const NETWORK_KEYS = new Set([
  'LoRA_type', 'LyCORIS_preset', 'conv_dim', 'conv_alpha', 'conv_dims', 'conv_alphas', 'rank_dropout', 'module_dropout',
  'block_dims', 'block_alphas', 'conv_block_dims', 'conv_block_alphas', 'down_lr_weight', 'mid_lr_weight', 'up_lr_weight',
  'block_lr_zero_threshold', 'factor', 'use_cp', 'use_tucker', 'use_scalar', 'decompose_both', 'rank_dropout_scale', 'train_norm',
  'bypass_mode', 'dora_wd', 'constrain', 'rescaled', 'unit', 'train_on_input', 'loraplus_lr_ratio', 'loraplus_unet_lr_ratio',
  'loraplus_text_encoder_lr_ratio',
]);

/** The GUI sends these as None when they are 0 (lora_gui.py's config_toml_data). */
const ZERO_IS_UNSET = new Set([
  'max_train_epochs', 'max_train_steps', 'save_every_n_epochs', 'save_every_n_steps', 'save_last_n_steps', 'save_last_n_steps_state',
  'save_last_n_epochs', 'save_last_n_epochs_state', 'min_snr_gamma', 'sample_every_n_epochs', 'sample_every_n_steps', 'vae_batch_size',
  'max_timestep', 'min_timestep', 'ip_noise_gamma', 'v_pred_like_loss', 'clip_skip', 'scale_weight_norms', 'seed',
]);

const RENAMES: Record<string, string> = { max_resolution: 'resolution', optimizer: 'optimizer_type', lora_network_weights: 'network_weights' };

const unset = (v: unknown) => v === '' || v === null || v === undefined;
const num = (v: unknown) => (unset(v) ? 0 : Number(v));
/** Truthy as Python sees a GUI value: "" and 0 are not given. */
const given = (v: unknown) => !unset(v) && v !== false && num(v) !== 0;

export function isKohyaGuiPreset(raw: Raw): boolean {
  return MARKERS.some((k) => k in raw);
}

const LYCORIS_ARGS: Record<string, string[]> = {
  'LyCORIS/LoCon': ['preset', 'conv_dim', 'conv_alpha', 'use_tucker', 'rank_dropout', 'bypass_mode', 'dora_wd', 'module_dropout', 'use_scalar', 'rank_dropout_scale', 'train_norm'],
  'LyCORIS/LoHa': ['preset', 'conv_dim', 'conv_alpha', 'use_tucker', 'rank_dropout', 'bypass_mode', 'dora_wd', 'module_dropout', 'use_scalar', 'rank_dropout_scale', 'train_norm'],
  'LyCORIS/LoKr': ['preset', 'conv_dim', 'conv_alpha', 'use_tucker', 'rank_dropout', 'bypass_mode', 'dora_wd', 'module_dropout', 'factor', 'use_cp', 'use_scalar', 'decompose_both', 'rank_dropout_scale', 'train_norm'],
  'LyCORIS/iA3': ['preset', 'conv_dim', 'conv_alpha', 'train_on_input'],
  'LyCORIS/DyLoRA': ['preset', 'conv_dim', 'conv_alpha', 'use_tucker', 'block_size', 'rank_dropout', 'module_dropout', 'train_norm'],
  'LyCORIS/GLoRA': ['preset', 'conv_dim', 'conv_alpha', 'use_tucker', 'rank_dropout', 'module_dropout', 'rank_dropout_scale', 'train_norm'],
  'LyCORIS/BOFT': ['preset', 'conv_dim', 'conv_alpha', 'module_dropout', 'use_tucker', 'rank_dropout', 'rank_dropout_scale', 'train_norm'],
  'LyCORIS/Diag-OFT': ['preset', 'conv_dim', 'conv_alpha', 'module_dropout', 'use_tucker', 'rank_dropout', 'rank_dropout_scale', 'constraint', 'rescaled', 'train_norm'],
  'LyCORIS/Native Fine-Tuning': ['preset', 'rank_dropout', 'module_dropout', 'rank_dropout_scale', 'train_norm'],
};
const LYCORIS_ALGO: Record<string, string> = {
  'LyCORIS/LoCon': 'locon', 'LyCORIS/LoHa': 'loha', 'LyCORIS/LoKr': 'lokr', 'LyCORIS/iA3': 'ia3', 'LyCORIS/DyLoRA': 'dylora',
  'LyCORIS/GLoRA': 'glora', 'LyCORIS/BOFT': 'boft', 'LyCORIS/Diag-OFT': 'diag-oft', 'LyCORIS/Native Fine-Tuning': 'full',
};
/** Kohya's own modules and the network_args the GUI passes to them when set. */
const KOHYA_BLOCK_ARGS = ['down_lr_weight', 'mid_lr_weight', 'up_lr_weight', 'block_lr_zero_threshold', 'block_dims', 'block_alphas', 'conv_block_dims', 'conv_block_alphas', 'rank_dropout', 'module_dropout'];
const OTHER_MODULES: Record<string, string> = {
  'Kohya DyLoRA': 'networks.dylora', 'LoRA-FA': 'networks.lora_fa', 'Kohya LoHa': 'networks.loha', 'Kohya LoKr': 'networks.lokr',
  Flux1: 'networks.lora_flux', 'Flux1 OFT': 'networks.oft_flux', 'HunyuanImage-2.1': 'networks.lora_hunyuan_image',
  Anima: 'networks.lora_anima', Lumina: 'networks.lora_lumina',
};

/** The GUI keys a LoRA_type passes on (lora_gui.py), to name the others when they are set. */
function networkKeysUsed(type: string): string[] {
  const loraplus = ['loraplus_lr_ratio', 'loraplus_unet_lr_ratio', 'loraplus_text_encoder_lr_ratio'];
  const gui: Record<string, string> = { preset: 'LyCORIS_preset', block_size: 'unit', constraint: 'constrain' };
  if (type === 'Standard') return [...KOHYA_BLOCK_ARGS, 'conv_dims', 'conv_alphas', ...loraplus];
  if (type === 'Kohya LoCon') return [...KOHYA_BLOCK_ARGS, 'conv_dims', 'conv_alphas', 'conv_dim', 'conv_alpha', ...loraplus];
  const lyco = LYCORIS_ARGS[type === 'LoCon' ? 'LyCORIS/LoCon' : type];
  return lyco ? [...lyco.map((a) => gui[a] ?? a), ...loraplus] : [];
}

/** Set keys that the preset's LoRA_type or noise_offset_type leaves out, as the GUI itself does. */
function unusedKeys(raw: Raw): string[] {
  const type = String(raw.LoRA_type ?? 'Standard');
  const used = new Set(['LoRA_type', ...networkKeysUsed(type)]);
  const out = [...NETWORK_KEYS].filter((k) => !used.has(k) && given(raw[k]));
  const multires = (raw.noise_offset_type ?? 'Original') !== 'Original';
  const noise = multires ? ['noise_offset', 'adaptive_noise_scale', 'noise_offset_random_strength'] : ['multires_noise_iterations'];
  return [...out, ...noise.filter((k) => given(raw[k]))];
}

/** The value of a GUI key for a LyCORIS argument (the GUI's names differ for a few). */
function lycorisValue(raw: Raw, arg: string): unknown {
  const source: Record<string, string> = { preset: 'LyCORIS_preset', block_size: 'unit', constraint: 'constrain' };
  const v = raw[source[arg] ?? arg];
  return arg === 'preset' && unset(v) ? 'full' : v;
}

/** LoRA_type and its keys as network_module and network_args (lora_gui.py train_model). */
function networkOptions(raw: Raw, file: string): { network_module: string; network_args: string[] } {
  const type = String(raw.LoRA_type ?? 'Standard');
  // Older GUI versions saved conv_block_dims/alphas as conv_dims/conv_alphas.
  const r: Raw = { ...raw, conv_block_dims: raw.conv_block_dims ?? raw.conv_dims, conv_block_alphas: raw.conv_block_alphas ?? raw.conv_alphas };
  const givenArgs = (keys: string[]) => keys.filter((k) => given(r[k])).map((k) => `${k}=${r[k]}`);
  const loraplus = givenArgs(['loraplus_lr_ratio', 'loraplus_unet_lr_ratio', 'loraplus_text_encoder_lr_ratio']);
  if (type === 'Standard' || type === 'Kohya LoCon') {
    const conv = type === 'Kohya LoCon' ? [`conv_dim=${r.conv_dim}`, `conv_alpha=${r.conv_alpha}`] : [];
    return { network_module: 'networks.lora', network_args: [...conv, ...givenArgs(KOHYA_BLOCK_ARGS), ...loraplus] };
  }
  const lyco = type === 'LoCon' ? 'LyCORIS/LoCon' : type;
  if (LYCORIS_ARGS[lyco]) {
    const args = LYCORIS_ARGS[lyco].filter((a) => !unset(lycorisValue(r, a))).map((a) => `${a}=${lycorisValue(r, a)}`);
    return { network_module: 'lycoris.kohya', network_args: [...args, `algo=${LYCORIS_ALGO[lyco]}`, ...loraplus] };
  }
  if (OTHER_MODULES[type]) return { network_module: OTHER_MODULES[type], network_args: [] };
  throw new ConfigError([`${file}: "LoRA_type" ${JSON.stringify(type)} is not a kohya_ss LoRA type (Standard, Kohya LoCon, LyCORIS/LoCon, LyCORIS/LoHa, LyCORIS/LoKr, ...)`]);
}

/** "--flag value ..." of additional_parameters, split as a shell would (quotes group words). */
function additionalParameters(text: string, file: string): Raw {
  const words = [...text.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
  try { return parseCliOptions(words); } catch (e) {
    throw new ConfigError([`${file}: "additional_parameters": ${(e as Error).message}`]);
  }
}

/** Training length: max_train_epochs, else max_train_steps, else the GUI's epoch count. */
function lengthOptions(raw: Raw): Raw {
  if (given(raw.max_train_epochs)) return { max_train_epochs: raw.max_train_epochs };
  if (given(raw.max_train_steps)) return { max_train_steps: raw.max_train_steps };
  return given(raw.epoch) ? { max_train_epochs: raw.epoch } : {};
}

/** The noise keys that apply under the GUI's noise_offset_type. */
function noiseOptions(raw: Raw): Raw {
  const out: Raw = {};
  if ((raw.noise_offset_type ?? 'Original') === 'Original') {
    for (const k of ['noise_offset', 'adaptive_noise_scale']) if (given(raw[k])) out[k] = raw[k];
    if (given(raw.noise_offset_random_strength)) out.noise_offset_random_strength = raw.noise_offset_random_strength;
  } else {
    if (given(raw.multires_noise_iterations)) out.multires_noise_iterations = raw.multires_noise_iterations;
    if (!unset(raw.multires_noise_discount)) out.multires_noise_discount = raw.multires_noise_discount;
  }
  return out;
}

/** unet_lr / text_encoder_lr, where 0 means "do not train that part" (resolve_network_train_flags). */
function learningRateOptions(raw: Raw): Raw {
  const te = num(raw.text_encoder_lr), unet = num(raw.unet_lr), out: Raw = {};
  if (unet) out.unet_lr = unet;
  if (te) out.text_encoder_lr = te;
  if (!te && unet) out.network_train_unet_only = true;
  if (te && !unet) out.network_train_text_encoder_only = true;
  return out;
}

/** The GUI's lr_warmup is a percentage of the steps; sd-scripts takes a fraction below 1 as one. */
function warmupOptions(raw: Raw): Raw {
  if (given(raw.lr_warmup_steps)) return { lr_warmup_steps: raw.lr_warmup_steps };
  return given(raw.lr_warmup) ? { lr_warmup_steps: num(raw.lr_warmup) / 100 } : {};
}

/** The GUI keeps the prompts' text in sample_prompts and writes it to a file for sd-scripts (create_prompt_file). */
function promptFile(text: string): string {
  const file = path.join(os.tmpdir(), `sdlora-kohya-gui-prompts-${createHash('sha1').update(text).digest('hex').slice(0, 12)}.txt`);
  writeFileSync(file, text.endsWith('\n') ? text : `${text}\n`);
  return file;
}

const HANDLED = new Set(['sample_prompts', 'epoch', 'max_train_epochs', 'max_train_steps', 'noise_offset_type', 'noise_offset', 'adaptive_noise_scale', 'noise_offset_random_strength',
  'multires_noise_iterations', 'multires_noise_discount', 'text_encoder_lr', 'unet_lr', 'lr_warmup', 'lr_warmup_steps', 'xformers',
  'additional_parameters', 'optimizer_args', 'lr_scheduler_args', 'lr_scheduler_num_cycles']);

/** Options and notes from a GUI preset: the sd-scripts keys as they are, the GUI keys mapped. */
export function kohyaGuiPresetOptions(raw: Raw, file: string): { values: Raw; notes: string[] } {
  const values: Raw = {}, guiOnly: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (NETWORK_KEYS.has(k) || HANDLED.has(k)) continue;
    if (GUI_ONLY.has(k)) { if (given(v)) guiOnly.push(k); continue; }
    if (unset(v) || (ZERO_IS_UNSET.has(k) && num(v) === 0)) continue;
    values[RENAMES[k] ?? k] = v;
  }
  Object.assign(values, networkOptions(raw, file), lengthOptions(raw), noiseOptions(raw), learningRateOptions(raw), warmupOptions(raw));
  // xformers is "xformers", "sdpa" or "none" in new GUI versions and a boolean in old ones.
  if (raw.xformers === true || raw.xformers === 'xformers') values.xformers = true;
  if (raw.xformers === 'sdpa') values.sdpa = true;
  for (const k of ['optimizer_args', 'lr_scheduler_args']) if (!unset(raw[k])) values[k] = String(raw[k]).replace(/"/g, '').split(/\s+/).filter(Boolean);
  if (!unset(raw.lr_scheduler_num_cycles)) values.lr_scheduler_num_cycles = raw.lr_scheduler_num_cycles;
  else if (given(raw.epoch)) values.lr_scheduler_num_cycles = raw.epoch;
  if (!unset(raw.sample_prompts)) values.sample_prompts = promptFile(String(raw.sample_prompts));
  if (!unset(raw.additional_parameters)) Object.assign(values, additionalParameters(String(raw.additional_parameters), file));
  const notes = guiOnly.length ? [`${file}: kohya_ss GUI settings with no effect in sdlora: ${guiOnly.join(', ')}`] : [];
  const unused = unusedKeys(raw);
  if (unused.length) notes.push(`${file}: settings with no effect under LoRA_type "${raw.LoRA_type ?? 'Standard'}" and noise_offset_type "${raw.noise_offset_type ?? 'Original'}" (the GUI does not pass them on either): ${unused.join(', ')}`);
  return { values, notes };
}
