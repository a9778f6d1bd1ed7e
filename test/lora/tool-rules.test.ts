// The rules of sd-scripts' LoRA tools that the lora-tools golden case does not exercise (its ranks
// sit below every cap): torch.quantile's float32 arithmetic, rank caps by in-channels, 1x1 convs
// at new_conv_rank in resize, ranks above the input's, MIN_SV, and Python-rendered metadata.
// Expected values are worked out by hand from the reference code, not taken from sdlora.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { Command } from 'commander';
import { registerLoRACommands } from '../../src/cli/lora-commands.js';
import * as E from '../../src/engine/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { type LoRAFile, type LoRAModuleWeights, loadLoRA } from '../../src/lora/lora-file.js';
import { quantileClamp, torchQuantileF32 } from '../../src/lora/quantile-clamp.js';
import { extractMetadata, pyFloat, pyJsonDumps, resizeMetadata } from '../../src/lora/tool-metadata.js';
import { chooseRank, extractLoRA, resizeLoRA, svdMergeLoRAs } from '../../src/lora/tools.js';
import { Weights } from '../../src/models/weights.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase } from '../helpers/golden.js';

const rng = new E.Rng(11);
const randn = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

/** The flattened delta up @ down * alpha / rank. */
function delta(m: LoRAModuleWeights): Float64Array {
  const r = m.down.shape[0], up = m.up.dataSync(), down = m.down.dataSync();
  const out = up.length / r, cols = down.length / r, d = new Float64Array(out * cols);
  for (let i = 0; i < out; i++) for (let k = 0; k < r; k++) for (let j = 0; j < cols; j++) d[i * cols + j] += up[i * r + k] * down[k * cols + j] * (m.alpha / r);
  return d;
}

/** A one-module LoRA for a 3x3 conv with only 2 input channels (so in_ch < in*kh*kw). */
function convLoRA(): LoRAFile {
  const m: LoRAModuleWeights = { name: 'lora_unet_x_conv1', up: E.tensor(randn(8 * 4), [8, 4, 1, 1]), down: E.tensor(randn(4 * 2 * 9), [4, 2, 3, 3]), alpha: 2 };
  return { path: 'synthetic.safetensors', modules: new Map([[m.name, m]]), metadata: {}, unsupportedKeys: [] } as unknown as LoRAFile;
}

describe('sd-scripts LoRA tool rules', () => {
  let A: LoRAFile;
  before(async () => {
    await E.initCpuBackend();
    A = await loadLoRA(path.join(goldenCase('lora'), 'lora_a.safetensors'));
  });

  it('torch.quantile: signed values, linear interpolation, float32 arithmetic, NaN', () => {
    // Sorted [-10, 1, 2, 3], rank 1.5 -> 1.5; the quantile of the absolute values would be 2.5.
    assert.equal(torchQuantileF32([-10, 3, 1, 2], 0.5), 1.5);
    // q is a float32 tensor: quantile([0, 1], 0.1) is float32(0.1), not 0.1.
    assert.equal(torchQuantileF32([0, 1], 0.1), Math.fround(0.1));
    assert.notEqual(torchQuantileF32([0, 1], 0.1), 0.1);
    assert.ok(Number.isNaN(torchQuantileF32([1, NaN, 2], 0.5)));
    assert.throws(() => torchQuantileF32([1], 1.5), /\[0, 1\]/);
    const up = Float32Array.from([-10, 1]), down = Float32Array.from([2, 3]);
    const hi = quantileClamp(up, down, 0.99);
    assert.deepEqual([...up, ...down], [-hi, 1, 2, hi]);
    // Mostly negative values give hi < 0; torch.clamp with min > max returns max everywhere.
    const neg = Float32Array.from([-3, -2, -1]), none = new Float32Array(0);
    assert.equal(quantileClamp(neg, none, 0.5), -2);
    assert.deepEqual([...neg], [-2, -2, -2]);
  });

  it('rank_resize: dynamic indices over all min(out, in) singular values, MIN_SV in every mode', () => {
    const s = Float64Array.from([10, 5, 1, 0.1]);
    // sv_ratio 4: two values above 10/4 -> index 2 -> rank 3; sv_cumulative 0.9: cumsum/16.1 passes 0.9 at 1 -> rank 3.
    assert.equal(chooseRank(s, 4, 'sv_ratio', 4), 3);
    assert.equal(chooseRank(s, 4, 'sv_cumulative', 0.9), 3);
    assert.equal(chooseRank(s, 2, 'sv_fro', 0.99), 2, 'capped at the maximum rank');
    // With the zero tail torch.linalg.svd returns, sv_fro 0.999999 reaches index 4 -> rank 5 (above
    // the 4 nonzero values); on the 4 values alone the index clamp would stop at rank 4.
    const tail = Float64Array.from([10, 5, 1, 0.1, 0, 0, 0, 0]);
    assert.equal(chooseRank(tail, 8, 'sv_fro', 0.999999), 5);
    assert.equal(chooseRank(s, 8, 'sv_fro', 0.999999), 4);
    assert.equal(chooseRank(Float64Array.from([1e-7, 0, 0]), 3), 1, 'a zero matrix resizes to rank 1 even at a fixed rank');
  });

  it('resize: conv modules (1x1 included) take new_conv_rank; ranks above the input keep the delta', () => {
    const { modules } = resizeLoRA(A, 2, { convRank: 3 });
    const conv = modules.filter((m) => m.down.rank === 4);
    assert.ok(conv.length > 0 && conv.every((m) => m.down.shape[2] * m.down.shape[3] === 1), 'the case has 1x1 conv modules');
    for (const m of modules) assert.equal(m.down.shape[0], m.down.rank === 4 ? 3 : 2, m.name);
    const up = resizeLoRA(A, 6);
    for (const m of up.modules) {
      const o = A.modules.get(m.name)!;
      assert.equal(m.down.shape[0], Math.min(6, m.up.shape[0], m.down.size / m.down.shape[0]), m.name);
      assert.ok(Math.abs(m.alpha / m.down.shape[0] - o.alpha / o.down.shape[0]) < 1e-12, 'alpha/rank kept');
      assert.ok(maxAbsDiff(delta(m), delta(o)) < 1e-5, `${m.name}: delta kept at a higher rank`);
      // The padded rows still form an orthonormal Vh.
      const k = m.down.shape[0], n = m.down.size / k, d = m.down.dataSync();
      for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) {
        let dot = 0;
        for (let c = 0; c < n; c++) dot += d[a * n + c] * d[b * n + c];
        assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-5, `${m.name}: Vh rows ${a}, ${b}`);
      }
    }
    assert.equal(resizeMetadata({}, { oldRank: 4, rank: 2, convRank: 3, lastAlpha: 1 }).ss_training_comment, 'dimension is resized from 4 to 2 (conv: 3); ');
  });

  it('svd merge and extract cap the rank by in-channels (not in*kh*kw) and out', () => {
    const L = convLoRA(), m = L.modules.get('lora_unet_x_conv1')!;
    const [merged] = svdMergeLoRAs([{ lora: L, ratio: 1 }], 4, { convRank: 5, clampQuantile: null });
    assert.deepEqual(merged.down.shape, [2, 2, 3, 3]);
    assert.equal(merged.alpha, 2);
    const [rank1x1] = svdMergeLoRAs([{ lora: A, ratio: 1 }], 2, { convRank: 3 }).filter((x) => x.down.rank === 4);
    assert.equal(rank1x1.down.shape[0], 2, '1x1 convs take new_rank in svd merge');
    // extract: tuned = base + the conv LoRA's delta, conv_dim 5 -> rank min(5, 2, 8).
    const base = new Float32Array(8 * 18), tuned = Float32Array.from(delta(m), (v, i) => base[i] + v);
    const w = (d: Float32Array) => new Weights(new Map([['x.conv1.weight', E.tensor(d, [8, 2, 3, 3])]]), 'synthetic');
    const layer = { name: m.name, path: 'x.conv1', te: false, base: w(base), tuned: w(tuned) };
    const [ex] = E.noGrad(() => extractLoRA([layer], 4, { convDim: 5 }));
    assert.deepEqual(ex.down.shape, [2, 2, 3, 3]);
    assert.equal(ex.alpha, 2);
    assert.throws(() => extractLoRA([layer], 4), /conv_dim/);
    // The same module for two different layer shapes is refused, naming both files.
    const other = convLoRA();
    const o = other.modules.get('lora_unet_x_conv1')!;
    other.modules.set(o.name, { ...o, down: E.tensor(randn(4 * 3 * 9), [4, 3, 3, 3]) });
    (other as { path: string }).path = 'other.safetensors';
    assert.throws(() => svdMergeLoRAs([{ lora: L, ratio: 1 }, { lora: other, ratio: 1 }], 4), /other\.safetensors: module lora_unet_x_conv1 .*synthetic\.safetensors/);
  });

  it('the extract command: sd-scripts metadata, the text encoder dropped below min-diff, the delta recovered', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-extract-'));
    const base = path.resolve('assets/tiny-sd'), tuned = path.join(tmp, 'tuned');
    cpSync(base, tuned, { recursive: true });
    const unetFile = path.join(tuned, 'unet', 'diffusion_pytorch_model.safetensors');
    const { tensors, metadata } = await loadSafetensors(unetFile);
    const key = Object.keys(tensors).find((k) => /attentions\.0\.transformer_blocks\.0\.attn1\.to_q\.weight$/.test(k))!;
    const w = tensors[key], [out, inn] = w.shape;
    // A rank-1 change 0.05 * u v^T with positive u, v: its factors are all positive, so the clamp at
    // --clamp-quantile 1 (hi = the largest value, range [-hi, hi]) leaves them as they are. (With
    // mixed signs it need not: the range is symmetric about the signed maximum.)
    const pos = (n: number) => randn(n).map((x) => Math.abs(x) + 0.1);
    const u = pos(out), v = pos(inn), pert = Float32Array.from({ length: out * inn }, (_, i) => 0.05 * u[Math.floor(i / inn)] * v[i % inn]);
    tensors[key] = E.tensor(Float32Array.from(w.dataSync(), (x, i) => x + pert[i]), w.shape);
    await saveSafetensors(unetFile, tensors, metadata);
    const outFile = path.join(tmp, 'x.safetensors');
    const program = new Command().exitOverride();
    registerLoRACommands(program);
    await program.parseAsync(['lora', 'extract', '--base', base, '--tuned', tuned, '--dim', '1', '--conv-dim', '1', '--clamp-quantile', '1', '--out', outFile], { from: 'user' });
    const got = await loadLoRA(outFile);
    const ss = Object.fromEntries(Object.entries(got.metadata).filter(([k]) => k.startsWith('ss_')));
    assert.deepEqual(ss, extractMetadata({ v2: false, vParameterization: false, dim: 1, convDim: 1 }));
    assert.ok([...got.modules.keys()].every((n) => n.startsWith('lora_unet_')), 'unchanged text encoder dropped');
    const name = `lora_unet_${key.replace(/\.weight$/, '').replace(/\./g, '_')}`;
    const m = got.modules.get(name);
    assert.ok(m, `${name} extracted`);
    assert.equal(m.alpha, 1);
    assert.ok(maxAbsDiff(delta(m), pert) < 1e-5, 'the rank-1 change is recovered');
    assert.ok([...got.modules.values()].some((x) => x.down.rank === 4 && x.down.shape[2] === 3 && x.down.shape[0] === 1), '3x3 convs at conv_dim');
  });

  it('metadata renders values as Python does', () => {
    assert.deepEqual([1, 0.9, 2.5, 1e-5, 1e16, 123.0].map(pyFloat), ['1.0', '0.9', '2.5', '1e-05', '1e+16', '123.0']);
    assert.equal(pyJsonDumps({ conv_dim: 3, conv_alpha: '3.0' }), '{"conv_dim": 3, "conv_alpha": "3.0"}');
    assert.deepEqual(extractMetadata({ v2: true, vParameterization: true, dim: 8 }), {
      ss_v2: 'True', ss_base_model_version: 'sd_v2_v', ss_network_module: 'networks.lora', ss_network_dim: '8', ss_network_alpha: '8.0', ss_network_args: '{}',
    });
    const dyn = resizeMetadata({ ss_training_comment: 'x', sshs_model_hash: 'old' }, { oldRank: 16, rank: 8, convRank: 8, method: 'sv_ratio', param: 2, lastAlpha: 3 });
    assert.deepEqual(dyn, { ss_training_comment: 'Dynamic resize with sv_ratio: 2.0 from 16; x', ss_network_dim: 'Dynamic', ss_network_alpha: 'Dynamic' });
  });
});
