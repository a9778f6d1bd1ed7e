// The trainable LoRA network: targets, initialization (a no-op at step 0), dropouts, and the
// SDXL components (te1, te2, SGM-named UNet) with their learning-rate groups.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { LoRANetwork } from '../../src/train/network.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, loraModuleNames } from '../helpers/golden.js';
import { goldenTextEncoder, goldenUNet } from '../helpers/golden-models.js';
import { goldenSDXL, loraFiles } from '../helpers/golden-sdxl.js';
import { familyComponents } from '../../src/lora/components.js';
import { loadLoRA } from '../../src/lora/lora-file.js';

describe('LoRA network', () => {
  before(() => E.initCpuBackend());

  it('starts as a no-op with kaiming-uniform lora_down and zero lora_up', async () => {
    const unet = await goldenUNet(), te = await goldenTextEncoder();
    const models = { unet: unet.weights, textEncoder: te.weights };
    const net = LoRANetwork.create(models, { dim: 4, alpha: 1, trainUnet: true, trainTextEncoder: true }, new E.Rng(1));
    assert.deepEqual(net.modules.map((m) => m.name).sort(), loraModuleNames(goldenCase('lora')).sort(), 'the sd-scripts module set');
    for (const m of net.modules) {
      const fanIn = m.down.size / m.rank;
      assert.ok(m.down.dataSync().every((v) => Math.abs(v) <= 1 / Math.sqrt(fanIn)));
      assert.ok(m.up.dataSync().every((v) => v === 0));
      assert.equal(m.scale, 0.25);
    }
    const c = unet.config;
    const x = E.randn([1, c.in_channels, 16, 16], new E.Rng(2)), ctx = E.randn([1, 77, c.cross_attention_dim], new E.Rng(3)), t = E.tensor([10], [1]);
    const before0 = E.noGrad(() => unet.forward(x, t, ctx)).dataSync();
    net.attach(models);
    assert.equal(maxAbsDiff(E.noGrad(() => unet.forward(x, t, ctx)).dataSync(), before0), 0);
    net.detach();
  });

  it('applies dropout, rank dropout and module dropout only while training', async () => {
    const unet = await goldenUNet(), te = await goldenTextEncoder();
    const models = { unet: unet.weights, textEncoder: te.weights };
    const mk = (o: object) => {
      const net = LoRANetwork.create(models, { dim: 4, alpha: 4, trainUnet: true, trainTextEncoder: false, ...o }, new E.Rng(1));
      for (const m of net.modules) m.up = E.mulScalar(E.randn([...m.up.shape], new E.Rng(9)), 0.1);
      return net;
    };
    const x = E.randn([2, 10, unet.config.block_out_channels[1]], new E.Rng(4));
    const m0 = mk({}).modules.find((m) => m.path.endsWith('attn1.to_q') && m.path.startsWith('down_blocks.1'))!;
    const plain = m0.apply(x)!.dataSync();
    const all = mk({ moduleDropout: 1 }).modules.find((m) => m.path === m0.path)!;
    all.training = true;
    assert.equal(all.apply(x), null, 'module dropout 1 skips the branch');
    all.training = false;
    assert.deepEqual(all.apply(x)!.dataSync(), plain, 'no dropout at inference');
    for (const o of [{ dropout: 0.5 }, { rankDropout: 0.5 }]) {
      const m = mk(o).modules.find((q) => q.path === m0.path)!;
      m.training = true;
      const d = m.apply(x)!.dataSync();
      assert.ok(maxAbsDiff(d, plain) > 1e-3, `${JSON.stringify(o)} changes the training output`);
    }
  });

  it('spans an SDXL model\'s components: sd-scripts\' module set, groups by component, unet/te-only switches', async () => {
    const dir = goldenCase('sdxl-lora');
    const a = await loadLoRA(loraFiles(dir).get('a')!);
    const args = JSON.parse(a.metadata.ss_network_args || '{}') as Record<string, string>;
    const comps = familyComponents(await goldenSDXL());
    const o = { dim: Number(a.metadata.ss_network_dim), alpha: Number(a.metadata.ss_network_alpha), convDim: Number(args.conv_dim), convAlpha: Number(args.conv_alpha) };
    const net = LoRANetwork.create(comps, { ...o, trainUnet: true, trainTextEncoder: true }, new E.Rng(1));
    assert.deepEqual(net.modules.map((m) => m.name).sort(), loraModuleNames(dir).sort());
    for (const p of net.parameters()) assert.equal(p.group, p.name.startsWith('lora_unet_') ? 'unet' : 'te', p.name);
    for (const m of net.modules) assert.deepEqual([...m.down.shape], [...a.modules.get(m.name)!.down.shape], m.name);
    const unetOnly = LoRANetwork.create(comps, { ...o, trainUnet: true, trainTextEncoder: false }, new E.Rng(1));
    assert.ok(unetOnly.modules.length > 0 && unetOnly.modules.every((m) => m.name.startsWith('lora_unet_')));
    const teOnly = LoRANetwork.fromFile(a, comps, { ...o, trainUnet: false, trainTextEncoder: true }, new E.Rng(1));
    assert.deepEqual(new Set(teOnly.modules.map((m) => m.name.slice(0, 9))), new Set(['lora_te1_', 'lora_te2_']));
  });
});
