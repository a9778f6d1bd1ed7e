// The network modules sd-scripts can train with and the network_args each one takes:
// networks.lora from sd-scripts' networks/lora.py create_network, lycoris.kohya from LyCORIS'
// lycoris/kohya.py create_network. A module that sdlora does not train yet is named, not ignored.
import { type ArgReport, type ArgSpec, checkArgList, implementedArgs, splitArgs } from './arg-spec.js';
import { LYCORIS_PRESETS as LYCORIS_PRESET_TABLE, LYCORIS_TRAINED_ALGOS } from './lycoris-network.js';

export interface NetworkModule {
  implemented: boolean;
  /** null: the module is known but its arguments are not checked (it is refused anyway). */
  args: Record<string, ArgSpec> | null;
  what: string;
  /** Problems of values the table cannot express (e.g. a known but untrained algo). */
  problems?: (args: string[]) => string[];
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
  conv_dim: dim, conv_alpha: alpha, rank_dropout: rate, module_dropout: rate,
  factor: { value: { kind: 'number', min: -1, integer: true } },
  ...Object.fromEntries(['use_tucker', 'use_cp', 'use_conv_cp', 'disable_conv_cp', 'dora_wd', 'wd_on_output', 'full_matrix', 'rs_lora',
    'unbalanced_factorization', 'decompose_both'].map((k) => [k, bool])),
  // LyCORIS' modules apply no plain dropout in the weight-rebuilding forward that kohya training uses.
  dropout: { value: rate.value, noEffect: 'LyCORIS applies only rank_dropout and module_dropout outside bypass_mode' },
  rank_dropout_scale: { value: { kind: 'bool' }, noEffect: 'LyCORIS\' kohya create_network does not pass it to the modules' },
  block_size: { value: { kind: 'number', min: 1, integer: true }, noEffect: 'it is for algo=diag-oft/boft' },
  constraint: { value: alpha.value, noEffect: 'it is for algo=diag-oft/boft' }, constrain: { value: alpha.value, noEffect: 'it is for algo=diag-oft/boft' },
  rescaled: { value: { kind: 'bool' }, noEffect: 'it is for algo=diag-oft/boft' },
  train_on_input: { value: { kind: 'bool' }, noEffect: 'it is for algo=ia3' },
  train_t5xxl: { value: { kind: 'bool' }, noEffect: 'SD models have no T5' },
  use_scalar: { value: { kind: 'bool' }, only: 'False' }, train_norm: { value: { kind: 'bool' }, only: 'False' },
  bypass_mode: { value: { kind: 'bool' }, only: 'False' },
  ...Object.fromEntries(['loraplus_lr_ratio', 'loraplus_unet_lr_ratio', 'loraplus_text_encoder_lr_ratio'].map((k) => [k, unused('LoRA+ is not implemented', { kind: 'number', min: 0 })])),
};

/** algo and preset values sdlora does not train (LyCORIS knows them; they are named, not ignored). */
function lycorisProblems(args: string[]): string[] {
  const a = splitArgs(args), out: string[] = [];
  const algo = (a.algo ?? 'lora').toLowerCase();
  if (LYCORIS_ALGOS.includes(algo as typeof LYCORIS_ALGOS[number]) && !LYCORIS_TRAINED_ALGOS.includes(algo)) {
    out.push(`network_args: algo=${algo} is not implemented in sdlora's lycoris.kohya (it trains ${LYCORIS_TRAINED_ALGOS.join(', ')})`);
  }
  if (a.preset !== undefined && !LYCORIS_PRESET_TABLE[a.preset]) {
    out.push(`network_args: preset=${a.preset} is not implemented in sdlora (${LYCORIS_PRESETS.includes(a.preset) ? 'the ia3 preset is for algo=ia3' : 'preset files are not read'}; it has ${Object.keys(LYCORIS_PRESET_TABLE).join(', ')})`);
  }
  return out;
}

const other = (what: string): NetworkModule => ({ implemented: false, args: null, what });

export const NETWORK_MODULES: Record<string, NetworkModule> = {
  'networks.lora': { implemented: true, args: LORA_ARGS, what: 'kohya LoRA (LoCon with conv_dim)' },
  'lycoris.kohya': { implemented: true, args: LYCORIS_ARGS, what: 'LyCORIS (LoCon, LoHa, LoKr, DoRA)', problems: lycorisProblems },
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
  if (m.problems && !report.problems.length) report.problems.push(...m.problems(args));
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
