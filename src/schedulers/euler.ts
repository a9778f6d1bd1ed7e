// Euler (EulerDiscreteScheduler) and Euler ancestral (EulerAncestralDiscreteScheduler) of diffusers
// 0.30.3, the k-diffusion samplers A1111 calls "Euler" and "Euler a". Euler honours
// use_karras_sigmas (sigma_min / sigma_max), final_sigmas_type and timestep_type; the ancestral
// class has none of these keys (diffusers' from_config drops them), so they do not apply to it.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type SchedulerConfig, alphasCumprod } from './config.js';
import { divide, scale } from './f32-ops.js';
import { interpOnIndex } from './numpy-math.js';
import type { Sampler } from './sampler.js';
import { finalSigma, karrasSigmas, logSigmas, sigmaToT, trainingSigmas } from './sigmas.js';
import { spacedTimesteps } from './timesteps.js';

const f = Math.fround;
/** (sigma^2 + 1) in float32. */
const sq1 = (s: number) => f(f(s * s) + 1);

export class EulerScheduler implements Sampler {
  readonly name: string;
  readonly timesteps: number[];
  /** One per step plus the final one (float32). */
  readonly sigmas: number[];
  readonly initNoiseSigma: number;
  readonly stochastic: boolean;

  constructor(readonly config: SchedulerConfig, steps: number, readonly ancestral = false) {
    this.name = ancestral ? 'euler_a' : 'euler';
    this.stochastic = ancestral;
    const acp = alphasCumprod(config);
    const sig = trainingSigmas(acp);
    const spacing = config.timestep_spacing ?? 'linspace';
    let ts = spacedTimesteps(config, steps, spacing, false);
    let s = ts.map((t) => interpOnIndex(t, sig));
    if (ancestral) {
      this.sigmas = [...s, 0].map(f);
    } else {
      checkEulerConfig(config);
      if (config.use_karras_sigmas) {
        // Karras between the interpolated ends (or the configured sigma_min / sigma_max); timesteps stay fractional.
        s = karrasSigmas(config.sigma_min ?? s[s.length - 1], config.sigma_max ?? s[0], steps);
        const logSig = logSigmas(sig);
        ts = s.map((v) => f(sigmaToT(v, logSig)));
      }
      this.sigmas = [...s, finalSigma(config, acp)].map(f);
      if (config.timestep_type === 'continuous' && config.prediction_type === 'v_prediction') {
        ts = this.sigmas.slice(0, -1).map((v) => f(0.25 * f(Math.log(v))));
      }
    }
    this.timesteps = ts;
    const max = Math.max(...this.sigmas);
    this.initNoiseSigma = spacing === 'linspace' || spacing === 'trailing' ? max : f(Math.sqrt(sq1(max)));
  }

  scaleModelInput(x: Tensor, i: number): Tensor {
    return divide(x, Math.sqrt(sq1(this.sigmas[i])));
  }

  private predX0(mo: Tensor, x: Tensor, sigma: number): Tensor {
    if (this.config.prediction_type === 'epsilon') return E.sub(x, scale(mo, sigma));
    return E.add(scale(mo, -sigma / f(Math.sqrt(sq1(sigma)))), divide(x, sq1(sigma)));
  }

  step(modelOutput: Tensor, i: number, x: Tensor, noise?: Tensor): Tensor {
    const sigma = this.sigmas[i], next = this.sigmas[i + 1];
    const derivative = divide(E.sub(x, this.predX0(modelOutput, x, sigma)), sigma);
    if (!this.ancestral) return E.add(x, scale(derivative, f(next - sigma)));
    if (!noise) throw new Error('euler_a: step needs noise');
    const s2 = f(sigma * sigma), n2 = f(next * next);
    const up = f(Math.sqrt(f(f(n2 * f(s2 - n2)) / s2)));
    const down = f(Math.sqrt(f(n2 - f(up * up))));
    return E.add(E.add(x, scale(derivative, f(down - sigma))), scale(noise, up));
  }
}

function checkEulerConfig(c: SchedulerConfig): void {
  const interp = c.interpolation_type ?? 'linear';
  if (interp !== 'linear') throw new Error(`scheduler config: Euler interpolation_type ${interp} is not supported (linear)`);
  const tt = c.timestep_type ?? 'discrete';
  if (tt !== 'discrete' && tt !== 'continuous') throw new Error(`scheduler config: Euler timestep_type ${tt} is not supported (discrete, continuous)`);
}
