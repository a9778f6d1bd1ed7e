// sd-scripts' LoRA tools against the lora-tools golden case: svd_merge_lora.merge_lora_models,
// resize_lora.resize_lora_model (fixed rank and sv_fro) and extract_lora_from_models.svd. Options
// come from the case README; deltas are compared through up@down (SVD signs are arbitrary), the
// clamp exactly on the stored pre-clamp factors, ranks, alphas and metadata exactly.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { type LoRAFile, type LoRAModuleWeights, loadLoRA } from '../../src/lora/lora-file.js';
import { quantileClamp } from '../../src/lora/quantile-clamp.js';
import { loraTargets } from '../../src/lora/targets.js';
import { extractMetadata, resizeMetadata, svdMergeMetadata } from '../../src/lora/tool-metadata.js';
import { DEFAULT_CLAMP_QUANTILE, type DynamicMethod, type ExtractLayer, extractLoRA, resizeLoRA, svdMergeLoRAs } from '../../src/lora/tools.js';
import { Weights } from '../../src/models/weights.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, requireFile } from '../helpers/golden.js';
import { goldenTextEncoder, goldenUNet } from '../helpers/golden-models.js';
import { todoFor } from '../helpers/unsupported-cases.js';
import { ToolsReadme } from './golden-tools-readme.js';

const dir = goldenCase('lora-tools');
const readme = new ToolsReadme(dir);
/** The README's end-to-end delta tolerance for clamped outputs (the clamp moves with the SVD signs). */
const e2eTolerance = () => readme.match(/D vs the\s+file's D with atol ~?([\d.e-]+)/, 'the end-to-end tolerance ("D vs the file\'s D with atol ...")');
const load = async (file: string) => loadSafetensors(requireFile(dir, file));
let io: Record<string, Tensor>;

/** The delta a module applies: up @ down * alpha / rank, flattened [out, in*kh*kw]. */
function delta(m: { up: ArrayLike<number>; down: ArrayLike<number>; rank: number; scale: number }): Float64Array {
  const out = m.up.length / m.rank, cols = m.down.length / m.rank;
  const d = new Float64Array(out * cols);
  for (let i = 0; i < out; i++) for (let k = 0; k < m.rank; k++) {
    const u = m.up[i * m.rank + k] * m.scale;
    for (let j = 0; j < cols; j++) d[i * cols + j] += u * m.down[k * cols + j];
  }
  return d;
}
const moduleDelta = (m: LoRAModuleWeights) => delta({ up: m.up.dataSync(), down: m.down.dataSync(), rank: m.down.shape[0], scale: m.alpha / m.down.shape[0] });
const preclamp = (tool: string, name: string) => {
  const up = io[`${tool}.preclamp.${name}.up`], down = io[`${tool}.preclamp.${name}.down`];
  assert.ok(up && down, `io.safetensors lacks ${tool}.preclamp.${name}.up/.down`);
  return { up: Float32Array.from(up.dataSync()), down: Float32Array.from(down.dataSync()), rank: down.shape[0] };
};

/** Expected output file as modules (its own names, ranks and alphas). */
async function expected(file: string): Promise<LoRAFile> {
  return loadLoRA(requireFile(dir, file));
}

function within(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, what: string): number {
  const d = maxAbsDiff(got, want);
  assert.ok(d <= atol, `${what}: max |diff| ${d.toExponential(3)} > ${atol}`);
  return d;
}

/**
 * sd-scripts' SVD runs in float32: its singular vectors carry float32 rounding amplified by the
 * gaps between singular values (1.6e-5 measured on the public case); a wrong clamp or SVD moves
 * factors by 1e-2 and more.
 */
const ALIGN_ATOL = 1e-4;

/**
 * Our unclamped factors with each singular pair's sign flipped to agree with sd-scripts'
 * pre-clamp factors, so that the clamp can be compared factor by factor.
 */
function alignSigns(m: LoRAModuleWeights, ref: { down: Float32Array; rank: number }): { up: Float32Array; down: Float32Array } {
  const up = Float32Array.from(m.up.dataSync()), down = Float32Array.from(m.down.dataSync());
  const k = m.down.shape[0], cols = down.length / k, rows = up.length / k;
  assert.equal(k, ref.rank, `${m.name}: rank`);
  for (let j = 0; j < k; j++) {
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += down[j * cols + c] * ref.down[j * cols + c];
    if (dot >= 0) continue;
    for (let c = 0; c < cols; c++) down[j * cols + c] = -down[j * cols + c];
    for (let i = 0; i < rows; i++) up[i * k + j] = -up[i * k + j];
  }
  return { up, down };
}

/** Singular pairs of pre-clamp factors with a (numerically) zero singular value: |up column| <= 1e-6 * the largest. */
function nullPairs(pre: { up: Float32Array; rank: number }): number {
  const norms = Array.from({ length: pre.rank }, (_, j) => {
    let n = 0;
    for (let i = j; i < pre.up.length; i += pre.rank) n += pre.up[i] ** 2;
    return Math.sqrt(n);
  });
  return norms.filter((n) => n <= 1e-6 * Math.max(...norms)).length;
}

/** (1) The clamp rule: our clamp on sd-scripts' stored pre-clamp factors gives its hi and its factors. */
function clampRule(tool: string, name: string, w: LoRAModuleWeights, q: number): number {
  const pre = preclamp(tool, name), hiWant = io[`${tool}.clamp_hi.${name}`];
  assert.ok(hiWant, `io.safetensors lacks ${tool}.clamp_hi.${name}`);
  const hi = quantileClamp(pre.up, pre.down, q);
  within(pre.up, w.up.dataSync(), 1e-7, `${tool} ${name}: clamped up from the stored pre-clamp factors`);
  within(pre.down, w.down.dataSync(), 1e-7, `${tool} ${name}: clamped down from the stored pre-clamp factors`);
  return Math.abs(hi - hiWant.dataSync()[0]);
}

/**
 * (2) Our unclamped module: sd-scripts' rank, alpha and shapes, the same up@down as its pre-clamp
 * factors; (3) sign-aligned to those and clamped, its clamped factors. Returns both differences.
 */
function ourFactors(tool: string, u: LoRAModuleWeights, w: LoRAModuleWeights, q: number): { svd: number; aligned: number } {
  const pre = preclamp(tool, u.name), what = `${tool} ${u.name}`;
  assert.equal(u.alpha, w.alpha, `${what}: alpha`);
  assert.deepEqual(u.down.shape, w.down.shape, `${what}: down shape (rank)`);
  assert.deepEqual(u.up.shape, w.up.shape, `${what}: up shape`);
  const ours = delta({ up: u.up.dataSync(), down: u.down.dataSync(), rank: pre.rank, scale: 1 });
  const svd = within(ours, delta({ ...pre, scale: 1 }), 1e-5, `${what}: pre-clamp up@down`);
  // A rank above the matrix's rank pads with null-space rows, which LAPACK picks arbitrarily; they
  // enter the quantile, so factor-by-factor equality is only defined without them.
  if (nullPairs(pre) > 0) return { svd, aligned: NaN };
  const a = alignSigns(u, pre);
  quantileClamp(a.up, a.down, q);
  const aligned = Math.max(within(a.up, w.up.dataSync(), ALIGN_ATOL, `${what}: sign-aligned clamped up`), within(a.down, w.down.dataSync(), ALIGN_ATOL, `${what}: sign-aligned clamped down`));
  return { svd, aligned };
}

/**
 * The checks svd_merge and extract share, per module: clampRule, ourFactors, and (4) the default
 * output's delta within the sign-dependent tolerance. Returns the largest differences seen.
 */
function checkClampedTool(tool: string, want: LoRAFile, unclamped: LoRAModuleWeights[], dflt: LoRAModuleWeights[], q: number, e2eAtol: number) {
  const max = { hi: 0, svd: 0, aligned: 0, e2e: 0, nullSpaceModules: 0 };
  const byName = new Map(dflt.map((m) => [m.name, m]));
  assert.deepEqual(unclamped.map((m) => m.name).sort(), [...want.modules.keys()].sort(), `${tool}: module names`);
  for (const u of unclamped) {
    const w = want.modules.get(u.name)!;
    max.hi = Math.max(max.hi, clampRule(tool, u.name, w, q));
    const f = ourFactors(tool, u, w, q);
    max.svd = Math.max(max.svd, f.svd);
    if (Number.isNaN(f.aligned)) max.nullSpaceModules++;
    else max.aligned = Math.max(max.aligned, f.aligned);
    max.e2e = Math.max(max.e2e, within(moduleDelta(byName.get(u.name)!), moduleDelta(w), e2eAtol, `${tool} ${u.name}: default output delta`));
  }
  assert.ok(max.hi <= 1e-7, `${tool}: clamp hi differs from sd-scripts' by ${max.hi}`);
  assert.ok(max.nullSpaceModules < unclamped.length, `${tool}: every module has null-space factors; no factor-by-factor check left`);
  return max;
}

describe('golden parity: sd-scripts LoRA tools', { todo: todoFor('lora-tools') }, () => {
  before(async () => {
    await E.initCpuBackend();
    io = (await load('io.safetensors')).tensors;
  });

  it('svd merge (merge_lora_models): clamp, SVD, ranks, alphas and metadata', async () => {
    const call = readme.call(readme.section('svd_merge.safetensors'), 'merge_lora_models');
    const files = readme.list(call, 'models').map((m) => readme.loraFile(m));
    const ratios = readme.list(call, 'ratios').map(Number);
    assert.deepEqual(readme.list(call, 'lbws'), [], 'the case uses per-block weights (lbws), which sdlora does not offer');
    assert.equal(ratios.length, files.length, 'one ratio per model');
    const rank = readme.num(call, 'new_rank'), convRank = readme.num(call, 'new_conv_rank');
    const q = readme.match(/torch\.quantile\(dist, ([\d.]+)\)/, 'the svd merge clamp quantile');
    assert.equal(DEFAULT_CLAMP_QUANTILE, q, 'sdlora clamps at sd-scripts\' quantile by default');
    const e2eAtol = e2eTolerance();
    const inputs = await Promise.all(files.map(async (f, i) => ({ lora: await loadLoRA(f), ratio: ratios[i] })));
    const want = await expected('svd_merge.safetensors');
    const unclamped = svdMergeLoRAs(inputs, rank, { convRank, clampQuantile: null });
    const dflt = svdMergeLoRAs(inputs, rank, { convRank });
    const max = checkClampedTool('svd_merge', want, unclamped, dflt, q, e2eAtol);
    assert.deepEqual(svdMergeMetadata(inputs.map((i) => i.lora.metadata), rank, convRank), (await load('svd_merge.safetensors')).metadata);
    console.log(`svd_merge: ${unclamped.length} modules; max |diff| hi ${max.hi}, pre-clamp up@down ${max.svd.toExponential(2)}, sign-aligned clamped factors ${max.aligned.toExponential(2)} (${max.nullSpaceModules} modules with null-space factors compared through up@down only), default delta ${max.e2e.toExponential(2)}`);
  });

  for (const [file, dynamic] of [['resize_fixed.safetensors', false], ['resize_sv_fro.safetensors', true]] as const) {
    it(`resize (resize_lora_model) to ${file}: ranks, alphas, deltas and metadata`, async () => {
      const section = readme.section('resize_');
      const fixedCall = readme.call(section, 'resize_lora_model');
      const call = dynamic ? readme.call(section, '', "dynamic_method='") : fixedCall;
      const rank = readme.num(call, 'new_rank'), convRank = readme.num(call, 'new_conv_rank');
      const method = dynamic ? readme.arg(call, 'dynamic_method').replace(/'/g, '') as DynamicMethod : undefined;
      const param = dynamic ? readme.num(call, 'dynamic_param') : undefined;
      const input = await loadLoRA(readme.loraFile(readme.arg(fixedCall, 'lora_sd')));
      const want = await expected(file);
      const got = resizeLoRA(input, rank, { convRank, method, param });
      assert.deepEqual(got.modules.map((m) => m.name).sort(), [...want.modules.keys()].sort());
      let maxD = 0;
      for (const m of got.modules) {
        const w = want.modules.get(m.name)!;
        assert.equal(m.down.shape[0], w.down.shape[0], `${m.name}: rank`);
        if (dynamic) assert.equal(m.down.shape[0], requireRank(m.name), `${m.name}: io rank`);
        assert.ok(Math.abs(m.alpha - w.alpha) <= 1e-6 * Math.abs(w.alpha), `${m.name}: alpha ${m.alpha} vs ${w.alpha}`);
        maxD = Math.max(maxD, within(moduleDelta(m), moduleDelta(w), 1e-5, `${file} ${m.name}: delta`));
      }
      const last = got.modules[got.modules.length - 1];
      const meta = resizeMetadata(input.metadata, { oldRank: got.oldRank, rank, convRank, method, param, lastAlpha: last.alpha });
      assert.deepEqual(meta, (await load(file)).metadata);
      console.log(`${file}: ${got.modules.length} modules; max |delta diff| ${maxD.toExponential(2)}`);
    });
  }
  const requireRank = (name: string) => {
    const t = io[`resize_sv_fro.rank.${name}`];
    assert.ok(t, `io.safetensors lacks resize_sv_fro.rank.${name}`);
    return t.dataSync()[0];
  };

  it('extract (extract_lora_from_models.svd): text-encoder rule, clamp, SVD, ranks and metadata', async () => {
    const call = readme.call(readme.section('extract.safetensors'), 'svd');
    // conv_dim=None: no 3x3 conv modules (sd-scripts' default).
    const dim = readme.num(call, 'dim'), convDim = readme.arg(call, 'conv_dim') === 'None' ? undefined : readme.num(call, 'conv_dim');
    const q = readme.num(call, 'clamp_quantile'), minDiff = readme.num(call, 'min_diff');
    const v2 = readme.arg(call, 'v2') === 'True';
    assert.equal(readme.arg(call, 'sdxl'), 'False', 'the case extracts from SDXL models, which sdlora does not');
    const e2eAtol = e2eTolerance();
    const layers = await perturbedLayers(convDim !== undefined);
    const want = await expected('extract.safetensors');
    const opts = { convDim, minDiff };
    const unclamped = E.noGrad(() => extractLoRA(layers, dim, { ...opts, clampQuantile: null }));
    const clamped = E.noGrad(() => extractLoRA(layers, dim, { ...opts, clampQuantile: q }));
    const max = checkClampedTool('extract', want, unclamped, clamped, q, e2eAtol);
    assert.deepEqual(extractMetadata({ v2, vParameterization: v2, dim, convDim }), (await load('extract.safetensors')).metadata);
    // The text-encoder rule: kept iff one of its differences exceeds min_diff; the other side of
    // the threshold flips it.
    const teMax = Math.max(...layers.filter((l) => l.te).map((l) => maxAbsDiff(l.tuned.get(`${l.path}.weight`).dataSync(), l.base.get(`${l.path}.weight`).dataSync())));
    const teKept = [...want.modules.keys()].some((n) => n.startsWith('lora_te'));
    assert.equal(teMax > minDiff, teKept, `sd-scripts ${teKept ? 'kept' : 'dropped'} the text encoder (largest difference ${teMax}, min_diff ${minDiff})`);
    if (teMax > 0) {
      const flipped = E.noGrad(() => extractLoRA(layers, dim, { convDim, minDiff: teKept ? teMax : teMax / 2 }));
      assert.equal(flipped.some((m) => m.name.startsWith('lora_te')), !teKept, 'the text encoder flips at the other side of min_diff');
    }
    console.log(`extract: ${unclamped.length} modules; max |diff| hi ${max.hi}, pre-clamp up@down ${max.svd.toExponential(2)}, sign-aligned clamped factors ${max.aligned.toExponential(2)} (${max.nullSpaceModules} modules with null-space factors compared through up@down only), default delta ${max.e2e.toExponential(2)}`);
  });

  it('the CLI commands default to sd-scripts: merge-loras and resize reproduce the case files', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-golden-tools-'));
    const cli = path.resolve('bin/sdlora.js');
    const mcall = readme.call(readme.section('svd_merge.safetensors'), 'merge_lora_models');
    const specs = readme.list(mcall, 'models').map((m, i) => `${readme.loraFile(m)}:${readme.list(mcall, 'ratios')[i]}`);
    const merged = path.join(tmp, 'merged.safetensors');
    // --conv-rank only when the case's differs: sdlora's default must be sd-scripts' (= new_rank).
    const convArgs = (call: string) => (readme.num(call, 'new_conv_rank') === readme.num(call, 'new_rank') ? [] : ['--conv-rank', readme.arg(call, 'new_conv_rank')]);
    execFileSync('node', [cli, 'lora', 'merge-loras', '--lora', ...specs, '--rank', readme.arg(mcall, 'new_rank'), ...convArgs(mcall), '--out', merged], { stdio: 'pipe' });
    await compareSaved(merged, 'svd_merge.safetensors', e2eTolerance());
    const section = readme.section('resize_');
    const rcall = readme.call(section, '', "dynamic_method='");
    const resized = path.join(tmp, 'resized.safetensors');
    execFileSync('node', [cli, 'lora', 'resize', readme.loraFile(readme.arg(readme.call(section, 'resize_lora_model'), 'lora_sd')), '--rank', readme.arg(rcall, 'new_rank'), ...convArgs(rcall),
      '--dynamic-method', readme.arg(rcall, 'dynamic_method').replace(/'/g, ''), '--dynamic-param', readme.arg(rcall, 'dynamic_param'), '--out', resized], { stdio: 'pipe' });
    await compareSaved(resized, 'resize_sv_fro.safetensors', 1e-5);
  });
});

/** A saved LoRA against a case file: same modules, ranks, alphas, ss_* metadata; deltas within atol. */
async function compareSaved(file: string, golden: string, atol: number) {
  const got = await loadLoRA(file), want = await loadLoRA(requireFile(dir, golden));
  assert.deepEqual([...got.modules.keys()].sort(), [...want.modules.keys()].sort(), `${golden}: modules`);
  for (const [name, w] of want.modules) {
    const g = got.modules.get(name)!;
    assert.equal(g.down.shape[0], w.down.shape[0], `${golden} ${name}: rank`);
    assert.ok(Math.abs(g.alpha - w.alpha) <= 1e-6 * w.alpha, `${golden} ${name}: alpha`);
    within(moduleDelta(g), moduleDelta(w), atol, `${golden} ${name}: delta`);
  }
  const ss = (m: Record<string, string>) => Object.fromEntries(Object.entries(m).filter(([k]) => k.startsWith('ss_')));
  assert.deepEqual(ss(got.metadata), ss(want.metadata), `${golden}: ss_* metadata`);
}

/**
 * The case's extract inputs: base = the golden tiny UNet and text encoder, tuned = base + a @ b for
 * every module named in io.safetensors (`extract.perturb.<name>.a/.b`), matched to sdlora's
 * LoCon targets (which must be exactly those modules).
 */
async function perturbedLayers(conv: boolean): Promise<ExtractLayer[]> {
  const unet = await goldenUNet(), te = await goldenTextEncoder();
  const targets = loraTargets({ unet: unet.weights, textEncoder: te.weights }, { conv });
  const names = Object.keys(io).filter((k) => /^extract\.perturb\..*\.a$/.test(k)).map((k) => k.slice('extract.perturb.'.length, -2));
  assert.deepEqual(targets.map((t) => t.name).sort(), names.sort(), `${conv ? 'LoCon' : 'LoRA'} targets = the modules the case perturbed`);
  const tunedU = new Map(unet.weights.tensors), tunedT = new Map(te.weights.tensors);
  for (const t of targets) {
    const a = io[`extract.perturb.${t.name}.a`], b = io[`extract.perturb.${t.name}.b`];
    const map = t.te ? tunedT : tunedU;
    const w = map.get(`${t.path}.weight`)!;
    const [m, r] = a.shape, n = b.shape[1], av = a.dataSync(), bv = b.dataSync(), wv = w.dataSync();
    assert.equal(m * n, w.size, `${t.name}: perturbation size`);
    const out = new Float32Array(wv.length);
    // float32 as the case: weight += (a @ b)
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += av[i * r + k] * bv[k * n + j];
      out[i * n + j] = wv[i * n + j] + Math.fround(s);
    }
    map.set(`${t.path}.weight`, E.tensor(out, w.shape));
  }
  const tuned = { unet: new Weights(tunedU, 'tuned unet'), te: new Weights(tunedT, 'tuned te') };
  return targets.map((t) => ({ name: t.name, path: t.path, te: t.te, base: t.te ? te.weights : unet.weights, tuned: t.te ? tuned.te : tuned.unet }));
}
