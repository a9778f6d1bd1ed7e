// DDIMScheduler with eta = 0 (deterministic).
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type SchedulerConfig, alphasCumprod } from './config.js';
import { leadingTimesteps } from './ddpm.js';
import type { Sampler } from './sampler.js';

export class DDIMScheduler implements Sampler {
  readonly name = 'ddim';
  readonly timesteps: number[];
  readonly initNoiseSigma = 1;
  readonly stochastic = false;
  private acp: Float32Array;

  constructor(readonly config: SchedulerConfig, steps: number) {
    this.acp = alphasCumprod(config);
    this.timesteps = leadingTimesteps(config, steps);
  }

  scaleModelInput(x: Tensor): Tensor { return x; }

  step(modelOutput: Tensor, i: number, x: Tensor): Tensor {
    const t = this.timesteps[i];
    const prev = t - Math.floor(this.config.num_train_timesteps / this.timesteps.length);
    const aT = this.acp[t];
    const aPrev = prev >= 0 ? this.acp[prev] : this.config.set_alpha_to_one ? 1 : this.acp[0];
    const bT = 1 - aT;
    let x0: Tensor, eps: Tensor;
    if (this.config.prediction_type === 'epsilon') {
      eps = modelOutput;
      x0 = E.mulScalar(E.sub(x, E.mulScalar(eps, Math.sqrt(bT))), 1 / Math.sqrt(aT));
    } else {
      x0 = E.sub(E.mulScalar(x, Math.sqrt(aT)), E.mulScalar(modelOutput, Math.sqrt(bT)));
      eps = E.add(E.mulScalar(modelOutput, Math.sqrt(aT)), E.mulScalar(x, Math.sqrt(bT)));
    }
    return E.add(E.mulScalar(x0, Math.sqrt(aPrev)), E.mulScalar(eps, Math.sqrt(1 - aPrev)));
  }
}
