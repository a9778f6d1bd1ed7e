// Scheduler parity with diffusers: schedules, timesteps, sigmas and whole 20-step trajectories of
// the toy model in ../schedulers/README.md, for every run recorded in the golden folder.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { parsePythonJson } from '../../src/io/python-json.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { DDPMScheduler, alphasCumprod, betas, createSampler, parseSchedulerConfig } from '../../src/schedulers/index.js';
import { goldenCase } from '../helpers/golden.js';

const dir = goldenCase('schedulers');
const io = (await loadSafetensors(path.join(dir, 'io.safetensors'))).tensors;
const configs = parsePythonJson(readFileSync(path.join(dir, 'scheduler_configs.json'), 'utf8')) as Record<string, Record<string, unknown>>;
const base = parseSchedulerConfig(JSON.parse(readFileSync(path.join(dir, 'scheduler_config.json'), 'utf8')));

const CLASS_TO_SAMPLER: Record<string, (c: Record<string, unknown>) => string> = {
  DDIMScheduler: () => 'ddim',
  DDPMScheduler: () => 'ddpm',
  EulerDiscreteScheduler: () => 'euler',
  EulerAncestralDiscreteScheduler: () => 'euler_a',
  DPMSolverMultistepScheduler: (c) => (c.use_karras_sigmas ? 'dpmpp_2m_karras' : 'dpmpp_2m'),
};

function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0, s = 0;
  for (let i = 0; i < a.length; i++) { m = Math.max(m, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
  return m / Math.max(s, 1e-30);
}

/** The README's toy model: 0.1 * x_in + 0.05 * sin(t / 100) (sin in f64, rounded to f32). */
const toyModel = (x: Tensor, t: number): Tensor => E.addScalar(E.mulScalar(x, Math.fround(0.1)), Math.fround(0.05 * Math.sin(t / 100)));

describe('golden parity: schedulers', () => {
  it('betas and alphas_cumprod', () => {
    assert.ok(rel(betas(base), io.betas.dataSync()) < 1e-6);
    assert.ok(rel(alphasCumprod(base), io.alphas_cumprod.dataSync()) < 1e-6);
  });

  it('add_noise and get_velocity', () => {
    const s = new DDPMScheduler(base);
    const t = [...io['add_noise.timesteps'].dataSync()];
    assert.ok(rel(s.addNoise(io['add_noise.sample'], io['add_noise.noise'], t).dataSync(), io['add_noise.noisy'].dataSync()) < 1e-5);
    assert.ok(rel(s.getVelocity(io['add_noise.sample'], io['add_noise.noise'], t).dataSync(), io['get_velocity.v'].dataSync()) < 1e-5);
  });

  for (const [run, cfg] of Object.entries(configs)) {
    if (!io[`${run}.trajectory`]) continue;
    it(`${run}: timesteps, sigmas and the full trajectory`, () => {
      const steps = io[`${run}.timesteps`].size;
      const sampler = createSampler(CLASS_TO_SAMPLER[cfg._class_name as string](cfg), steps, parseSchedulerConfig(cfg));
      assert.ok(rel(sampler.timesteps, io[`${run}.timesteps`].dataSync()) < 1e-6, 'timesteps');
      const sig = io[`${run}.sigmas`];
      if (sig) assert.ok(rel((sampler as unknown as { sigmas: number[] }).sigmas, sig.dataSync()) < 1e-6, 'sigmas');
      assert.ok(Math.abs(sampler.initNoiseSigma - io[`${run}.init_noise_sigma`].item()) < 1e-5 * sampler.initNoiseSigma, 'init_noise_sigma');
      const traj = io[`${run}.trajectory`];
      const shape = traj.shape.slice(1);
      const at = (t: Tensor, i: number) => E.reshape(E.slice(t, 0, i, i + 1), shape);
      let x = E.mulScalar(io.x_unit, sampler.initNoiseSigma);
      assert.ok(rel(x.dataSync(), at(traj, 0).dataSync()) < 1e-6, 'x_T');
      const noise = io[`${run}.step_noise`];
      for (let i = 0; i < steps; i++) {
        const xin = sampler.scaleModelInput(x, i);
        x = sampler.step(toyModel(xin, sampler.timesteps[i]), i, x, noise ? at(noise, i) : undefined);
        assert.ok(rel(x.dataSync(), at(traj, i + 1).dataSync()) < 1e-5, `step ${i}: rel error ${rel(x.dataSync(), at(traj, i + 1).dataSync())}`);
      }
    });
  }
});
