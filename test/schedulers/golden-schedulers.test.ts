// Scheduler parity with diffusers on the golden folder's own runs: the noise schedule, add_noise /
// get_velocity, and for every run the fixture lists (README table, scheduler_configs.json, tensors)
// its timesteps, sigmas, init_noise_sigma and whole trajectory of the README's toy model. Step
// counts, shapes and configs all come from the fixture, so another set (other step counts) runs as is.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { parsePythonJson } from '../../src/io/python-json.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { DDPMScheduler, alphasCumprod, betas, parseSchedulerConfig, schedulerFromConfig } from '../../src/schedulers/index.js';
import { goldenCase, requireFile } from '../helpers/golden.js';

const dir = goldenCase('schedulers');
const io = (await loadSafetensors(requireFile(dir, 'io.safetensors'))).tensors;
const configs = parsePythonJson(readFileSync(requireFile(dir, 'scheduler_configs.json'), 'utf8')) as Record<string, Record<string, unknown>>;
const base = parseSchedulerConfig(JSON.parse(readFileSync(requireFile(dir, 'scheduler_config.json'), 'utf8')));
const readme = readFileSync(requireFile(dir, 'README.md'), 'utf8');

const SIGMA_CLASSES = ['EulerDiscreteScheduler', 'EulerAncestralDiscreteScheduler', 'DPMSolverMultistepScheduler'];
const STOCHASTIC_CLASSES = ['EulerAncestralDiscreteScheduler', 'DDPMScheduler'];

/** Every run the fixture names: README run-table rows, configs other than the base, run tensors. */
function listedRuns(): string[] {
  const fromReadme = [...readme.matchAll(/^\|\s*`([^`]+)`\s*\|\s*\w+Scheduler\s*\|/gm)].map((m) => m[1]);
  const fromConfigs = Object.keys(configs).filter((k) => !k.startsWith('base('));
  const fromTensors = Object.keys(io).filter((k) => /\.(trajectory|x_T|model_output)$/.test(k)).map((k) => k.slice(0, k.lastIndexOf('.')));
  return [...new Set([...fromReadme, ...fromConfigs, ...fromTensors])].sort();
}

/** The run's tensors; a missing one fails, naming every absent tensor. */
function runTensors(run: string, cls: string): Record<string, Tensor> {
  const names = ['timesteps', 'init_noise_sigma', 'x_T', 'model_input', 'model_output', 'trajectory', 'final'];
  if (SIGMA_CLASSES.includes(cls)) names.push('sigmas');
  if (STOCHASTIC_CLASSES.includes(cls)) names.push('step_noise');
  const missing = names.filter((n) => !io[`${run}.${n}`]).map((n) => `${run}.${n}`);
  assert.deepEqual(missing, [], `${dir}/io.safetensors lacks ${missing.join(', ')}`);
  return Object.fromEntries(names.map((n) => [n, io[`${run}.${n}`]]));
}

function need(name: string): Tensor {
  const t = io[name];
  assert.ok(t, `${dir}/io.safetensors lacks ${name}`);
  return t;
}

/** max |a - b| / max |b| (the README's "rtol of max|x|"). */
function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length');
  let m = 0, s = 0;
  for (let i = 0; i < a.length; i++) { m = Math.max(m, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
  return m / Math.max(s, 1e-30);
}

/** The README's toy model: 0.1 * x_in + 0.05 * sin(t / 100) (sin in f64, rounded to f32). */
const toyModel = (x: Tensor, t: number): Tensor => E.addScalar(E.mulScalar(x, Math.fround(0.1)), Math.fround(0.05 * Math.sin(t / 100)));

describe('golden parity: schedulers', () => {
  it('betas and alphas_cumprod', () => {
    assert.ok(rel(betas(base), need('betas').dataSync()) < 1e-6);
    assert.ok(rel(alphasCumprod(base), need('alphas_cumprod').dataSync()) < 1e-6);
  });

  it('add_noise and get_velocity', () => {
    const s = new DDPMScheduler(base);
    const t = [...need('add_noise.timesteps').dataSync()];
    const [x0, n] = [need('add_noise.sample'), need('add_noise.noise')];
    assert.ok(rel(s.addNoise(x0, n, t).dataSync(), need('add_noise.noisy').dataSync()) < 1e-5);
    assert.ok(rel(s.getVelocity(x0, n, t).dataSync(), need('get_velocity.v').dataSync()) < 1e-5);
  });

  const runs = listedRuns();
  it('the fixture lists scheduler runs', () => assert.ok(runs.length > 0, `${dir} lists no scheduler run`));

  for (const run of runs) {
    it(`${run}: timesteps, sigmas and the full trajectory`, () => {
      const cfg = configs[run];
      assert.ok(cfg, `${dir}/scheduler_configs.json lacks the run ${run}`);
      const g = runTensors(run, cfg._class_name as string);
      const steps = g.timesteps.size;
      assert.equal(g.trajectory.shape[0], steps + 1, 'trajectory holds x_T and one latent per step');
      const sampler = schedulerFromConfig(cfg, steps);
      assert.ok(rel(sampler.timesteps, g.timesteps.dataSync()) < 1e-6, `timesteps ${sampler.timesteps} vs ${[...g.timesteps.dataSync()]}`);
      if (g.sigmas) assert.ok(rel(sampler.sigmas!, g.sigmas.dataSync()) < 1e-6, 'sigmas');
      assert.ok(Math.abs(sampler.initNoiseSigma - g.init_noise_sigma.item()) <= 1e-6 * sampler.initNoiseSigma, 'init_noise_sigma');

      const shape = g.trajectory.shape.slice(1);
      const at = (t: Tensor, i: number) => E.reshape(E.slice(t, 0, i, i + 1), shape);
      let x = E.mulScalar(need('x_unit'), sampler.initNoiseSigma);
      assert.ok(rel(x.dataSync(), g.x_T.dataSync()) < 1e-6, 'x_T');
      for (let i = 0; i < steps; i++) {
        const xin = sampler.scaleModelInput(x, i);
        assert.ok(rel(xin.dataSync(), at(g.model_input, i).dataSync()) < 1e-5, `step ${i}: model_input`);
        const out = toyModel(xin, sampler.timesteps[i]);
        assert.ok(rel(out.dataSync(), at(g.model_output, i).dataSync()) < 1e-5, `step ${i}: model_output`);
        x = sampler.step(out, i, x, g.step_noise ? at(g.step_noise, i) : undefined);
        const err = rel(x.dataSync(), at(g.trajectory, i + 1).dataSync());
        assert.ok(err < 1e-5, `step ${i} of ${steps}: rel error ${err}`);
      }
      assert.ok(rel(x.dataSync(), g.final.dataSync()) < 1e-5, 'final');
    });
  }
});
