// Timesteps, sigmas and short trajectories of every scheduler the golden folder configures, for
// step counts 1..60 and a few large ones, against diffusers 0.30.3's formulas written out here
// independently (numpy semantics: np.round halves to even, np.linspace is start + i * step with
// the endpoint pinned, np.arange fills with the rounded difference of its first two values), and
// against a float64 re-derivation of each sampler's update. Configs come from the fixture; the
// spacings and Karras variants are diffusers options applied on top of them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { parsePythonJson } from '../../src/io/python-json.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { alphasCumprod, parseSchedulerConfig, schedulerFromConfig } from '../../src/schedulers/index.js';
import { goldenCase, requireFile } from '../helpers/golden.js';

type Cfg = Record<string, unknown>;
const dir = goldenCase('schedulers');
const configs = parsePythonJson(readFileSync(requireFile(dir, 'scheduler_configs.json'), 'utf8')) as Record<string, Cfg>;
const runs = Object.entries(configs).filter(([k]) => !k.startsWith('base('));
const xUnit = (await loadSafetensors(requireFile(dir, 'io.safetensors'))).tensors.x_unit;
const STEP_COUNTS = [...Array.from({ length: 60 }, (_, i) => i + 1), 75, 100, 250, 500, 999, 1000];
const f = Math.fround;

// ---- numpy, as numpy computes it ----
const npRound = (x: number) => {
  const lo = Math.floor(x), frac = x - lo;
  if (frac !== 0.5) return frac < 0.5 ? lo : lo + 1;
  return lo % 2 === 0 ? lo : lo + 1;
};
const npLinspace = (a: number, b: number, n: number) => {
  if (n === 1) return [a];
  const step = (b - a) / (n - 1);
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? b : i * step + a));
};
const npArange = (a: number, b: number, step: number) => {
  const out: number[] = [];
  const len = Math.ceil((b - a) / step), second = a + step, delta = second - a;
  for (let i = 0; i < len; i++) out.push(i === 0 ? a : i === 1 ? second : a + i * delta);
  return out;
};
const npInterp = (x: number, fp: ArrayLike<number>) => {
  if (x <= 0) return fp[0];
  if (x >= fp.length - 1) return fp[fp.length - 1];
  const j = Math.floor(x);
  return x === j ? fp[j] : (fp[j + 1] - fp[j]) * (x - j) + fp[j];
};

// ---- diffusers' set_timesteps, written from scheduling_*.py ----
interface Schedule { timesteps: number[]; sigmas?: number[]; initNoiseSigma: number }

function spaced(c: Cfg, n: number, dpm: boolean): number[] {
  const T = c.num_train_timesteps as number, off = c.steps_offset as number;
  const m = dpm ? n + 1 : n; // DPM-Solver spaces n + 1 points and drops the last
  const drop = (a: number[]) => (dpm ? a.slice(0, n) : a);
  switch (c.timestep_spacing) {
    case 'linspace': return drop(npLinspace(0, T - 1, m).reverse());
    case 'leading': return drop(Array.from({ length: m }, (_, i) => (m - 1 - i) * Math.floor(T / m) + off));
    case 'trailing': return npArange(T, 0, -T / n).map((t) => npRound(t) - 1);
    default: throw new Error(`spacing ${c.timestep_spacing}`);
  }
}

function sigmaToT(s: number, logSig: Float32Array): number {
  const ls = Math.log(Math.max(s, 1e-10));
  let low = -1;
  for (let i = logSig.length - 1; i >= 0 && low < 0; i--) if (ls >= logSig[i]) low = i;
  low = Math.min(Math.max(low, 0), logSig.length - 2);
  const w = Math.max(0, Math.min(1, (logSig[low] - ls) / f(logSig[low] - logSig[low + 1])));
  return low + w;
}

const karras = (lo: number, hi: number, n: number) => npLinspace(0, 1, n).map((r) => (hi ** (1 / 7) + r * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7);

/** The schedule diffusers builds, or null where diffusers would run a different step count or index past alphas_cumprod. */
function expected(c: Cfg, n: number): Schedule | null {
  const cls = c._class_name as string, T = c.num_train_timesteps as number;
  const acp = alphasCumprod(parseSchedulerConfig(c));
  const sig = acp.map((a) => f(Math.sqrt(f(f(1 - a) / a))));
  const logSig = sig.map((s) => f(Math.log(s)));
  const dpm = cls === 'DPMSolverMultistepScheduler';
  let ts = spaced(c, n, dpm);
  // A different step count, or a repeated first timestep (diffusers then starts at the second);
  // DPM-Solver's Karras sigmas replace the spaced timesteps, so there they do not matter.
  const replaced = dpm && c.use_karras_sigmas;
  if (!replaced && (ts.length !== n || (n > 1 && npRound(ts[0]) === npRound(ts[1])))) return null;
  if (cls === 'DDIMScheduler' || cls === 'DDPMScheduler') {
    ts = ts.map(npRound);
    return ts.every((t) => t >= 0 && t < T) ? { timesteps: ts, initNoiseSigma: 1 } : null;
  }
  let s: number[];
  if (dpm && c.use_karras_sigmas) {
    s = karras(sig[0], sig[T - 1], n);
    ts = s.map((v) => npRound(sigmaToT(v, logSig)));
  } else {
    ts = dpm ? ts.map(npRound) : ts.map(f);
    s = ts.map((t) => npInterp(t, sig));
    if (cls === 'EulerDiscreteScheduler' && c.use_karras_sigmas) {
      s = karras(s[n - 1], s[0], n);
      ts = s.map((v) => f(sigmaToT(v, logSig)));
    }
  }
  const sigmas = [...s, 0].map(f);
  const max = Math.max(...sigmas);
  const initNoiseSigma = dpm ? 1 : c.timestep_spacing === 'leading' ? f(Math.sqrt(f(f(max * max) + 1))) : max;
  return { timesteps: ts, sigmas, initNoiseSigma };
}

function variants(c: Cfg): Cfg[] {
  const out: Cfg[] = ['linspace', 'leading', 'trailing'].map((sp) => ({ ...c, timestep_spacing: sp }));
  if (c._class_name === 'EulerDiscreteScheduler') out.push({ ...c, use_karras_sigmas: true }, { ...c, use_karras_sigmas: true, timestep_spacing: 'leading' });
  return out;
}

const close = (a: number, b: number, rtol: number) => Math.abs(a - b) <= rtol * Math.max(Math.abs(b), 1e-12);

describe('scheduler timesteps and sigmas for any step count (numpy semantics)', () => {
  it('rounds halves to even as numpy does (DPM-Solver, 12 steps)', () => {
    // np.linspace(0, 999, 13).round()[::-1][:-1]: 166.5 -> 166, 499.5 -> 500, 832.5 -> 832.
    const dpm = runs.find(([, c]) => c._class_name === 'DPMSolverMultistepScheduler' && !c.use_karras_sigmas);
    assert.ok(dpm, `${dir}/scheduler_configs.json has no plain DPMSolverMultistepScheduler run`);
    const c = { ...dpm[1], timestep_spacing: 'linspace', num_train_timesteps: 1000 };
    assert.deepEqual(schedulerFromConfig(c, 12).timesteps, [999, 916, 832, 749, 666, 583, 500, 416, 333, 250, 166, 83]);
  });

  it('refuses a trailing spacing that diffusers stretches to n + 1 steps', () => {
    const [, c] = runs[0];
    assert.throws(() => schedulerFromConfig({ ...c, timestep_spacing: 'trailing', num_train_timesteps: 1000 }, 61), /gives 62 timesteps for 61 steps/);
  });

  for (const [run, base] of runs) {
    it(`${run}: every spacing, steps ${STEP_COUNTS[0]}..${STEP_COUNTS[STEP_COUNTS.length - 1]}`, () => {
      for (const c of variants(base)) {
        const label = `${run} ${c.timestep_spacing}${c.use_karras_sigmas ? ' karras' : ''}`;
        for (const n of STEP_COUNTS) {
          if (n > (c.num_train_timesteps as number)) continue;
          const want = expected(c, n);
          if (!want) { assert.throws(() => schedulerFromConfig(c, n), /timestep_spacing/, `${label} n=${n} should be refused`); continue; }
          const got = schedulerFromConfig(c, n);
          const fractional = c._class_name === 'EulerDiscreteScheduler' && c.use_karras_sigmas;
          assert.equal(got.timesteps.length, n, `${label} n=${n}: step count`);
          const tsOk = got.timesteps.every((t, i) => (fractional ? close(t, want.timesteps[i], 1e-6) : t === want.timesteps[i]));
          assert.ok(tsOk, `${label} n=${n}: timesteps ${got.timesteps} vs ${want.timesteps}`);
          const bad = want.sigmas?.findIndex((s, i) => !close(got.sigmas![i], s, 1e-6)) ?? -1;
          assert.ok(bad < 0, `${label} n=${n}: sigma ${bad} ${got.sigmas?.[bad]} vs ${want.sigmas?.[bad]}`);
          assert.ok(close(got.initNoiseSigma, want.initNoiseSigma, 1e-6), `${label} n=${n}: init_noise_sigma`);
        }
      }
    });
  }
});

// ---- one step of each sampler in float64, from the papers' update rules as diffusers writes them ----
type Vec = Float64Array;
const lin = (a: Vec, ca: number, b?: Vec, cb = 0) => a.map((v, k) => ca * v + (b ? cb * b[k] : 0));

function reference(c: Cfg, n: number, noise: Vec[]): Vec {
  const cls = c._class_name as string, T = c.num_train_timesteps as number, v = c.prediction_type === 'v_prediction';
  const sched = expected(c, n)!;
  const acp = Array.from(alphasCumprod(parseSchedulerConfig(c)));
  const toy = (xin: Vec, t: number) => xin.map((x) => 0.1 * x + 0.05 * Math.sin(t / 100));
  let x: Vec = Float64Array.from(xUnit.dataSync(), (u) => u * sched.initNoiseSigma);
  const x0s: Vec[] = [];
  for (let i = 0; i < n; i++) {
    const t = sched.timesteps[i];
    if (cls === 'DDIMScheduler' || cls === 'DDPMScheduler') {
      const prev = t - Math.floor(T / n), a = acp[t];
      const ap = prev >= 0 ? acp[prev] : cls === 'DDPMScheduler' || c.set_alpha_to_one ? 1 : acp[0];
      const out = toy(x, t);
      const x0 = v ? lin(x, Math.sqrt(a), out, -Math.sqrt(1 - a)) : lin(x, 1 / Math.sqrt(a), out, -Math.sqrt(1 - a) / Math.sqrt(a));
      if (cls === 'DDIMScheduler') {
        const eps = v ? lin(out, Math.sqrt(a), x, Math.sqrt(1 - a)) : out;
        x = lin(x0, Math.sqrt(ap), eps, Math.sqrt(1 - ap));
      } else {
        const beta = 1 - a / ap;
        x = lin(x0, (Math.sqrt(ap) * beta) / (1 - a), x, (Math.sqrt(a / ap) * (1 - ap)) / (1 - a));
        if (t > 0) x = lin(x, 1, noise[i], Math.sqrt(Math.max(((1 - ap) / (1 - a)) * beta, 1e-20)));
      }
      continue;
    }
    const s = sched.sigmas![i], next = sched.sigmas![i + 1];
    if (cls === 'DPMSolverMultistepScheduler') {
      const al = (q: number) => 1 / Math.sqrt(q * q + 1), lam = (q: number) => -Math.log(q); // log(alpha / (q alpha))
      const out = toy(x, t);
      x0s.push(v ? lin(x, al(s), out, -s * al(s)) : lin(x, 1 / al(s), out, -s));
      // At the final sigma 0: alpha 1, sigma 0, lambda +inf, so exp(-h) - 1 = -1.
      const em1 = next === 0 ? -1 : Math.exp(-(lam(next) - lam(s))) - 1, at = next === 0 ? 1 : al(next);
      x = lin(x, (next * at) / (s * al(s)), x0s[i], -at * em1);
      // Order 2 everywhere but the first and the final step (final sigma 0).
      const order = (c.solver_order as number | undefined) ?? 2;
      assert.ok(order <= 2, `the float64 reference covers solver_order 1 and 2, not ${order}`);
      if (order === 2 && i > 0 && i < n - 1) {
        const r0 = (lam(s) - lam(sched.sigmas![i - 1])) / (lam(next) - lam(s));
        x = lin(x, 1, lin(x0s[i], 1, x0s[i - 1], -1), (-0.5 * at * em1) / r0);
      }
      continue;
    }
    const xin = lin(x, 1 / Math.sqrt(s * s + 1));
    const out = toy(xin, t);
    const x0 = v ? lin(out, -s / Math.sqrt(s * s + 1), x, 1 / (s * s + 1)) : lin(x, 1, out, -s);
    const d = lin(x, 1 / s, x0, -1 / s);
    if (cls === 'EulerDiscreteScheduler') { x = lin(x, 1, d, next - s); continue; }
    const up = Math.sqrt((next * next * (s * s - next * next)) / (s * s)), down = Math.sqrt(next * next - up * up);
    x = lin(lin(x, 1, d, down - s), 1, noise[i], up);
  }
  return x;
}

describe('short trajectories against a float64 re-derivation (lower_order_final, odd counts)', () => {
  for (const [run, c] of runs) {
    it(run, () => {
      for (const n of [1, 2, 3, 5, 7, 12, 14, 15, 16]) {
        const sampler = schedulerFromConfig(c, n);
        const rng = new E.Rng(n);
        const noise = Array.from({ length: n }, () => E.randn(xUnit.shape, rng));
        let x = E.mulScalar(xUnit, sampler.initNoiseSigma);
        for (let i = 0; i < n; i++) {
          const xin = sampler.scaleModelInput(x, i);
          const out = E.addScalar(E.mulScalar(xin, 0.1), 0.05 * Math.sin(sampler.timesteps[i] / 100));
          x = sampler.step(out, i, x, sampler.stochastic ? noise[i] : undefined);
        }
        const want = reference(c, n, noise.map((t) => Float64Array.from(t.dataSync())));
        const got = x.dataSync();
        // Relative to the largest latent of the run: few-step v-prediction ends near 0 after
        // cancelling a latent of size init_noise_sigma, which float32 cannot do more finely.
        const scale = Math.max(...want.map(Math.abs), ...xUnit.dataSync().map((u) => Math.abs(u * sampler.initNoiseSigma)));
        const err = Math.max(...want.map((w, k) => Math.abs(got[k] - w))) / scale;
        assert.ok(err < 2e-6, `${run} ${n} steps: rel error ${err}`);
      }
    });
  }
});
