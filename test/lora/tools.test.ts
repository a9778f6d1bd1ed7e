// LoRA tools: SVD helpers, svd merge, resize, extract, checkpoint merge, saving with hashes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { loraDelta, mergeLoRA } from '../../src/lora/apply.js';
import { type LoRAFile, loadLoRA, scaleOf } from '../../src/lora/lora-file.js';
import { addnetHash, saveLoRA } from '../../src/lora/lora-save.js';
import { mergeIntoCheckpoint } from '../../src/lora/merge-checkpoint.js';
import { lowRankSvd, qr, truncatedSvd } from '../../src/lora/svd.js';
import { loraTargets } from '../../src/lora/targets.js';
import { chooseRank, extractLoRA, resizeLoRA, svdMergeLoRAs } from '../../src/lora/tools.js';
import { loadSingleFile, loadStateDict, readJson } from '../../src/models/loader.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, requireFile } from '../helpers/golden.js';
import { goldenTextEncoder, goldenUNet } from '../helpers/golden-models.js';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'sdlora-tools-'));
let A: LoRAFile, B: LoRAFile;
const rng = new E.Rng(5);
const randMat = (m: number, n: number) => Float64Array.from({ length: m * n }, () => rng.normal());
const delta = (m: { up: Tensor; down: Tensor; alpha: number }, k = 1) => E.mulScalar(loraDelta({ ...m, name: '' }, m.down.rank === 4 ? [m.up.shape[0], ...m.down.shape.slice(1)] : [m.up.shape[0], m.down.shape[1]]), k * m.alpha / m.down.shape[0]).dataSync();

describe('LoRA tools', () => {
  before(async () => {
    await E.initCpuBackend();
    A = await loadLoRA(path.join(goldenCase('lora'), 'lora_a.safetensors'));
    B = await loadLoRA(path.join(goldenCase('lora'), 'lora_b.safetensors'));
  });

  it('SVD of a low-rank product and randomized truncated SVD', () => {
    const up = randMat(40, 3), down = randMat(3, 25);
    const s = lowRankSvd(up, down, 40, 3, 25);
    const prod = new Float64Array(40 * 25);
    for (let i = 0; i < 40; i++) for (let j = 0; j < 25; j++) for (let k = 0; k < 3; k++) prod[i * 25 + j] += up[i * 3 + k] * down[k * 25 + j];
    const rec = new Float64Array(40 * 25);
    for (let i = 0; i < 40; i++) for (let j = 0; j < 25; j++) for (let k = 0; k < s.k; k++) rec[i * 25 + j] += s.u[i * s.k + k] * s.s[k] * s.vt[k * 25 + j];
    assert.ok(maxAbsDiff(rec, prod) < 1e-9);
    assert.ok(s.s[0] >= s.s[1] && s.s[1] >= s.s[2]);
    // A 300x200 matrix of rank 5 plus small noise: the randomized top-5 SVD recovers it.
    const big = new Float64Array(300 * 200);
    const U5 = randMat(300, 5), V5 = randMat(5, 200);
    for (let i = 0; i < 300; i++) for (let j = 0; j < 200; j++) { let v = 1e-6 * rng.normal(); for (let k = 0; k < 5; k++) v += U5[i * 5 + k] * V5[k * 200 + j]; big[i * 200 + j] = v; }
    const t = truncatedSvd(big, 300, 200, 5);
    let err = 0;
    for (let i = 0; i < 300; i++) for (let j = 0; j < 200; j++) { let v = 0; for (let k = 0; k < 5; k++) v += t.u[i * 5 + k] * t.s[k] * t.vt[k * 200 + j]; err = Math.max(err, Math.abs(v - big[i * 200 + j])); }
    assert.ok(err < 1e-4, `randomized SVD error ${err}`);
  });

  it('truncated SVD of a slowly decaying spectrum equals the exact rank-k truncation (as torch.linalg.svd)', () => {
    // A = U diag(s) V^T with known orthonormal U [150, 150], V [260, 150] and s_i = 1 / (1 + i / 5):
    // neighbouring singular values are close, so a few fixed power iterations are not enough.
    const m = 150, n = 260, r = 150, k = 8;
    const U = qr(randMat(m, r), m, r).q, V = qr(randMat(n, r), n, r).q;
    const sv = Float64Array.from({ length: r }, (_, i) => 1 / (1 + i / 5));
    const rankK = (u: Float64Array, s: ArrayLike<number>, vt: (kk: number, j: number) => number, ku: number) => {
      const out = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let kk = 0; kk < k; kk++) { const c = u[i * ku + kk] * s[kk]; for (let j = 0; j < n; j++) out[i * n + j] += c * vt(kk, j); }
      return out;
    };
    const a = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let kk = 0; kk < r; kk++) { const c = U[i * r + kk] * sv[kk]; for (let j = 0; j < n; j++) a[i * n + j] += c * V[j * r + kk]; }
    const t = truncatedSvd(a, m, n, k);
    assert.ok(maxAbsDiff(t.s, sv.subarray(0, k)) < 1e-9, 'singular values');
    const err = maxAbsDiff(rankK(t.u, t.s, (kk, j) => t.vt[kk * n + j], k), rankK(U, sv, (kk, j) => V[j * r + kk], r));
    assert.ok(err < 1e-7, `rank-${k} truncation differs by ${err}`);
  });

  it('svd merge without clamping equals the exact weighted sum of deltas', () => {
    const merged = svdMergeLoRAs([{ lora: A, ratio: 0.7 }, { lora: B, ratio: -0.3 }], 8, { clampQuantile: null });
    assert.equal(merged.length, A.modules.size);
    for (const m of merged.slice(0, 20)) {
      const want = delta(A.modules.get(m.name)!, 0.7).map((v, i) => v + delta(B.modules.get(m.name)!, -0.3)[i]);
      assert.ok(maxAbsDiff(delta(m), want) < 1e-5, m.name);
      assert.equal(m.alpha, m.down.shape[0]);
    }
  });

  it('resize keeps the delta at full rank and loses only the tail singular values below it', () => {
    const full = resizeLoRA(A, 4).modules;
    for (const m of full.slice(0, 10)) assert.ok(maxAbsDiff(delta(m), delta(A.modules.get(m.name)!)) < 1e-5);
    const { modules } = resizeLoRA(A, 2);
    for (const m of modules.slice(0, 10)) {
      const o = A.modules.get(m.name)!;
      assert.equal(m.down.shape[0], 2);
      assert.ok(Math.abs(scaleOf(m) - scaleOf(o)) < 1e-12, 'alpha/rank is kept');
      const s = lowRankSvd(Float64Array.from(o.up.dataSync()), Float64Array.from(o.down.dataSync()), o.up.shape[0], 4, o.down.size / 4).s;
      const tail = Math.sqrt(s[2] ** 2 + s[3] ** 2) * scaleOf(o);
      const d1 = delta(m), d0 = delta(o);
      const fro = Math.sqrt(Array.from(d1).reduce((a, v, i) => a + (v - d0[i]) ** 2, 0));
      assert.ok(Math.abs(fro - tail) < 1e-4 * Math.max(1, tail), `Eckart-Young: ${fro} vs ${tail}`);
    }
    assert.equal(chooseRank(Float64Array.from([10, 5, 1, 0.1]), 4, 'sv_ratio', 4), 3);
    assert.equal(chooseRank(Float64Array.from([10, 5, 1, 0.1]), 4, 'sv_cumulative', 0.9), 3);
    assert.equal(chooseRank(Float64Array.from([10, 5, 1, 0.1]), 2, 'sv_fro', 0.99), 2);
  });

  it('extract then re-apply reproduces the difference of two models within the rank\'s error', async () => {
    const unet = await goldenUNet(), te = await goldenTextEncoder();
    const tuned = mergeLoRA(A, { unet: unet.weights, textEncoder: te.weights }, { unet: 1, te: 1 });
    const targets = loraTargets({ unet: unet.weights, textEncoder: te.weights }, { conv: false });
    const layers = targets.map((t) => ({ ...t, base: t.te ? te.weights : unet.weights, tuned: t.te ? tuned.textEncoder! : tuned.unet! }));
    const modules = E.noGrad(() => extractLoRA(layers, 4, { clampQuantile: null }));
    assert.equal(modules.length, targets.length);
    for (const m of modules.slice(0, 30)) assert.ok(maxAbsDiff(delta(m), delta(A.modules.get(m.name)!)) < 1e-4, m.name);
    const low = E.noGrad(() => extractLoRA(layers, 2, { clampQuantile: null }));
    assert.ok(low.every((m) => m.down.shape[0] === 2));
    const noTe = E.noGrad(() => extractLoRA(layers.map((l) => (l.te ? { ...l, tuned: l.base } : l)), 4));
    assert.ok(noTe.every((m) => m.name.startsWith('lora_unet_')), 'an unchanged text encoder is skipped');
  });

  it('saves LoRAs with the sshs hashes A1111 reads and merges into a checkpoint keeping its layout', async () => {
    const out = path.join(tmp, 'merged.safetensors');
    const meta = await saveLoRA(out, svdMergeLoRAs([{ lora: A, ratio: 1 }], 4), { ss_network_dim: '4' });
    assert.equal(meta.sshs_model_hash, await addnetHash(out));
    assert.match(meta.sshs_legacy_hash, /^[0-9a-f]{8}$/);
    const keys = Object.keys((await loadSafetensors(out)).tensors);
    assert.deepEqual(keys, [...keys].sort());

    const all: [string, Tensor][] = [];
    for (const f of [path.join(goldenCase('sd1-unet', 'unet_ldm.safetensors'), 'unet_ldm.safetensors'), path.join(goldenCase('vae'), 'vae_ldm.safetensors'), path.join(goldenCase('sd1-text'), 'text_encoder_ldm.safetensors')]) all.push(...(await loadStateDict(f)).entries());
    const ckpt = path.join(tmp, 'tiny.safetensors');
    await saveSafetensors(ckpt, all);
    const merged = path.join(tmp, 'tiny-merged.safetensors');
    const unetConfig = readJson(path.join(goldenCase('sd1-unet', 'unet.safetensors'), 'config.json'));
    const r = await mergeIntoCheckpoint(ckpt, [{ lora: A, ratio: 0.7 }, { lora: B, ratio: 0.3 }], merged, { unetConfig });
    assert.equal(r.changed, A.modules.size);
    assert.deepEqual(r.unknown, []);
    const m = await loadSingleFile(merged, { unet: unetConfig, vae: readJson(path.join(goldenCase('vae'), 'config.json')), textEncoder: readJson(path.join(goldenCase('sd1-text'), 'config.json')) });
    const io = (await loadSafetensors(path.join(goldenCase('lora'), 'io.safetensors'))).tensors;
    E.noGrad(() => {
      assert.ok(maxAbsDiff(m.unet.forward(io.sample, io.timestep, io.encoder_hidden_states).dataSync(), io['unet_out.a0.7_b0.3'].dataSync()) < 1e-4);
      assert.ok(maxAbsDiff(m.textEncoder.forward(io.input_ids).lastHiddenState.dataSync(), io['te_last_hidden_state.a0.7_b0.3'].dataSync()) < 1e-4);
    });
    assert.deepEqual(Object.keys((await loadSafetensors(merged)).tensors), all.map(([k]) => k), 'key order kept');
  });

  it('runs the CLI: lora list, resize, merge-loras', () => {
    const cli = path.resolve('bin/sdlora.js');
    const resized = path.join(tmp, 'resized.safetensors');
    execFileSync('node', [cli, 'lora', 'resize', path.join(goldenCase('lora'), 'lora_a.safetensors'), '--rank', '2', '--out', resized], { stdio: 'pipe' });
    execFileSync('node', [cli, 'lora', 'merge-loras', '--lora', `${path.join(goldenCase('lora'), 'lora_a.safetensors')}:0.5`, `${path.join(goldenCase('lora'), 'lora_b.safetensors')}:0.5`, '--rank', '4', '--out', path.join(tmp, 'ab.safetensors')], { stdio: 'pipe' });
    const list = JSON.parse(execFileSync('node', [cli, 'lora', 'list', tmp, '--json'], { encoding: 'utf8' })) as { loras: { name: string; rank: string; hash: string }[] };
    const byName = Object.fromEntries(list.loras.map((l) => [l.name, l]));
    assert.equal(byName.resized.rank, '2');
    assert.equal(byName.ab.rank, '4');
    assert.match(byName.resized.hash, /^[0-9a-f]{12}$/);
    assert.throws(() => execFileSync('node', [cli, 'lora', 'resize', path.join(tmp, 'nope.safetensors'), '--rank', '2', '--out', resized], { stdio: 'pipe' }), /nope\.safetensors/);
    // The SVD tools rewrite plain up/down pairs only: a LyCORIS file is refused, not resized to nothing.
    const loha = requireFile(goldenCase('lycoris'), 'loha.safetensors');
    assert.throws(() => execFileSync('node', [cli, 'lora', 'resize', loha, '--out', path.join(tmp, 'loha-resized.safetensors')], { stdio: 'pipe' }), /loha\.safetensors: .*not plain LoRA/);
  });
});
