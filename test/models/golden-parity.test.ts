// Parity with diffusers/transformers on every model case folder in SDLORA_GOLDEN_DIR. Each case
// is recognised by its config.json and io.safetensors; shapes and names come from the files.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { type TestContext, before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { CLIPTextModel, CLIPTextModelWithProjection, type CLIPTextProjectionOutput, parseCLIPTextConfig } from '../../src/models/clip-text.js';
import { openClipToTransformers } from '../../src/models/openclip-keys.js';
import { runTextEncoders } from '../../src/families/text.js';
import { SD1, SD2, SDXL, type ModelFamily } from '../../src/families/index.js';
import { loadStateDict, makeTextEncoder, readJson, splitSingleFile } from '../../src/models/loader.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { AutoencoderKL, parseVAEConfig } from '../../src/models/vae.js';
import { Weights } from '../../src/models/weights.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { allGoldenCases, requireFile } from '../helpers/golden.js';
import { todoFor } from '../helpers/unsupported-cases.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

const ATOL = 1e-4;
// Model cases with a config.json; kinds in the unsupported list run as `todo`.
const cases = allGoldenCases().cases.filter((c) => existsSync(path.join(c.dir, 'config.json')))
  .map((c) => ({ ...c, config: readJson(path.join(c.dir, 'config.json')), todo: todoFor(c.kind) }));

async function close(got: Tensor, want: Tensor, what: string, atol = ATOL): Promise<void> {
  assert.deepEqual([...got.shape], [...want.shape], `${what}: shape`);
  const d = maxAbsDiff(await got.data(), want.dataSync());
  assert.ok(d <= atol, `${what}: max |diff| ${d.toExponential(2)} > ${atol}`);
}

/** The weights of a case: its own file, else a sibling folder with the same config (backward cases). */
function findWeights(c: (typeof cases)[number], file: string): string {
  const own = path.join(c.dir, file);
  if (existsSync(own)) return own;
  const sib = cases.find((o) => o !== c && existsSync(path.join(o.dir, file)) && JSON.stringify(o.config) === JSON.stringify(c.config));
  if (!sib) throw new Error(`${c.dir}: no ${file} here or in a sibling case with the same config`);
  return path.join(sib.dir, file);
}

/**
 * diffusers-named weights, or single-file (LDM/SGM/OpenCLIP) ones converted; a component-only file
 * cannot show its family, so the case kind names it.
 */
async function weightsFor(file: string, part: 'unet' | 'vae' | 'te', config: Record<string, unknown>, family: ModelFamily): Promise<Weights> {
  const sd = await loadStateDict(file);
  const ldm = [...sd.keys()].some((k) => /^(model\.diffusion_model|first_stage_model|cond_stage_model|conditioner)\./.test(k));
  if (!ldm) return new Weights(sd, file);
  const parts = splitSingleFile(sd, file, part === 'unet' ? { unet: config } : part === 'vae' ? { vae: config } : { textEncoder: config }, family);
  const w = part === 'unet' ? parts.unet : part === 'vae' ? parts.vae : parts.textEncoder;
  assert.ok(w, `${file}: no ${part} weights`);
  return w!;
}

/** The backend a test runs on; null when webgpu has no adapter (the test is then skipped). */
async function backend(name: string, t: TestContext): Promise<E.Backend | null> {
  return name === 'cpu' ? E.cpuBackend : webgpuOrSkip(t);
}

for (const beName of ['cpu', 'webgpu']) describe(`golden parity: models on ${beName}`, () => {
  before(() => E.initCpuBackend());

  for (const c of cases) {
    const cls = (c.config._class_name ?? c.config.model_type) as string;
    const ioPath = path.join(c.dir, 'io.safetensors');
    const opts = { todo: c.todo };
    if (!existsSync(ioPath)) {
      it(`${c.name}: has io.safetensors`, () => assert.fail(`${c.dir} lacks io.safetensors`));
      continue;
    }

    if (cls === 'UNet2DConditionModel') {
      const files = readdirSync(c.dir).filter((f) => /^unet.*\.safetensors$/.test(f));
      const weightFiles = files.length ? files.map((f) => path.join(c.dir, f)) : [findWeights(c, 'unet.safetensors')];
      for (const wf of weightFiles) {
        it(`${c.name}: UNet forward${/_ldm/.test(wf) ? ' (LDM keys)' : ''} and, where recorded, loss and gradients`, opts, async (t) => {
          const be = await backend(beName, t);
          if (!be) return;
          const io = (await loadSafetensors(ioPath)).tensors;
          const cfg = parseUNetConfig(c.config);
          const weights = (await weightsFor(wf, 'unet', c.config, c.kind === 'sdxl-unet' ? SDXL : SD1)).toBackend(be);
          const unet = new UNet2DConditionModel(cfg, weights);
          const dev = (x: Tensor) => x.toBackend(be);
          // SDXL (addition_embed_type text_time): the case must hold the added conditioning.
          const sdxl = cfg.addition !== null;
          if (sdxl) for (const k of ['text_embeds', 'time_ids']) assert.ok(io[k], `${ioPath} lacks ${k} (needed by addition_embed_type text_time)`);
          const textEmbeds = sdxl ? dev(io.text_embeds) : null;
          const added = () => (textEmbeds ? { textEmbeds, timeIds: io.time_ids } : undefined);
          if (sdxl) {
            // The added-conditioning intermediates the case records.
            for (const k of ['add_embeds', 'aug_emb', 'time_emb']) assert.ok(io[k], `${ioPath} lacks ${k}`);
            const [addEmbeds, aug, temb] = E.noGrad(() => [
              unet.addEmbeds(added(), io.sample.shape[0], be), unet.addedEmbedding(added(), io.sample.shape[0], be),
              unet.timeEmbedding(dev(io.timestep), io.sample.shape[0], be),
            ]);
            assert.ok(addEmbeds && aug, 'added conditioning of an SDXL UNet');
            await close(addEmbeds, io.add_embeds, 'add_embeds');
            await close(aug, io.aug_emb, 'aug_emb');
            await close(temb, io.time_emb, 'time_emb');
          }
          if (!io.loss) {
            const out = E.noGrad(() => unet.forward(dev(io.sample), dev(io.timestep), dev(io.encoder_hidden_states), added()));
            await close(out, io.out, 'out');
            assert.deepEqual(weights.unused(), [], 'every weight is used');
            return;
          }
          weights.requireGrad();
          const sample = dev(io.sample).requireGrad();
          const ctx = dev(io.encoder_hidden_states).requireGrad();
          textEmbeds?.requireGrad();
          const out = unet.forward(sample, dev(io.timestep), ctx, added());
          await close(out, io.out, 'out');
          const loss = E.mseLoss(out, dev(io.target));
          const lv = await loss.value();
          assert.ok(Math.abs(lv - io.loss.item()) <= 1e-5 * Math.abs(io.loss.item()), `loss ${lv} vs ${io.loss.item()}`);
          loss.backward();
          const gradTol = (t: Tensor) => 1e-4 * Math.max(...[...t.dataSync()].map(Math.abs));
          await close(sample.grad!, io.grad_sample, 'grad_sample', gradTol(io.grad_sample));
          await close(ctx.grad!, io.grad_encoder_hidden_states, 'grad_encoder_hidden_states', gradTol(io.grad_encoder_hidden_states));
          if (textEmbeds) {
            assert.ok(io.grad_text_embeds, `${ioPath} lacks grad_text_embeds`);
            await close(textEmbeds.grad!, io.grad_text_embeds, 'grad_text_embeds', gradTol(io.grad_text_embeds));
          }
          const named = Object.keys(io).filter((k) => k.startsWith('grad.') && !k.endsWith('_f64'));
          assert.ok(named.length > 0);
          for (const k of named) await close(weights.get(k.slice(5)).grad!, io[k], k, gradTol(io[k]));
          assert.deepEqual(weights.unused(), [], 'every weight is used');
        });
      }
    } else if (cls === 'AutoencoderKL') {
      for (const f of readdirSync(c.dir).filter((n) => /^vae.*\.safetensors$/.test(n))) {
        it(`${c.name}: VAE encode/decode${/_ldm/.test(f) ? ' (LDM keys)' : ''}`, opts, async (t) => {
          const be = await backend(beName, t);
          if (!be) return;
          const io = (await loadSafetensors(ioPath)).tensors;
          const dev = (x: Tensor) => x.toBackend(be);
          const vae = new AutoencoderKL(parseVAEConfig(c.config), (await weightsFor(path.join(c.dir, f), 'vae', c.config, SD1)).toBackend(be));
          const checks: [Tensor, Tensor, string][] = E.noGrad(() => {
            const r: [Tensor, Tensor, string][] = [];
            if (io.moments) r.push([vae.encoderMoments(dev(io.image)), io.moments, 'moments']);
            const d = vae.encode(dev(io.image));
            r.push([d.mean, io.posterior_mean, 'posterior_mean'], [d.logvar, io.posterior_logvar, 'posterior_logvar']);
            if (io.posterior_std) r.push([d.std, io.posterior_std, 'posterior_std']);
            if (io.posterior_noise) r.push([AutoencoderKL.sample(d, dev(io.posterior_noise)), io.posterior_sample, 'posterior_sample']);
            r.push([vae.decode(dev(io.latent)), io.decoded, 'decoded']);
            return r;
          });
          for (const [got, want, what] of checks) await close(got, want, what);
        });
      }
    } else if (cls === 'clip_text_model' || cls === 'CLIPTextModel') {
      for (const f of readdirSync(c.dir).filter((n) => /^text_encoder.*\.safetensors$/.test(n))) {
        it(`${c.name}: CLIP text model, all outputs${f !== 'text_encoder.safetensors' ? ' (single-file keys)' : ''}`, opts, async (t) => {
          const be = await backend(beName, t);
          if (!be) return;
          const io = (await loadSafetensors(ioPath)).tensors;
          const family = c.kind === 'sd2-text' ? SD2 : SD1;
          const cfg = parseCLIPTextConfig(c.config);
          const te = new CLIPTextModel(cfg, (await weightsFor(path.join(c.dir, f), 'te', c.config, family)).toBackend(be));
          const ids = io.input_ids.toBackend(be);
          // Every hidden state the model has must be in the case (embeddings + one per layer).
          for (let i = 0; i <= cfg.num_hidden_layers; i++) assert.ok(io[`hidden_states.${i}`], `${ioPath} lacks hidden_states.${i}`);
          const want = (k: string) => { assert.ok(io[k], `${ioPath} lacks ${k}`); return io[k]; };
          const checks: [Tensor, Tensor, string][] = E.noGrad(() => {
            const out = te.forward(ids);
            const r: [Tensor, Tensor, string][] = [[out.pooled, want('pooler_output'), 'pooler_output']];
            for (let i = 0; i < out.hiddenStates.length; i++) r.push([out.hiddenStates[i], io[`hidden_states.${i}`], `hidden_states.${i}`]);
            if (c.kind === 'sd2-text') {
              // The family's conditioning path (what training and txt2img use), with and without sd-scripts' clip skip.
              const stack = { family, textEncoders: [te] };
              const run = (skip?: number) => family.condition(runTextEncoders(stack, [ids]), ids.shape[0], 1, skip).context;
              r.push([out.lastHiddenState, want('sd2_conditioning'), 'last_hidden_state = sd2_conditioning'], [run(), io.sd2_conditioning, 'SD2 conditioning']);
              r.push([run(2), want('clip_skip2_final_ln'), 'SD2 conditioning, clip_skip 2']);
            } else {
              r.push([out.lastHiddenState, want('last_hidden_state'), 'last_hidden_state']);
              if (io.clip_skip2_final_ln) r.push([te.encode(ids, 2), io.clip_skip2_final_ln, 'clip_skip2_final_ln']);
            }
            return r;
          });
          if (c.kind === 'sd2-text') assert.ok(io.eos_index, `${ioPath} lacks eos_index`);
          if (io.eos_index) assert.deepEqual(te.eosIndex(io.input_ids.to('i32').dataSync() as Int32Array, io.input_ids.shape[0], io.input_ids.shape[1]), [...io.eos_index.dataSync()]);
          for (const [got, want, what] of checks) await close(got, want, what);
          assert.deepEqual(te.weights.unused(), [], 'every weight is used');
        });
      }
      if (c.kind === 'sd2-text') {
        it(`${c.name}: full OpenCLIP tower (every block) text_embeds`, opts, async (t) => {
          const be = await backend(beName, t);
          if (!be) return;
          const io = (await loadSafetensors(ioPath)).tensors;
          const file = sd2SingleFile(c.dir);
          const prefix = SD2.textEncoders[0].singleFilePrefix;
          const raw = new Map([...(await loadStateDict(file))].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
          const { weights, blocks } = openClipToTransformers(raw, file);
          const cfg = parseCLIPTextConfig({ ...c.config, num_hidden_layers: blocks });
          const te = new CLIPTextModelWithProjection(cfg, new Weights(weights, file).toBackend(be));
          assert.ok(io.full_text_embeds, `${ioPath} lacks full_text_embeds`);
          const out = E.noGrad(() => te.forward(io.input_ids.toBackend(be)).textEmbeds);
          await close(out, io.full_text_embeds, 'full_text_embeds');
        });
      }
    }
  }
});

/** The SD 2.x case's single-file text encoder (`*_sd2.safetensors`). */
function sd2SingleFile(dir: string): string {
  const f = readdirSync(dir).find((n) => /_sd2\.safetensors$/.test(n));
  if (!f) throw new Error(`${dir}: no *_sd2.safetensors single-file text encoder`);
  return path.join(dir, f);
}

// SDXL's two text encoders (config_te1.json / config_te2.json, no config.json): every hidden state,
// both last hidden states and pools, te2's text_embeds, and the SDXL conditioning (context and
// pooled) through the family, from the transformers files and from the SGM single file.
const sdxlText = allGoldenCases().cases.filter((c) => c.kind === 'sdxl-text').map((c) => ({ ...c, todo: todoFor(c.kind) }));
for (const beName of ['cpu', 'webgpu']) describe(`golden parity: SDXL text encoders on ${beName}`, () => {
  before(() => E.initCpuBackend());
  it('has an sdxl-text case', () => assert.ok(sdxlText.length > 0, 'no sdxl-text golden case'));
  for (const c of sdxlText) {
    for (const layout of ['transformers', 'sgm'] as const) {
      it(`${c.name}: both encoders, context and pooled (${layout} keys)`, { todo: c.todo }, async (t) => {
        const be = await backend(beName, t);
        if (!be) return;
        const io = (await loadSafetensors(requireFile(c.dir, 'io.safetensors'))).tensors;
        const raw = [readJson(requireFile(c.dir, 'config_te1.json')), readJson(requireFile(c.dir, 'config_te2.json'))];
        const cfgs = raw.map((r) => parseCLIPTextConfig(r));
        let weights: Weights[];
        if (layout === 'transformers') {
          weights = await Promise.all(['text_encoder.safetensors', 'text_encoder_2.safetensors'].map(async (f) => new Weights(await loadStateDict(requireFile(c.dir, f)), f)));
        } else {
          const file = requireFile(c.dir, 'text_encoders_sdxl.safetensors');
          const parts = splitSingleFile(await loadStateDict(file), file, { textEncoder: raw[0], textEncoder2: raw[1] });
          assert.equal(parts.family, SDXL, 'family detected from the SGM keys');
          assert.ok(parts.textEncoders.every(Boolean), `${file}: both text encoders`);
          weights = parts.textEncoders as Weights[];
        }
        const tes = SDXL.textEncoders.map((spec, i) => makeTextEncoder(spec, cfgs[i], weights[i].toBackend(be)));
        const want = (k: string) => { assert.ok(io[k], `io.safetensors lacks ${k}`); return io[k]; };
        const ids = ['input_ids_1', 'input_ids_2'].map((k) => want(k).toBackend(be));
        const checks: [Tensor, Tensor, string][] = E.noGrad(() => {
          const r: [Tensor, Tensor, string][] = [];
          tes.forEach((te, i) => {
            const p = `te${i + 1}`;
            const out = te.forward(ids[i]);
            for (let l = 0; l <= cfgs[i].num_hidden_layers; l++) r.push([out.hiddenStates[l], want(`${p}.hidden_states.${l}`), `${p}.hidden_states.${l}`]);
            r.push([out.lastHiddenState, want(`${p}.last_hidden_state`), `${p}.last_hidden_state`]);
            r.push([out.hiddenStates[out.hiddenStates.length - 2], want(`${p}.penultimate`), `${p}.penultimate`]);
            // CLIPTextModel returns pooler_output; CLIPTextModelWithProjection returns text_embeds instead.
            if (!SDXL.textEncoders[i].withProjection) r.push([out.pooled, want(`${p}.pooler_output`), `${p}.pooler_output`]);
            else r.push([(out as CLIPTextProjectionOutput).textEmbeds, want(`${p}.text_embeds`), `${p}.text_embeds`]);
          });
          const cond = SDXL.condition(runTextEncoders({ family: SDXL, textEncoders: tes }, ids), ids[0].shape[0], 1, undefined);
          r.push([cond.context, want('context'), 'context'], [cond.textEmbeds!, want('te2.text_embeds'), 'pooled text_embeds']);
          return r;
        });
        tes.forEach((te, i) => {
          const k = `te${i + 1}.eos_index`;
          assert.ok(io[k], `io.safetensors lacks ${k}`);
          assert.deepEqual(te.eosIndex(io[`input_ids_${i + 1}`].to('i32').dataSync() as Int32Array, ids[i].shape[0], ids[i].shape[1]), [...io[k].dataSync()], k);
        });
        for (const [got, w, what] of checks) await close(got, w, what);
        tes.forEach((te, i) => assert.deepEqual(te.weights.unused(), [], `te${i + 1}: every weight is used`));
      });
    }
  }
});
