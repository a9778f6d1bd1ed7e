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
  /** Absent: each sampler class's own default (diffusers drops keys a config file did not set). */
  timestep_spacing?: TimestepSpacing;
  use_karras_sigmas?: boolean;
  // DDIM / DDPM
  clip_sample?: boolean;
  clip_sample_range?: number;
  variance_type?: string | null;
  // Euler
  final_sigmas_type?: 'zero' | 'sigma_min';
  sigma_min?: number | null;
  sigma_max?: number | null;
  interpolation_type?: string;
  timestep_type?: string;
  // DPM-Solver
  algorithm_type?: string;
  solver_order?: number;
  solver_type?: string;
  lower_order_final?: boolean;
  euler_at_final?: boolean;
  use_lu_lambdas?: boolean;
  lambda_min_clipped?: number;
  // Shared switches sdlora refuses rather than ignores.
  thresholding?: boolean;
  rescale_betas_zero_snr?: boolean;
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
  if (c.thresholding) throw new Error('scheduler config: thresholding (dynamic thresholding) is not supported');
  if (c.rescale_betas_zero_snr) throw new Error('scheduler config: rescale_betas_zero_snr is not supported');
  if (!Number.isInteger(c.steps_offset)) throw new Error(`scheduler config: steps_offset must be an integer, got ${c.steps_offset}`);
  if (c.timestep_spacing != null && !['leading', 'linspace', 'trailing'].includes(c.timestep_spacing)) throw new Error(`scheduler config: timestep_spacing ${c.timestep_spacing} is not supported (leading, linspace, trailing)`);
  return c;
}

const f = Math.fround;

/**
 * torch.linspace(a, b, n, dtype=float32) as its CPU kernel computes it: a float32 step; the first
 * half counted from the start, the second from the end; in blocks of 8 lanes (AVX2), each block's
 * base with one fused multiply-add and its lanes base + j * step. Bit-exact against the golden betas
 * (torch on an AVX2 machine).
 */
function linspaceF32(a: number, b: number, n: number): Float32Array {
  const out = new Float32Array(n);
  const start = f(a), end = f(b), step = f(f(end - start) / (n - 1)), half = Math.floor(n / 2);
  // step * idx is exact in float64, so one rounding of the sum is the fused multiply-add.
  const at = (idx: number) => (idx < half ? f(start + step * idx) : f(end - step * (n - idx - 1)));
  // ATen's vectorized loop takes two 8-lane vectors per iteration and leaves the rest to the scalar form.
  const LANES = 8;
  let idx = 0;
  for (; idx + 2 * LANES <= n; idx += LANES) {
    const base = at(idx);
    for (let j = 0; j < LANES; j++) out[idx + j] = f(base + f(j * step));
    idx += LANES;
    const base2 = at(idx);
    for (let j = 0; j < LANES; j++) out[idx + j] = f(base2 + f(j * step));
  }
  for (; idx < n; idx++) out[idx] = at(idx);
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
