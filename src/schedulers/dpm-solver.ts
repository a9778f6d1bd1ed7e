// DPM-Solver++ multistep (DPMSolverMultistepScheduler of diffusers 0.30.3, algorithm dpmsolver++,
// orders 1-3, midpoint or heun), optionally with Karras or Lu sigmas; A1111's "DPM++ 2M" and
// "DPM++ 2M Karras" are order 2, midpoint. Which order a step takes follows diffusers' step():
// the final step is first order when final_sigmas_type is "zero" (or euler_at_final, or
// lower_order_final under 15 steps); lower_order_final's second-to-last step only lowers an order-3
// solver to order 2.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { type SchedulerConfig, alphasCumprod } from './config.js';
import { scale, divide } from './f32-ops.js';
import { interpOnIndex, roundHalfEven } from './numpy-math.js';
import type { Sampler } from './sampler.js';
import { finalSigma, karrasSigmas, logSigmas, luSigmas, sigmaToT, trainingSigmas } from './sigmas.js';
import { dpmTimesteps } from './timesteps.js';

const f = Math.fround;

/** alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t, in float32. */
function alphaSigma(s: number): [number, number] {
  const a = f(1 / f(Math.sqrt(f(f(s * s) + 1))));
  return [a, f(s * a)];
}

/** lambda = log(alpha_t) - log(sigma_t) (+Infinity at sigma 0). */
function lambdaOf(s: number): number {
  const [a, sg] = alphaSigma(s);
  return f(f(Math.log(a)) - f(Math.log(sg)));
}

export class DPMSolverMultistepScheduler implements Sampler {
  readonly name: string;
  readonly timesteps: number[];
  readonly sigmas: number[];
  readonly initNoiseSigma = 1;
  readonly stochastic = false;
  private readonly order: number;
  /** x0 predictions of the last `order` steps (multistep history). */
  private history: Tensor[] = [];
  private lowerOrderNums = 0;

  constructor(readonly config: SchedulerConfig, steps: number) {
    this.name = config.use_karras_sigmas ? 'dpmpp_2m_karras' : 'dpmpp_2m';
    this.order = checkDpmConfig(config);
    const acp = alphasCumprod(config);
    const sig = trainingSigmas(acp), logSig = logSigmas(sig);
    let s: number[];
    if (config.use_karras_sigmas || config.use_lu_lambdas) {
      s = config.use_karras_sigmas ? karrasSigmas(sig[0], sig[sig.length - 1], steps) : luSigmas(logSig, steps);
      this.timesteps = s.map((v) => roundHalfEven(sigmaToT(v, logSig)));
    } else {
      this.timesteps = dpmTimesteps(config, steps, config.timestep_spacing ?? 'linspace', lastTimestep(config, acp));
      s = this.timesteps.map((t) => interpOnIndex(t, sig));
    }
    this.sigmas = [...s, finalSigma(config, acp)].map(f);
  }

  scaleModelInput(x: Tensor): Tensor { return x; }

  step(modelOutput: Tensor, i: number, x: Tensor): Tensor {
    if (i === 0) { this.history = []; this.lowerOrderNums = 0; }
    const c = this.config, n = this.timesteps.length, short = (c.lower_order_final ?? true) && n < 15;
    const lowerFinal = i === n - 1 && ((c.euler_at_final ?? false) || short || (c.final_sigmas_type ?? 'zero') === 'zero');
    const lowerSecond = i === n - 2 && short;
    this.history = [...this.history, this.x0(modelOutput, x, this.sigmas[i])].slice(-this.order);
    const order = this.order === 1 || this.lowerOrderNums < 1 || lowerFinal ? 1
      : this.order === 2 || this.lowerOrderNums < 2 || lowerSecond ? 2 : 3;
    this.lowerOrderNums = Math.min(this.lowerOrderNums + 1, this.order);
    return order === 1 ? this.firstOrder(x, i) : order === 2 ? this.secondOrder(x, i) : this.thirdOrder(x, i);
  }

  /** The data prediction x0 (dpmsolver++ works on x0). */
  private x0(mo: Tensor, x: Tensor, sigma: number): Tensor {
    const [a, sg] = alphaSigma(sigma);
    if (this.config.prediction_type === 'epsilon') return divide(E.sub(x, scale(mo, sg)), a);
    return E.sub(scale(x, a), scale(mo, sg));
  }

  /** (sigma_t / sigma_s0) x - alpha_t (exp(-h) - 1) D0, the shared first term of every order. */
  private base(x: Tensor, i: number): { xt: Tensor; h: number; at: number; em1: number } {
    const [at, st] = alphaSigma(this.sigmas[i + 1]), s0 = alphaSigma(this.sigmas[i])[1];
    const h = f(lambdaOf(this.sigmas[i + 1]) - lambdaOf(this.sigmas[i]));
    const em1 = f(f(Math.exp(-h)) - 1);
    const d0 = this.history[this.history.length - 1];
    return { xt: E.sub(scale(x, f(st / s0)), scale(d0, f(at * em1))), h, at, em1 };
  }

  private firstOrder(x: Tensor, i: number): Tensor {
    return this.base(x, i).xt;
  }

  private secondOrder(x: Tensor, i: number): Tensor {
    const { xt, h, at, em1 } = this.base(x, i);
    const [m1, m0] = this.history.slice(-2);
    const r0 = f(f(lambdaOf(this.sigmas[i]) - lambdaOf(this.sigmas[i - 1])) / h);
    const d1 = scale(E.sub(m0, m1), f(1 / r0));
    if ((this.config.solver_type ?? 'midpoint') === 'heun') return E.add(xt, scale(d1, f(at * f(f(em1 / h) + 1))));
    return E.sub(xt, scale(d1, f(0.5 * f(at * em1))));
  }

  private thirdOrder(x: Tensor, i: number): Tensor {
    const { xt, h, at, em1 } = this.base(x, i);
    const [m2, m1, m0] = this.history.slice(-3);
    const l = [i + 1, i, i - 1, i - 2].map((k) => lambdaOf(this.sigmas[k]));
    const r0 = f(f(l[1] - l[2]) / h), r1 = f(f(l[2] - l[3]) / h);
    const d10 = scale(E.sub(m0, m1), f(1 / r0)), d11 = scale(E.sub(m1, m2), f(1 / r1));
    const diff = E.sub(d10, d11), rs = f(r0 + r1);
    const d1 = E.add(d10, scale(diff, f(r0 / rs))), d2 = scale(diff, f(1 / rs));
    const c1 = f(at * f(f(em1 / h) + 1)), c2 = f(at * f(f(f(em1 + h) / f(h * h)) - 0.5));
    return E.sub(E.add(xt, scale(d1, c1)), scale(d2, c2));
  }
}

/** num_train_timesteps less the timesteps whose lambda falls below lambda_min_clipped. */
function lastTimestep(c: SchedulerConfig, acp: Float32Array): number {
  const clip = c.lambda_min_clipped ?? -Infinity;
  let below = 0;
  for (const a of acp) if (f(f(Math.log(f(Math.sqrt(a)))) - f(Math.log(f(Math.sqrt(f(1 - a)))))) < clip) below++;
  return c.num_train_timesteps - below;
}

/** Refuses what this port does not implement, by name; returns the solver order. */
function checkDpmConfig(c: SchedulerConfig): number {
  const algo = c.algorithm_type ?? 'dpmsolver++';
  // diffusers registers "deis" as dpmsolver++ and logrho/bh1/bh2 as midpoint.
  if (algo !== 'dpmsolver++' && algo !== 'deis') throw new Error(`scheduler config: DPM-Solver algorithm_type ${algo} is not supported (dpmsolver++)`);
  const order = c.solver_order ?? 2;
  if (![1, 2, 3].includes(order)) throw new Error(`scheduler config: DPM-Solver solver_order ${order} is not supported (1, 2, 3)`);
  const st = c.solver_type ?? 'midpoint';
  if (!['midpoint', 'heun', 'logrho', 'bh1', 'bh2'].includes(st)) throw new Error(`scheduler config: DPM-Solver solver_type ${st} is not supported (midpoint, heun)`);
  if (c.variance_type != null) throw new Error(`scheduler config: DPM-Solver variance_type ${c.variance_type} (learned variance) is not supported`);
  if (c.use_karras_sigmas && c.use_lu_lambdas) throw new Error('scheduler config: use_karras_sigmas and use_lu_lambdas cannot both be set');
  return order;
}
