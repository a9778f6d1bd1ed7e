// network_module = "lycoris.kohya": LyCORIS' factorization, module shapes (checked against the
// golden lycoris case, which LyCORIS' own constructors made), initialisation that leaves the model
// unchanged, presets, gradients of every algorithm against finite differences, and the end to end
// path: LoHa and LoKr trained by the command line on the bundled tiny model, whose files (LyCORIS
// keys and metadata) give back the training-time samples through txt2img, and resume exactly.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { decodePng } from '../../src/io/png.js';
import { applyLoRA, mergeLoRA, removeLoRA } from '../../src/lora/apply.js';
import { type LoRAComponent, componentIndex, familyComponents, pairComponents } from '../../src/lora/components.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { Weights } from '../../src/models/weights.js';
import { resolveConfig } from '../../src/train/config.js';
import { type LycorisModuleOptions, createLycorisModule, factorization } from '../../src/train/lycoris-modules.js';
import { LycorisNetwork, lycorisOptions } from '../../src/train/lycoris-network.js';
import { checkNetworkArgs } from '../../src/train/network-args.js';
import { train } from '../../src/train/trainer.js';
import { gradcheck, maxAbsDiff, randT } from '../helpers/gradcheck.js';
import { goldenTextEncoder, goldenUNet } from '../helpers/golden-models.js';
import { loadLycorisCase } from '../helpers/lycoris-case.js';
import { goldenCase, loraModuleNames } from '../helpers/golden.js';
import { goldenSDXL } from '../helpers/golden-sdxl.js';
import { LoRANetwork } from '../../src/train/network.js';

const cli = path.resolve('bin/sdlora.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-lycoris-train-'));
const data = path.join(tmp, 'data');
const quiet = () => {};

const OPTS: LycorisModuleOptions = {
  algo: 'locon', useTucker: false, factor: -1, decomposeBoth: false, fullMatrix: false, unbalancedFactorization: false,
  doraWd: false, wdOnOutput: true, rsLora: false, rankDropout: 0, moduleDropout: 0,
};

const shapes = (entries: [string, Tensor][]) => Object.fromEntries(entries.filter(([k]) => !k.endsWith('.alpha')).map(([k, t]) => [k, t.shape.join('x')]));

async function goldenModels() {
  const unet = await goldenUNet(), te = await goldenTextEncoder();
  return { unet, te, components: pairComponents({ unet: unet.weights, textEncoder: te.weights }) };
}

describe('LyCORIS training (lycoris.kohya)', () => {
  before(async () => {
    await E.initCpuBackend();
    writeShapeDataset(data, { name: 'star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 1 });
  });

  it('factorises dimensions as LyCORIS\' factorization() documents', () => {
    // The table in lycoris/functional/general.py factorization()'s docstring, with the values its
    // code returns (the docstring's 360 -> 8, 45 and 360, 16 -> 12, 30 predate the code), and SD widths.
    const table: [number, number, [number, number]][] = [
      [127, -1, [1, 127]], [128, -1, [8, 16]], [250, -1, [10, 25]], [360, -1, [18, 20]], [512, -1, [16, 32]], [1024, -1, [32, 32]],
      [128, 2, [2, 64]], [250, 4, [2, 125]], [360, 4, [4, 90]], [250, 8, [5, 50]], [512, 8, [8, 64]], [360, 16, [15, 24]], [1024, 16, [16, 64]],
      [37, -1, [1, 37]], [320, -1, [16, 20]], [640, -1, [20, 32]], [768, -1, [24, 32]], [1280, -1, [32, 40]], [2560, -1, [40, 64]], [320, 8, [8, 40]],
    ];
    for (const [d, f, want] of table) assert.deepEqual(factorization(d, f), want, `factorization(${d}, ${f})`);
  });

  it('builds the modules of the golden lycoris case with LyCORIS\' key set and shapes', async () => {
    const { components } = await goldenModels();
    const index = componentIndex(components);
    const c = await loadLycorisCase();
    // Constructor arguments for each golden module; the expected keys and shapes are the case's files.
    const cases: [string, string, number, Partial<LycorisModuleOptions>][] = [
      ['loha', 'lora_te_text_model_encoder_layers_0_self_attn_q_proj', 4, {}],
      ['loha', 'lora_te_text_model_encoder_layers_1_mlp_fc1', 4, {}],
      ['loha', 'lora_unet_down_blocks_0_resnets_0_conv1', 4, {}],
      ['loha', 'lora_unet_down_blocks_1_attentions_0_proj_in', 4, { useTucker: true }],
      ['loha', 'lora_unet_down_blocks_1_resnets_0_conv1', 4, { useTucker: true }],
      ['lokr', 'lora_te_text_model_encoder_layers_0_self_attn_q_proj', 4, {}],
      ['lokr', 'lora_te_text_model_encoder_layers_1_mlp_fc1', 2, {}],
      ['lokr', 'lora_unet_down_blocks_0_resnets_0_conv1', 4, {}],
      ['lokr', 'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q', 2, { decomposeBoth: true }],
      ['lokr', 'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k', 2, { factor: 4 }],
      ['lokr', 'lora_unet_down_blocks_1_resnets_0_conv1', 2, { factor: 4 }],
      ['dora', 'lora_te_text_model_encoder_layers_1_mlp_fc1', 4, { doraWd: true }],
      ['dora', 'lora_unet_down_blocks_1_attentions_0_proj_in', 4, { doraWd: true }],
      ['dora', 'lora_unet_down_blocks_1_resnets_0_conv1', 4, { doraWd: true }],
    ];
    for (const [kind, name, dim, o] of cases) {
      const file = await loadSafetensors(c.files.get(kind)!.path);
      const want = Object.fromEntries(Object.entries(file.tensors).filter(([k]) => k.startsWith(`${name}.`) && !k.endsWith('.alpha')).map(([k, t]) => [k, t.shape.join('x')]));
      const ref = index.get(name)!;
      const algo = kind === 'dora' ? 'locon' : kind as 'loha' | 'lokr';
      const m = createLycorisModule(name, ref.path, ref.component, ref.component.weights.get(`${ref.path}.weight`), dim, 1, { ...OPTS, algo, ...o }, new E.Rng(1));
      assert.deepEqual(shapes(m.tensors()), want, `${kind} ${name}`);
      if (kind === 'lokr' && m.params.has('lokr_w1') && m.params.has('lokr_w2')) assert.equal(m.alpha, dim, 'two full LoKr factors: alpha is the rank (scale 1)');
    }
  });

  it('initialises every algorithm as LyCORIS does, so the model is unchanged at step 0', async () => {
    const { unet, te, components } = await goldenModels();
    const x = E.randn([1, unet.config.in_channels, 16, 16], new E.Rng(2)), ctx = E.randn([1, 77, unet.config.cross_attention_dim], new E.Rng(3)), t = E.tensor([10], [1]);
    const ids = E.tensor(Array.from({ length: 77 }, (_, i) => (i * 7) % 50), [1, 77], 'i32');
    const before0 = E.noGrad(() => unet.forward(x, t, ctx)).dataSync(), te0 = E.noGrad(() => te.forward(ids).lastHiddenState).dataSync();
    const variants: string[][] = [['algo=locon'], ['algo=loha'], ['algo=lokr'], ['algo=loha', 'use_tucker=True'], ['algo=lokr', 'decompose_both=True', 'factor=4', 'use_tucker=True'],
      ['algo=locon', 'use_tucker=True'], ['algo=lokr', 'dora_wd=True'], ['algo=loha', 'dora_wd=True', 'wd_on_output=False']];
    for (const args of variants) {
      const o = lycorisOptions(args, { dim: 2, alpha: 1, trainUnet: true, trainTextEncoder: true });
      const net = LycorisNetwork.create(components, o, new E.Rng(1));
      for (const m of net.modules) {
        const p = (k: string) => m.params.get(k)?.dataSync();
        const zero = o.algo === 'locon' ? p('lora_up.weight') : o.algo === 'loha' ? p('hada_w2_a') : p('lokr_w2') ?? p('lokr_w2_b');
        assert.ok(zero!.every((v) => v === 0), `${args} ${m.name}: the factor LyCORIS zeroes`);
        if (o.algo === 'loha') assert.ok(p('hada_w1_b')!.some((v) => Math.abs(v) > 1), 'hada_w1_b ~ N(0, 1)');
        if (o.algo === 'lokr') {
          const w1 = m.params.get('lokr_w1') ?? m.params.get('lokr_w1_b')!;
          assert.ok(w1.dataSync().every((v) => Math.abs(v) <= 1 / Math.sqrt(w1.size / w1.shape[0])), 'lokr_w1 kaiming-uniform');
        }
      }
      net.attach();
      const after = E.noGrad(() => unet.forward(x, t, ctx)).dataSync(), teAfter = E.noGrad(() => te.forward(ids).lastHiddenState).dataSync();
      net.detach();
      // DoRA renormalises W by ||W|| / (||W|| + eps): a no-op up to float32 rounding.
      const tol = o.doraWd ? 1e-5 : 0;
      assert.ok(maxAbsDiff(after, before0) <= tol, `${args}: unet unchanged (${maxAbsDiff(after, before0)})`);
      assert.ok(maxAbsDiff(teAfter, te0) <= tol, `${args}: text encoder unchanged`);
    }
  });

  it('picks the layers of LyCORIS\' presets, with conv_dim on kxk convs', async () => {
    const { components } = await goldenModels();
    const names = (args: string[]) => LycorisNetwork.create(components, lycorisOptions(['algo=loha', ...args], { dim: 4, alpha: 1, trainUnet: true, trainTextEncoder: true }), new E.Rng(1)).modules;
    const full = names(['conv_dim=2']), dflt = names([]);
    assert.deepEqual(dflt.map((m) => m.name), full.map((m) => m.name), 'the default preset is full');
    for (const n of ['lora_unet_conv_in', 'lora_unet_conv_out', 'lora_unet_time_embedding_linear_1', 'lora_unet_time_embedding_linear_2', 'lora_unet_down_blocks_0_downsamplers_0_conv', 'lora_unet_down_blocks_0_resnets_0_conv1', 'lora_te_text_model_encoder_layers_0_mlp_fc2']) {
      assert.ok(full.some((m) => m.name === n), `full trains ${n}`);
    }
    for (const m of full) {
      const kxk = m.shape.length === 4 && m.shape[2] > 1;
      assert.equal(m.params.get('hada_w1_b')!.shape[0], kxk ? 2 : 4, `${m.name}: rank ${kxk ? 'conv_dim' : 'network_dim'}`);
    }
    assert.ok(dflt.some((m) => m.name === 'lora_unet_conv_in' && m.params.get('hada_w1_b')!.shape[0] === 4), 'conv_dim defaults to network_dim');
    // full = networks.lora's classes with convs (sd-scripts' module set, checked against its golden files
    // in network.test.ts) plus LyCORIS' named layers; on SDXL (sd-scripts' SGM-named UNet) those names match nothing.
    const loraSet = LoRANetwork.create(components, { dim: 4, alpha: 1, convDim: 2, trainUnet: true, trainTextEncoder: true }, new E.Rng(1)).modules.map((m) => m.name);
    assert.deepEqual(full.map((m) => m.name).sort(), [...loraSet, 'lora_unet_conv_in', 'lora_unet_conv_out', 'lora_unet_time_embedding_linear_1', 'lora_unet_time_embedding_linear_2'].sort());
    const sdxlDir = goldenCase('sdxl-lora');
    const sdxl = LycorisNetwork.create(familyComponents(await goldenSDXL()), lycorisOptions(['algo=lokr', 'conv_dim=2'], { dim: 4, alpha: 1, trainUnet: true, trainTextEncoder: true }), new E.Rng(1));
    assert.deepEqual(sdxl.modules.map((m) => m.name).sort(), loraModuleNames(sdxlDir).sort(), 'SDXL full preset: sd-scripts\' te1/te2/SGM module set');
    const attn = names(['preset=attn-only']);
    assert.ok(attn.length > 0 && attn.every((m) => /(self_attn_(q|k|v|out)_proj|attn[12]_(to_q|to_k|to_v|to_out_0))$/.test(m.name)), 'attn-only: attention projections');
    assert.ok(attn.some((m) => m.te) && attn.some((m) => !m.te));
    const tr = names(['preset=unet-transformer-only']);
    assert.ok(tr.length > 0 && tr.every((m) => /^lora_unet_.*attentions_\d+_/.test(m.name)), 'unet-transformer-only: Transformer2DModel layers');
    assert.ok(tr.some((m) => m.name.endsWith('proj_in')) && tr.some((m) => m.name.endsWith('ff_net_2')));
    const lin = names(['preset=full-lin']);
    assert.ok(lin.every((m) => !(m.shape.length === 4 && m.shape[2] > 1)), 'full-lin: no kxk convs');
    assert.ok(lin.some((m) => m.name.endsWith('time_emb_proj')) && !lin.some((m) => m.name === 'lora_unet_conv_in'));
    assert.match(checkNetworkArgs('lycoris.kohya', ['algo=ia3']).problems.join(), /algo=ia3 is not implemented/);
    assert.match(checkNetworkArgs('lycoris.kohya', ['preset=my.toml']).problems.join(), /preset=my.toml is not implemented/);
    assert.deepEqual(checkNetworkArgs('lycoris.kohya', ['algo=lokr', 'factor=8', 'dora_wd=True', 'preset=attn-mlp']).problems, []);
  });

  it('has gradients that match finite differences for LoHa, LoKr (full and factored), Tucker and DoRA', () => {
    const rng = new E.Rng(7);
    const layers = { linear: [12, 8], conv: [6, 4, 3, 3] };
    const cases: [keyof typeof layers, Partial<LycorisModuleOptions>, number][] = [
      ['linear', { algo: 'loha' }, 3], ['conv', { algo: 'loha' }, 2], ['conv', { algo: 'loha', useTucker: true }, 2],
      ['linear', { algo: 'lokr', factor: 2 }, 8], // w1 and w2 full (scale 1)
      ['linear', { algo: 'lokr', factor: 2, decomposeBoth: true }, 1], // w1 = w1_a @ w1_b, w2 = w2_a @ w2_b
      ['conv', { algo: 'lokr', factor: 2 }, 1], ['conv', { algo: 'lokr', factor: 2, useTucker: true }, 1],
      ['conv', { algo: 'locon', useTucker: true }, 2],
      ['linear', { algo: 'locon', doraWd: true }, 2], ['conv', { algo: 'loha', doraWd: true }, 2], ['linear', { algo: 'lokr', factor: 2, doraWd: true, wdOnOutput: false }, 1],
    ];
    for (const [kind, o, dim] of cases) {
      const shape = layers[kind];
      const base = randT(shape, rng, 0.5);
      const component: LoRAComponent = { id: 'unet', prefix: 'lora_unet_', weights: Weights.from({ 'l.weight': base }, 'layer'), lrGroup: 'unet', namePath: (p) => p };
      const m = createLycorisModule('lora_unet_l', 'l', component, base, dim, dim / 2, { ...OPTS, ...o } as LycorisModuleOptions, new E.Rng(1));
      const keys = [...m.params.keys()];
      // Random values everywhere (the zero-initialised factor too), in float64; dora_scale near ||W||.
      const params = keys.map((k) => (k === 'dora_scale' ? E.addScalar(randT([...m.params.get(k)!.shape], rng, 0.1), 1.5) : randT([...m.params.get(k)!.shape], rng, 0.5)).requireGrad());
      const x = randT(kind === 'conv' ? [2, 4, 5, 5] : [2, 3, 8], rng).requireGrad();
      const f = (xi: Tensor, ...ps: Tensor[]) => {
        keys.forEach((k, i) => m.params.set(k, ps[i]));
        return m.apply(xi, kind === 'conv' ? { padding: 1 } : undefined)!;
      };
      gradcheck(f, [x, ...params], { atol: 1e-6, rtol: 1e-5, maxPerInput: 40 });
      assert.ok(keys.length >= 2, `${JSON.stringify(o)}: ${keys.join(', ')}`);
    }
  });

  it('drops output rows of the delta (rank_dropout) and whole modules (module_dropout) only while training', () => {
    const rng = new E.Rng(5);
    const base = randT([16, 8], rng, 0.5, 'f32');
    const component: LoRAComponent = { id: 'unet', prefix: 'lora_unet_', weights: Weights.from({ 'l.weight': base }, 'layer'), lrGroup: 'unet', namePath: (p) => p };
    for (const algo of ['locon', 'loha', 'lokr'] as const) {
      const m = createLycorisModule('lora_unet_l', 'l', component, base, 2, 1, { ...OPTS, algo, factor: 2, rankDropout: 0.5, moduleDropout: 0 }, new E.Rng(1));
      for (const [k, t] of m.params) m.params.set(k, randT([...t.shape], rng, 1, 'f32'));
      const full = E.noGrad(() => m.delta(base)).dataSync();
      m.training = true;
      const dropped = E.noGrad(() => m.delta(base)).dataSync();
      let zeroRows = 0;
      for (let o = 0; o < 16; o++) {
        const row = (a: ArrayLike<number>) => Array.from({ length: 8 }, (_, i) => a[o * 8 + i]);
        if (row(dropped).every((v) => v === 0)) zeroRows++;
        else assert.deepEqual(row(dropped), row(full), `${algo}: a kept row is unchanged (no rescale)`);
      }
      assert.ok(zeroRows > 0 && zeroRows < 16, `${algo}: ${zeroRows} of 16 rows dropped`);
      const skip = createLycorisModule('lora_unet_l', 'l', component, base, 2, 1, { ...OPTS, algo, factor: 2, moduleDropout: 1 }, new E.Rng(1));
      const x = randT([2, 8], rng, 1, 'f32');
      assert.ok(skip.apply(x) !== null, 'not training: applied');
      skip.training = true;
      assert.equal(skip.apply(x), null, 'module_dropout 1: skipped');
    }
  });

  it('scales a module down to scale_weight_norms as LyCORIS\' apply_max_norm, and starts from a LyCORIS file (network_weights)', async () => {
    const rng = new E.Rng(9);
    const base = randT([12, 8], rng, 0.5, 'f32');
    const component: LoRAComponent = { id: 'unet', prefix: 'lora_unet_', weights: Weights.from({ 'l.weight': base }, 'layer'), lrGroup: 'unet', namePath: (p) => p };
    const deltaNorm = (m: ReturnType<typeof createLycorisModule>) => Math.hypot(...E.noGrad(() => m.delta(base)).dataSync());
    for (const o of [{ algo: 'locon' }, { algo: 'loha' }, { algo: 'lokr', factor: 2, decomposeBoth: true }] as Partial<LycorisModuleOptions>[]) {
      const m = createLycorisModule('lora_unet_l', 'l', component, base, 1, 1, { ...OPTS, ...o }, new E.Rng(1));
      for (const [k, t] of m.params) m.params.set(k, randT([...t.shape], rng, 1, 'f32'));
      const before = deltaNorm(m);
      const host = new Map<Tensor, Float32Array>();
      const scaled = await m.applyMaxNorm(before / 4, async (t) => { const h = host.get(t) ?? (t.dataSync() as Float32Array); host.set(t, h); return h; });
      assert.ok(scaled && host.size > 0, `${o.algo}: scaled`);
      assert.ok(Math.abs(deltaNorm(m) - before / 4) <= 1e-4 * before, `${o.algo}: ||delta|| ${deltaNorm(m)} -> ${before / 4}`);
      assert.equal(await m.applyMaxNorm(before, async (t) => t.dataSync() as Float32Array), false, 'under the limit: unchanged');
    }
    const { components } = await goldenModels();
    const c = await loadLycorisCase();
    for (const kind of ['loha', 'lokr', 'dora']) {
      const file = c.files.get(kind)!;
      const net = LycorisNetwork.fromFile(file, components, lycorisOptions([], { dim: 4, alpha: 1, trainUnet: true, trainTextEncoder: true }), new E.Rng(1));
      const stored = (await loadSafetensors(file.path)).tensors;
      const mine = net.tensors();
      assert.deepEqual(mine.map(([k]) => k), Object.keys(stored).sort(), `${kind}: the file's keys`);
      for (const [k, t] of mine) assert.deepEqual(t.dataSync(), stored[k].dataSync(), `${kind} ${k}`);
      assert.ok(net.parameters().every((p) => p.param().requiresGrad));
    }
  });

  const cfg = (out: string, v: Record<string, unknown>) => resolveConfig([{ source: 'test', values: {
    pretrained_model_name_or_path: 'tiny', train_data_dir: data, caption_extension: '.txt', resolution: 32, output_dir: out,
    max_train_steps: 4, learning_rate: 1e-2, network_module: 'lycoris.kohya', network_dim: 4, network_alpha: 2, seed: 11, ...v,
  } }]);

  for (const [algo, args, keyRe] of [
    ['loha', ['algo=loha', 'conv_dim=2', 'conv_alpha=1'], /\.(alpha|hada_w[12]_[ab])$/],
    ['lokr', ['algo=lokr', 'factor=4', 'preset=attn-mlp'], /\.(alpha|lokr_w1|lokr_w2(_a|_b)?)$/],
  ] as const) {
    it(`trains a ${algo} from the command line whose file gives back the training-time samples through txt2img`, () => {
      const out = path.join(tmp, `cli-${algo}`), prompts = path.join(tmp, `prompts-${algo}.txt`);
      writeFileSync(prompts, 'a red star --w 64 --h 64 --d 5 --s 4 --l 5\n');
      const flags = ['--pretrained_model_name_or_path', 'tiny', '--train_data_dir', data, '--caption_extension', '.txt', '--resolution', '32', '--output_dir', out,
        '--max_train_steps', '2', '--learning_rate', '3e-2', '--network_module', 'lycoris.kohya', '--network_dim', '4', '--network_alpha', '2', '--seed', '3',
        '--network_args', ...args, '--sample_prompts', prompts, '--sample_every_n_steps', '2', '--sample_at_first', '--sample_sampler', 'euler'];
      const r = spawnSync(process.execPath, [cli, 'train', ...flags], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const file = path.join(out, 'last.safetensors');
      const f = readFileSync(file);
      const header = JSON.parse(f.subarray(8, 8 + Number(f.readBigUInt64LE(0))).toString()) as Record<string, unknown>;
      const md = header.__metadata__ as Record<string, string>;
      assert.equal(md.ss_network_module, 'lycoris.kohya');
      assert.deepEqual(JSON.parse(md.ss_network_args), Object.fromEntries(args.map((a) => a.split('='))));
      const keys = Object.keys(header).filter((k) => k !== '__metadata__');
      assert.ok(keys.length > 0 && keys.every((k) => keyRe.test(k)), `${algo} keys: ${keys.filter((k) => !keyRe.test(k)).slice(0, 3)}`);
      if (algo === 'lokr') assert.ok(keys.every((k) => !/resnets|samplers|conv_in|conv_out|time_embedding/.test(k)) && keys.some((k) => k.includes('mlp_fc1')), 'attn-mlp: transformer and text-encoder layers only');
      const samples = readdirSync(path.join(out, 'sample'));
      assert.equal(samples.length, 2);
      const sample = (tag: string) => decodePng(readFileSync(path.join(out, 'sample', samples.find((s) => s.startsWith(`last_${tag}_`))!))).rgb!;
      const first = sample('e000000'), last = sample('000002');
      assert.ok(maxAbsDiff(first, last) > 0, 'training changed the samples');
      const img = path.join(tmp, `txt2img-${algo}.png`);
      const g = spawnSync(process.execPath, [cli, 'txt2img', '--model', 'tiny', '--lora-dir', out, '-p', 'a red star <lora:last:1>', '-n', '', '--width', '64', '--height', '64', '--steps', '4', '--cfg', '5', '--seed', '5', '--sampler', 'euler', '-o', img], { encoding: 'utf8' });
      assert.equal(g.status, 0, g.stderr);
      assert.ok(maxAbsDiff(decodePng(readFileSync(img)).rgb!, last) <= 1, 'txt2img with the file = the last training sample');
    });
  }

  it('reproduces the training network\'s outputs through applyLoRA and merge, and resumes exactly (LoKr + DoRA, Tucker LoHa, Tucker LoCon)', async () => {
    for (const args of [['algo=lokr', 'dora_wd=True', 'decompose_both=True', 'rank_dropout=0.2'], ['algo=loha', 'use_tucker=True', 'module_dropout=0.1', 'preset=unet-convblock-only'], ['algo=locon', 'use_tucker=True', 'conv_dim=2']]) {
      const tag = args[0].slice(5) + args.length;
      const a = await train(cfg(path.join(tmp, `a-${tag}`), { network_args: args }), { log: quiet });
      const outB = path.join(tmp, `b-${tag}`);
      await train(cfg(outB, { network_args: args, save_state: true }), { log: quiet, stopAfterSteps: 2 });
      const b = await train(cfg(outB, { network_args: args, save_state: true, resume: path.join(outB, 'last-state') }), { log: quiet });
      const ta = (await loadSafetensors(a.finalPath!)).tensors, tb = (await loadSafetensors(b.finalPath!)).tensors;
      assert.deepEqual(Object.keys(tb).sort(), Object.keys(ta).sort());
      for (const k of Object.keys(ta)) assert.deepEqual(tb[k].dataSync(), ta[k].dataSync(), `${args}: resumed ${k}`);
      // The trained network is still attached to a.model (eval mode): the training-time outputs.
      const unet = a.model.unet, c = unet.config;
      const x = E.randn([1, c.in_channels, 8, 8], new E.Rng(2)), ctx = E.randn([1, 77, c.cross_attention_dim], new E.Rng(3)), t = E.tensor([500], [1]);
      const trained = E.noGrad(() => unet.forward(x, t, ctx)).dataSync();
      (a.network as LycorisNetwork).detach();
      const plain = E.noGrad(() => unet.forward(x, t, ctx)).dataSync();
      assert.ok(maxAbsDiff(trained, plain) > 1e-4, `${args}: the network changes the output`);
      const file = await loadLoRA(a.finalPath!);
      assert.deepEqual(file.unsupported, []);
      const fresh = await loadSDModel(path.resolve('assets/tiny-sd'));
      const comps = familyComponents(fresh);
      const rep = applyLoRA(file, { components: comps }, { unet: 1, te: 1 });
      assert.deepEqual(rep.unknown, []);
      const applied = E.noGrad(() => fresh.unet.forward(x, t, ctx)).dataSync();
      removeLoRA(rep);
      assert.ok(maxAbsDiff(applied, trained) <= 1e-5, `${args}: applyLoRA reproduces the training outputs (${maxAbsDiff(applied, trained)})`);
      const merged = mergeLoRA(file, { components: comps }, { unet: 1, te: 1 });
      const mergedUnet = new UNet2DConditionModel(c, merged.components.find((k) => k.id === 'unet')!.weights);
      const mergedOut = E.noGrad(() => mergedUnet.forward(x, t, ctx)).dataSync();
      assert.ok(maxAbsDiff(mergedOut, trained) <= 1e-4, `${args}: merged file reproduces the training outputs`);
    }
  });
});
