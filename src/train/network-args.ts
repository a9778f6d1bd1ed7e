// The network modules sd-scripts can train with and the network_args each one takes:
// networks.lora from sd-scripts' networks/lora.py create_network, lycoris.kohya from LyCORIS'
// lycoris/kohya.py create_network. A module that sdlora does not train yet is named, not ignored.
import { type ArgReport, type ArgSpec, checkArgList, implementedArgs } from './arg-spec.js';

export interface NetworkModule {
  implemented: boolean;
  /** null: the module is known but its arguments are not checked (it is refused anyway). */
  args: Record<string, ArgSpec> | null;
  what: string;
}

const rate: ArgSpec = { value: { kind: 'number', min: 0, below: 1 } };
const bool: ArgSpec = { value: { kind: 'bool' } };
const dim: ArgSpec = { value: { kind: 'number', min: 0, integer: true } };
const alpha: ArgSpec = { value: { kind: 'number', min: 0 } };
const unused = (why: string, value: ArgSpec['value'] = { kind: 'list' }): ArgSpec => ({ value, noEffect: why });

const LORA_ARGS: Record<string, ArgSpec> = {
  conv_dim: dim, conv_alpha: alpha, rank_dropout: rate, module_dropout: rate,
  // sdlora's own: B-LoRA (SDXL content and style blocks only; src/lora/b-lora.ts).
  b_lora: bool,
  ...Object.fromEntries(['block_dims', 'block_alphas', 'conv_block_dims', 'conv_block_alphas'].map((k) => [k, unused('per-block ranks are not implemented; every block uses network_dim/conv_dim')])),
  ...Object.fromEntries(['down_lr_weight', 'mid_lr_weight', 'up_lr_weight'].map((k) => [k, unused('per-block learning rates are not implemented')])),
  block_lr_zero_threshold: unused('per-block learning rates are not implemented', { kind: 'number', min: 0 }),
  ...Object.fromEntries(['loraplus_lr_ratio', 'loraplus_unet_lr_ratio', 'loraplus_text_encoder_lr_ratio'].map((k) => [k, unused('LoRA+ is not implemented', { kind: 'number', min: 0 })])),
};

export const LYCORIS_ALGOS = ['lora', 'locon', 'loha', 'lokr', 'dylora', 'glora', 'full', 'diag-oft', 'boft', 'ia3'] as const;
const LYCORIS_PRESETS = ['full', 'full-lin', 'attn-mlp', 'attn-only', 'unet-only', 'unet-transformer-only', 'unet-convblock-only', 'ia3'];

const LYCORIS_ARGS: Record<string, ArgSpec> = {
  algo: { value: { kind: 'choice', choices: LYCORIS_ALGOS } },
  // A preset is one of LyCORIS' names or the path of a preset TOML file.
  preset: { value: { kind: 'choice', choices: LYCORIS_PRESETS, open: true } },
  conv_dim: dim, conv_alpha: alpha, dropout: rate, rank_dropout: rate, module_dropout: rate,
  factor: { value: { kind: 'number', min: -1, integer: true } },
  block_size: { value: { kind: 'number', min: 1, integer: true } },
  constraint: alpha, constrain: alpha,
  ...Object.fromEntries(['use_tucker', 'use_cp', 'use_conv_cp', 'disable_conv_cp', 'use_scalar', 'train_norm', 'rescaled', 'dora_wd', 'wd_on_output',
    'full_matrix', 'bypass_mode', 'rs_lora', 'unbalanced_factorization', 'rank_dropout_scale', 'decompose_both', 'train_on_input', 'train_t5xxl'].map((k) => [k, bool])),
  ...Object.fromEntries(['loraplus_lr_ratio', 'loraplus_unet_lr_ratio', 'loraplus_text_encoder_lr_ratio'].map((k) => [k, alpha])),
};

const other = (what: string): NetworkModule => ({ implemented: false, args: null, what });

export const NETWORK_MODULES: Record<string, NetworkModule> = {
  'networks.lora': { implemented: true, args: LORA_ARGS, what: 'kohya LoRA (LoCon with conv_dim)' },
  'lycoris.kohya': { implemented: false, args: LYCORIS_ARGS, what: 'LyCORIS (LoCon, LoHa, LoKr, ...)' },
  'networks.dylora': other('kohya DyLoRA'), 'networks.lora_fa': other('kohya LoRA-FA'),
  'networks.loha': other('kohya LoHa'), 'networks.lokr': other('kohya LoKr'), 'networks.oft': other('kohya OFT'),
  'networks.lora_sd3': other('SD3 LoRA'), 'networks.lora_flux': other('FLUX.1 LoRA'), 'networks.oft_flux': other('FLUX.1 OFT'),
  'networks.lora_lumina': other('Lumina LoRA'), 'networks.lora_anima': other('Anima LoRA'), 'networks.lora_hunyuan_image': other('HunyuanImage LoRA'),
};

/** Problems and notes of network_module + network_args. */
export function checkNetworkArgs(module: string, args: string[]): ArgReport {
  const m = NETWORK_MODULES[module];
  if (!m) return { problems: [`"network_module" ${module} is unknown (sdlora trains ${implementedModules().join(', ')})`], notes: [] };
  const report = m.args ? checkArgList('network_args', module, args, m.args) : { problems: [], notes: [] };
  if (!m.implemented) {
    const algo = /(?:^|\s)algo=["']?([\w-]+)/.exec(args.join(' '))?.[1];
    report.problems.unshift(`"network_module" ${module} (${m.what}${algo ? `, algo=${algo}` : ''}) is not implemented in sdlora yet; it trains ${implementedModules().join(', ')}`);
  }
  return report;
}

export const implementedModules = () => Object.entries(NETWORK_MODULES).filter(([, m]) => m.implemented).map(([k]) => k);

/** What the network is built from: no-effect arguments are not passed on (nor claimed in ss_network_args). */
export function implementedNetworkArgs(module: string, args: string[]): string[] {
  const table = NETWORK_MODULES[module]?.args;
  return table ? implementedArgs(args, table) : args;
}
