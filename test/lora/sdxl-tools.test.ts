// LoRA tools on SDXL: `lora merge` bakes kohya SDXL LoRAs into an SGM single file (te1, OpenCLIP te2
// with fused q/k/v, SGM UNet keys) so that the merged model gives the golden merged outputs;
// `lora extract` recovers most of an SDXL LoRA (te1/te2/unet, LoCon) from two SDXL files; `resize` and
// `merge-loras` keep SDXL module names. Ranks, names and multipliers come from the sdxl-lora case.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { runTextEncoders } from '../../src/families/text.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { applyLoRA, removeLoRA } from '../../src/lora/apply.js';
import { familyComponents } from '../../src/lora/components.js';
import { type LoRAFile, loadLoRA } from '../../src/lora/lora-file.js';
import { loadStateDict, readJson } from '../../src/models/loader.js';
import { mergeIntoCheckpoint } from '../../src/lora/merge-checkpoint.js';
import { mergeIntoFamilyCheckpoint } from '../../src/lora/merge-family-checkpoint.js';
import { type SDModel, loadSDModel } from '../../src/models/sd-model.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, loraModuleNames, requireFile } from '../helpers/golden.js';
import { loraFiles } from '../helpers/golden-sdxl.js';
import { sdxlConfigs } from '../helpers/tiny-sdxl.js';

const cli = path.resolve('bin/sdlora.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-sdxl-tools-'));
const run = (args: string[]) => spawnSync('node', [cli, ...args], { encoding: 'utf8', cwd: tmp });
const ckpt = path.join(tmp, 'xl.safetensors');
const configDir = path.join(tmp, 'configs');
const caseDir = () => goldenCase('sdxl-lora');
let io: Record<string, Tensor>;
let a: LoRAFile;

/** The outputs the case records, from a loaded SDXL model. */
function outputs(m: SDModel): Record<string, Tensor> {
  return E.noGrad(() => {
    const runs = runTextEncoders(m, [io.input_ids_1, io.input_ids_2]);
    const cond = m.family.condition(runs, io.input_ids_1.shape[0], 1, undefined);
    return {
      context: cond.context, text_embeds: cond.textEmbeds!,
      unet_out: m.unet.forward(io.sample, io.timestep, io.encoder_hidden_states, { textEmbeds: io.text_embeds_in, timeIds: io.time_ids }),
    };
  });
}

function check(got: Record<string, Tensor>, combo: string, atol: number): void {
  for (const [k, t] of Object.entries(got)) {
    const want = io[`${k}.${combo}`];
    assert.ok(want, `io.safetensors lacks ${k}.${combo}`);
    const d = maxAbsDiff(t.dataSync(), want.dataSync());
    assert.ok(d <= atol, `${k}.${combo}: max |diff| ${d.toExponential(2)}`);
  }
}

describe('SDXL LoRA tools', () => {
  before(async () => {
    await E.initCpuBackend();
    io = (await loadSafetensors(requireFile(caseDir(), 'io.safetensors'))).tensors;
    a = await loadLoRA(loraFiles(caseDir()).get('a')!);
    // An SGM single file from the golden parts: SGM UNet, both text encoders, the tiny VAE.
    const parts = [requireFile(goldenCase('sdxl-unet', 'unet_ldm.safetensors'), 'unet_ldm.safetensors'), requireFile(goldenCase('sdxl-text'), 'text_encoders_sdxl.safetensors'), requireFile(goldenCase('vae'), 'vae_ldm.safetensors')];
    const all: [string, Tensor][] = [];
    for (const f of parts) all.push(...(await loadStateDict(f)).entries());
    await saveSafetensors(ckpt, all);
    const c = sdxlConfigs();
    for (const [sub, cfg] of [['unet', c.unet], ['vae', c.vae], ['text_encoder', c.textEncoder], ['text_encoder_2', c.textEncoder2]] as const) {
      mkdirSync(path.join(configDir, sub), { recursive: true });
      writeFileSync(path.join(configDir, sub, 'config.json'), JSON.stringify(cfg));
    }
    copyFileSync(loraFiles(caseDir()).get('a')!, path.join(tmp, 'a.safetensors'));
  });

  it('lora merge bakes an SDXL LoRA into an SGM single file (te1, OpenCLIP te2, UNet)', async () => {
    const r = run(['lora', 'merge', '--model', ckpt, '--lora', 'a.safetensors:1', '--out', 'merged.safetensors', '--unet-config', path.join(configDir, 'unet', 'config.json')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /SDXL/);
    const base = await loadSDModel(ckpt, { configDir });
    const merged = await loadSDModel(path.join(tmp, 'merged.safetensors'), { configDir });
    assert.equal(merged.family.id, 'sdxl');
    check(outputs(base), 'base', 1e-4);
    check(outputs(merged), 'a_m1.0', 1e-4);
    const before = Object.keys((await loadSafetensors(ckpt)).tensors), after = Object.keys((await loadSafetensors(path.join(tmp, 'merged.safetensors'))).tensors);
    assert.deepEqual(after, before, 'key set and order kept');
  });

  it('lora extract recovers the SDXL LoRA from two SDXL files (te1, te2, unet, LoCon)', async () => {
    const args = JSON.parse(a.metadata.ss_network_args || '{}') as Record<string, string>;
    const r = run(['lora', 'extract', '--base', ckpt, '--tuned', 'merged.safetensors', '--config-dir', configDir, '--dim', a.metadata.ss_network_dim,
      ...(args.conv_dim ? ['--conv-dim', args.conv_dim] : []), '--clamp-quantile', '1', '--out', 'extracted.safetensors']);
    assert.equal(r.status, 0, r.stderr);
    const x = await loadLoRA(path.join(tmp, 'extracted.safetensors'));
    assert.deepEqual([...x.modules.keys()].sort(), [...loraModuleNames(caseDir())].sort(), 'sd-scripts\' module set');
    assert.equal(x.metadata.ss_base_model_version, a.metadata.ss_base_model_version);
    assert.equal(x.metadata['modelspec.architecture'], 'stable-diffusion-xl-v1-base/lora');
    const m = await loadSDModel(ckpt, { configDir });
    const rep = applyLoRA(x, { components: familyComponents(m) }, { unet: 1, te: 1 });
    // sd-scripts' signed-quantile clamp (even at 1: values below -max are cut) keeps extraction
    // inexact; the extracted LoRA must still carry most of the change the file made.
    try {
      for (const [k, t] of Object.entries(outputs(m))) {
        const want = io[`${k}.a_m1.0`].dataSync(), base = io[`${k}.base`].dataSync();
        const err = maxAbsDiff(t.dataSync(), want), change = maxAbsDiff(want, base);
        assert.ok(err <= 0.25 * change, `${k}: extracted LoRA off by ${err.toExponential(2)}, the LoRA's change is ${change.toExponential(2)}`);
      }
    } finally { removeLoRA(rep); }
  });

  it('resize and merge-loras keep SDXL names', async () => {
    const r1 = run(['lora', 'resize', 'a.safetensors', '--rank', '2', '--out', 'resized.safetensors']);
    assert.equal(r1.status, 0, r1.stderr);
    const r2 = run(['lora', 'merge-loras', '--lora', 'a.safetensors:0.5', 'resized.safetensors:0.5', '--rank', '2', '--out', 'svd.safetensors']);
    assert.equal(r2.status, 0, r2.stderr);
    for (const f of ['resized.safetensors', 'svd.safetensors']) {
      const l = await loadLoRA(path.join(tmp, f));
      assert.deepEqual([...l.modules.keys()].sort(), [...a.modules.keys()].sort(), f);
      assert.equal(l.metadata.ss_base_model_version, a.metadata.ss_base_model_version, `${f}: base model version kept`);
      const m = await loadSDModel(ckpt, { configDir });
      const rep = applyLoRA(l, { components: familyComponents(m) }, { unet: 1, te: 1 });
      assert.equal(rep.applied, a.modules.size);
      removeLoRA(rep);
    }
  });

  it('on SD 1.x, lora merge writes the same checkpoint as the SD 1.x merge', async () => {
    const all: [string, Tensor][] = [];
    for (const f of [requireFile(goldenCase('sd1-unet', 'unet_ldm.safetensors'), 'unet_ldm.safetensors'), requireFile(goldenCase('vae'), 'vae_ldm.safetensors'), requireFile(goldenCase('sd1-text'), 'text_encoder_ldm.safetensors')]) all.push(...(await loadStateDict(f)).entries());
    const sd1 = path.join(tmp, 'sd1.safetensors');
    await saveSafetensors(sd1, all);
    const lora = { lora: await loadLoRA(requireFile(goldenCase('lora'), 'lora_a.safetensors')), ratio: 0.7 };
    const unetConfig = readJson(requireFile(goldenCase('sd1-unet', 'unet.safetensors'), 'config.json'));
    const r1 = await mergeIntoCheckpoint(sd1, [lora], path.join(tmp, 'sd1-a.safetensors'), { unetConfig });
    const r2 = await mergeIntoFamilyCheckpoint(sd1, [lora], path.join(tmp, 'sd1-b.safetensors'), { unetConfig });
    assert.equal(r2.changed, r1.changed);
    assert.ok(readFileSync(path.join(tmp, 'sd1-a.safetensors')).equals(readFileSync(path.join(tmp, 'sd1-b.safetensors'))), 'byte-identical files');
  });
});
