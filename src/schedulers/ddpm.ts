// DDPMScheduler (diffusers 0.30.3 scheduling_ddpm.py): the training noise process (add_noise,
// get_velocity) and ancestral DDPM sampling, float32 scalars as torch computes them.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type SchedulerConfig, alphasCumprod } from './config.js';
import { clipX0, x0AndEpsilon } from './ddim.js';
import { scale } from './f32-ops.js';
import type { Sampler } from './sampler.js';
import { spacedTimesteps } from './timesteps.js';

const f = Math.fround;
const VARIANCE_TYPES = ['fixed_small', 'fixed_small_log', 'fixed_large'];

/** Per-batch-item scalars broadcast over [B, ...]. */
function perItem(values: number[], like: Tensor): Tensor {
  return E.tensor(values, [values.length, ...new Array(like.rank - 1).fill(1)], like.dtype as 'f32', like.backend);
}

export class DDPMScheduler implements Sampler {
  readonly name = 'ddpm';
  readonly alphasCumprod: Float32Array;
  timesteps: number[] = [];
  readonly initNoiseSigma = 1;
  readonly stochastic = true;
  private steps = 0;

  constructor(readonly config: SchedulerConfig) {
    this.alphasCumprod = alphasCumprod(config);
  }

  private sqrtAlpha = (t: number[]) => t.map((s) => f(Math.sqrt(this.alphasCumprod[s])));
  private sqrtOneMinusAlpha = (t: number[]) => t.map((s) => f(Math.sqrt(f(1 - this.alphasCumprod[s]))));

  /** sqrt(acp_t) x0 + sqrt(1 - acp_t) noise, t per batch item. */
  addNoise(x0: Tensor, noise: Tensor, t: number[]): Tensor {
    return E.add(E.mul(perItem(this.sqrtAlpha(t), x0), x0), E.mul(perItem(this.sqrtOneMinusAlpha(t), x0), noise));
  }

  /** The v-prediction target sqrt(acp_t) noise - sqrt(1 - acp_t) x0. */
  getVelocity(x0: Tensor, noise: Tensor, t: number[]): Tensor {
    return E.sub(E.mul(perItem(this.sqrtAlpha(t), x0), noise), E.mul(perItem(this.sqrtOneMinusAlpha(t), x0), x0));
  }

  setTimesteps(n: number): this {
    const vt = this.config.variance_type ?? 'fixed_small';
    if (!VARIANCE_TYPES.includes(vt)) throw new Error(`scheduler config: DDPM variance_type ${vt} is not supported (${VARIANCE_TYPES.join(', ')})`);
    this.timesteps = spacedTimesteps(this.config, n, this.config.timestep_spacing ?? 'leading', true);
    this.steps = n;
    return this;
  }

  scaleModelInput(x: Tensor): Tensor { return x; }

  step(modelOutput: Tensor, i: number, x: Tensor, noise?: Tensor): Tensor {
    const t = this.timesteps[i];
    const prev = t - Math.floor(this.config.num_train_timesteps / this.steps);
    const aT = this.alphasCumprod[t], aPrev = prev >= 0 ? this.alphasCumprod[prev] : 1;
    const bT = f(1 - aT), bPrev = f(1 - aPrev);
    const curA = f(aT / aPrev), curB = f(1 - curA);
    const x0 = clipX0(this.config, x0AndEpsilon(this.config, modelOutput, x, aT)[0]);
    const x0Coeff = f(f(f(Math.sqrt(aPrev)) * curB) / bT);
    const xCoeff = f(f(f(Math.sqrt(curA)) * bPrev) / bT);
    const mean = E.add(scale(x0, x0Coeff), scale(x, xCoeff));
    if (t <= 0) return mean;
    if (!noise) throw new Error('ddpm: step needs noise');
    return E.add(mean, scale(noise, this.noiseScale(bPrev, bT, curB)));
  }

  /** The standard deviation of the added noise, per variance_type. */
  private noiseScale(bPrev: number, bT: number, curB: number): number {
    const variance = Math.max(f(f(bPrev / bT) * curB), f(1e-20));
    switch (this.config.variance_type ?? 'fixed_small') {
      case 'fixed_small_log': return f(Math.exp(f(0.5 * f(Math.log(variance)))));
      case 'fixed_large': return f(Math.sqrt(curB));
      default: return f(Math.sqrt(variance));
    }
  }
}
