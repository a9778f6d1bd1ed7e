// Scheduler configuration as diffusers' scheduler_config.json, and the training noise schedule
// (betas, alphas_cumprod) computed the way torch does in float32.
export type PredictionType = 'epsilon' | 'v_prediction';
export type TimestepSpacing = 'leading' | 'linspace' | 'trailing';

export interface SchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
  prediction_type: PredictionType;
  steps_offset: number;
  set_alpha_to_one: boolean;
  timestep_spacing?: TimestepSpacing;
  use_karras_sigmas?: boolean;
}

export const SD15_SCHEDULER: SchedulerConfig = {
  num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear',
  prediction_type: 'epsilon', steps_offset: 1, set_alpha_to_one: false,
};

export function parseSchedulerConfig(raw: Record<string, unknown>): SchedulerConfig {
  const c = { ...SD15_SCHEDULER, ...raw } as SchedulerConfig & Record<string, unknown>;
  if (!['linear', 'scaled_linear', 'squaredcos_cap_v2'].includes(c.beta_schedule)) throw new Error(`scheduler config: beta_schedule ${c.beta_schedule} is not supported`);
  if (!['epsilon', 'v_prediction'].includes(c.prediction_type)) throw new Error(`scheduler config: prediction_type ${c.prediction_type} is not supported`);
  if (c.trained_betas) throw new Error('scheduler config: trained_betas is not supported');
  return c;
}

const f = Math.fround;

/** torch.linspace(a, b, n, dtype=float32): steps from the start in the first half, from the end in the second. */
function linspaceF32(a: number, b: number, n: number): Float32Array {
  const out = new Float32Array(n);
  const step = (b - a) / (n - 1);
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < half ? a + step * i : b - step * (n - 1 - i);
  return out;
}

export function betas(c: SchedulerConfig): Float32Array {
  const n = c.num_train_timesteps;
  switch (c.beta_schedule) {
    case 'linear': return linspaceF32(c.beta_start, c.beta_end, n);
    case 'scaled_linear': return linspaceF32(Math.sqrt(c.beta_start), Math.sqrt(c.beta_end), n).map((v) => f(v * v));
    case 'squaredcos_cap_v2': {
      const abar = (t: number) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
      return Float32Array.from({ length: n }, (_, i) => Math.min(1 - abar((i + 1) / n) / abar(i / n), 0.999));
    }
  }
}

/** cumprod(1 - betas); torch accumulates a float32 cumprod in double on the CPU. */
export function alphasCumprod(c: SchedulerConfig): Float32Array {
  const b = betas(c);
  const out = new Float32Array(b.length);
  let acc = 1;
  for (let i = 0; i < b.length; i++) { acc *= f(1 - b[i]); out[i] = acc; }
  return out;
}
