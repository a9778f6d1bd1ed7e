// Sigma (noise level) schedules shared by the Karras-style samplers (Euler, DPM-Solver).
import type { SchedulerConfig } from './config.js';

const f = Math.fround;

/** sigma_t = sqrt((1 - acp_t) / acp_t), in float32 as torch computes it. */
export function trainingSigmas(acp: Float32Array): Float32Array {
  return acp.map((a) => f(Math.sqrt(f(f(1 - a) / a))));
}

/** np.interp of the training sigmas at (fractional) timesteps. */
export function interpSigmas(ts: number[], sig: Float32Array): number[] {
  return ts.map((t) => {
    const lo = Math.min(Math.floor(t), sig.length - 1), hi = Math.min(lo + 1, sig.length - 1);
    const w = t - lo;
    return sig[lo] + (sig[hi] - sig[lo]) * w;
  });
}

/** Karras et al. (2022) rho=7 schedule between the largest and smallest training sigma. */
export function karrasSigmas(sig: Float32Array, n: number): number[] {
  const sMin = sig[0], sMax = sig[sig.length - 1], rho = 7;
  const minInv = sMin ** (1 / rho), maxInv = sMax ** (1 / rho);
  return Array.from({ length: n }, (_, i) => (maxInv + (n === 1 ? 0 : i / (n - 1)) * (minInv - maxInv)) ** rho);
}

/** The (fractional) training timestep of a sigma, by linear interpolation in log sigma. */
export function sigmaToT(sigma: number, sig: Float32Array): number {
  const logSigmas = Array.from(sig, (s) => Math.log(s));
  const ls = Math.log(Math.max(sigma, 1e-10));
  let low = 0;
  for (let i = 0; i < logSigmas.length; i++) if (ls - logSigmas[i] >= 0) low = i;
  low = Math.min(low, logSigmas.length - 2);
  const a = logSigmas[low], b = logSigmas[low + 1];
  const w = Math.min(1, Math.max(0, (a - ls) / (a - b)));
  return (1 - w) * low + w * (low + 1);
}

/** np.linspace(0, T - 1, n)[::-1] (Euler's "linspace" spacing, fractional). */
export function linspaceTimesteps(c: SchedulerConfig, n: number): number[] {
  const T = c.num_train_timesteps - 1;
  return Array.from({ length: n }, (_, i) => f(n === 1 ? 0 : (T * (n - 1 - i)) / (n - 1)));
}
