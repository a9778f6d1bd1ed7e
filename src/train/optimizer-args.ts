// The optimizer_args each optimizer_type takes, as the keyword arguments of the class sd-scripts
// builds (torch.optim.AdamW, bitsandbytes AdamW8bit, lion_pytorch Lion, prodigyopt Prodigy,
// torch.optim.SGD with nesterov). Arguments of those classes that sdlora does not implement are
// accepted only with the value sdlora's update amounts to, or named as having no effect when they
// only tune speed or memory.
import { type ArgReport, type ArgSpec, checkArgList } from './arg-spec.js';

const beta: ArgSpec = { value: { kind: 'number', min: 0, below: 1 } };
const betas: ArgSpec = { value: { kind: 'pair', min: 0, below: 1 } };
const positive: ArgSpec = { value: { kind: 'number', min: 0 } };
const fixed = (only: string): ArgSpec => ({ value: { kind: 'bool' }, only });
const speedOnly: ArgSpec = { value: { kind: 'bool' }, noEffect: 'it only selects a torch kernel' };

const TORCH_FLAGS = { maximize: fixed('False'), foreach: speedOnly, fused: speedOnly, capturable: speedOnly, differentiable: speedOnly };
const ADAMW = { betas, eps: positive, weight_decay: positive, amsgrad: fixed('False'), ...TORCH_FLAGS };

export const OPTIMIZER_ARGS: Record<string, Record<string, ArgSpec>> = {
  AdamW: ADAMW,
  AdamW8bit: {
    ...ADAMW, is_paged: speedOnly,
    block_wise: fixed('True'),
    min_8bit_size: { value: { kind: 'number', min: 0, integer: true }, noEffect: 'every state is kept in 8 bits' },
    percentile_clipping: { value: { kind: 'number', min: 1, max: 100, integer: true }, only: '100' },
    optim_bits: { value: { kind: 'number', integer: true }, only: '8' },
  },
  Lion: { betas, weight_decay: positive, use_triton: speedOnly, decoupled_weight_decay: fixed('False') },
  Prodigy: {
    betas, beta3: beta, eps: positive, weight_decay: positive, d0: positive, d_coef: positive,
    growth_rate: { value: { kind: 'number', min: 1 } },
    decouple: fixed('True'), use_bias_correction: fixed('False'), safeguard_warmup: fixed('False'),
    fsdp_in_use: fixed('False'), slice_p: { value: { kind: 'number', min: 1, integer: true }, only: '1' },
  },
  SGDNesterov: { momentum: beta, weight_decay: positive, dampening: { value: { kind: 'number' }, only: '0' }, nesterov: fixed('True'), ...TORCH_FLAGS },
};

export function checkOptimizerArgs(type: string, args: string[]): ArgReport {
  const name = Object.keys(OPTIMIZER_ARGS).find((k) => k.toLowerCase() === type.toLowerCase());
  if (!name) return { problems: [], notes: [] }; // optimizer_type itself is checked by the schema
  return checkArgList('optimizer_args', name, args, OPTIMIZER_ARGS[name]);
}
