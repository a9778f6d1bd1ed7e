// DPM-Solver++ 2M (DPMSolverMultistepScheduler: dpmsolver++, order 2, midpoint), optionally with
// Karras sigmas; A1111's "DPM++ 2M" and "DPM++ 2M Karras".
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type SchedulerConfig, alphasCumprod } from './config.js';
import type { Sampler } from './sampler.js';
import { interpSigmas, karrasSigmas, sigmaToT, trainingSigmas } from './sigmas.js';

const f = Math.fround;
const alphaSigma = (s: number): [number, number] => { const a = 1 / Math.sqrt(s * s + 1); return [a, s * a]; };
const lambda = (s: number): number => { const [a, sg] = alphaSigma(s); return Math.log(a) - Math.log(sg); };

export class DPMSolverMultistepScheduler implements Sampler {
  readonly name: string;
  readonly timesteps: number[];
  readonly sigmas: number[];
  readonly initNoiseSigma = 1;
  readonly stochastic = false;
  /** x0 predictions of the last two steps (multistep history). */
  private history: Tensor[] = [];

  constructor(readonly config: SchedulerConfig, steps: number) {
    this.name = config.use_karras_sigmas ? 'dpmpp_2m_karras' : 'dpmpp_2m';
    const sig = trainingSigmas(alphasCumprod(config));
    const T = config.num_train_timesteps;
    if (config.use_karras_sigmas) {
      const s = karrasSigmas(sig, steps);
      this.timesteps = s.map((v) => Math.round(sigmaToT(v, sig)));
      this.sigmas = [...s.map(f), 0];
    } else {
      // np.linspace(0, T - 1, n + 1).round()[::-1][:-1]
      this.timesteps = Array.from({ length: steps }, (_, i) => Math.round(((T - 1) * (steps - i)) / steps));
      this.sigmas = [...interpSigmas(this.timesteps, sig).map(f), 0];
    }
  }

  scaleModelInput(x: Tensor): Tensor { return x; }

  step(modelOutput: Tensor, i: number, x: Tensor): Tensor {
    if (i === 0) this.history = [];
    const s0 = this.sigmas[i], st = this.sigmas[i + 1];
    const [a0, sg0] = alphaSigma(s0);
    const x0 = this.config.prediction_type === 'epsilon'
      ? E.mulScalar(E.sub(x, E.mulScalar(modelOutput, sg0)), 1 / a0)
      : E.sub(E.mulScalar(x, a0), E.mulScalar(modelOutput, sg0));
    this.history = [...this.history.slice(-1), x0];
    const n = this.timesteps.length;
    // The last step is first order (final sigma 0); with < 15 steps the one before it too.
    const lowerFinal = i === n - 1;
    const lowerSecond = i === n - 2 && n < 15;
    const [at, sgt] = st === 0 ? [1, 0] : alphaSigma(st);
    const h = (st === 0 ? Infinity : lambda(st)) - lambda(s0);
    const c = at * (Math.exp(-h) - 1);
    const ratio = st === 0 ? 0 : sgt / sg0;
    if (this.history.length < 2 || lowerFinal || lowerSecond) {
      return E.sub(E.mulScalar(x, ratio), E.mulScalar(x0, c));
    }
    const h0 = lambda(s0) - lambda(this.sigmas[i - 1]);
    const r0 = h0 / h;
    const d1 = E.mulScalar(E.sub(this.history[1], this.history[0]), 1 / r0);
    return E.sub(E.sub(E.mulScalar(x, ratio), E.mulScalar(x0, c)), E.mulScalar(d1, 0.5 * c));
  }
}
