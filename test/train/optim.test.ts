// Optimizers, lr schedules and sd-scripts loss weights.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { DDPMScheduler, SD15_SCHEDULER } from '../../src/schedulers/index.js';
import { allSnr, debiasedWeight, minSnrWeight, scaleVPredLikeNoisePred } from '../../src/train/loss-weights.js';
import { lrFactor } from '../../src/train/lr-schedulers.js';
import { createOptimizer } from '../../src/train/optimizers.js';
import { goldenCase, goldenDir } from '../helpers/golden.js';

/** Minimizes sum((x - t)^2) and returns the final distance to t. */
function run(type: string, lr: number, steps: number, args: Record<string, string> = {}): { dist: number; x: Float32Array } {
  const t = Float32Array.from({ length: 600 }, (_, i) => Math.sin(i));
  const x = new Float32Array(600);
  const opt = createOptimizer(type, new Map([['unet', { name: 'unet', lr }]]), args);
  for (let s = 0; s < steps; s++) {
    const g = x.map((v, i) => 2 * (v - t[i]));
    opt.update([{ name: 'p', group: 'unet', data: x }], [g], new Map([['unet', lr]]));
  }
  return { dist: Math.sqrt(x.reduce((a, v, i) => a + (v - t[i]) ** 2, 0)), x };
}

describe('optimizers', () => {
  it('AdamW matches the torch update rule for the first steps', () => {
    const x = Float32Array.from([1, -2]);
    const opt = createOptimizer('AdamW', new Map([['u', { name: 'u', lr: 0.1 }]]), { weight_decay: '0.1' });
    opt.update([{ name: 'p', group: 'u', data: x }], [Float32Array.from([0.5, -1])], new Map([['u', 0.1]]));
    // step 1: m = 0.1 g, v = 0.001 g^2, mhat = g, vhat = g^2 -> x = x (1 - lr wd) - lr sign(g) (up to eps)
    assert.ok(Math.abs(x[0] - (1 * 0.99 - 0.1)) < 1e-6);
    assert.ok(Math.abs(x[1] - (-2 * 0.99 + 0.1)) < 1e-6);
  });

  it('every optimizer minimizes a quadratic; AdamW8bit tracks AdamW', () => {
    const start = Math.sqrt(Array.from({ length: 600 }, (_, i) => Math.sin(i) ** 2).reduce((a, b) => a + b, 0));
    for (const [type, lr, args] of [['AdamW', 0.05, {}], ['AdamW8bit', 0.05, {}], ['Lion', 0.01, {}], ['Prodigy', 1, {}], ['SGDNesterov', 0.05, {}]] as const) {
      const { dist } = run(type, lr, 200, args);
      assert.ok(dist < 0.1 * start, `${type}: ${dist} vs start ${start}`);
    }
    const a = run('AdamW', 0.01, 50).x, b = run('AdamW8bit', 0.01, 50).x;
    assert.ok(a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0) < 0.02);
  });

  it('saves and restores optimizer state exactly', () => {
    const mk = () => createOptimizer('AdamW8bit', new Map([['u', { name: 'u', lr: 0.01 }]]), {});
    const a = mk(), x = Float32Array.from([1, 2, 3]);
    const g = Float32Array.from([0.1, -0.2, 0.3]);
    a.update([{ name: 'p', group: 'u', data: x }], [g], new Map([['u', 0.01]]));
    const b = mk();
    b.loadState(a.stateDict());
    const x2 = Float32Array.from(x);
    a.update([{ name: 'p', group: 'u', data: x }], [g], new Map([['u', 0.01]]));
    b.update([{ name: 'p', group: 'u', data: x2 }], [g], new Map([['u', 0.01]]));
    assert.deepEqual(x, x2);
  });
});

describe('lr schedules', () => {
  const o = (name: string, extra = {}) => ({ name, totalSteps: 100, warmupSteps: 10, numCycles: 2, power: 2, baseLr: 1e-4, ...extra });
  it('follow the transformers formulas', () => {
    assert.equal(lrFactor(5, o('constant_with_warmup')), 0.5);
    assert.equal(lrFactor(50, o('constant_with_warmup')), 1);
    assert.equal(lrFactor(5, o('constant', { warmupSteps: 0 })), 1);
    assert.ok(Math.abs(lrFactor(55, o('cosine')) - 0.5) < 1e-12);
    assert.equal(lrFactor(100, o('linear')), 0);
    assert.ok(Math.abs(lrFactor(55, o('linear')) - 0.5) < 1e-12);
    assert.ok(Math.abs(lrFactor(32.5, o('cosine_with_restarts')) - 0.5) < 1e-12);
    assert.equal(lrFactor(55, o('cosine_with_restarts')), 1, 'restart at the cycle boundary');
    assert.ok(Math.abs(lrFactor(55, o('polynomial')) - ((1e-4 - 1e-7) * 0.25 + 1e-7) / 1e-4) < 1e-12);
    assert.equal(lrFactor(5, o('cosine', { warmupSteps: 0.1 })), 0.5, 'fractional warm-up');
  });
});

describe('loss weights (sd-scripts)', () => {
  it('match the golden min-SNR, debiased and v-pred scaling values', async () => {
    const io = (await loadSafetensors(path.join(goldenCase('schedulers'), 'io.safetensors'))).tensors;
    const snr = allSnr(new DDPMScheduler(SD15_SCHEDULER).alphasCumprod);
    const ref = io['sd_scripts.all_snr'].dataSync();
    for (let t = 0; t < 1000; t += 37) assert.ok(Math.abs(snr[t] - ref[t]) <= 1e-4 * ref[t], `snr ${t}`);
    const ts = [...io['min_snr.timesteps'].dataSync()], gamma = io['min_snr.gamma'].item();
    ts.forEach((t, i) => {
      assert.ok(Math.abs(minSnrWeight(snr[t], gamma, false) - io['min_snr.weight_epsilon'].dataSync()[i]) < 1e-5);
      assert.ok(Math.abs(minSnrWeight(snr[t], gamma, true) - io['min_snr.weight_v_prediction'].dataSync()[i]) < 1e-5);
      if (io['sd_scripts.debiased_estimation_epsilon']) assert.ok(Math.abs(debiasedWeight(snr[t], false) - io['sd_scripts.debiased_estimation_epsilon'].dataSync()[i]) < 1e-5);
      if (io['sd_scripts.scale_v_pred_like_noise_pred']) assert.ok(Math.abs(scaleVPredLikeNoisePred(snr[t]) - io['sd_scripts.scale_v_pred_like_noise_pred'].dataSync()[i]) < 1e-5);
    });
  });
});
