// Model families end to end on files built here from the golden weights: an SDXL single file
// (SGM UNet + both text encoders + VAE), an SDXL diffusers folder, an SD 2.x single file (OpenCLIP
// text encoder); family detection, prediction type, errors, key maps both ways and the metadata.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { inspect } from '../../src/cli/inspect.js';
import { SD1, SD2, SDXL, checkpointLabel, detectFamily, familyLabel } from '../../src/families/index.js';
import { encodeText, runTextEncoders, tokenizeCaptions } from '../../src/families/text.js';
import { sdxlTimeIds } from '../../src/families/sdxl.js';
import { sd2Prediction } from '../../src/families/sd2.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';
import { SafetensorsFile, loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import type { CLIPTextProjectionOutput } from '../../src/models/clip-text.js';
import { loadSingleFile, loadStateDict, readJson, splitSingleFile } from '../../src/models/loader.js';
import { openClipToTransformers, transformersToOpenClip } from '../../src/models/openclip-keys.js';
import { loadSDModel, modelLabel } from '../../src/models/sd-model.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, requireFile } from '../helpers/golden.js';
import { tinySdxlFolder } from '../helpers/tiny-sdxl.js';
import { sd2TextSingleFile } from '../helpers/tiny-sd2.js';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'sdlora-families-'));
const ATOL = 1e-4;

const sdxlUnetDir = goldenCase('sdxl-unet', 'unet_ldm.safetensors');
const sdxlTextDir = goldenCase('sdxl-text');
const sd2TextDir = goldenCase('sd2-text');
const sd1UnetDir = goldenCase('sd1-unet', 'unet_ldm.safetensors');
const vaeDir = goldenCase('vae');

const sdxlConfigs = () => ({
  unet: readJson(requireFile(sdxlUnetDir, 'config.json')),
  vae: readJson(requireFile(vaeDir, 'config.json')),
  textEncoder: readJson(requireFile(sdxlTextDir, 'config_te1.json')),
  textEncoder2: readJson(requireFile(sdxlTextDir, 'config_te2.json')),
});

async function entries(files: string[], extra: [string, Tensor][] = []): Promise<[string, Tensor][]> {
  const all: [string, Tensor][] = [];
  for (const f of files) all.push(...(await loadStateDict(f)).entries());
  return [...all, ...extra];
}

function close(got: Tensor, want: Tensor, what: string, atol = ATOL): void {
  assert.deepEqual([...got.shape], [...want.shape], `${what}: shape`);
  const d = maxAbsDiff(got.dataSync(), want.dataSync());
  assert.ok(d <= atol, `${what}: max |diff| ${d.toExponential(2)} > ${atol}`);
}

/** The SDXL single file: SGM UNet, SGM/OpenCLIP text encoders, LDM VAE. */
async function sdxlSingleFile(name: string, extra: [string, Tensor][] = []): Promise<string> {
  const file = path.join(tmp, name);
  await saveSafetensors(file, await entries([
    requireFile(sdxlUnetDir, 'unet_ldm.safetensors'), requireFile(sdxlTextDir, 'text_encoders_sdxl.safetensors'),
    requireFile(vaeDir, 'vae_ldm.safetensors'),
  ], extra));
  return file;
}

describe('model families', () => {
  before(() => E.initCpuBackend());

  it('loads an SDXL single file: family, UNet with added conditioning, both text encoders, VAE', async () => {
    const file = await sdxlSingleFile('sdxl.safetensors');
    const m = await loadSingleFile(file, sdxlConfigs());
    assert.equal(m.family, SDXL);
    assert.equal(familyLabel(m.family, m.prediction), 'SDXL');
    assert.equal(m.textEncoders.length, 2);
    const u = (await loadSafetensors(requireFile(sdxlUnetDir, 'io.safetensors'))).tensors;
    const t = (await loadSafetensors(requireFile(sdxlTextDir, 'io.safetensors'))).tensors;
    const v = (await loadSafetensors(requireFile(vaeDir, 'io.safetensors'))).tensors;
    E.noGrad(() => {
      close(m.unet.forward(u.sample, u.timestep, u.encoder_hidden_states, { textEmbeds: u.text_embeds, timeIds: u.time_ids }), u.out, 'unet out');
      const cond = SDXL.condition(runTextEncoders({ family: SDXL, textEncoders: m.textEncoders }, [t.input_ids_1, t.input_ids_2]), t.input_ids_1.shape[0], 1, undefined);
      close(cond.context, t.context, 'context');
      close(cond.textEmbeds!, t['te2.text_embeds'], 'pooled');
      close(m.vae.decode(v.latent), v.decoded, 'vae');
    });
    assert.throws(() => m.unet.forward(u.sample, u.timestep, u.encoder_hidden_states), /text_time" needs text_embeds and time_ids/);
  });

  it('gives an SDXL single file without a VAE config the SDXL latent scale', async () => {
    const file = await sdxlSingleFile('sdxl-scale.safetensors');
    const { scaling_factor: _, ...vae } = sdxlConfigs().vae;
    const m = await loadSingleFile(file, { ...sdxlConfigs(), vae });
    assert.equal(m.vae.config.scaling_factor, SDXL.vae.scalingFactor);
    assert.equal(SDXL.vae.scalingFactor, 0.13025);
    assert.equal(SDXL.vae.keepF32, true);
  });

  it('names the file and the family when the weights do not fit the config', async () => {
    const file = await sdxlSingleFile('sdxl-bad.safetensors');
    const c = sdxlConfigs();
    const te2 = { ...c.textEncoder2, projection_dim: (c.textEncoder2.projection_dim as number) + 1 };
    await assert.rejects(loadSingleFile(file, { ...c, textEncoder2: te2 }), /sdxl-bad\.safetensors \(SDXL\) conditioner\.embedders\.1\.model\.\*: the weights do not fit the config: .*text_projection\.weight/);
    await assert.rejects(loadSingleFile(file), /sdxl-bad\.safetensors \(SDXL\) UNet: the weights do not fit the config/);
    const part = path.join(tmp, 'sdxl-no-vae.safetensors');
    await saveSafetensors(part, await entries([requireFile(sdxlUnetDir, 'unet_ldm.safetensors'), requireFile(sdxlTextDir, 'text_encoders_sdxl.safetensors')]));
    await assert.rejects(loadSingleFile(part, c), /sdxl-no-vae\.safetensors: not a complete SDXL checkpoint \(no first_stage_model\.\*/);
  });

  it('loads an SDXL diffusers folder with tokenizer_2 padding with 0, and encodes captions (long prompts too)', async () => {
    const dir = await tinySdxlFolder();
    const m = await loadSDModel(dir);
    assert.equal(m.family, SDXL);
    assert.equal(modelLabel(m), 'SDXL');
    assert.equal(m.tokenizers[0].padId, m.tokenizers[0].eosId);
    assert.equal(m.tokenizers[1].padId, 0);
    const captions = ['a cat', 'a photo of a dog on a sofa'];
    const { ids } = tokenizeCaptions(m, captions);
    assert.equal(ids[1].dataSync()[76], 0, 'tokenizer 2 pads with 0');
    E.noGrad(() => {
      const cond = encodeText(m, captions);
      const width = m.textEncoders.reduce((n, t) => n + t.config.hidden_size, 0);
      assert.deepEqual(cond.context.shape, [2, 77, width]);
      assert.equal(width, m.unet.config.cross_attention_dim);
      // The same as the encoders run by hand on the family's token ids.
      const hs = ids.map((x, i) => m.textEncoders[i].forward(x).hiddenStates);
      close(cond.context, E.concat(hs.map((h) => h[h.length - 2]), -1), 'context');
      const out2 = m.textEncoders[1].forward(ids[1]) as CLIPTextProjectionOutput;
      close(cond.textEmbeds!, out2.textEmbeds, 'pooled');
      // 150 tokens: two chunks stitched to 152 positions, pooled from each caption's first chunk.
      const long = encodeText(m, captions, { maxTokenLength: 150 });
      assert.deepEqual(long.context.shape, [2, 152, width]);
      close(long.textEmbeds!, cond.textEmbeds!, 'pooled of the first chunk');
      // Added conditioning for the UNet, and a forward with it.
      const added = SDXL.addedConditioning(cond, captions.map(() => ({ originalSize: [40, 48], cropTopLeft: [0, 8], targetSize: [32, 32] })));
      assert.deepEqual([...added!.timeIds.dataSync()], [40, 48, 0, 8, 32, 32, 40, 48, 0, 8, 32, 32]);
      const out = m.unet.forward(E.randn([2, 4, 8, 8], new E.Rng(1)), E.tensor([10, 500], [2]), cond.context, added);
      assert.deepEqual(out.shape, [2, 4, 8, 8]);
    });
    assert.throws(() => encodeText(m, captions, { clipSkip: 2 }), /SDXL has no clip skip/);
    assert.deepEqual(sdxlTimeIds([{ originalSize: [1, 2], cropTopLeft: [3, 4], targetSize: [5, 6] }]).shape, [1, 6]);
  });

  it('loads an SD 2.x single file: OpenCLIP text encoder without its last block, prediction type', async () => {
    const files = [requireFile(sd1UnetDir, 'unet_ldm.safetensors'), requireFile(vaeDir, 'vae_ldm.safetensors'), sd2TextSingleFile()];
    const file = path.join(tmp, 'sd2.safetensors');
    await saveSafetensors(file, await entries(files));
    const configs = {
      unet: readJson(requireFile(sd1UnetDir, 'config.json')), vae: readJson(requireFile(vaeDir, 'config.json')),
      textEncoder: readJson(requireFile(sd2TextDir, 'config.json')),
    };
    const m = await loadSingleFile(file, configs);
    assert.equal(m.family, SD2);
    assert.equal(m.prediction, 'epsilon');
    assert.equal(familyLabel(m.family, m.prediction), 'SD2');
    const io = (await loadSafetensors(requireFile(sd2TextDir, 'io.safetensors'))).tensors;
    E.noGrad(() => {
      const run = (skip?: number) => SD2.condition(runTextEncoders({ family: SD2, textEncoders: m.textEncoders }, [io.input_ids]), io.input_ids.shape[0], 1, skip).context;
      close(run(), io.sd2_conditioning, 'sd2_conditioning');
      close(run(2), io.clip_skip2_final_ln, 'clip_skip2_final_ln');
    });
    // A `v_pred` marker key, or v_parameterization, makes it SD2-v.
    const vfile = path.join(tmp, 'sd2-v.safetensors');
    await saveSafetensors(vfile, await entries(files, [['v_pred', E.tensor([], [0])]]));
    const v = await loadSingleFile(vfile, configs);
    assert.equal(familyLabel(v.family, v.prediction), 'SD2-v');
    assert.equal(SD2.defaults(v.prediction).resolution, 768);
    // A config whose layer count does not fit the file's OpenCLIP blocks is refused.
    const wrong = { ...configs, textEncoder: { ...configs.textEncoder, num_hidden_layers: (configs.textEncoder.num_hidden_layers as number) + 1 } };
    await assert.rejects(loadSingleFile(file, wrong), /sd2\.safetensors \(SD 2\.x\) cond_stage_model\.model\.\*: \d+ OpenCLIP resblocks, but the config's \d+ layers need \d+/);
  });

  it('names the family in `sdlora inspect`', async (t) => {
    const file = await sdxlSingleFile('sdxl-inspect.safetensors');
    const lines: string[] = [];
    t.mock.method(console, 'log', (m: string) => { lines.push(m); });
    await inspect(file, { limit: 0 });
    t.mock.restoreAll();
    assert.ok(lines.includes('model: SDXL checkpoint'), lines.join('\n'));
    const f = await SafetensorsFile.open(file);
    try {
      assert.equal(await checkpointLabel(new Set(f.keys()), (k) => f.read(k)), 'SDXL');
      assert.equal(await checkpointLabel(new Set(['lora_unet_x.lora_up.weight']), (k) => f.read(k)), null);
    } finally { await f.close(); }
  });

  it('reads v-prediction from SD 2.x weights as ComfyUI does (spread of the last output transformer norm1 bias)', () => {
    const cfg = parseUNetConfig(SD2.defaultConfigs.unet);
    const key = 'model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias';
    const bias = (std: number) => new Map([[key, E.tensor(Array.from({ length: 320 }, (_, i) => (i % 2 ? std : -std)), [320])]]);
    assert.equal(sd2Prediction(bias(0.2), cfg), 'v_prediction');
    assert.equal(sd2Prediction(bias(0.05), cfg), 'epsilon');
    assert.equal(sd2Prediction(bias(0.2), { ...cfg, in_channels: 9 }), 'epsilon', 'inpainting UNets');
    assert.equal(sd2Prediction(new Map(), cfg), 'epsilon');
  });

  it('detects the family from the keys and names unsupported files', () => {
    assert.equal(detectFamily(new Set(['cond_stage_model.transformer.text_model.final_layer_norm.weight']), 'f'), SD1);
    assert.equal(detectFamily(new Set(['cond_stage_model.model.ln_final.weight']), 'f'), SD2);
    assert.equal(detectFamily(new Set(['conditioner.embedders.1.model.ln_final.weight']), 'f'), SDXL);
    assert.equal(detectFamily(new Set(['model.diffusion_model.label_emb.0.0.weight']), 'f'), SDXL);
    assert.throws(() => detectFamily(new Set(['conditioner.embedders.0.model.ln_final.weight']), 'refiner.safetensors'), /refiner\.safetensors: an SDXL refiner/);
    assert.throws(() => detectFamily(new Set(['foo']), 'x.safetensors'), /x\.safetensors: no known text encoder keys/);
  });

  it('converts OpenCLIP text towers to transformers names and back exactly', async () => {
    // SDXL: the SGM file's encoder 2 is exactly text_encoder_2.safetensors (logit_scale aside).
    const sgm = await loadStateDict(requireFile(sdxlTextDir, 'text_encoders_sdxl.safetensors'));
    const te2 = await loadStateDict(requireFile(sdxlTextDir, 'text_encoder_2.safetensors'));
    const prefix = SDXL.textEncoders[1].singleFilePrefix;
    const raw = new Map([...sgm].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
    const { weights } = openClipToTransformers(raw, 'sgm');
    assert.deepEqual([...weights.keys()].sort(), [...te2.keys()].sort());
    for (const [k, t] of weights) assert.equal(maxAbsDiff(t.dataSync(), te2.get(k)!.dataSync()), 0, k);
    const back = transformersToOpenClip(te2);
    raw.delete('logit_scale');
    assert.deepEqual([...back.keys()].sort(), [...raw.keys()].sort());
    for (const [k, t] of back) {
      assert.deepEqual([...t.shape], [...raw.get(k)!.shape], k);
      assert.equal(maxAbsDiff(t.dataSync(), raw.get(k)!.dataSync()), 0, k);
    }
    // SD 2.x: the converted single file is exactly the case's transformers text encoder.
    const sd2 = requireFile(sd2TextDir, 'text_encoder.safetensors');
    const want = await loadStateDict(sd2);
    const parts = splitSingleFile(await loadStateDict(sd2TextSingleFile()), 'sd2', { textEncoder: readJson(requireFile(sd2TextDir, 'config.json')) });
    const got = parts.textEncoder!.tensors;
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [k, t] of got) assert.equal(maxAbsDiff(t.dataSync(), want.get(k)!.dataSync()), 0, k);
  });

  it('carries the per-family data sd-scripts uses', () => {
    assert.deepEqual(SDXL.metadata('epsilon'), {
      ss_v2: 'False', ss_base_model_version: 'sdxl_base_v1-0', 'modelspec.architecture': 'stable-diffusion-xl-v1-base/lora',
      'modelspec.implementation': 'https://github.com/Stability-AI/generative-models',
    });
    assert.equal(SD2.metadata('v_prediction').ss_base_model_version, 'sd_v2_v');
    assert.equal(SD2.metadata('v_prediction')['modelspec.architecture'], 'stable-diffusion-v2-768-v/lora');
    assert.equal(SD2.metadata('epsilon')['modelspec.architecture'], 'stable-diffusion-v2-512/lora');
    assert.equal(SD1.metadata('epsilon').ss_base_model_version, 'sd_v1');
    assert.deepEqual(SDXL.defaults('epsilon'), { resolution: 1024, bucketResoSteps: 32 });
    assert.deepEqual([SD1.latentCacheSuffix, SD2.latentCacheSuffix, SDXL.latentCacheSuffix], ['_sd', '_sd', '_sdxl']);
    assert.deepEqual(SDXL.textEncoders.map((t) => t.loraPrefix), ['lora_te1_', 'lora_te2_']);
  });
});
