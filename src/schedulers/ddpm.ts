// DDPMScheduler: the training noise process (add_noise, get_velocity) and ancestral DDPM sampling.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type SchedulerConfig, alphasCumprod } from './config.js';
import type { Sampler } from './sampler.js';

/** Per-batch-item scalars broadcast over [B, ...]. */
function perItem(values: number[], like: Tensor): Tensor {
  return E.tensor(values, [values.length, ...new Array(like.rank - 1).fill(1)], like.dtype as 'f32', like.backend);
}

/** Leading spacing (DDIM/DDPM): t = i * (T // n), reversed, plus steps_offset. */
export function leadingTimesteps(c: SchedulerConfig, n: number): number[] {
  const ratio = Math.floor(c.num_train_timesteps / n);
  return Array.from({ length: n }, (_, i) => Math.round((n - 1 - i) * ratio) + c.steps_offset);
}

export class DDPMScheduler implements Sampler {
  readonly name = 'ddpm';
  readonly alphasCumprod: Float32Array;
  timesteps: number[] = [];
  readonly initNoiseSigma = 1;
  readonly stochastic = true;

  constructor(readonly config: SchedulerConfig) {
    this.alphasCumprod = alphasCumprod(config);
  }

  /** sqrt(acp_t) x0 + sqrt(1 - acp_t) noise, t per batch item. */
  addNoise(x0: Tensor, noise: Tensor, t: number[]): Tensor {
    const a = t.map((s) => Math.sqrt(this.alphasCumprod[s])), b = t.map((s) => Math.sqrt(1 - this.alphasCumprod[s]));
    return E.add(E.mul(perItem(a, x0), x0), E.mul(perItem(b, x0), noise));
  }

  /** The v-prediction target sqrt(acp_t) noise - sqrt(1 - acp_t) x0. */
  getVelocity(x0: Tensor, noise: Tensor, t: number[]): Tensor {
    const a = t.map((s) => Math.sqrt(this.alphasCumprod[s])), b = t.map((s) => Math.sqrt(1 - this.alphasCumprod[s]));
    return E.sub(E.mul(perItem(a, x0), noise), E.mul(perItem(b, x0), x0));
  }

  setTimesteps(n: number): this {
    this.timesteps = leadingTimesteps(this.config, n);
    return this;
  }

  scaleModelInput(x: Tensor): Tensor { return x; }

  step(modelOutput: Tensor, i: number, x: Tensor, noise?: Tensor): Tensor {
    const t = this.timesteps[i];
    const prev = t - Math.floor(this.config.num_train_timesteps / this.timesteps.length);
    const acp = this.alphasCumprod;
    const aT = acp[t], aPrev = prev >= 0 ? acp[prev] : 1;
    const bT = 1 - aT, bPrev = 1 - aPrev;
    const curA = aT / aPrev, curB = 1 - curA;
    const x0 = this.config.prediction_type === 'epsilon'
      ? E.mulScalar(E.sub(x, E.mulScalar(modelOutput, Math.sqrt(bT))), 1 / Math.sqrt(aT))
      : E.sub(E.mulScalar(x, Math.sqrt(aT)), E.mulScalar(modelOutput, Math.sqrt(bT)));
    let prevSample = E.add(E.mulScalar(x0, (Math.sqrt(aPrev) * curB) / bT), E.mulScalar(x, (Math.sqrt(curA) * bPrev) / bT));
    if (t > 0) {
      if (!noise) throw new Error('ddpm: step needs noise');
      const variance = Math.max((bPrev / bT) * curB, 1e-20);
      prevSample = E.add(prevSample, E.mulScalar(noise, Math.sqrt(variance)));
    }
    return prevSample;
  }
}
