// Parity with diffusers/transformers on every model case folder in SDLORA_GOLDEN_DIR. Each case
// is recognised by its config.json and io.safetensors; shapes and names come from the files.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../../src/models/clip-text.js';
import { loadStateDict, readJson, splitLdmStateDict } from '../../src/models/loader.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { AutoencoderKL, parseVAEConfig } from '../../src/models/vae.js';
import { Weights } from '../../src/models/weights.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenDir } from '../helpers/golden.js';

const ATOL = 1e-4;
const root = goldenDir();
const cases = readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory() && existsSync(path.join(root, d.name, 'config.json')))
  .map((d) => ({ name: d.name, dir: path.join(root, d.name), config: readJson(path.join(root, d.name, 'config.json')) }));

function close(got: Tensor, want: Tensor, what: string, atol = ATOL): void {
  assert.deepEqual([...got.shape], [...want.shape], `${what}: shape`);
  const d = maxAbsDiff(got.dataSync(), want.dataSync());
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

/** diffusers-named weights, or LDM-named ones converted (the LDM file is the full-checkpoint prefix). */
async function weightsFor(file: string, kind: 'unet' | 'vae' | 'te', config: Record<string, unknown>): Promise<Weights> {
  const sd = await loadStateDict(file);
  const ldm = [...sd.keys()].some((k) => /^(model\.diffusion_model|first_stage_model|cond_stage_model)\./.test(k));
  if (!ldm) return new Weights(sd, file);
  const parts = splitLdmStateDict(sd, file, kind === 'unet' ? { unet: config } : kind === 'vae' ? { vae: config } : { textEncoder: config });
  const w = kind === 'unet' ? parts.unet : kind === 'vae' ? parts.vae : parts.textEncoder;
  assert.ok(w, `${file}: no ${kind} weights`);
  return w!;
}

describe('golden parity: models', () => {
  before(() => E.initCpuBackend());

  for (const c of cases) {
    const cls = (c.config._class_name ?? c.config.model_type) as string;
    const ioPath = path.join(c.dir, 'io.safetensors');
    if (!existsSync(ioPath)) continue;

    if (cls === 'UNet2DConditionModel') {
      const files = readdirSync(c.dir).filter((f) => /^unet.*\.safetensors$/.test(f));
      const weightFiles = files.length ? files.map((f) => path.join(c.dir, f)) : [findWeights(c, 'unet.safetensors')];
      for (const wf of weightFiles) {
        it(`${c.name}: UNet forward${/_ldm/.test(wf) ? ' (LDM keys)' : ''} and, where recorded, loss and gradients`, async () => {
          const io = (await loadSafetensors(ioPath)).tensors;
          const cfg = parseUNetConfig(c.config);
          const weights = await weightsFor(wf, 'unet', c.config);
          const unet = new UNet2DConditionModel(cfg, weights);
          if (!io.loss) {
            const out = E.noGrad(() => unet.forward(io.sample, io.timestep, io.encoder_hidden_states));
            close(out, io.out, 'out');
            assert.deepEqual(weights.unused(), [], 'every weight is used');
            return;
          }
          weights.requireGrad();
          const sample = io.sample.detach().requireGrad();
          const ctx = io.encoder_hidden_states.detach().requireGrad();
          const out = unet.forward(sample, io.timestep, ctx);
          close(out, io.out, 'out');
          const loss = E.mseLoss(out, io.target);
          assert.ok(Math.abs(loss.item() - io.loss.item()) <= 1e-5 * Math.abs(io.loss.item()), `loss ${loss.item()} vs ${io.loss.item()}`);
          loss.backward();
          const gradTol = (t: Tensor) => 1e-4 * Math.max(...[...t.dataSync()].map(Math.abs));
          close(sample.grad!, io.grad_sample, 'grad_sample', gradTol(io.grad_sample));
          close(ctx.grad!, io.grad_encoder_hidden_states, 'grad_encoder_hidden_states', gradTol(io.grad_encoder_hidden_states));
          const named = Object.keys(io).filter((k) => k.startsWith('grad.') && !k.endsWith('_f64'));
          assert.ok(named.length > 0);
          for (const k of named) close(weights.get(k.slice(5)).grad!, io[k], k, gradTol(io[k]));
        });
      }
    } else if (cls === 'AutoencoderKL') {
      for (const f of readdirSync(c.dir).filter((n) => /^vae.*\.safetensors$/.test(n))) {
        it(`${c.name}: VAE encode/decode${/_ldm/.test(f) ? ' (LDM keys)' : ''}`, async () => {
          const io = (await loadSafetensors(ioPath)).tensors;
          const vae = new AutoencoderKL(parseVAEConfig(c.config), await weightsFor(path.join(c.dir, f), 'vae', c.config));
          E.noGrad(() => {
            if (io.moments) close(vae.encoderMoments(io.image), io.moments, 'moments');
            const d = vae.encode(io.image);
            close(d.mean, io.posterior_mean, 'posterior_mean');
            close(d.logvar, io.posterior_logvar, 'posterior_logvar');
            if (io.posterior_std) close(d.std, io.posterior_std, 'posterior_std');
            if (io.posterior_noise) close(AutoencoderKL.sample(d, io.posterior_noise), io.posterior_sample, 'posterior_sample');
            close(vae.decode(io.latent), io.decoded, 'decoded');
          });
        });
      }
    } else if (cls === 'clip_text_model' || cls === 'CLIPTextModel') {
      for (const f of readdirSync(c.dir).filter((n) => /^text_encoder.*\.safetensors$/.test(n))) {
        it(`${c.name}: CLIP text model, all outputs${/_ldm/.test(f) ? ' (LDM keys)' : ''}`, async () => {
          const io = (await loadSafetensors(ioPath)).tensors;
          const te = new CLIPTextModel(parseCLIPTextConfig(c.config), await weightsFor(path.join(c.dir, f), 'te', c.config));
          E.noGrad(() => {
            const out = te.forward(io.input_ids);
            close(out.lastHiddenState, io.last_hidden_state, 'last_hidden_state');
            close(out.pooled, io.pooler_output, 'pooler_output');
            for (let i = 0; i < out.hiddenStates.length; i++) if (io[`hidden_states.${i}`]) close(out.hiddenStates[i], io[`hidden_states.${i}`], `hidden_states.${i}`);
            if (io.eos_index) assert.deepEqual(te.eosIndex(io.input_ids.to('i32').dataSync() as Int32Array, io.input_ids.shape[0], io.input_ids.shape[1]), [...io.eos_index.dataSync()]);
            if (io.clip_skip2_final_ln) close(te.encode(io.input_ids, 2), io.clip_skip2_final_ln, 'clip_skip2_final_ln');
          });
        });
      }
    }
  }
});
