// `lora merge` (merge_lora.py --sd_model) with LyCORIS-family files: each golden lycoris file baked
// into a single-file LDM checkpoint of the tiny models gives the same outputs as merging it into the
// loaded models (mergeLoRA, which golden-lycoris.test.ts holds to the case); where the case's merge
// scales like A1111 (every module of DoRA and PEFT files), the checkpoint matches the case itself.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { mergeLoRA } from '../../src/lora/apply.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { mergeIntoCheckpoint } from '../../src/lora/merge-checkpoint.js';
import { CLIPTextModel } from '../../src/models/clip-text.js';
import { loadSingleFile, loadStateDict, readJson } from '../../src/models/loader.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, requireFile } from '../helpers/golden.js';
import { goldenTextEncoder, goldenUNet } from '../helpers/golden-models.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-merge-lyco-'));
let ckpt: string;

before(async () => {
  E.initCpuBackend();
  const all: [string, Tensor][] = [];
  for (const [kind, file] of [['sd1-unet', 'unet_ldm.safetensors'], ['vae', 'vae_ldm.safetensors'], ['sd1-text', 'text_encoder_ldm.safetensors']] as const) {
    all.push(...(await loadStateDict(requireFile(goldenCase(kind, file), file))).entries());
  }
  ckpt = path.join(tmp, 'tiny.safetensors');
  await saveSafetensors(ckpt, all);
});

describe('lora merge with LyCORIS-family files', () => {
  it('bakes each file into a checkpoint as mergeLoRA merges it, at every multiplier the case records', async () => {
    const dir = goldenCase('lycoris');
    const io = (await loadSafetensors(requireFile(dir, 'io.safetensors'))).tensors;
    const combos = Object.keys(io).map((k) => /^unet_out\.(.+)_m([\d.]+)$/.exec(k)).filter((m): m is RegExpExecArray => !!m);
    assert.ok(combos.length > 0);
    const unet0 = await goldenUNet(), te0 = await goldenTextEncoder();
    const configs = {
      unet: readJson(requireFile(goldenCase('sd1-unet', 'unet.safetensors'), 'config.json')),
      vae: readJson(requireFile(goldenCase('vae'), 'config.json')),
      textEncoder: readJson(requireFile(goldenCase('sd1-text'), 'config.json')),
    };
    for (const [key, kind, m] of combos) {
      const lora = await loadLoRA(requireFile(dir, `${kind}.safetensors`));
      const out = path.join(tmp, `${key}.safetensors`);
      const r = await mergeIntoCheckpoint(ckpt, [{ lora, ratio: Number(m) }], out, { unetConfig: configs.unet });
      assert.deepEqual(r.unknown, []);
      assert.equal(r.changed, lora.adapters.size, `${key}: one weight changed per module`);
      const baked = await loadSingleFile(out, configs);
      const ref = mergeLoRA(lora, { unet: unet0.weights, textEncoder: te0.weights }, { unet: Number(m), te: Number(m) });
      E.noGrad(() => {
        const u = baked.unet.forward(io.sample, io.timestep, io.encoder_hidden_states).dataSync();
        const t = baked.textEncoder.forward(io.input_ids).lastHiddenState.dataSync();
        const uRef = new UNet2DConditionModel(unet0.config, ref.unet!).forward(io.sample, io.timestep, io.encoder_hidden_states).dataSync();
        const tRef = new CLIPTextModel(te0.config, ref.textEncoder!).forward(io.input_ids).lastHiddenState.dataSync();
        assert.ok(maxAbsDiff(u, uRef) < 1e-5 && maxAbsDiff(t, tRef) < 1e-5, `${key}: checkpoint vs merged models`);
        if ([...lora.adapters.values()].every((a) => a.kind !== 'loha' && a.kind !== 'lokr')) {
          assert.ok(maxAbsDiff(u, io[`unet_out.${kind}_m${m}`].dataSync()) < 1e-4, `${key}: UNet output vs the case`);
          assert.ok(maxAbsDiff(t, io[`te_last_hidden_state.${kind}_m${m}`].dataSync()) < 1e-4, `${key}: text encoder output vs the case`);
        }
      });
    }
  });
});
