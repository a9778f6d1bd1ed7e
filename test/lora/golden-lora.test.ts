// LoRA application parity with sd-scripts (merge and runtime), and one LoRA training step's
// loss and gradients (lora-backward).
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { type ApplyReport, applyLoRA, mergeLoRA, removeLoRA } from '../../src/lora/apply.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { CLIPTextModel } from '../../src/models/clip-text.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { DDPMScheduler, SD15_SCHEDULER } from '../../src/schedulers/index.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, requireFile } from '../helpers/golden.js';
import { goldenTextEncoder, goldenUNet } from '../helpers/golden-models.js';

const loraDir = goldenCase('lora');
const close = (a: Tensor, b: Tensor, what: string, atol = 1e-4) => {
  const d = maxAbsDiff(a.dataSync(), b.dataSync());
  assert.ok(d <= atol, `${what}: max |diff| ${d.toExponential(2)}`);
};

describe('golden parity: LoRA', () => {
  before(() => E.initCpuBackend());

  // Cases named `<field>.<combo>` in io.safetensors; combos: a_m<k> (A at k) or a<k>_b<j>.
  const combos = async () => {
    const io = (await loadSafetensors(path.join(loraDir, 'io.safetensors'))).tensors;
    const names = [...new Set(Object.keys(io).filter((k) => k.startsWith('unet_out.') && !k.endsWith('_f64')).map((k) => k.slice('unet_out.'.length)))].filter((c) => c !== 'base');
    return { io, names };
  };
  const parseCombo = (c: string): [string, number][] => {
    const single = /^a_m([\d.]+)$/.exec(c);
    if (single) return [['a', Number(single[1])]];
    return c.split('_').map((p) => [p[0], Number(p.slice(1))] as [string, number]);
  };
  const files = readdirSync(loraDir).filter((f) => /^lora_[a-z]\.safetensors$/.test(f));

  for (const mode of ['merge', 'runtime'] as const) {
    it(`applies LoRA files ${mode === 'merge' ? 'merged into the weights' : 'at runtime'} at every recorded multiplier`, async () => {
      const { io, names } = await combos();
      assert.ok(names.length > 0 && files.length > 0);
      const unet0 = await goldenUNet(), te0 = await goldenTextEncoder();
      const loras = Object.fromEntries(await Promise.all(files.map(async (f) => [f[5], await loadLoRA(path.join(loraDir, f))] as const)));
      E.noGrad(() => close(unet0.forward(io.sample, io.timestep, io.encoder_hidden_states), io['unet_out.base'], 'base'));
      for (const combo of names) {
        let unetW = unet0.weights, teW = te0.weights;
        const attached: ApplyReport[] = [];
        for (const [which, m] of parseCombo(combo)) {
          const lora = loras[which];
          if (mode === 'merge') {
            const r = mergeLoRA(lora, { unet: unetW, textEncoder: teW }, { unet: m, te: m });
            assert.deepEqual(r.report.unknown, []);
            unetW = r.unet!; teW = r.textEncoder!;
          } else {
            const r = applyLoRA(lora, { unet: unetW, textEncoder: teW }, { unet: m, te: m });
            assert.deepEqual(r.unknown, []);
            assert.equal(r.applied, lora.modules.size);
            attached.push(r);
          }
        }
        const unet = new UNet2DConditionModel(unet0.config, unetW), te = new CLIPTextModel(te0.config, teW);
        E.noGrad(() => {
          close(unet.forward(io.sample, io.timestep, io.encoder_hidden_states), io[`unet_out.${combo}`], `unet ${combo}`);
          const out = te.forward(io.input_ids);
          close(out.lastHiddenState, io[`te_last_hidden_state.${combo}`], `te ${combo}`);
          if (io[`te_pooler_output.${combo}`]) close(out.pooled, io[`te_pooler_output.${combo}`], `pooled ${combo}`);
        });
        attached.forEach(removeLoRA);
        assert.equal(unet0.weights.adapters.size + te0.weights.adapters.size, 0);
      }
    });
  }

  it('reports LoRA modules that match no layer', async () => {
    const unet = await goldenUNet();
    const lora = await loadLoRA(path.join(loraDir, files[0]));
    const r = applyLoRA(lora, { unet: unet.weights }, { unet: 1, te: 1 });
    assert.ok(r.unknown.length > 0 && r.unknown.every((n) => n.startsWith('lora_te_')), 'text-encoder modules are unknown without a text encoder');
  });

  it('lora-backward: loss and every LoRA gradient of one training step', async () => {
    const io = (await loadSafetensors(requireFile(goldenCase('lora-backward'), 'io.safetensors'))).tensors;
    const unet = await goldenUNet(), te = await goldenTextEncoder();
    const lora = await loadLoRA(path.join(loraDir, 'lora_a.safetensors'));
    for (const m of lora.modules.values()) { m.down = m.down.detach().requireGrad(); m.up = m.up.detach().requireGrad(); }
    applyLoRA(lora, { unet: unet.weights, textEncoder: te.weights }, { unet: 1, te: 1 });
    const ts = [...io.timesteps.dataSync()];
    const noisy = new DDPMScheduler(SD15_SCHEDULER).addNoise(io.latents, io.noise, ts);
    close(noisy, io.noisy_latents, 'noisy_latents', 1e-5);
    const ehs = te.forward(io.input_ids).lastHiddenState;
    close(ehs, io.encoder_hidden_states, 'encoder_hidden_states');
    const pred = unet.forward(noisy, io.timesteps, ehs);
    close(pred, io.noise_pred, 'noise_pred');
    const loss = E.mseLoss(pred, io.noise);
    assert.ok(Math.abs(loss.item() - io.loss.item()) <= 1e-5 * io.loss.item(), `loss ${loss.item()} vs ${io.loss.item()}`);
    loss.backward();
    let checked = 0;
    for (const m of lora.modules.values()) {
      for (const [part, t] of [['lora_down', m.down], ['lora_up', m.up]] as const) {
        const want = io[`grad.${m.name}.${part}.weight`];
        assert.ok(want, `no golden gradient for ${m.name}.${part}`);
        const tol = 1e-4 * Math.max(...[...want.dataSync()].map(Math.abs));
        close(t.grad!, want, `grad ${m.name}.${part}`, tol);
        checked++;
      }
    }
    assert.equal(checked, Object.keys(io).filter((k) => k.startsWith('grad.') && !k.endsWith('_f64')).length);
  });
});
