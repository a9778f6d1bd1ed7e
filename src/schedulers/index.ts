// Sampler names as A1111/sd-scripts users know them, mapped to the diffusers schedulers, and the
// diffusers scheduler classes themselves by _class_name (Class.from_config of a resolved config).
import { type SchedulerConfig, SD15_SCHEDULER, parseSchedulerConfig } from './config.js';
import { DDIMScheduler } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';
import { DPMSolverMultistepScheduler } from './dpm-solver.js';
import { EulerScheduler } from './euler.js';
import type { Sampler } from './sampler.js';

export const SAMPLERS = ['ddim', 'ddpm', 'euler', 'euler_a', 'dpmpp_2m', 'dpmpp_2m_karras'] as const;
export type SamplerName = (typeof SAMPLERS)[number];

const ALIASES: Record<string, SamplerName> = {
  'k_euler': 'euler', 'euler a': 'euler_a', 'k_euler_a': 'euler_a', 'euler_ancestral': 'euler_a',
  'dpm++ 2m': 'dpmpp_2m', 'k_dpmpp_2m': 'dpmpp_2m', 'dpm++ 2m karras': 'dpmpp_2m_karras', 'dpmsolver++': 'dpmpp_2m',
};

/** What the name "DPM++ 2M" fixes, whatever solver a model's scheduler config names. */
const DPMPP_2M = { algorithm_type: 'dpmsolver++', solver_order: 2, solver_type: 'midpoint', use_lu_lambdas: false };

export function samplerName(name: string): SamplerName {
  const k = name.toLowerCase();
  if ((SAMPLERS as readonly string[]).includes(k)) return k as SamplerName;
  const a = ALIASES[k];
  if (!a) throw new Error(`unknown sampler "${name}"; choose one of ${SAMPLERS.join(', ')}`);
  return a;
}

export function createSampler(name: string, steps: number, config: SchedulerConfig = SD15_SCHEDULER): Sampler {
  checkSteps(steps, config);
  switch (samplerName(name)) {
    case 'ddim': return new DDIMScheduler(config, steps);
    case 'ddpm': return new DDPMScheduler(config).setTimesteps(steps);
    case 'euler': return new EulerScheduler({ ...config, use_karras_sigmas: false }, steps);
    case 'euler_a': return new EulerScheduler(config, steps, true);
    case 'dpmpp_2m': return new DPMSolverMultistepScheduler({ ...config, ...DPMPP_2M, use_karras_sigmas: false }, steps);
    case 'dpmpp_2m_karras': return new DPMSolverMultistepScheduler({ ...config, ...DPMPP_2M, use_karras_sigmas: true }, steps);
  }
}

/** The diffusers class a scheduler config names (`_class_name`), built for `steps` steps. */
export function schedulerFromConfig(raw: Record<string, unknown>, steps: number): Sampler {
  const config = parseSchedulerConfig(raw);
  checkSteps(steps, config);
  switch (raw._class_name) {
    case 'DDIMScheduler': return new DDIMScheduler(config, steps);
    case 'DDPMScheduler': return new DDPMScheduler(config).setTimesteps(steps);
    case 'EulerDiscreteScheduler': return new EulerScheduler(config, steps);
    case 'EulerAncestralDiscreteScheduler': return new EulerScheduler(config, steps, true);
    case 'DPMSolverMultistepScheduler': return new DPMSolverMultistepScheduler(config, steps);
    default: throw new Error(`scheduler config: _class_name ${String(raw._class_name)} is not supported (DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler)`);
  }
}

function checkSteps(steps: number, config: SchedulerConfig): void {
  if (!Number.isInteger(steps) || steps < 1 || steps > config.num_train_timesteps) throw new Error(`steps must be an integer in [1, ${config.num_train_timesteps}], got ${steps}`);
}

export type { Sampler } from './sampler.js';
export { DDPMScheduler } from './ddpm.js';
export * from './config.js';
