// SD 2.x end to end on a tiny SD 2.x model built from the golden files (OpenCLIP text encoder of the
// sd2-text case, a linear-projection UNet over its width, the tiny VAE): the command line trains a
// LoRA with v2 + v_parameterization whose key set is sd-scripts' for that model (text encoder modules
// named after the OpenCLIP -> transformers conversion, UNet modules by diffusers path) and whose
// metadata names SD 2.x 768-v as sd-scripts does; the loss is sd-scripts' v-prediction loss; clip_skip
// works on the converted encoder as for v1; txt2img samples v-prediction on the SD 2.x single file
// with the LoRA and writes A1111 infotext; `lora list` names the base.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import { writeShapeDataset } from '../../src/data/procedural.js';
import { SD2 } from '../../src/families/index.js';
import { encodeText } from '../../src/families/text.js';
import { txt2img } from '../../src/infer/txt2img.js';
import { decodePng } from '../../src/io/png.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { LoRALibrary } from '../../src/lora/library.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { loadSDModel } from '../../src/models/sd-model.js';
import { resolveConfig } from '../../src/train/config.js';
import { type MicroBatchTrace, train } from '../../src/train/trainer.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, loraModuleNames, requireFile } from '../helpers/golden.js';
import { sd2Configs, tinySd2Folder, tinySd2SingleFile } from '../helpers/tiny-sd2.js';

const cli = path.resolve('bin/sdlora.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sdlora-sd2-train-'));
const data = path.join(tmp, 'data');
const quiet = () => {};
let model: string;
let single: { file: string; configDir: string };
let acp: Float64Array;
let runs = 0;

const cfg = (v: Record<string, unknown>) => resolveConfig([{ source: 'test', values: {
  pretrained_model_name_or_path: model, train_data_dir: data, caption_extension: '.txt', resolution: 32, train_batch_size: 2,
  max_train_steps: 1, learning_rate: 1e-3, network_dim: 4, network_alpha: 2, seed: 5, v2: true, v_parameterization: true,
  output_dir: path.join(tmp, `run${runs++}`), ...v,
} }]);

async function traced(v: Record<string, unknown>): Promise<MicroBatchTrace[]> {
  const out: MicroBatchTrace[] = [];
  await train(cfg(v), { log: quiet, onMicroBatch: (m) => out.push(m) });
  assert.ok(out.length > 0);
  return out;
}

/** sd-scripts' loss of one micro-batch, in float64: target = v (v_parameterization) or the noise. */
function referenceLoss(m: MicroBatchTrace, v: boolean): number {
  const [B] = m.shape, per = m.latents.length / B;
  let total = 0;
  for (let b = 0; b < B; b++) {
    const a = acp[m.timesteps[b]];
    let sum = 0;
    for (let j = b * per; j < (b + 1) * per; j++) {
      const target = v ? Math.sqrt(a) * m.noise[j] - Math.sqrt(1 - a) * m.latents[j] : m.noise[j];
      sum += (m.pred[j] - target) ** 2;
    }
    total += sum / per;
  }
  return total / B;
}

/**
 * sd-scripts' module names for this model: the UNet's by diffusers path, as the golden SD 1.x LoRA
 * case lists them for the same UNet blocks; the text encoder's per layer of the converted (last block
 * dropped) CLIPTextModel, with the module set the golden case shows for one layer.
 */
function expectedModules(): string[] {
  const golden = loraModuleNames(goldenCase('lora'));
  const unet = golden.filter((n) => n.startsWith('lora_unet_'));
  const perLayer = golden.filter((n) => n.startsWith('lora_te_text_model_encoder_layers_0_')).map((n) => n.slice('lora_te_text_model_encoder_layers_0_'.length));
  assert.ok(unet.length > 0 && perLayer.length > 0);
  const layers = sd2Configs().textEncoder.num_hidden_layers as number;
  const te = Array.from({ length: layers }, (_, i) => perLayer.map((s) => `lora_te_text_model_encoder_layers_${i}_${s}`)).flat();
  return [...te, ...unet];
}

describe('SD 2.x LoRA training and use', () => {
  before(async () => {
    await E.initCpuBackend();
    model = await tinySd2Folder('v_prediction');
    single = await tinySd2SingleFile('v_prediction');
    writeShapeDataset(data, { name: 'sks star', repeats: 1, count: 2, size: 32, shapes: ['star'], seed: 2 });
    acp = Float64Array.from((await loadSafetensors(requireFile(goldenCase('schedulers'), 'io.safetensors'))).tensors.alphas_cumprod.dataSync());
  });

  it('builds the SD 2.x model: OpenCLIP text encoder without its last block, linear projections, v-prediction', async () => {
    for (const m of [await loadSDModel(model), await loadSDModel(single.file, { configDir: single.configDir })]) {
      assert.equal(m.family, SD2);
      assert.equal(m.prediction, 'v_prediction');
      assert.equal(m.unet.config.use_linear_projection, true);
      assert.equal(m.unet.config.cross_attention_dim, m.textEncoder.config.hidden_size);
      assert.equal(m.tokenizer.padId, 0, 'the OpenCLIP tokenizer pads with 0');
    }
    // The single file's text encoder is the case's converted one: the same conditioning.
    const [a, b] = [await loadSDModel(model), await loadSDModel(single.file, { configDir: single.configDir })];
    E.noGrad(() => assert.equal(maxAbsDiff(encodeText(a, ['a star']).context.dataSync(), encodeText(b, ['a star']).context.dataSync()), 0));
  });

  it('the command line trains with v2 + v_parameterization: sd-scripts\' SD 2.x module names and metadata', async () => {
    const r = spawnSync('node', [cli, 'train', '--pretrained_model_name_or_path', model, '--train_data_dir', 'data', '--caption_extension', '.txt',
      '--resolution', '32', '--max_train_steps', '2', '--network_dim', '4', '--network_alpha', '2', '--learning_rate', '1e-3',
      '--output_dir', 'out', '--output_name', 'sd2', '--seed', '4', '--v2', '--v_parameterization'], { encoding: 'utf8', cwd: tmp });
    assert.equal(r.status, 0, r.stderr);
    const file = path.join(tmp, 'out', 'sd2.safetensors');
    assert.ok(existsSync(file), r.stdout);
    const f = await loadLoRA(file);
    assert.deepEqual([...f.modules.keys()].sort(), expectedModules().sort());
    const m = await loadSDModel(model);
    for (const [name, mod] of f.modules) {
      // SD 2.x's proj_in/proj_out are Linear: every module is a Linear LoRA over its layer's input width.
      assert.equal(mod.down.shape.length, 2, `${name}: Linear lora_down`);
      assert.deepEqual([mod.down.shape[0], mod.up.shape[1]], [4, 4], `${name}: rank`);
    }
    const toK = [...f.modules].find(([n]) => /attn2_to_k$/.test(n))![1];
    assert.equal(toK.down.shape[1], m.textEncoder.config.hidden_size, 'cross-attention reads the OpenCLIP width');
    const md = f.metadata;
    assert.equal(md.ss_v2, 'True');
    assert.equal(md.ss_base_model_version, 'sd_v2_v');
    assert.equal(md['modelspec.architecture'], 'stable-diffusion-v2-768-v/lora');
    assert.equal(md['modelspec.implementation'], 'diffusers');
    assert.equal(md.ss_clip_skip, 'None');
  });

  it('trains on v-prediction targets: sqrt(acp)·noise - sqrt(1-acp)·x0', async () => {
    for (const m of await traced({})) {
      const want = referenceLoss(m, true);
      assert.ok(Math.abs(m.loss - want) <= 1e-5 * Math.max(want, 1e-12), `v loss ${m.loss} vs ${want}`);
      assert.ok(Math.abs(m.loss - referenceLoss(m, false)) > 1e-3 * m.loss, 'not the epsilon loss');
    }
  });

  it('clip_skip with v2 as sd-scripts: the final LayerNorm of an earlier layer of the converted encoder', async () => {
    const sdm = await loadSDModel(model);
    E.noGrad(() => {
      const te = sdm.textEncoder, ids = E.tensor(sdm.tokenizer.encodeLong('a star', 75).flat(), [1, 77], 'i32');
      const hs = te.forward(ids).hiddenStates;
      assert.equal(hs.length, (sd2Configs().textEncoder.num_hidden_layers as number) + 1);
      const got = encodeText(sdm, ['a star'], { clipSkip: 2 }).context;
      assert.equal(maxAbsDiff(got.dataSync(), te.finalNorm(hs[hs.length - 2]).dataSync()), 0);
    });
    const [plain] = await traced({});
    const out = path.join(tmp, 'skip2');
    const skipped: MicroBatchTrace[] = [];
    const r = await train(cfg({ clip_skip: 2, output_dir: out }), { log: quiet, onMicroBatch: (m) => skipped.push(m) });
    assert.deepEqual([...skipped[0].noise], [...plain.noise], 'same noise');
    assert.ok(maxAbsDiff(skipped[0].pred, plain.pred) > 0, 'another conditioning');
    assert.equal((await loadLoRA(r.finalPath!)).metadata.ss_clip_skip, '2');
  });

  it('txt2img on the SD 2.x single file with the LoRA: v-prediction sampling and A1111 infotext', async () => {
    const lib = path.join(tmp, 'out');
    if (!existsSync(path.join(lib, 'sd2.safetensors'))) await train(cfg({ output_dir: lib, output_name: 'sd2', max_train_steps: 2 }), { log: quiet });
    const png = path.join(tmp, 'img.png');
    const r = spawnSync('node', [cli, 'txt2img', '--model', single.file, '--config-dir', single.configDir, '--lora-dir', lib,
      '--prompt', 'a star <lora:sd2:1>', '--width', '32', '--height', '32', '--steps', '2', '--seed', '3', '--clip-skip', '2', '--out', png], { encoding: 'utf8', cwd: tmp });
    assert.equal(r.status, 0, r.stderr);
    const img = decodePng(readFileSync(png));
    assert.deepEqual([img.width, img.height], [32, 32]);
    assert.match(img.text.parameters, /^a star <lora:sd2:1>\nSteps: 2, .*Seed: 3, Size: 32x32/);
    assert.match(img.text.parameters, /Clip skip: 2/);
    assert.match(img.text.parameters, /Lora hashes: "sd2: [0-9a-f]{12}"/);

    const m = await loadSDModel(single.file, { configDir: single.configDir });
    assert.equal(m.scheduler.prediction_type, 'v_prediction');
    const library = await LoRALibrary.scan(lib);
    const o = { prompt: 'a star', width: 32, height: 32, steps: 2, seed: 9 };
    const v = await txt2img(m, o);
    const withLora = await txt2img(m, { ...o, prompt: 'a star <lora:sd2:1>' }, library);
    assert.ok(maxAbsDiff(v.rgb, withLora.rgb) > 0, 'the LoRA changes the image');
    assert.deepEqual([...m.unet.weights.adapters.keys(), ...m.textEncoder.weights.adapters.keys()], [], 'LoRA removed after the image');
    // The same UNet read as an epsilon model samples another image: the prediction type is used.
    const eps = await txt2img({ ...m, prediction: 'epsilon', scheduler: { ...m.scheduler, prediction_type: 'epsilon' } }, o);
    assert.ok(maxAbsDiff(v.rgb, eps.rgb) > 0, 'v-prediction sampling differs from epsilon sampling');
  });

  it('lora list names the SD 2.x v base', () => {
    const lib = path.join(tmp, 'out');
    const r = spawnSync('node', [cli, 'lora', 'list', lib, '--json'], { encoding: 'utf8', cwd: tmp });
    assert.equal(r.status, 0, r.stderr);
    const rows = JSON.parse(r.stdout).loras as { name: string; family: string }[];
    const row = rows.find((x) => x.name === 'sd2.safetensors' || x.name === 'sd2');
    assert.ok(row, r.stdout);
    assert.equal(row.family, 'sd2-v (from metadata)');
  });
});
