// DDIMScheduler with eta = 0 (deterministic), as diffusers 0.30.3 scheduling_ddim.py: timesteps
// spaced per timestep_spacing (default "leading"), the previous timestep num_train_timesteps // n
// below, float32 scalars throughout.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type SchedulerConfig, alphasCumprod } from './config.js';
import { divide, scale } from './f32-ops.js';
import type { Sampler } from './sampler.js';
import { spacedTimesteps } from './timesteps.js';

const f = Math.fround;

/** pred_original_sample and pred_epsilon of a model output (epsilon or v) at alpha_prod_t. */
export function x0AndEpsilon(c: SchedulerConfig, modelOutput: Tensor, x: Tensor, aT: number): [Tensor, Tensor] {
  const sa = f(Math.sqrt(aT)), sb = f(Math.sqrt(f(1 - aT)));
  if (c.prediction_type === 'epsilon') return [divide(E.sub(x, scale(modelOutput, sb)), sa), modelOutput];
  return [E.sub(scale(x, sa), scale(modelOutput, sb)), E.add(scale(modelOutput, sa), scale(x, sb))];
}

/** clip_sample: clamp the predicted x0 to +-clip_sample_range. */
export function clipX0(c: SchedulerConfig, x0: Tensor): Tensor {
  if (!c.clip_sample) return x0;
  const r = c.clip_sample_range ?? 1;
  return E.clamp(x0, -r, r);
}

export class DDIMScheduler implements Sampler {
  readonly name = 'ddim';
  readonly timesteps: number[];
  readonly initNoiseSigma = 1;
  readonly stochastic = false;
  private acp: Float32Array;
  private stride: number;

  constructor(readonly config: SchedulerConfig, steps: number) {
    this.acp = alphasCumprod(config);
    this.timesteps = spacedTimesteps(config, steps, config.timestep_spacing ?? 'leading', true);
    this.stride = Math.floor(config.num_train_timesteps / steps);
  }

  scaleModelInput(x: Tensor): Tensor { return x; }

  step(modelOutput: Tensor, i: number, x: Tensor): Tensor {
    const t = this.timesteps[i], prev = t - this.stride;
    const aPrev = prev >= 0 ? this.acp[prev] : this.config.set_alpha_to_one ? 1 : this.acp[0];
    const [x0, eps] = x0AndEpsilon(this.config, modelOutput, x, this.acp[t]);
    // eta = 0: no variance, so the direction term is sqrt(1 - alpha_prod_t_prev) eps.
    return E.add(scale(clipX0(this.config, x0), Math.sqrt(aPrev)), scale(eps, Math.sqrt(f(1 - aPrev))));
  }
}
