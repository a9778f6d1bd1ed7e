// Each optimizer's first three steps against its published update rule, written here again in
// float64 from the papers / library docs (not from sdlora's code), on a small fixed problem:
// two parameter groups with their own lr, gradients of mixed magnitude with exact zeros, and a
// 300-value tensor so the 8-bit optimizer spans two quantization blocks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createOptimizer } from '../../src/train/optimizers.js';

const SIZES = { a: 7, b: 300 } as const;
const GROUP = { a: 'te', b: 'unet' } as const;
type Name = keyof typeof SIZES;
const NAMES: Name[] = ['a', 'b'];

/** Gradient of step s (0-based) for parameter `n`: magnitudes from 1e-1 to 1e-4, some zeros. */
function grad(n: Name, s: number): Float64Array {
  return f32Values({ length: SIZES[n] }, (_, i) => (i % 11 === 5 ? 0 : Math.sin(1.7 * i + 0.9 * s + (n === 'a' ? 0.3 : 0)) * 10 ** -(1 + (i % 4))));
}
/** A steady descent direction with per-step wobble, so Prodigy's d estimate grows. */
function steadyGrad(n: Name, s: number): Float64Array {
  return f32Values({ length: SIZES[n] }, (_, i) => (i % 11 === 5 ? 0 : Math.sin(1.7 * i + (n === 'a' ? 0.3 : 0)) * (1 + 0.3 * Math.sin(0.9 * s + i)) * 10 ** -(1 + (i % 4))));
}
const start = (n: Name, scale = 1) => f32Values({ length: SIZES[n] }, (_, i) => scale * Math.cos(0.37 * i + (n === 'a' ? 1 : 0)));
/** Values that float32 holds exactly, so both sides start from the same numbers. */
function f32Values(a: { length: number }, f: (_: unknown, i: number) => number): Float64Array { return Float64Array.from(Float32Array.from(a, f)); }

type Ref = (x: Record<Name, Float64Array>, g: Record<Name, Float64Array>, lr: Record<Name, number>, t: number) => void;

/** Runs sdlora's optimizer and the float64 reference for three steps; returns both trajectories. */
function compare(type: string, args: Record<string, string>, lrs: Record<'te' | 'unet', number>, ref: Ref, scale = 1, gradient = grad) {
  const opt = createOptimizer(type, new Map(Object.entries(lrs).map(([k, lr]) => [k, { name: k, lr }])), args);
  const x32 = { a: Float32Array.from(start('a', scale)), b: Float32Array.from(start('b', scale)) };
  const x64 = { a: Float64Array.from(x32.a), b: Float64Array.from(x32.b) };
  const steps: { got: Record<Name, Float32Array>; want: Record<Name, Float64Array> }[] = [];
  for (let t = 1; t <= 3; t++) {
    const g = { a: gradient('a', t - 1), b: gradient('b', t - 1) };
    opt.update(NAMES.map((n) => ({ name: n, group: GROUP[n], data: x32[n] })), NAMES.map((n) => Float32Array.from(g[n])), new Map(Object.entries(lrs)));
    ref(x64, g, { a: lrs.te, b: lrs.unet }, t);
    steps.push({ got: { a: Float32Array.from(x32.a), b: Float32Array.from(x32.b) }, want: { a: Float64Array.from(x64.a), b: Float64Array.from(x64.b) } });
  }
  return steps;
}

function assertClose(steps: ReturnType<typeof compare>, tol: (step: number) => number, what: string): void {
  steps.forEach(({ got, want }, s) => {
    for (const n of NAMES) for (let i = 0; i < SIZES[n]; i++) {
      const e = Math.abs(got[n][i] - want[n][i]);
      assert.ok(e <= tol(s + 1), `${what} step ${s + 1} ${n}[${i}]: ${got[n][i]} vs ${want[n][i]} (error ${e})`);
    }
  });
}

/** torch.optim.AdamW (docs' algorithm): decoupled decay, bias-corrected moments. */
function adamwRef(b1: number, b2: number, eps: number, wd: number): Ref {
  const m: Record<string, Float64Array> = {}, v: Record<string, Float64Array> = {};
  return (x, g, lr, t) => {
    for (const n of NAMES) {
      m[n] ??= new Float64Array(SIZES[n]); v[n] ??= new Float64Array(SIZES[n]);
      for (let i = 0; i < SIZES[n]; i++) {
        x[n][i] -= lr[n] * wd * x[n][i];
        m[n][i] = b1 * m[n][i] + (1 - b1) * g[n][i];
        v[n][i] = b2 * v[n][i] + (1 - b2) * g[n][i] ** 2;
        const mh = m[n][i] / (1 - b1 ** t), vh = v[n][i] / (1 - b2 ** t);
        x[n][i] -= (lr[n] * mh) / (Math.sqrt(vh) + eps);
      }
    }
  };
}

/**
 * AdamW whose moments are kept between steps as sdlora documents its 8-bit state: blocks of 256
 * values with one absmax each, m as round(127·sign·sqrt(|m|/absmax)), v as round(255·(v/absmax)^¼).
 */
function adamw8bitRef(b1: number, b2: number, eps: number, wd: number): Ref {
  const q: Record<string, { m: Float64Array; v: Float64Array }> = {};
  const store = (a: Float64Array, levels: number, root: number) => {
    for (let b0 = 0; b0 < a.length; b0 += 256) {
      const blk = a.subarray(b0, b0 + 256);
      const max = Math.fround(Math.max(...blk.map(Math.abs)));
      blk.forEach((val, j) => { blk[j] = max === 0 ? 0 : Math.sign(val) * max * (Math.round(levels * (Math.abs(val) / max) ** (1 / root)) / levels) ** root; });
    }
  };
  return (x, g, lr, t) => {
    for (const n of NAMES) {
      q[n] ??= { m: new Float64Array(SIZES[n]), v: new Float64Array(SIZES[n]) };
      const { m, v } = q[n];
      for (let i = 0; i < SIZES[n]; i++) {
        x[n][i] -= lr[n] * wd * x[n][i];
        m[i] = b1 * m[i] + (1 - b1) * g[n][i];
        v[i] = b2 * v[i] + (1 - b2) * g[n][i] ** 2;
        x[n][i] -= (lr[n] * m[i] / (1 - b1 ** t)) / (Math.sqrt(v[i] / (1 - b2 ** t)) + eps);
      }
      store(m, 127, 2); store(v, 255, 4);
    }
  };
}

/** Lion (Chen et al. 2023, Algorithm 2): sign of β1-interpolated momentum, decay scaled by lr. */
function lionRef(b1: number, b2: number, wd: number): Ref {
  const m: Record<string, Float64Array> = {};
  return (x, g, lr) => {
    for (const n of NAMES) {
      m[n] ??= new Float64Array(SIZES[n]);
      for (let i = 0; i < SIZES[n]; i++) {
        const c = b1 * m[n][i] + (1 - b1) * g[n][i];
        x[n][i] -= lr[n] * (Math.sign(c) + wd * x[n][i]);
        m[n][i] = b2 * m[n][i] + (1 - b2) * g[n][i];
      }
    }
  };
}

/** torch.optim.SGD docs' algorithm with nesterov=True, dampening 0. */
function sgdNesterovRef(mu: number, wd: number): Ref {
  const b: Record<string, Float64Array> = {};
  return (x, g, lr, t) => {
    for (const n of NAMES) {
      b[n] ??= new Float64Array(SIZES[n]);
      for (let i = 0; i < SIZES[n]; i++) {
        const gi = g[n][i] + wd * x[n][i];
        b[n][i] = t > 1 ? mu * b[n][i] + gi : gi;
        x[n][i] -= lr[n] * (gi + mu * b[n][i]);
      }
    }
  };
}

/**
 * Prodigy (Mishchenko & Defazio 2023, Algorithm 4 "Prodigy (Adam version)" as prodigyopt
 * implements it: s and the numerator weighted by d/d0 · d·lr; optional bias correction and
 * safeguard warm-up).
 */
function prodigyRef(o: { b1: number; b2: number; eps: number; wd: number; d0: number; dCoef: number; biasCorr: boolean; safeguard: boolean }, ds: number[] = []): Ref {
  const b3 = Math.sqrt(o.b2);
  const m: Record<string, Float64Array> = {}, v: Record<string, Float64Array> = {}, s: Record<string, Float64Array> = {}, x0: Record<string, Float64Array> = {};
  let d = o.d0, num = 0;
  return (x, g, lr, t) => {
    const L = Math.max(lr.a, lr.b);
    const dlr = d * L * (o.biasCorr ? Math.sqrt(1 - o.b2 ** t) / (1 - o.b1 ** t) : 1);
    let dot = 0, den = 0;
    for (const n of NAMES) {
      m[n] ??= new Float64Array(SIZES[n]); v[n] ??= new Float64Array(SIZES[n]); s[n] ??= new Float64Array(SIZES[n]); x0[n] ??= Float64Array.from(x[n]);
      for (let i = 0; i < SIZES[n]; i++) {
        dot += g[n][i] * (x0[n][i] - x[n][i]);
        m[n][i] = o.b1 * m[n][i] + d * (1 - o.b1) * g[n][i];
        v[n][i] = o.b2 * v[n][i] + d * d * (1 - o.b2) * g[n][i] ** 2;
        s[n][i] = b3 * s[n][i] + (d / o.d0) * (o.safeguard ? d : dlr) * g[n][i];
        den += Math.abs(s[n][i]);
      }
    }
    num = b3 * num + (d / o.d0) * dlr * dot;
    d = Math.max(d, (o.dCoef * num) / den); // the paper's d_{k+1} = max(d_k, d̂_{k+1}) (growth rate unbounded)
    ds.push(d);
    for (const n of NAMES) for (let i = 0; i < SIZES[n]; i++) {
      x[n][i] -= o.wd * dlr * x[n][i];
      x[n][i] -= (dlr * m[n][i]) / (Math.sqrt(v[n][i]) + d * o.eps);
    }
  };
}

describe('optimizers follow their published update rules (float64 references, 3 steps)', () => {
  const lrs = { te: 0.02, unet: 0.005 };

  it('AdamW (torch defaults; and betas, eps, weight_decay given)', () => {
    assertClose(compare('AdamW', {}, lrs, adamwRef(0.9, 0.999, 1e-8, 0.01)), () => 2e-6, 'AdamW');
    assertClose(compare('AdamW', { betas: '0.8,0.95', eps: '1e-3', weight_decay: '0.1' }, lrs, adamwRef(0.8, 0.95, 1e-3, 0.1)), () => 2e-6, 'AdamW args');
  });

  it('Lion (lion-pytorch defaults; and weight_decay)', () => {
    assertClose(compare('Lion', {}, lrs, lionRef(0.9, 0.99, 0)), () => 2e-6, 'Lion');
    assertClose(compare('Lion', { betas: '0.95,0.98', weight_decay: '0.5' }, lrs, lionRef(0.95, 0.98, 0.5)), () => 2e-6, 'Lion args');
  });

  it('SGDNesterov (momentum 0.9 default; and weight_decay)', () => {
    assertClose(compare('SGDNesterov', {}, lrs, sgdNesterovRef(0.9, 0)), () => 2e-6, 'SGDNesterov');
    assertClose(compare('SGDNesterov', { momentum: '0.5', weight_decay: '0.1' }, lrs, sgdNesterovRef(0.5, 0.1)), () => 2e-6, 'SGDNesterov args');
  });

  it('Prodigy (prodigyopt defaults; and decay, bias correction, safeguard warm-up, d_coef)', () => {
    // Weights near zero (like lora_up) so float32 rounding of x stays far below Prodigy's tiny
    // first steps (about d0 = 1e-6); the bound is 1e-3 of the largest move.
    const one = { te: 1, unet: 1 };
    const check = (args: Record<string, string>, o: Parameters<typeof prodigyRef>[0], what: string) => {
      const ds: number[] = [];
      const steps = compare('Prodigy', args, one, prodigyRef(o, ds), 1e-3, steadyGrad);
      assert.ok(ds[1] > o.d0 && ds[2] > ds[1], `${what}: d grows in the reference (${ds})`);
      const x0 = { a: start('a', 1e-3), b: start('b', 1e-3) };
      const moved = Math.max(...steps.flatMap(({ want }) => NAMES.flatMap((n) => [...want[n]].map((v, i) => Math.abs(v - x0[n][i])))));
      assertClose(steps, () => 1e-3 * moved, what);
    };
    const base = { b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0, d0: 1e-6, dCoef: 1, biasCorr: false, safeguard: false };
    check({}, base, 'Prodigy');
    check({ weight_decay: '0.1', use_bias_correction: 'True', d_coef: '5', d0: '2e-6' }, { ...base, wd: 0.1, biasCorr: true, dCoef: 5, d0: 2e-6 }, 'Prodigy decay, bias correction');
    check({ safeguard_warmup: 'True', use_bias_correction: 'True', betas: '0.8,0.99', d_coef: '20' }, { ...base, b1: 0.8, b2: 0.99, safeguard: true, biasCorr: true, dCoef: 20 }, 'Prodigy safeguard warm-up');
    assert.throws(() => compare('Prodigy', {}, lrs, prodigyRef({ b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0, d0: 1e-6, dCoef: 1, biasCorr: false, safeguard: false })), /same lr/);
  });

  it('AdamW8bit: the AdamW rule on its documented 8-bit state, and near plain AdamW', () => {
    assertClose(compare('AdamW8bit', {}, lrs, adamw8bitRef(0.9, 0.999, 1e-8, 0.01)), () => 2e-6, 'AdamW8bit');
    assertClose(compare('AdamW8bit', { betas: '0.8,0.95', weight_decay: '0.1' }, lrs, adamw8bitRef(0.8, 0.95, 1e-8, 0.1)), () => 2e-6, 'AdamW8bit args');
    // Against unquantized AdamW: step 1 reads no stored state; later steps read moments rounded to
    // 8 bits, whose error is largest for values far below their block's absmax (here 1e-3 of it:
    // up to ~25% on m and v), so the bound is a fraction of lr per step.
    const steps = compare('AdamW8bit', {}, lrs, adamwRef(0.9, 0.999, 1e-8, 0.01));
    assertClose(steps, (s) => (s === 1 ? 2e-6 : 0.3 * lrs.te * (s - 1)), 'AdamW8bit vs AdamW');
    const worst = Math.max(...NAMES.map((n) => Math.max(...[...steps[2].got[n]].map((v, i) => Math.abs(v - steps[2].want[n][i])))));
    assert.ok(worst > 1e-5, 'the 8-bit state does round (this is not plain AdamW)');
  });

  it('names sdlora (not a Python library) in ss_optimizer and refuses arguments it does not implement', () => {
    const mk = (t: string, a: Record<string, string> = {}) => createOptimizer(t, new Map([['unet', { name: 'unet', lr: 1 }]]), a);
    assert.equal(mk('AdamW').describe(), 'sdlora.optimizers.AdamW');
    assert.equal(mk('AdamW8bit', { weight_decay: '0.1' }).describe(), 'sdlora.optimizers.AdamW8bit(weight_decay=0.1) (blockwise 8-bit state, not bitsandbytes)');
    for (const t of ['AdamW', 'AdamW8bit', 'Lion', 'Prodigy', 'SGDNesterov']) assert.doesNotMatch(mk(t).describe(), /torch|bitsandbytes\.|prodigyopt|lion_pytorch/);
    assert.throws(() => mk('AdamW8bit', { percentile_clipping: '95' }), /percentile_clipping not supported/);
    assert.throws(() => mk('Lion', { use_triton: 'True' }), /use_triton not supported/);
    assert.throws(() => mk('SGDNesterov', { dampening: '0.1' }), /dampening=0/);
  });
});
