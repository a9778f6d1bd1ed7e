// The Train form's options as a kohya_ss GUI config (the JSON its "Save" writes and "Load" reads):
// the reverse of src/train/kohya-gui-preset.ts, so that loading the file in the GUI, or importing
// it here or with `sdlora train --config`, gives the same training run. What the GUI cannot hold
// is listed as a note instead of being dropped silently.
type Raw = Record<string, unknown>;

const LYCORIS_TYPES: Record<string, string> = {
  locon: 'LyCORIS/LoCon', loha: 'LyCORIS/LoHa', lokr: 'LyCORIS/LoKr', ia3: 'LyCORIS/iA3', dylora: 'LyCORIS/DyLoRA',
  glora: 'LyCORIS/GLoRA', boft: 'LyCORIS/BOFT', 'diag-oft': 'LyCORIS/Diag-OFT', full: 'LyCORIS/Native Fine-Tuning',
};
/** LyCORIS argument names the GUI spells differently. */
const LYCORIS_GUI_KEY: Record<string, string> = { preset: 'LyCORIS_preset', block_size: 'unit', constraint: 'constrain' };
const KOHYA_ARGS = new Set(['down_lr_weight', 'mid_lr_weight', 'up_lr_weight', 'block_lr_zero_threshold', 'block_dims', 'block_alphas', 'conv_block_dims', 'conv_block_alphas', 'rank_dropout', 'module_dropout', 'loraplus_lr_ratio', 'loraplus_unet_lr_ratio', 'loraplus_text_encoder_lr_ratio']);
/** Options the GUI stores under its own name or shape; every other option keeps its sd-scripts name. */
const MAPPED = new Set(['network_module', 'network_args', 'resolution', 'optimizer_type', 'max_train_epochs', 'max_train_steps', 'learning_rate', 'unet_lr', 'text_encoder_lr',
  'network_train_unet_only', 'network_train_text_encoder_only', 'lr_warmup_steps', 'optimizer_args', 'lr_scheduler_args', 'lr_scheduler_num_cycles',
  'noise_offset', 'adaptive_noise_scale', 'noise_offset_random_strength', 'multires_noise_iterations', 'multires_noise_discount']);

const argMap = (args: unknown): Map<string, string> => new Map((Array.isArray(args) ? args : []).map((a) => String(a).split('=')).map(([k, ...v]) => [k.trim(), v.join('=').trim()]));

function network(values: Raw, out: Raw, notes: string[]): void {
  const module = String(values.network_module ?? 'networks.lora');
  const args = argMap(values.network_args);
  if (module === 'lycoris.kohya') {
    const algo = args.get('algo') ?? 'lora';
    out.LoRA_type = LYCORIS_TYPES[algo] ?? 'LyCORIS/LoCon';
    if (!LYCORIS_TYPES[algo]) notes.push(`LyCORIS algo "${algo}" has no kohya_ss LoRA_type; written as LyCORIS/LoCon`);
    for (const [k, v] of args) if (k !== 'algo') out[LYCORIS_GUI_KEY[k] ?? k] = numeric(v);
  } else if (module === 'networks.lora') {
    out.LoRA_type = args.has('conv_dim') ? 'Kohya LoCon' : 'Standard';
    for (const [k, v] of args) {
      if (k === 'conv_dim' || k === 'conv_alpha' || KOHYA_ARGS.has(k)) out[k] = numeric(v);
      else notes.push(`network_args "${k}=${v}" has no kohya_ss GUI field; not exported`);
    }
  } else notes.push(`network_module "${module}" has no kohya_ss LoRA_type; written as Standard`);
  out.LoRA_type ??= 'Standard';
}

const numeric = (v: string): unknown => (v !== '' && Number.isFinite(Number(v)) ? Number(v) : v === 'True' || v === 'true' ? true : v === 'False' || v === 'false' ? false : v);

export function toKohyaGui(values: Raw): { config: Raw; notes: string[] } {
  const out: Raw = {}, notes: string[] = [];
  network(values, out, notes);
  const res = values.resolution;
  if (res !== undefined) out.max_resolution = Array.isArray(res) ? res.join(',') : /,/.test(String(res)) ? String(res) : `${res},${res}`;
  if (values.optimizer_type !== undefined) out.optimizer = values.optimizer_type;
  if (values.max_train_epochs !== undefined) { out.epoch = values.max_train_epochs; out.max_train_epochs = values.max_train_epochs; }
  else if (values.max_train_steps !== undefined) out.max_train_steps = values.max_train_steps;
  // The GUI cycles cosine_with_restarts once per epoch unless told: the run's own value is written.
  out.lr_scheduler_num_cycles = values.lr_scheduler_num_cycles ?? 1;
  if (values.learning_rate !== undefined) out.learning_rate = values.learning_rate;
  // A learning rate of 0 for one part is how the GUI says "do not train it".
  const lr = values.learning_rate ?? 1e-4;
  if (values.network_train_unet_only) { out.text_encoder_lr = 0; out.unet_lr = values.unet_lr ?? lr; }
  else if (values.network_train_text_encoder_only) { out.unet_lr = 0; out.text_encoder_lr = values.text_encoder_lr ?? lr; }
  else { if (values.unet_lr !== undefined) out.unet_lr = values.unet_lr; if (values.text_encoder_lr !== undefined) out.text_encoder_lr = values.text_encoder_lr; }
  const warm = values.lr_warmup_steps;
  if (typeof warm === 'number' && warm > 0 && warm < 1) out.lr_warmup = warm * 100;
  else if (warm !== undefined) out.lr_warmup_steps = warm;
  for (const k of ['optimizer_args', 'lr_scheduler_args']) if (Array.isArray(values[k]) && (values[k] as unknown[]).length) out[k] = (values[k] as string[]).join(' ');
  if (values.multires_noise_iterations !== undefined) {
    out.noise_offset_type = 'Multires';
    out.multires_noise_iterations = values.multires_noise_iterations;
    if (values.multires_noise_discount !== undefined) out.multires_noise_discount = values.multires_noise_discount;
  } else {
    out.noise_offset_type = 'Original';
    for (const k of ['noise_offset', 'adaptive_noise_scale', 'noise_offset_random_strength']) if (values[k] !== undefined) out[k] = values[k];
  }
  for (const [k, v] of Object.entries(values)) if (!MAPPED.has(k) && v !== undefined && v !== null && v !== '') out[k] = v;
  return { config: out, notes };
}
