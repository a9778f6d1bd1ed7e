// Loading whole models the way users have them: a diffusers folder and a single-file LDM
// checkpoint, both assembled here from the tiny golden fixtures.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { loadDiffusersFolder, loadSingleFile, loadStateDict, readJson } from '../../src/models/loader.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase } from '../helpers/golden.js';
import { tinyModelFolder } from '../helpers/tiny-model.js';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'sdlora-load-'));
const configs = {
  unet: readJson(path.join(goldenCase('sd1-unet', 'unet.safetensors'), 'config.json')),
  vae: readJson(path.join(goldenCase('vae'), 'config.json')),
  textEncoder: readJson(path.join(goldenCase('sd1-text'), 'config.json')),
};

async function checkOutputs(m: Awaited<ReturnType<typeof loadSingleFile>>, tol: number): Promise<void> {
  const u = (await loadSafetensors(path.join(goldenCase('sd1-unet', 'unet.safetensors'), 'io.safetensors'))).tensors;
  const v = (await loadSafetensors(path.join(goldenCase('vae'), 'io.safetensors'))).tensors;
  const c = (await loadSafetensors(path.join(goldenCase('sd1-text'), 'io.safetensors'))).tensors;
  E.noGrad(() => {
    assert.ok(maxAbsDiff(m.unet.forward(u.sample, u.timestep, u.encoder_hidden_states).dataSync(), u.out.dataSync()) < tol, 'unet');
    assert.ok(maxAbsDiff(m.vae.decode(v.latent).dataSync(), v.decoded.dataSync()) < tol, 'vae');
    assert.ok(maxAbsDiff(m.textEncoder.forward(c.input_ids).lastHiddenState.dataSync(), c.last_hidden_state.dataSync()) < tol, 'text encoder');
  });
}

describe('model loaders', () => {
  before(() => E.initCpuBackend());

  it('loads a diffusers folder (unet/, vae/, text_encoder/)', async () => {
    await checkOutputs(await loadDiffusersFolder(await tinyModelFolder()), 1e-4);
  });

  it('loads a single-file LDM checkpoint (f32, and f16 converted on load)', async () => {
    const all: [string, E.Tensor][] = [];
    for (const f of [path.join(goldenCase('sd1-unet', 'unet_ldm.safetensors'), 'unet_ldm.safetensors'), path.join(goldenCase('vae'), 'vae_ldm.safetensors'), path.join(goldenCase('sd1-text'), 'text_encoder_ldm.safetensors')]) {
      all.push(...(await loadStateDict(f)).entries());
    }
    all.push(['cond_stage_model.transformer.text_model.embeddings.position_ids', E.tensor(Int32Array.from({ length: 77 }, (_, i) => i), [1, 77], 'i32')]);
    const f32 = path.join(tmp, 'tiny.safetensors');
    await saveSafetensors(f32, all);
    await checkOutputs(await loadSingleFile(f32, configs), 1e-4);
    const f16 = path.join(tmp, 'tiny-fp16.safetensors');
    await saveSafetensors(f16, all, {}, 'F16');
    await checkOutputs(await loadSingleFile(f16, configs), 0.05);
  });

  it('refuses pickle files and incomplete checkpoints with the file name', async () => {
    const bin = path.join(tmp, 'model.ckpt');
    await writeFile(bin, 'x');
    await assert.rejects(loadSingleFile(bin), /model\.ckpt: pickle checkpoints/);
    const part = path.join(tmp, 'unet-only.safetensors');
    await copyFile(path.join(goldenCase('sd1-unet', 'unet.safetensors'), 'unet_ldm.safetensors'), part);
    // A UNet alone does not show its family (no text encoder keys).
    await assert.rejects(loadSingleFile(part, configs), /unet-only\.safetensors: no known text encoder keys/);
    const noVae = path.join(tmp, 'no-vae.safetensors');
    await saveSafetensors(noVae, [...(await loadStateDict(part)).entries(), ...(await loadStateDict(path.join(goldenCase('sd1-text'), 'text_encoder_ldm.safetensors'))).entries()]);
    await assert.rejects(loadSingleFile(noVae, configs), /no-vae\.safetensors: not a complete SD 1\.x checkpoint \(no first_stage_model/);
    await assert.rejects(loadDiffusersFolder(tmp), /not a diffusers model folder/);
  });
});

describe('UNet parameter list', () => {
  it('derives exactly the golden checkpoint\'s keys and shapes from the config', async () => {
    const { parseUNetConfig } = await import('../../src/models/unet-config.js');
    const { unetParamShapes } = await import('../../src/models/unet-params.js');
    const sd = await loadStateDict(path.join(goldenCase('sd1-unet', 'unet.safetensors'), 'unet.safetensors'));
    const shapes = unetParamShapes(parseUNetConfig(configs.unet));
    assert.deepEqual([...shapes.keys()].sort(), [...sd.keys()].sort());
    for (const [k, s] of shapes) assert.deepEqual(s, [...sd.get(k)!.shape], k);
  });
});

describe('VAE and CLIP parameter lists', () => {
  it('derive exactly the golden checkpoints\' keys and shapes from the configs', async () => {
    const { vaeParamShapes, clipParamShapes } = await import('../../src/models/model-params.js');
    const { parseVAEConfig } = await import('../../src/models/vae.js');
    const { parseCLIPTextConfig } = await import('../../src/models/clip-text.js');
    for (const [shapes, file] of [
      [vaeParamShapes(parseVAEConfig(configs.vae)), path.join(goldenCase('vae'), 'vae.safetensors')],
      [clipParamShapes(parseCLIPTextConfig(configs.textEncoder)), path.join(goldenCase('sd1-text'), 'text_encoder.safetensors')],
    ] as const) {
      const sd = await loadStateDict(file);
      assert.deepEqual([...shapes.keys()].sort(), [...sd.keys()].sort(), file);
      for (const [k, s] of shapes) assert.deepEqual(s, [...sd.get(k)!.shape], k);
    }
  });
});
