// The estimator: FLOP counting, memory trends and the CLI table.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { estimate } from '../../src/estimate/estimate.js';
import { findDevice } from '../../src/estimate/gpus.js';
import { unetCost } from '../../src/estimate/unet-cost.js';
import { SD15_UNET_CONFIG } from '../../src/models/sd15-configs.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';

const unet = parseUNetConfig(SD15_UNET_CONFIG);
const base = { unet, textEncoderParams: 123e6, vaeParams: 83.65e6, textEncoderLayers: 12, textHidden: 768, resolution: [512, 512] as [number, number], batch: 1, rank: 32, mixedPrecision: true, gradientCheckpointing: true, cacheLatents: true, trainTextEncoder: true, optimizer: 'AdamW', steps: 1000, naiveAttention: false };

describe('estimator', () => {
  it('counts about 0.8 TFLOP for one SD 1.5 UNet forward at 512x512', () => {
    const c = unetCost(unet, 64, 64);
    assert.ok(c.flops > 0.6e12 && c.flops < 1.0e12, `${c.flops}`);
    assert.ok(unetCost(unet, 128, 128).flops > 4 * c.flops, 'attention makes cost grow faster than the pixel count');
  });

  it('moves in the right direction with resolution, batch, checkpointing, precision and device', () => {
    const d = findDevice('rtx-5080');
    const e = estimate(base, d);
    assert.ok(estimate({ ...base, resolution: [1024, 1024] }, d).vramGB > e.vramGB);
    // A GPU step has a fixed cost, so batch 4 takes about twice (not four times) batch 1's time.
    assert.ok(estimate({ ...base, batch: 4 }, d).secondsPerStep > 1.5 * e.secondsPerStep);
    assert.ok(estimate({ ...base, batch: 4 }, findDevice('cpu')).secondsPerStep > 3.5 * estimate(base, findDevice('cpu')).secondsPerStep);
    assert.ok(estimate({ ...base, gradientCheckpointing: false }, d).vramGB > e.vramGB);
    assert.ok(estimate({ ...base, gradientCheckpointing: false }, d).secondsPerStep < e.secondsPerStep);
    assert.ok(estimate({ ...base, mixedPrecision: false }, d).vramGB > e.vramGB + 1);
    assert.ok(estimate(base, findDevice('rtx-5090')).secondsPerStep < estimate(base, findDevice('rtx-5070-ti')).secondsPerStep);
    assert.equal(estimate({ ...base, resolution: [2048, 2048], batch: 8, gradientCheckpointing: false }, d).fits, false);
    assert.throws(() => findDevice('voodoo2'), /unknown GPU "voodoo2"; known: rtx-5070-ti/);
  });

  it('prints ranges that contain the mission memo\'s table (rank 64, batch 1, 1500 steps)', () => {
    // minutes for 1500 steps, and the minimum VRAM with gradient checkpointing (issue 15)
    const memo: Record<string, [number, [number, number][]]> = {
      'rtx-5070-ti': [0, [[38, 48], [55, 72], [83, 105], [143, 180], [270, 360]]],
      'rtx-5080': [0, [[27, 37], [42, 57], [60, 83], [105, 135], [210, 270]]],
      'rtx-5090': [0, [[18, 23], [27, 38], [38, 53], [75, 100], [140, 180]]],
    };
    const vram = [6, 10, 16, 20, 24];
    const memoCfg = { ...base, rank: 64, cacheLatents: false, steps: 1500 };
    for (const [gpu, [, mins]] of Object.entries(memo)) {
      [512, 768, 1024, 1536, 2048].forEach((r, k) => {
        const e = estimate({ ...memoCfg, resolution: [r, r] }, findDevice(gpu));
        const [lo, hi] = e.secondsRange.map((s) => (s * 1500) / 60);
        assert.ok(lo <= mins[k][0] && hi >= mins[k][1], `${gpu} ${r}px: printed ${lo.toFixed(0)}-${hi.toFixed(0)} min, memo ${mins[k].join('-')}`);
        assert.ok(e.vramRangeGB[0] <= vram[k] + 1e-9 && e.vramRangeGB[1] >= vram[k] - 1e-9, `${r}px VRAM ${e.vramRangeGB.map((v) => v.toFixed(1)).join('-')} vs memo ${vram[k]}`);
      });
    }
  });

  it('prints a table for the seed config at 512-2048 with its assumptions', () => {
    const out = execFileSync('node', [path.resolve('bin/sdlora.js'), 'estimate', '--resolutions', '512,1024,2048', '--gpu', 'rtx-5070-ti,rtx-5090'], { encoding: 'utf8' });
    assert.match(out, /\| RTX 5070 Ti \| 512x512 \| [\d.]+ - [\d.]+ \| yes \|.*\| [\d.]+ \([\d.]+-[\d.]+\) \| \d+ min \(/);
    assert.match(out, /\| RTX 5090 \| 2048x2048 \|/);
    assert.match(out, /assumptions:/);
  });
});
