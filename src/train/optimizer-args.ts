// The optimizer_args each optimizer_type takes, as the keyword arguments of the class sd-scripts
// builds (torch.optim.AdamW, bitsandbytes AdamW8bit, lion_pytorch Lion, prodigyopt Prodigy,
// torch.optim.SGD with nesterov). The arguments sdlora's optimizers.ts implements are checked for
// their values; the other arguments of those classes are accepted only with the value sdlora's
// update amounts to, or named as having no effect when they only tune speed or memory.
import { type ArgReport, type ArgSpec, checkArgList, implementedArgs, splitArgs } from './arg-spec.js';

const beta: ArgSpec = { value: { kind: 'number', min: 0, below: 1 } };
const betas: ArgSpec = { value: { kind: 'pair', min: 0, below: 1 } };
const positive: ArgSpec = { value: { kind: 'number', min: 0 } };
const bool: ArgSpec = { value: { kind: 'bool' } };
const fixed = (only: string): ArgSpec => ({ value: { kind: 'bool' }, only });
const speedOnly: ArgSpec = { value: { kind: 'bool' }, noEffect: 'it only selects a torch kernel' };

const TORCH_FLAGS = { maximize: fixed('False'), foreach: speedOnly, fused: speedOnly, capturable: speedOnly, differentiable: speedOnly };

export const OPTIMIZER_ARGS: Record<string, Record<string, ArgSpec>> = {
  AdamW: { betas, eps: positive, weight_decay: positive, amsgrad: bool, ...TORCH_FLAGS },
  AdamW8bit: {
    betas, eps: positive, weight_decay: positive, amsgrad: fixed('False'), is_paged: speedOnly, block_wise: fixed('True'),
    min_8bit_size: { value: { kind: 'number', min: 0, integer: true }, noEffect: 'every state is kept in 8 bits' },
    percentile_clipping: { value: { kind: 'number', min: 1, max: 100, integer: true }, only: '100' },
  },
  Lion: { betas, weight_decay: positive, use_triton: speedOnly, decoupled_weight_decay: fixed('False') },
  Prodigy: {
    betas, beta3: beta, eps: positive, weight_decay: positive, d0: positive, d_coef: positive,
    growth_rate: { value: { kind: 'number', min: 1 } }, decouple: bool, use_bias_correction: bool, safeguard_warmup: bool,
    slice_p: { value: { kind: 'number', min: 1, integer: true } }, fsdp_in_use: fixed('False'),
  },
  // sd-scripts passes nesterov=True itself; Nesterov momentum needs momentum > 0 and no dampening.
  SGDNesterov: {
    momentum: { value: { kind: 'number', min: 0, below: 1 } }, weight_decay: positive,
    dampening: { value: { kind: 'number' }, only: '0' }, nesterov: fixed('True'), ...TORCH_FLAGS,
  },
};

const tableOf = (type: string) => Object.entries(OPTIMIZER_ARGS).find(([k]) => k.toLowerCase() === type.toLowerCase());

export function checkOptimizerArgs(type: string, args: string[]): ArgReport {
  const hit = tableOf(type);
  if (!hit) return { problems: [], notes: [] }; // optimizer_type itself is checked by the schema
  const report = checkArgList('optimizer_args', hit[0], args, hit[1]);
  if (hit[0] === 'SGDNesterov' && Number(splitArgs(args).momentum) === 0) report.problems.push('optimizer_args: momentum=0 leaves no Nesterov momentum (SGDNesterov needs momentum > 0)');
  return report;
}

/** What the optimizer is given: no-effect arguments and fixed defaults are not passed on (nor claimed in ss_optimizer). */
export function implementedOptimizerArgs(type: string, args: string[]): string[] {
  return implementedArgs(args, tableOf(type)?.[1] ?? {});
}
