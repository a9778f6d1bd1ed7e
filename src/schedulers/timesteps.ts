// Inference timesteps as diffusers 0.30.3's set_timesteps spaces them ("linspace", "leading",
// "trailing"; Table 2 of arXiv:2305.08891). DDIM, DDPM, Euler and Euler ancestral share one
// formula (scheduling_ddim.py, scheduling_euler_discrete.py); DPMSolverMultistepScheduler spaces
// n + 1 points and drops the last (scheduling_dpmsolver_multistep.py). Rounding is numpy's.
import type { SchedulerConfig, TimestepSpacing } from './config.js';
import { arange, linspace, roundHalfEven } from './numpy-math.js';

const f = Math.fround;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * n timesteps for DDIM/DDPM (integers) or Euler/Euler ancestral (float32, so "linspace" keeps its
 * fractions).
 */
export function spacedTimesteps(c: SchedulerConfig, n: number, spacing: TimestepSpacing, integer: boolean): number[] {
  const T = c.num_train_timesteps;
  let ts: number[];
  if (spacing === 'linspace') ts = linspace(0, T - 1, n).reverse().map(integer ? roundHalfEven : f);
  else if (spacing === 'leading') ts = range(n).reverse().map((i) => i * Math.floor(T / n) + c.steps_offset);
  else ts = trailing(T, T, n);
  return checked(ts, n, spacing, integer ? T : Infinity);
}

/** DPM-Solver's spacing; `last` is num_train_timesteps less the steps lambda_min_clipped cuts. */
export function dpmTimesteps(c: SchedulerConfig, n: number, spacing: TimestepSpacing, last: number): number[] {
  const T = c.num_train_timesteps;
  let ts: number[];
  if (spacing === 'linspace') ts = linspace(0, last - 1, n + 1).map(roundHalfEven).reverse().slice(0, n);
  else if (spacing === 'leading') ts = range(n + 1).reverse().slice(0, n).map((i) => i * Math.floor(last / (n + 1)) + c.steps_offset);
  else ts = trailing(last, T, n);
  return checked(ts, n, spacing, Infinity);
}

/** np.arange(start, 0, -T / n).round() - 1. */
function trailing(start: number, T: number, n: number): number[] {
  return arange(start, 0, -T / n).map((t) => roundHalfEven(t) - 1);
}

// Where diffusers would run a different number of steps (numpy's arange can give n + 1 points,
// the last -1; a repeated first timestep), or index alphas_cumprod past its end (DDIM/DDPM;
// `tableSize`), refuse instead of inventing a schedule. Sigma-based samplers interpolate, which
// clamps as np.interp does.
function checked(ts: number[], n: number, spacing: TimestepSpacing, tableSize: number): number[] {
  if (ts.length !== n) throw new Error(`timestep_spacing "${spacing}" gives ${ts.length} timesteps for ${n} steps in diffusers (ending at ${ts[ts.length - 1]}); choose another step count or spacing`);
  // diffusers finds its first step by value and takes the second match when there are two.
  if (n > 1 && ts[0] === ts[1]) throw new Error(`timestep_spacing "${spacing}" with ${n} steps repeats the first timestep ${ts[0]}; diffusers would skip a step and run past its schedule; choose fewer steps or another spacing`);
  const bad = ts.find((t) => !(t >= 0 && t < tableSize));
  if (bad !== undefined) throw new Error(`timestep_spacing "${spacing}" with ${n} steps gives timestep ${bad}, outside [0, ${tableSize - 1}]; choose fewer steps or another spacing`);
  return ts;
}
