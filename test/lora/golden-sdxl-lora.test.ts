// kohya SDXL LoRA files (sd-scripts networks/lora.py with is_sdxl) against the sdxl-lora golden
// case: the module list (lora_te1_ / lora_te2_ / SGM-named lora_unet_, LoCon convs), every
// recorded merge/runtime combination (te1/te2 penultimate, context, text_embeds, UNet output), the
// recorded weight deltas, and one training step (loss and every LoRA gradient) through the
// LoRANetwork the trainer uses. Every name, count and multiplier comes from the case's files.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import type { SizeConditioning } from '../../src/families/index.js';
import { runTextEncoders } from '../../src/families/text.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { type ApplyReport, applyLoRA, loraDelta, mergeLoRA, removeLoRA } from '../../src/lora/apply.js';
import { componentIndex, familyComponents, type LoRAComponent } from '../../src/lora/components.js';
import { type LoRAFile, loadLoRA, scaleOf } from '../../src/lora/lora-file.js';
import { loraTargets } from '../../src/lora/targets.js';
import { makeTextEncoder } from '../../src/models/loader.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { DDPMScheduler, SD15_SCHEDULER } from '../../src/schedulers/index.js';
import { LoRANetwork } from '../../src/train/network.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCases, loraModuleNames, requireFile } from '../helpers/golden.js';
import { type GoldenSDXL, goldenSDXL, loraFiles } from '../helpers/golden-sdxl.js';
import { todoFor } from '../helpers/unsupported-cases.js';

E.initCpuBackend();
const cases = goldenCases('sdxl-lora');
const todo = todoFor('sdxl-lora');

const close = (got: Tensor, want: Tensor | undefined, what: string, atol = 1e-4): number => {
  assert.ok(want, `io.safetensors lacks ${what}`);
  assert.deepEqual([...got.shape], [...want.shape], `${what}: shape`);
  const d = maxAbsDiff(got.dataSync(), want.dataSync());
  assert.ok(d <= atol, `${what}: max |diff| ${d.toExponential(2)} > ${atol.toExponential(2)}`);
  return d;
};

/** `a_m<k>` (A at k) or `a<k>_b<j>...` (each file at its multiplier, merged in that order). */
function parseCombo(c: string): [string, number][] {
  const single = /^([a-z])_m([\d.]+)$/.exec(c);
  if (single) return [[single[1], Number(single[2])]];
  return c.split('_').map((p) => {
    const m = /^([a-z])([\d.]+)$/.exec(p);
    if (!m) throw new Error(`cannot read the combination "${c}"`);
    return [m[1], Number(m[2])];
  });
}

/** A [B, n] tensor as rows of numbers. */
const rowsOf = (x: Tensor): number[][] => Array.from({ length: x.shape[0] }, (_, i) => [...x.dataSync().slice(i * x.shape[1], (i + 1) * x.shape[1])]);

/** The conv_dim a kohya file was made with (ss_network_args), or undefined. */
const convDimOf = (f: LoRAFile): number | undefined => {
  const a = JSON.parse(f.metadata.ss_network_args || '{}') as Record<string, string>;
  return a.conv_dim === undefined ? undefined : Number(a.conv_dim);
};

/** Every conditioning output the case records, from a model whose weights may carry LoRA. */
function outputs(m: GoldenSDXL, comps: readonly LoRAComponent[], io: Record<string, Tensor>): Record<string, Tensor> {
  const w = new Map(comps.map((c) => [c.id, c.weights]));
  const tes = m.family.textEncoders.map((spec, i) => makeTextEncoder(spec, m.textEncoders[i].config, w.get(spec.id)!));
  const unet = new UNet2DConditionModel(m.unet.config, w.get('unet')!);
  return E.noGrad(() => {
    const runs = runTextEncoders({ family: m.family, textEncoders: tes }, [io.input_ids_1, io.input_ids_2]);
    const cond = m.family.condition(runs, io.input_ids_1.shape[0], 1, undefined);
    const pen = (i: number) => runs[i].hiddenStates[runs[i].hiddenStates.length - 2];
    return {
      te1_penultimate: pen(0), te2_penultimate: pen(1), context: cond.context, text_embeds: cond.textEmbeds!,
      unet_out: unet.forward(io.sample, io.timestep, io.encoder_hidden_states, { textEmbeds: io.text_embeds_in, timeIds: io.time_ids }),
    };
  });
}

for (const c of cases) describe(`golden parity: SDXL LoRA (${c.name})`, { todo }, () => {
  const load = async () => {
    const io = (await loadSafetensors(requireFile(c.dir, 'io.safetensors'))).tensors;
    const model = await goldenSDXL(io);
    const files = new Map(await Promise.all([...loraFiles(c.dir)].map(async ([k, p]) => [k, await loadLoRA(p)] as const)));
    return { io, model, files, comps: familyComponents(model) };
  };

  it('targets exactly sd-scripts\' SDXL modules (lora_modules.txt), with conv_dim on the 3x3 convs', async () => {
    const { model, files, comps } = await load();
    const listed = loraModuleNames(c.dir);
    const a = files.get('a');
    assert.ok(a, `${c.dir} lacks lora_a.safetensors`);
    assert.deepEqual([...a.modules.keys()].sort(), [...listed].sort(), 'lora_a holds the listed modules');
    for (const [k, f] of files) {
      const conv = convDimOf(f);
      const targets = loraTargets(comps, { conv: conv !== undefined });
      assert.deepEqual(targets.map((t) => t.name).sort(), [...f.modules.keys()].sort(), `lora_${k}: sdlora's targets are the file's modules`);
      const dim = Number(f.metadata.ss_network_dim);
      for (const t of targets) assert.equal(f.modules.get(t.name)!.down.shape[0], t.conv3x3 ? conv : dim, `${t.name}: rank`);
    }
    // te2's projection is not a target; te1 is the first encoder (lora_te1_), te2 the second.
    assert.ok(!listed.some((n) => n.includes('text_projection')));
    assert.deepEqual([...new Set(listed.map((n) => /^lora_(te1|te2|unet)_/.exec(n)?.[1]))].sort(), ['te1', 'te2', 'unet']);
    assert.equal(model.family.id, 'sdxl');
  });

  it('merged-weight deltas as sd-scripts merges them (3x3 LoCon included)', async () => {
    const { io, files, comps } = await load();
    const a = files.get('a')!;
    const index = componentIndex(comps);
    const keys = Object.keys(io).filter((k) => k.startsWith('delta.'));
    assert.ok(keys.length > 0, 'the case records deltas');
    for (const k of keys) {
      const name = k.slice('delta.'.length);
      const m = a.modules.get(name), ref = index.get(name);
      assert.ok(m && ref, `${name}: in lora_a and a layer of the model`);
      const base = ref.component.weights.raw(`${ref.path}.weight`);
      const d = E.mulScalar(loraDelta(m, base.shape), scaleOf(m));
      close(d, io[k], k, 1e-6 * Math.max(...[...io[k].dataSync()].map(Math.abs)));
    }
  });

  for (const mode of ['merge', 'runtime'] as const) {
    it(`applies SDXL LoRA files ${mode === 'merge' ? 'merged into the weights' : 'at runtime'} at every recorded combination`, async (t) => {
      const { io, model, files, comps } = await load();
      const fields = ['te1_penultimate', 'te2_penultimate', 'context', 'text_embeds', 'unet_out'];
      const combos = [...new Set(Object.keys(io).filter((k) => k.startsWith('unet_out.') && !k.endsWith('_f64')).map((k) => k.slice('unet_out.'.length)))].filter((x) => x !== 'base');
      assert.ok(combos.length > 0, 'the case records combinations');
      const base = outputs(model, comps, io);
      for (const f of fields) close(base[f], io[`${f}.base`], `${f}.base`);
      let worst = 0;
      for (const combo of combos) {
        let cur = comps;
        const attached: ApplyReport[] = [];
        for (const [which, mult] of parseCombo(combo)) {
          const lora = files.get(which);
          assert.ok(lora, `${combo}: no lora_${which}.safetensors`);
          if (mode === 'merge') {
            const r = mergeLoRA(lora, { components: cur }, { unet: mult, te: mult });
            assert.deepEqual(r.report.unknown, []);
            assert.equal(r.report.applied, lora.modules.size);
            cur = r.components;
          } else {
            const r = applyLoRA(lora, { components: cur }, { unet: mult, te: mult });
            assert.deepEqual(r.unknown, []);
            assert.equal(r.applied, lora.modules.size);
            attached.push(r);
          }
        }
        const got = outputs(model, cur, io);
        for (const f of fields) {
          const d = close(got[f], io[`${f}.${combo}`], `${f}.${combo}`);
          worst = Math.max(worst, d);
          assert.ok(maxAbsDiff(got[f].dataSync(), base[f].dataSync()) > 10 * 1e-4, `${f}.${combo}: the LoRA changes the output`);
        }
        attached.forEach(removeLoRA);
        assert.ok(comps.every((x) => x.weights.adapters.size === 0), 'adapters removed');
      }
      t.diagnostic(`max |diff| over all combinations: ${worst.toExponential(2)}`);
    });
  }

  it('one SDXL LoRA training step through the training network: loss and every LoRA gradient', async (t) => {
    const bw = (await loadSafetensors(requireFile(c.dir, 'backward.safetensors'))).tensors;
    const { model, files, comps } = await load();
    const a = files.get('a')!;
    const net = LoRANetwork.fromFile(a, comps, { dim: Number(a.metadata.ss_network_dim), alpha: Number(a.metadata.ss_network_alpha), trainUnet: true, trainTextEncoder: true }, new E.Rng(0));
    assert.equal(net.modules.length, a.modules.size);
    net.attach();
    net.setTraining(true);
    try {
      const runs = runTextEncoders(model, [bw.input_ids_1, bw.input_ids_2]);
      const cond = model.family.condition(runs, bw.input_ids_1.shape[0], 1, undefined);
      close(cond.context, bw.context, 'context');
      close(cond.textEmbeds!, bw.text_embeds, 'text_embeds');
      const ts = [...bw.timesteps.dataSync()];
      const noisy = new DDPMScheduler(SD15_SCHEDULER).addNoise(bw.latents, bw.noise, ts);
      close(noisy, bw.noisy_latents, 'noisy_latents', 1e-5);
      // The recorded time ids as per-image sizes, through the family's added conditioning.
      const sizes = rowsOf(bw.time_ids).map((r) => ({ originalSize: [r[0], r[1]], cropTopLeft: [r[2], r[3]], targetSize: [r[4], r[5]] } as SizeConditioning));
      const added = model.family.addedConditioning(cond, sizes)!;
      close(added.timeIds, bw.time_ids, 'time_ids', 0);
      const pred = model.unet.forward(noisy, bw.timesteps, cond.context, added);
      close(pred, bw.noise_pred, 'noise_pred');
      const loss = E.mseLoss(pred, bw.noise);
      const want = bw.loss.item();
      assert.ok(Math.abs(loss.item() - want) <= 1e-5 * want, `loss ${loss.item()} vs ${want}`);
      loss.backward();
      const gradKeys = Object.keys(bw).filter((k) => k.startsWith('grad.') && !k.endsWith('_f64'));
      assert.equal(gradKeys.length, 2 * a.modules.size, 'a gradient for every lora_down and lora_up');
      let worstRel = 0, zero = 0;
      for (const m of net.modules) {
        for (const [part, p] of [['lora_down', m.down], ['lora_up', m.up]] as const) {
          const g = bw[`grad.${m.name}.${part}.weight`];
          assert.ok(g, `backward.safetensors lacks grad.${m.name}.${part}.weight`);
          const peak = Math.max(...[...g.dataSync()].map(Math.abs));
          const got = p.grad ?? E.zeros([...p.shape]);
          const d = close(got, g, `grad ${m.name}.${part}`, 1e-4 * peak);
          if (peak > 0) worstRel = Math.max(worstRel, d / peak);
          else { zero++; assert.ok(got.dataSync().every((v) => v === 0), `${m.name}.${part}: no gradient, as in torch`); }
        }
      }
      // SDXL conditions on te1's penultimate layer, so te1's last layer gets no gradient.
      const layers = model.textEncoders[0].config.num_hidden_layers;
      const lastTe1 = net.modules.filter((m) => m.name.startsWith(`lora_te1_text_model_encoder_layers_${layers - 1}_`));
      assert.ok(lastTe1.length > 0);
      for (const m of lastTe1) assert.ok(!m.down.grad || m.down.grad.dataSync().every((v) => v === 0), `${m.name}: zero gradient`);
      assert.equal(zero, 2 * lastTe1.length, 'exactly the last te1 layer\'s modules have no gradient');
      t.diagnostic(`loss ${loss.item()} (golden ${want}); worst gradient |diff| / max|grad| ${worstRel.toExponential(2)}`);
    } finally {
      net.setTraining(false);
      net.detach();
    }
  });
});
