// What every inference sampler offers the txt2img loop.
import type { Tensor } from '../engine/tensor.js';

export interface Sampler {
  readonly name: string;
  /** Model timesteps, one per step (Euler's are fractional). */
  readonly timesteps: number[];
  /** Scale of the initial noise: x_T = noise * initNoiseSigma. */
  readonly initNoiseSigma: number;
  /** The noise levels of the sigma-based samplers (Euler, DPM-Solver): one per step plus the final one. */
  readonly sigmas?: number[];
  /** True when step() consumes fresh noise (ancestral and DDPM samplers). */
  readonly stochastic: boolean;
  scaleModelInput(x: Tensor, step: number): Tensor;
  /** x_{step+1} from the model output at step; `noise` is required when stochastic. */
  step(modelOutput: Tensor, step: number, x: Tensor, noise?: Tensor): Tensor;
}
