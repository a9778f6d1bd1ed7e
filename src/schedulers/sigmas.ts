// Sigma (noise level) schedules of the Karras-style samplers (Euler, DPM-Solver), as diffusers
// 0.30.3 computes them: training sigmas in float32 (torch), interpolation and the Karras / Lu
// schedules in float64 (numpy), timesteps recovered by interpolating in log sigma (_sigma_to_t).
import type { SchedulerConfig } from './config.js';
import { linspace } from './numpy-math.js';

const f = Math.fround;

/** sigma_t = sqrt((1 - acp_t) / acp_t), in float32 as torch computes it. */
export function trainingSigmas(acp: Float32Array): Float32Array {
  return acp.map((a) => f(Math.sqrt(f(f(1 - a) / a))));
}

/** np.log of the float32 training sigmas (float32). */
export function logSigmas(sig: Float32Array): Float32Array {
  return sig.map((s) => f(Math.log(s)));
}

/** Karras et al. (2022) rho = 7 schedule from sigmaMax down to sigmaMin. */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number): number[] {
  const rho = 7, minInv = sigmaMin ** (1 / rho), maxInv = sigmaMax ** (1 / rho);
  return linspace(0, 1, n).map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
}

/** Lu et al. (2022) schedule, uniform in log sigma between the largest and smallest training sigma. */
export function luSigmas(logSig: Float32Array, n: number): number[] {
  const lo = logSig[0], hi = logSig[logSig.length - 1];
  return linspace(0, 1, n).map((r) => Math.exp(hi + r * (lo - hi)));
}

/** The (fractional) training timestep of a sigma, by linear interpolation in log sigma. */
export function sigmaToT(sigma: number, logSig: Float32Array): number {
  const ls = Math.log(Math.max(sigma, 1e-10));
  // The last index whose log sigma is <= ours (0 when none), kept below the final one.
  let low = 0;
  for (let i = 0; i < logSig.length; i++) if (ls - logSig[i] >= 0) low = i;
  low = Math.min(low, logSig.length - 2);
  const a = logSig[low], b = logSig[low + 1];
  const w = Math.min(1, Math.max(0, (a - ls) / f(a - b))); // low - high is a float32 difference
  return (1 - w) * low + w * (low + 1);
}

/** The sigma appended after the last step: 0, or the smallest training sigma (final_sigmas_type). */
export function finalSigma(c: SchedulerConfig, acp: Float32Array): number {
  const type = c.final_sigmas_type ?? 'zero';
  if (type === 'zero') return 0;
  if (type === 'sigma_min') return f(Math.sqrt(f(f(1 - acp[0]) / acp[0])));
  throw new Error(`scheduler config: final_sigmas_type ${type} is not supported (zero, sigma_min)`);
}
