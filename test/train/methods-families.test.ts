// Textual Inversion and DreamBooth on the other families: SDXL embeddings hold clip_l and clip_g and
// load back to the training-time conditioning (context and pooled embeds); DreamBooth writes SD 2.x
// (OpenCLIP text encoder, sd-scripts' copied last block) and SDXL (SGM UNet, two encoders) single
// files that load back through the single-file loader and reproduce the trained UNet and encoders.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { encodeText } from '../../src/families/text.js';
import { EmbeddingLibrary } from '../../src/infer/embeddings.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { type SDModel, loadSDModel } from '../../src/models/sd-model.js';
import { resolveConfig } from '../../src/train/config.js';
import { trainDreamBooth } from '../../src/train/dreambooth.js';
import { trainTextualInversion } from '../../src/train/textual-inversion.js';
import { tinySd2Folder } from '../helpers/tiny-sd2.js';
import { tinySdxlFolder } from '../helpers/tiny-sdxl.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-methods-'));
const data = path.join(tmp, 'data');
const quiet = () => {};
const cfg = (v: Record<string, unknown>) => resolveConfig([{ source: 'test', values: {
  train_data_dir: data, caption_extension: '.txt', resolution: 32, train_batch_size: 1, max_train_steps: 2, learning_rate: 1e-3, seed: 7, ...v,
} }]);
const sameWeights = (a: SDModel, b: SDModel) => {
  for (const [x, y] of [[a.unet.weights, b.unet.weights], ...a.textEncoders.map((t, i) => [t.weights, b.textEncoders[i].weights])]) {
    for (const [k, t] of x.tensors) assert.deepEqual(y.get(k).dataSync(), t.dataSync(), k);
  }
};

describe('textual inversion and dreambooth on SD 2.x and SDXL', () => {
  let xl: string, sd2: string;
  before(async () => {
    await E.initCpuBackend();
    xl = await tinySdxlFolder();
    sd2 = await tinySd2Folder();
    writeShapeDataset(data, { name: 'star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 3 });
  });

  it('SDXL textual inversion: clip_l and clip_g, loaded back to the same conditioning', async () => {
    const r = await trainTextualInversion(cfg({ training_method: 'textual_inversion', pretrained_model_name_or_path: xl, output_dir: path.join(tmp, 'xl-ti'), token_string: 'zqx', init_word: 'star', num_vectors_per_token: 2 }), { log: quiet });
    const { tensors, metadata } = await loadSafetensors(r.finalPath!);
    assert.deepEqual(Object.keys(tensors).sort(), ['clip_g', 'clip_l']);
    assert.deepEqual(tensors.clip_l.shape, [2, r.model.textEncoders[0].config.hidden_size]);
    assert.deepEqual(tensors.clip_g.shape, [2, r.model.textEncoders[1].config.hidden_size]);
    assert.equal(metadata['modelspec.architecture'], 'stable-diffusion-xl-v1-base/textual-inversion');
    const fresh = await loadSDModel(xl);
    const lib = await EmbeddingLibrary.scan(path.join(tmp, 'xl-ti'));
    assert.deepEqual((await lib.applyTo(fresh)).map((e) => e.name), ['zqx']);
    const a = E.noGrad(() => encodeText(r.model, ['a zqx on white'])), b = E.noGrad(() => encodeText(fresh, ['a zqx on white']));
    assert.deepEqual(b.context.dataSync(), a.context.dataSync());
    assert.deepEqual(b.textEmbeds!.dataSync(), a.textEmbeds!.dataSync());
    const base = await loadSDModel(xl);
    for (const [i, te] of base.textEncoders.entries()) for (const [k, t] of te.weights.tensors) assert.deepEqual(r.model.textEncoders[i].weights.get(k).dataSync(), t.dataSync(), k);
  });

  it('SD 2.x DreamBooth: the LDM file (OpenCLIP text encoder) loads back to the trained model', async () => {
    const r = await trainDreamBooth(cfg({ training_method: 'dreambooth', pretrained_model_name_or_path: sd2, v2: true, v_parameterization: true, output_dir: path.join(tmp, 'sd2-db') }), { log: quiet });
    const { metadata, tensors } = await loadSafetensors(r.finalPath!);
    assert.equal(metadata['modelspec.architecture'], 'stable-diffusion-v2-768-v');
    // sd-scripts' SD 2.x text encoder without a source checkpoint: the last block again, dummy projection and scale.
    const n = r.model.textEncoder.config.num_hidden_layers, pre = 'cond_stage_model.model.transformer.resblocks.';
    assert.deepEqual(tensors[`${pre}${n}.attn.in_proj_weight`].dataSync(), tensors[`${pre}${n - 1}.attn.in_proj_weight`].dataSync());
    assert.ok(tensors['cond_stage_model.model.text_projection'] && tensors['cond_stage_model.model.logit_scale']);
    assert.equal(metadata['modelspec.prediction_type'], 'v');
    const loaded = await loadSDModel(r.finalPath!, { configDir: sd2 });
    assert.equal(loaded.family.id, 'sd2');
    sameWeights(r.model, loaded);
  });

  it('SDXL DreamBooth: the SGM single file loads back to the trained model', async () => {
    const r = await trainDreamBooth(cfg({ training_method: 'dreambooth', pretrained_model_name_or_path: xl, output_dir: path.join(tmp, 'xl-db'), max_train_steps: 1 }), { log: quiet });
    const { metadata } = await loadSafetensors(r.finalPath!);
    assert.equal(metadata['modelspec.architecture'], 'stable-diffusion-xl-v1-base');
    const loaded = await loadSDModel(r.finalPath!, { configDir: xl });
    assert.equal(loaded.family.id, 'sdxl');
    sameWeights(r.model, loaded);
  });
});
