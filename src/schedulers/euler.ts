// Euler (EulerDiscreteScheduler) and Euler ancestral (EulerAncestralDiscreteScheduler), the
// k-diffusion samplers A1111 calls "Euler" and "Euler a".
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type SchedulerConfig, alphasCumprod } from './config.js';
import type { Sampler } from './sampler.js';
import { interpSigmas, karrasSigmas, linspaceTimesteps, sigmaToT, trainingSigmas } from './sigmas.js';

const f = Math.fround;

export class EulerScheduler implements Sampler {
  readonly name: string;
  readonly timesteps: number[];
  /** One per step plus the final 0. */
  readonly sigmas: number[];
  readonly initNoiseSigma: number;
  readonly stochastic: boolean;

  constructor(readonly config: SchedulerConfig, steps: number, readonly ancestral = false) {
    this.name = ancestral ? 'euler_a' : 'euler';
    this.stochastic = ancestral;
    const sig = trainingSigmas(alphasCumprod(config));
    if (config.use_karras_sigmas && !ancestral) {
      const s = karrasSigmas(sig, steps);
      this.timesteps = s.map((v) => Math.round(sigmaToT(v, sig)));
      this.sigmas = [...s.map(f), 0];
    } else {
      this.timesteps = linspaceTimesteps(config, steps);
      this.sigmas = [...interpSigmas(this.timesteps, sig).map(f), 0];
    }
    const max = Math.max(...this.sigmas);
    const spacing = config.timestep_spacing ?? 'linspace';
    this.initNoiseSigma = spacing === 'linspace' || spacing === 'trailing' ? max : Math.sqrt(max * max + 1);
  }

  scaleModelInput(x: Tensor, i: number): Tensor {
    const s = this.sigmas[i];
    return E.mulScalar(x, 1 / Math.sqrt(s * s + 1));
  }

  private predX0(mo: Tensor, x: Tensor, sigma: number): Tensor {
    if (this.config.prediction_type === 'epsilon') return E.sub(x, E.mulScalar(mo, sigma));
    return E.add(E.mulScalar(mo, -sigma / Math.sqrt(sigma * sigma + 1)), E.mulScalar(x, 1 / (sigma * sigma + 1)));
  }

  step(modelOutput: Tensor, i: number, x: Tensor, noise?: Tensor): Tensor {
    const sigma = this.sigmas[i], next = this.sigmas[i + 1];
    const x0 = this.predX0(modelOutput, x, sigma);
    const derivative = E.mulScalar(E.sub(x, x0), 1 / sigma);
    if (!this.ancestral) return E.add(x, E.mulScalar(derivative, next - sigma));
    if (!noise) throw new Error('euler_a: step needs noise');
    const up = Math.sqrt((next * next * (sigma * sigma - next * next)) / (sigma * sigma));
    const down = Math.sqrt(next * next - up * up);
    return E.add(E.add(x, E.mulScalar(derivative, down - sigma)), E.mulScalar(noise, up));
  }
}
